"""Simulated board: the real firmware (tes.app) under the unix port, with hal.sim in place
of the analog stage, speaking the link on stdin/stdout (a pipe or a pty).

    micropython [-i] simmain.py [--root DIR] [--board FILE] [--realtime] [--storage DIR]
                                [--fault KIND[:ELECTRODE]@SECONDS]... [--boot REASON]

This script plays the part of a board's MicroPython boot, not of the firmware: it is never
copied to a board. It imports tes/ and hal/ from --root (the firmware's filesystem root:
the source tree for `--port sim`, the simulated board's flash folder for `tesctl sim`),
reads the board file (default ROOT/board.json), and runs the app. When the app returns
(the host sent EXIT) or the boot fails, the script ends: under `micropython -i` (as
`tesctl sim` runs it, on a pty) the same process then serves its REPL, where mpremote works
and `machine.reset()` ends the process so that tesctl sim boots it again from its flash.

Fault times count from the session's START; liftoff, short and drift may name an electrode
of the session's montage (liftoff:C3@60; without one, in a session of several electrodes,
the return). Stdout is the link: errors go to stderr.
What only a simulation needs lives here, not in the app: the host-lost fault (the link
drops what the host sends) and, on the fast virtual clock, a gate that holds virtual time
while the host is slow to answer, so a healthy host is never taken for a lost one.
"""
import sys


def _root(argv):
    for i in range(len(argv) - 1):
        if argv[i] == "--root":
            return argv[i + 1]
    return None


# Modules come from the firmware root (default: this script's folder, sys.path[0]).
_ROOT = _root(sys.argv[1:]) or sys.path[0] or "."
sys.path[0] = "" if _ROOT == "." else _ROOT

import time  # noqa: E402

from hal.sim import SimHal, SimHang, SimReset, check_fault  # noqa: E402
from tes.app import App  # noqa: E402
from tes.board import load_checked  # noqa: E402
from tes.fwhash import tree_sha256  # noqa: E402
from tes.port import StreamPort  # noqa: E402

FAST_GATE_MS = 2000    # fast sim: virtual time may run this far past the last host bytes
FAST_WAIT_REAL_MS = 3000


class SimPort:
    """The link as the simulated board sees it: a dead link (host-lost) drops what comes in;
    it notes the virtual time of the last bytes in for the fast clock's gate."""

    def __init__(self, port, hal):
        self.port = port
        self.hal = hal
        self.last_in = hal.ticks_ms()

    @property
    def eof(self):
        return self.port.eof

    def read(self, limit=2048):
        data = self.port.read(limit)
        if data and self.hal.host_gone:
            return b""              # the bytes vanish on a dead link
        if data:
            self.last_in = self.hal.ticks_ms()
        return data

    def wait(self, ms):
        return self.port.wait(ms)

    def write(self, data):
        self.port.write(data)

    def pending(self):
        return self.port.pending()

    @property
    def dropped(self):
        return self.port.dropped

    def flush(self):
        self.port.flush()

    def gate(self):
        """Fast clock: hold virtual time until the host has been heard within FAST_GATE_MS
        of it; a host silent for FAST_WAIT_REAL_MS of real time (or gone) lets it run on."""
        hal = self.hal
        if self.port.eof or hal.host_gone or hal.ticks_ms() - self.last_in <= FAST_GATE_MS:
            return
        self.port.flush()           # the host heartbeats when it hears from us
        t0 = time.ticks_ms()
        while hal.ticks_ms() - self.last_in > FAST_GATE_MS:
            if time.ticks_diff(time.ticks_ms(), t0) > FAST_WAIT_REAL_MS or self.port.eof:
                return
            if self.port.wait(20):
                # Leave the bytes for the app's link service to read; note they came.
                self.last_in = hal.ticks_ms()


class SimMachine:
    """`machine` as the simulated board's REPL finds it: the unix port's module, plus
    reset(), which ends this process (tesctl sim boots it again, like a board's reset)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def reset():
        sys.exit(0)


def _install_machine():
    try:
        import machine
    except ImportError:
        machine = None
    sys.modules["machine"] = SimMachine(machine)


def parse(argv):
    opts = {"board": None, "realtime": False, "storage": None, "faults": [], "root": _ROOT, "boot": "power-on"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--realtime":
            opts["realtime"] = True
        elif a in ("--board", "--storage", "--root", "--fault", "--boot") and i + 1 < len(argv):
            i += 1
            if a == "--fault":
                head, _, at = argv[i].partition("@")
                kind, colon, name = head.partition(":")
                opts["faults"].append((kind, int(float(at or "0") * 1000), name if colon else None))
            else:
                opts[a[2:]] = argv[i]
        else:
            raise ValueError("unknown option " + a)
        i += 1
    return opts


def main():
    try:
        opts = parse(sys.argv[1:])
        _install_machine()
        board = load_checked(opts["board"] or opts["root"] + "/board.json")
        hal = SimHal(board, realtime=opts["realtime"], storage=opts["storage"], faults=opts["faults"])
        for kind, _, name in opts["faults"]:
            check_fault(kind, name)        # now; armed at START
        # Real time: a host that stops reading never blocks the board (drop and count); the
        # fast clock keeps back-pressure, its time waits for the host anyway.
        port = SimPort(StreamPort(sys.stdin.buffer, sys.stdout.buffer, drop=opts["realtime"]), hal)
        if not opts["realtime"]:
            hal.gate = port.gate
        fw = tree_sha256(opts["root"])
        reason = opts["boot"]
        while True:
            app = App(hal, board, port, fw, boot_reason=reason)
            try:
                app.run()
                return             # EXIT (or the host hung up): under -i, the REPL follows
            except SimReset as e:      # the board reset (fault, or watchdog): boot again
                reason = e.args[0] if e.args else "reset"
    except (Exception, SimHang) as e:  # stdout is the link: report on stderr
        sys.stderr.write("simulated board: %s: %s\n" % (type(e).__name__, e))
        sys.exit(3)


main()
