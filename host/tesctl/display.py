"""Live session display: a rich panel on a terminal, plain lines otherwise."""
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table


BLIND_PHASE = "blinded"


def _fmt_s(s):
    s = max(0, int(s))
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


class Display:
    def __init__(self, title, total_ms, plain=None, blind=False):
        self.title = title
        self.blind = blind        # a blinded study: time only; phase, current, voltage, impedance hidden
        self.total_ms = max(1, total_ms)
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.console = Console(stderr=False)
        self.live = None
        self.last_plain = -1e9
        self.row = None
        self.note = ""

    def __enter__(self):
        if not self.plain:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def message(self, text):
        if self.live is not None:
            self.live.console.print(text)
        else:
            print(text, flush=True)

    def update(self, elapsed_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC):
        self.row = (elapsed_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC)
        if self.live is not None:
            self.live.update(self._render())
        else:
            now = time.monotonic()
            if now - self.last_plain >= 5.0:
                self.last_plain = now
                print(self._line(), flush=True)

    def state_change(self, text):
        if self.plain and not self.blind:
            print(self._line() + "  " + text if self.row else text, flush=True)

    def _line(self):
        e, state, s, m, v, z, q = self.row
        if self.blind:
            return "%s / %s  %s" % (_fmt_s(e / 1000), _fmt_s(self.total_ms / 1000), BLIND_PHASE)
        return ("%s / %s  %-9s set %5d uA  meas %5d uA  V %6.2f V  Z %s  Q %.1f mC"
                % (_fmt_s(e / 1000), _fmt_s(self.total_ms / 1000), state, s, m, v / 1000.0,
                   "open" if z is None else "%.1f kOhm" % (z / 1000.0), q / 1000.0))

    def _render(self):
        t = Table.grid(padding=(0, 2))
        t.add_column(justify="right", style="bold")
        t.add_column()
        t.add_row("protocol", self.title)
        if self.row is None:
            t.add_row("state", "connecting")
            return t
        e, state, s, m, v, z, q = self.row
        t.add_row("phase", (BLIND_PHASE if self.blind else state) + ("  " + self.note if self.note else ""))
        t.add_row("elapsed", "%s   remaining %s" % (_fmt_s(e / 1000), _fmt_s((self.total_ms - e) / 1000)))
        t.add_row("progress", ProgressBar(total=self.total_ms, completed=min(e, self.total_ms), width=40))
        if self.blind:
            t.add_row("contact", "checked before the session; the device watches it throughout (faults are shown)")
            t.add_row("", "Ctrl-C: stop with ramp-down; twice: abort")
            return t
        t.add_row("current", "set %d uA   measured %d uA" % (s, m))
        t.add_row("impedance", "open / unknown" if z is None else "%.2f kOhm" % (z / 1000.0))
        t.add_row("voltage", "%.2f V" % (v / 1000.0))
        t.add_row("charge", "%.2f mC" % (q / 1000.0))
        t.add_row("", "Ctrl-C: stop with ramp-down; twice: abort")
        return t
