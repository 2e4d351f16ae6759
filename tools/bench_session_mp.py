"""Simulated-board session harness (run by tools/bench.py under the unix port).

The real firmware (tes.app.App) on hal.sim.SimHal, fed by an in-memory host that speaks
the link: HELLO, LOAD chunks, CHECK, START with the protocol's sha256, then HEARTBEAT
every HB_MS of virtual time. Device output is counted and discarded. Ends when the
session ends (the port then reports eof and App.run returns) or the board resets.

    micropython bench_session_mp.py PROTO_JSON SHA256 STORAGE_DIR [--fault KIND@MS]
                                    [--board FILE] [--hb MS] [--slow] [--raw]

Prints "key value" lines; bench.py parses them. Never asserts on speed.
"""
import gc
import sys
import time

import micropython

from hal.sim import SimHal, SimReset
from tes import link as L
from tes.app import App
from tes.board import load_checked


class BenchHal(SimHal):
    """SimHal that remembers the first zero() after the first logged fault onset."""

    def __init__(self, board, storage):
        SimHal.__init__(self, board, realtime=False, storage=storage)
        self.first_zero_us = -1

    def zero(self):
        SimHal.zero(self)
        if self.ev_n and self.first_zero_us < 0:
            self.first_zero_us = self.zero_at_us


class FakePort:
    """An in-memory link: the host's side is a small state machine run from read()."""

    def __init__(self, hal, proto_bytes, sha, hb_ms, raw):
        self.hal = hal
        self.app = None
        self.eof = False
        self.seq = 0
        self.step = 0
        self.loads = L.load_payloads(proto_bytes)
        self.sha = sha
        self.hb_ms = hb_ms
        self.raw = raw
        self.next_hb = 0
        self.started = False
        self.start_ms = -1
        self.end_ms = -1
        self.note = ""
        self.out_bytes = 0
        self.out_frames = 0
        self.in_frames = 0
        self._pending = 0

    def _frame(self, typ, payload):
        f = L.encode(typ, self.seq, payload)
        self.seq = (self.seq + 1) & L.SEQ_MASK
        self.in_frames += 1
        return f

    def _cmd(self, typ, obj):
        return self._frame(typ, L.dumps(obj).encode())

    def read(self, limit=2048):
        app = self.app
        if self.eof or app is None:
            return b""
        st = self.step
        if st == 0:
            self.step = 1
            return b"\x00" + self._cmd(L.HELLO, {"link": L.LINK_VERSION, "host": "bench"})
        if st == 1:
            if self.loads:
                return self._frame(L.LOAD, self.loads.pop(0))
            self.step = 2
            if app.state != L.LOADED:
                self.note = "load refused (state %s)" % L.STATE_NAMES[app.state]
                self.eof = True
                return b""
            return self._cmd(L.CHECK, {})
        if st == 2:
            if app.state == L.CHECKING:
                return b""
            if app.state != L.READY:
                self.note = "check failed (state %s)" % L.STATE_NAMES[app.state]
                self.eof = True
                return b""
            self.step = 3
            if self.raw:
                return self._cmd(L.RAWREQ, {"on": True}) + self._cmd(L.START, {"sha256": self.sha})
            return self._cmd(L.START, {"sha256": self.sha})
        # st == 3: running
        now = self.hal.ticks_ms()
        if app.session is not None:
            if not self.started:
                self.started = True
                self.start_ms = now
            if now >= self.next_hb:
                self.next_hb = now + self.hb_ms
                return self._frame(L.HEARTBEAT, b"")
            return b""
        if self.started or now > 10000:
            if self.end_ms < 0:
                self.end_ms = now
            self.eof = True
        return b""

    def wait(self, ms):
        return not self.eof

    def write(self, data):
        n = len(data)
        self.out_bytes += n
        self.out_frames += 1
        self._pending += n

    def pending(self):
        return self._pending

    def flush(self):
        self._pending = 0


def main():
    args = sys.argv[1:]
    if args and args[0].endswith("bench_session_mp.py"):
        args = args[1:]
    proto_path, sha, storage = args[0], args[1], args[2]
    faults = []
    board_path = "boards/sim.json"
    hb_ms = 250
    fast = True
    raw = False
    i = 3
    while i < len(args):
        a = args[i]
        if a == "--fault":
            i += 1
            kind, _, at = args[i].partition("@")
            faults.append((kind, int(at)))
        elif a == "--board":
            i += 1
            board_path = args[i]
        elif a == "--hb":
            i += 1
            hb_ms = int(args[i])
        elif a == "--slow":
            fast = False
        elif a == "--raw":
            raw = True
        i += 1
    with open(proto_path, "rb") as f:
        proto_bytes = f.read()
    gc.collect()
    print("live_after_imports", gc.mem_alloc())
    board = load_checked(board_path)
    hal = BenchHal(board, storage)
    port = FakePort(hal, proto_bytes, sha, hb_ms, raw)
    del proto_bytes
    app = App(hal, board, port, "0" * 64, fast=fast, faults=faults)
    port.app = app
    gc.collect()
    print("live_after_app", gc.mem_alloc())
    outcome = "?"
    t0 = time.ticks_ms()
    try:
        app.run()
        outcome = "returned"
    except SimReset as e:
        outcome = "reset:" + (e.args[0] if e.args else "reset")
    except MemoryError as e:
        outcome = "MemoryError:" + str(e)
    wall = time.ticks_diff(time.ticks_ms(), t0)
    gc.collect()
    print("outcome", outcome)
    print("note", port.note or "-")
    print("state", L.STATE_NAMES[app.state])
    print("app_faults", ",".join(app.faults) or "-")
    print("wall_ms", wall)
    print("virtual_ms", hal.ticks_ms())
    print("start_ms", port.start_ms)
    print("end_ms", port.end_ms if port.end_ms >= 0 else hal.ticks_ms())
    print("out_bytes", port.out_bytes)
    print("out_frames", port.out_frames)
    print("in_frames", port.in_frames)
    print("log", ";".join("%d:%s" % (ms, name) for ms, name in hal.log()) or "-")
    print("first_zero_us", hal.first_zero_us)
    print("zero_at_us", hal.zero_at_us)
    print("resets", hal.resets)
    print("live_end", gc.mem_alloc())
    print("heap_total", gc.mem_alloc() + gc.mem_free())
    print("mem_peak", micropython.mem_peak())
    print("mem_current", micropython.mem_current())


main()
