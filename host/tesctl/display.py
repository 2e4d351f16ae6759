"""Live session display: a rich panel on a terminal, plain lines otherwise."""
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table


BLIND_PHASE = "blinded"


def waveform_info(canon):
    """(kind, frequency_hz, offset) of a canonical protocol's stimulation: kind is the
    waveform all its stim segments share (dc | sine | noise | pulse), or "mixed";
    frequency_hz the sine/pulse frequency when one (the first), else None; offset True
    when any segment has a DC offset (hybrid tDCS + tACS)."""
    segs = [c for s in (canon or {}).get("segments", []) if s.get("kind") == "stim"
            for c in (s["currents"] if isinstance(s.get("currents"), list) else [s])]   # multi: every channel
    kinds = {s.get("waveform", "dc") for s in segs}
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    freqs = [s.get("frequency_mHz") for s in segs if s.get("waveform") in ("sine", "pulse") and s.get("frequency_mHz")]
    return kind, (freqs[0] / 1000.0 if freqs else None), any(s.get("offset_uA") for s in segs)


LABELS = {"dc": "tDCS", "sine": "tACS", "noise": "tRNS", "pulse": "tPCS", "mixed": "mixed"}


def amplitude_text(kind, freq_hz, offset, set_uA, meas_uA, stats):
    """What the operator reads for the current, per waveform (docs/cli.md "Live view"):
    tDCS its level (the 20 ms mean); tACS peak, RMS and frequency; tRNS its RMS; from the
    device's whole-period figures (stats: set_rms, meas_rms, meas_peak, v_rms, phase_cdeg).
    Without them (a link-1 frame): the 20 ms means, labelled as such."""
    if kind == "dc":
        return "tDCS level %d uA (set %d uA)" % (meas_uA, set_uA)
    if stats is None:
        return "20 ms mean %d uA (set %d uA)" % (meas_uA, set_uA)
    set_rms, rms, peak = stats[0], stats[1], stats[2]
    if kind == "sine":
        text = "tACS %s Hz peak %d uA RMS %d uA (set RMS %d uA)" % (
            "?" if freq_hz is None else "%g" % freq_hz, peak, rms, set_rms)
    elif kind == "noise":
        text = "tRNS RMS %d uA (set RMS %d uA) peak %d uA" % (rms, set_rms, peak)
    else:
        text = "%s%s peak %d uA RMS %d uA (set RMS %d uA)" % (
            LABELS.get(kind, kind), "" if freq_hz is None else " %g Hz" % freq_hz, peak, rms, set_rms)
    if offset:
        text += " mean %d uA" % meas_uA
    return text


def impedance_text(z_ohm, stats):
    """|Z| (the device's RMS ratio or lock-in magnitude) and, when the device knows it, the
    phase of V relative to I."""
    if z_ohm is None:
        return "open / unknown"
    ph = stats[4] if stats is not None else None
    return "%.2f kOhm" % (z_ohm / 1000.0) + ("" if ph is None else " phase %+.1f deg" % (ph / 100.0))


def electrode_text(name, fig, kind, ret=None):
    """One electrode of a multi session (fig: a tes.link.unpack_telem_electrodes row): its
    current (the 20 ms mean for DC, the whole-period RMS otherwise), voltage and |Z|."""
    s, m, v, z, srms, mrms, vrms = fig
    if kind == "dc":
        text = "%d uA (set %d)  V %.2f V" % (m, s, v / 1000.0)
    else:
        text = "RMS %d uA (set RMS %d)  V RMS %.2f V" % (mrms, srms, vrms / 1000.0)
    if name == ret:
        return text + "  return (ground)"
    from tesctl.recorder import z_cell
    z = z_cell(z)
    return text + "  Z " + ("unknown" if z is None else "%.2f kOhm" % (z / 1000.0))


def _fmt_s(s):
    s = max(0, int(s))
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


class Display:
    def __init__(self, title, total_ms, plain=None, blind=False, wave=None, electrodes=None, ret=None):
        self.title = title
        self.electrodes = list(electrodes or ())    # a multi session's names, montage order
        self.ret = ret                              # its return electrode
        self.elec = None          # the latest frame's per-electrode figures
        self.wave = wave or ("mixed", None, False)   # waveform_info(canon)
        self.blind = blind        # a blinded study: time only; phase, current, voltage, impedance hidden
        self.total_ms = max(1, total_ms)
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.console = Console(stderr=False)
        self.live = None
        self.last_plain = -1e9
        self.row = None
        self.stats = None
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

    def update(self, elapsed_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, stats=None, electrodes=None):
        """stats: tes.link.unpack_telem_stats of the frame, or None (not shown blinded);
        electrodes: a multi session's tes.link.unpack_telem_electrodes (montage order)."""
        self.row = (elapsed_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC)
        self.stats = None if self.blind else stats
        self.elec = electrodes if electrodes and len(electrodes) == len(self.electrodes) else None
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
        line = ("%s / %s  %-9s %s  %s  Z %s  Q %.1f mC"
                % (_fmt_s(e / 1000), _fmt_s(self.total_ms / 1000), state,
                   amplitude_text(*self.wave, s, m, self.stats), self._volts(v),
                   impedance_text(z, self.stats), q / 1000.0))
        for name, fig in self._electrode_rows():
            line += "\n    %-8s %s" % (name, electrode_text(name, fig, self.wave[0], self.ret))
        return line

    def _electrode_rows(self):
        return list(zip(self.electrodes, self.elec)) if self.elec else []

    def _volts(self, v_mV):
        """The 20 ms mean for DC; the whole-period RMS for anything else (a mean of AC is 0)."""
        if self.wave[0] != "dc" and self.stats is not None:
            return "V RMS %.2f V" % (self.stats[3] / 1000.0)
        return "V %6.2f V" % (v_mV / 1000.0)

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
        t.add_row("current", amplitude_text(*self.wave, s, m, self.stats))
        t.add_row("impedance", impedance_text(z, self.stats))
        t.add_row("voltage", self._volts(v))
        t.add_row("charge", "%.2f mC" % (q / 1000.0))
        for name, fig in self._electrode_rows():
            t.add_row(name, electrode_text(name, fig, self.wave[0], self.ret))
        t.add_row("", "Ctrl-C: stop with ramp-down; twice: abort")
        return t


class Quiet:
    """The display of a session run from a script (tesctl.api): it shows nothing; the
    script has the telemetry and event callbacks, and the record has everything."""
    note = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def message(self, text):
        pass

    def update(self, *args, **kwargs):
        pass

    def state_change(self, text):
        pass
