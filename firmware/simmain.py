"""Simulated board: the real firmware (tes.app) under the unix port, with hal.sim in place
of the analog stage, speaking the link on stdin/stdout (a pipe or a pty).

    micropython simmain.py [--board FILE] [--realtime] [--storage DIR]
                           [--fault KIND@SECONDS]... [--root FIRMWARE_DIR]

Fault times count from the session's START. Stdout is the link: errors go to stderr.
What only a simulation needs lives here, not in the app: the host-lost fault (the link
drops what the host sends) and, on the fast virtual clock, a gate that holds virtual time
while the host is slow to answer, so a healthy host is never taken for a lost one.
"""
import sys
import time

from hal.sim import SimHal, SimHang, SimReset
from tes.app import App
from tes.board import load_checked
from tes.fwhash import tree_sha256
from tes.port import StreamPort

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


def parse(argv):
    opts = {"board": "boards/sim.json", "realtime": False, "storage": None, "faults": [], "root": "firmware"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--realtime":
            opts["realtime"] = True
        elif a in ("--board", "--storage", "--root", "--fault") and i + 1 < len(argv):
            i += 1
            if a == "--fault":
                kind, _, at = argv[i].partition("@")
                opts["faults"].append((kind, int(float(at or "0") * 1000)))
            else:
                opts[a[2:]] = argv[i]
        else:
            raise ValueError("unknown option " + a)
        i += 1
    return opts


def main():
    try:
        opts = parse(sys.argv[1:])
        board = load_checked(opts["board"])
        hal = SimHal(board, realtime=opts["realtime"], storage=opts["storage"], faults=opts["faults"])
        for kind, _ in opts["faults"]:
            hal.inject(kind, 1 << 29)      # validates the name now; armed at START
        hal.faults = []
        hal.next_at = 1 << 29
        port = SimPort(StreamPort(sys.stdin.buffer, sys.stdout.buffer), hal)
        if not opts["realtime"]:
            hal.gate = port.gate
        fw = tree_sha256(opts["root"])
        reason = "power-on"
        while True:
            app = App(hal, board, port, fw, boot_reason=reason)
            try:
                app.run()
                return
            except SimReset as e:      # the board reset (fault, or watchdog): boot again
                reason = e.args[0] if e.args else "reset"
    except (Exception, SimHang) as e:  # stdout is the link: report on stderr
        sys.stderr.write("simulated board: %s: %s\n" % (type(e).__name__, e))
        sys.exit(3)


main()
