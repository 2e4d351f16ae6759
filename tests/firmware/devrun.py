"""Test helper: the real device app (tes.app) on the simulated board, driven the way a
host drives it (frames through a port), with every sample the HAL receives recorded.

Tests use only this API, so they follow the app through refactors:
    d = DeviceRun(proto, "tag", faults=[("host-lost", 2000)])   # LOAD, CHECK, START done
    d.run_until(2500)            # control steps until the simulated clock passes 2500 ms
    d.send(L.STOP)               # a host command
    d.run_to_end()               # until the session ends
    d.samples[k], d.n            # every sample written to the HAL, in order (a session of C
                                 # driven electrodes: C words a sample, sample-major)
    d.stop_index                 # samples written before the first stop decision
    d.first                      # index of the session's first sample (CHECK writes before)
    d.t0                         # the simulated clock (ms) at START
Runs under the unix port (tools/mptest.py) and CPython (pytest).
"""
import json
from array import array

from hal.sim import SimHal
from tes import journal
from tes import link as L
from tes.app import App
from tes.board import load_checked

try:
    import os
    _HERE = os.path.dirname(__file__)
except (ImportError, AttributeError):
    import os
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
BOARD = load_checked(_HERE + "/../../boards/sim.json")


class Port:
    """The device's link end in memory: frames the test queues, replies discarded."""

    def __init__(self):
        self.inq = bytearray()
        self.eof = False

    def read(self, limit=2048):
        data = bytes(self.inq)
        self.inq = bytearray()
        return data

    def wait(self, ms):
        return False

    def write(self, data):
        pass

    def pending(self):
        return 0

    def flush(self):
        pass


class RecordingHal(SimHal):
    """The simulated board, also keeping every sample written to it (preallocated, so
    recording allocates nothing)."""

    def __init__(self, board, storage, capacity, faults=()):
        SimHal.__init__(self, board, storage=storage, faults=faults)
        self.rec = array("i", [0] * capacity)
        self.n = 0

    def write(self, buf, n):
        # n samples of C words each in a session of C driven electrodes (sample-major):
        # every word is kept, so rec holds what the sources were given, interleaved
        w = n * (self.net.C if self.net is not None else 1)
        k = self.n
        room = len(self.rec) - k
        m = w if w <= room else room
        rec = self.rec
        for j in range(m):
            rec[k + j] = buf[j]
        self.n = k + m
        SimHal.write(self, buf, n)


def storage_dir(tag):
    d = "build/test-devrun-" + tag
    for p in ("build", d):
        try:
            os.mkdir(p)
        except OSError:
            pass
    try:
        os.remove(d + "/journal.log")
    except OSError:
        pass
    return d


class DeviceRun:
    def __init__(self, proto, tag, faults=(), board=BOARD, capacity=None, start=True):
        fs = proto["sample_rate_hz"]
        total = 0
        for s in proto["segments"]:
            total += (s["ramp_up_ms"] + s["duration_ms"] + s["ramp_down_ms"]) if s["kind"] == "stim" \
                else s["duration_ms"]
        self.proto = proto
        self.fs = fs
        # Recording stops when full (a long session need not be kept whole to be run).
        cap = capacity or min(total * fs // 1000 + 4 * fs, 600000)
        self.hal = RecordingHal(board, storage_dir(tag), cap, faults)
        self.port = Port()
        self.app = App(self.hal, board, self.port, "x")
        self.seq = 0
        self.stop_index = -1
        self.first = 0
        self.t0 = 0
        if start:
            self.load()
            self.check()
            self.first = self.hal.n      # the impedance check's samples come before
            self.t0 = self.hal.ticks_ms()  # the clock at START
            self.send(L.START, {"sha256": self.app.sha})
            assert self.app.session is not None, "START refused"

    @property
    def samples(self):
        return self.hal.rec

    @property
    def n(self):
        return self.hal.n

    def load(self):
        for payload in L.load_payloads(L.dumps(self.proto).encode()):
            self.port.inq += L.encode(L.LOAD, self.seq, payload)
            self.seq += 1
        self.app.service()

    def check(self, expect_pass=True):
        """CHECK, run until its result (the check runs through the block loop)."""
        self.send(L.CHECK)
        while self.app.state == L.CHECKING:
            self.step()
        assert (self.app.state == L.READY) == expect_pass, L.STATE_NAMES[self.app.state]

    def send(self, typ, obj=None):
        self.port.inq += L.encode(typ, self.seq, json.dumps(obj or {}).encode())
        self.seq += 1
        self.app.service()
        self._note_stop()

    def running(self):
        return self.app.session is not None

    def _note_stop(self):
        s = self.app.session
        if self.stop_index < 0 and s is not None and s.outcome is not None:
            self.stop_index = self.hal.n

    def step(self, host_alive=True):
        if host_alive:
            self.app.last_rx = self.hal.ticks_ms()     # a healthy host's heartbeats
        self.app.control_step()
        self._note_stop()

    def run_until(self, ms, host_alive=True):
        while self.running() and self.hal.ticks_ms() < ms:
            self.step(host_alive)

    def run_to_end(self, host_alive=True, limit_ms=4000000):
        while self.running():
            self.step(host_alive)
            assert self.hal.ticks_ms() < limit_ms, "the session did not end"

    def last_record(self):
        return journal.sessions(self.app.storage)[-1]

    def outcome(self):
        r = self.last_record()
        return r["outcome"], r["reason"]
