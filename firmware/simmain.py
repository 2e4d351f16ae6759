"""Simulated board: the real firmware (tes.app) under the unix port, with hal.sim in place
of the analog stage, speaking the link on stdin/stdout (a pipe or a pty).

    micropython simmain.py [--board FILE] [--realtime] [--storage DIR]
                           [--fault KIND@SECONDS]... [--root FIRMWARE_DIR]

Fault times count from the session's START. Stdout is the link: errors go to stderr.
"""
import sys

from hal.sim import SimHal, SimHang, SimReset
from tes.app import App
from tes.board import load_checked
from tes.fwhash import tree_sha256
from tes.port import StreamPort


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
        hal = SimHal(board, realtime=opts["realtime"], storage=opts["storage"])
        for kind, _ in opts["faults"]:
            hal.inject(kind, 1 << 29)      # validates the name now; rescheduled at START
        hal.faults = []
        hal.next_at = 1 << 29
        port = StreamPort(sys.stdin.buffer, sys.stdout.buffer)
        fw = tree_sha256(opts["root"])
        faults = opts["faults"]
        reason = "power-on"
        while True:
            app = App(hal, board, port, fw, fast=not opts["realtime"], boot_reason=reason, faults=faults)
            faults = []
            try:
                app.run()
                return
            except SimReset as e:      # the board reset (fault, or watchdog): boot again
                reason = e.args[0] if e.args else "reset"
    except (Exception, SimHang) as e:  # stdout is the link: report on stderr
        sys.stderr.write("simulated board: %s: %s\n" % (type(e).__name__, e))
        sys.exit(3)


main()
