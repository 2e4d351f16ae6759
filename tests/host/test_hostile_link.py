"""The device's link under hostile traffic during stimulation (issue 10, cause 3): a stray
frame of any sequence number cannot shut the real host out, STOP and ABORT are honoured
whatever their number, a flood of legal commands cannot end the session or grow a queue,
and every command argument is range-checked (never an `internal` error)."""
import json
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from hal.sim import SimHal
from tes import link as L
from tes import port as P
from tes.app import App
from tes.board import load_checked
from tes.session import STIM
from tesctl import protofile
from tesctl.paths import BOARDS

BOARD = load_checked(str(BOARDS / "sim.json"))
PROTO = protofile.check_data(b"""schema = 1
name = "t"
[montage]
anode = "F3"
cathode = "Fp2"
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 600
ramp_up_s = 1
ramp_down_s = 1
""")


class Pipe:
    """The port's two byte streams: what the test writes in, what the device wrote out."""

    def __init__(self):
        self.inq = bytearray()
        self.out = bytearray()

    def read(self, n):
        b = bytes(self.inq[:n])
        del self.inq[:n]
        return b

    def write(self, data):
        self.out += data


class Port(P.StreamPort):
    """tes.port.StreamPort's bounded output buffer, with the input as a list of bytes."""

    def __init__(self):
        self.rx = self.tx = Pipe()
        self.eof = False
        self.buf = bytearray(P.OUT_MAX)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.dropped = 0
        self._out = None

    def _ready(self, ms):
        return bool(self.rx.inq)

    @property
    def inq(self):
        return self.rx.inq


class Host:
    def __init__(self, storage):
        self.hal = SimHal(BOARD, storage=storage)
        self.port = Port()
        self.app = App(self.hal, BOARD, self.port, fw_sha256="f" * 64)
        self.dec = L.Decoder()
        self.seq = 0
        self.frames()

    def send(self, typ, obj=None, seq=None, payload=None):
        if seq is None:
            seq, self.seq = self.seq, L.seq_next(self.seq)
        self.port.inq.extend(L.encode(typ, seq, payload if payload is not None else json.dumps(obj or {}).encode()))
        self.app.service()
        return seq

    def frames(self):
        self.port.flush()
        items = self.dec.feed(bytes(self.port.tx.out))
        self.port.tx.out.clear()
        return items

    def errors(self):
        return [json.loads(p)["error"] for t, _, p in self.frames() if t == L.ERROR]

    def run(self, steps):
        """Control steps (each up to the app's next tick), with the host's heartbeat before
        each, as a host keeps the device company: only what a test sends may end a session."""
        for _ in range(steps):
            if self.app.session is None:
                break
            self.send(L.HEARTBEAT)
            self.app.control_step()

    def started(self):
        self.send(L.HELLO, {"link": L.LINK_VERSION})
        for payload in L.load_payloads(PROTO.canonical_bytes()):
            self.send(L.LOAD, payload=payload)
        self.send(L.CHECK, {})
        while self.app.state == L.CHECKING:
            self.app.control_step()
        self.send(L.START, {"sha256": PROTO.sha256()})
        assert self.app.session is not None and self.hal.en
        self.run(300)              # past the 1 s ramp-up (a step is at least 10 ms)
        self.frames()
        return self


def test_abort_after_a_far_ahead_frame_is_honoured():
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage).started()
        h.send(L.STATUS, {}, seq=(h.seq + 20000) & L.SEQ_MASK)       # a stray client's frame
        h.frames()
        h.send(L.HEARTBEAT)
        assert h.errors() == [], "the real host's heartbeat was refused after one stray frame"
        h.send(L.ABORT, {"reason": "operator-abort"})
        h.run(50)
        assert h.app.session is None and not h.hal.en
        from tes import journal
        last = journal.sessions(storage)[-1]
        assert (last["outcome"], last["reason"]) == ("aborted", "operator-abort")


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(stray=st.integers(0, L.SEQ_MASK), typ=st.sampled_from([L.STATUS, L.HEARTBEAT, L.JOURNAL, L.STREAM]))
def test_one_stray_frame_costs_the_host_at_most_one_frame(stray, typ):
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage).started()
        h.send(typ, {}, seq=stray)
        h.frames()
        refused = 0
        for _ in range(2 * 40):
            h.send(L.STATUS)
            refused += h.errors().count("out-of-order")
        assert refused <= 1
        assert h.app.session is not None and h.hal.en


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.integers(0, L.SEQ_MASK), kind=st.sampled_from([L.STOP, L.ABORT]))
def test_stop_and_abort_are_honoured_whatever_their_number(seq, kind):
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage).started()
        h.send(L.STATUS)
        h.send(L.STATUS)
        h.frames()
        h.send(kind, {}, seq=seq)
        assert "out-of-order" not in h.errors()
        for _ in range(300):       # a stop ramps down over 1 s; no heartbeat needed
            if h.app.session is None:
                break
            h.app.control_step()
        assert h.app.session is None and not h.hal.en


def test_duplicate_still_refused():
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage)
        h.send(L.HELLO, {"link": L.LINK_VERSION})
        s = h.send(L.STATUS)
        h.frames()
        h.send(L.STATUS, seq=s)
        assert h.errors() == ["out-of-order"]


def test_status_flood_during_stimulation_ends_nothing_and_grows_nothing():
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage).started()
        for i in range(6000):
            h.port.inq.extend(L.encode(L.STATUS, h.seq, b"{}"))
            h.seq = L.seq_next(h.seq)
            if i % 20 == 0:
                h.app.service()
                h.app.control_step()
                assert h.port.n <= P.OUT_MAX
                h.frames()
        h.app.service()
        h.run(10)
        assert h.app.session is not None and h.hal.en, "a flood of STATUS ended the session"
        assert h.app.session.kind == STIM


@settings(max_examples=60, deadline=None, database=None)
@given(start=st.integers(-L.INT_MAX, L.INT_MAX), count=st.integers(-L.INT_MAX, L.INT_MAX))
def test_journal_arguments_are_range_checked(start, count):
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage)
        h.send(L.HELLO, {"link": L.LINK_VERSION})
        h.frames()
        h.send(L.JOURNAL, {"start": start, "count": count})
        items = h.frames()
        errs = [json.loads(p)["error"] for t, _, p in items if t == L.ERROR]
        assert "internal" not in errs
        if start < 0 or count < 1 or count > 64:
            assert errs == ["bad-field"]
        else:
            assert errs == [] and any(t == L.REPLY for t, _, _ in items)


def test_the_fault_list_is_bounded():
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage)
        for i in range(1000):
            h.app.note_fault("f%d" % i)
        assert h.app.faults == ["f%d" % i for i in range(992, 1000)]
        h.send(L.HELLO, {"link": L.LINK_VERSION})
        h.frames()
        h.send(L.STATUS)
        reply = [json.loads(p) for t, _, p in h.frames() if t == L.REPLY][0]
        assert reply["faults"] == ["f%d" % i for i in range(992, 1000)]
        assert reply["tx_dropped"] == 0
        h.port.dropped = 7                        # the drop count the port keeps reaches STATUS
        h.send(L.STATUS)
        assert [json.loads(p) for t, _, p in h.frames() if t == L.REPLY][0]["tx_dropped"] == 7


def test_a_reader_that_stops_reading_never_blocks_the_device():
    """tes.port.StreamPort with drop (the real-time simulated board) on a real pipe whose
    reader stops: writes never block, the buffer stays bounded, frames that do not fit are
    dropped and counted, and what was kept goes out once the reader reads again."""
    import os
    r, w = os.pipe()
    rx_r, rx_w = os.pipe()
    with os.fdopen(w, "wb", buffering=0) as tx, os.fdopen(rx_r, "rb", buffering=0) as rx:
        port = P.StreamPort(rx, tx, drop=True)
        frame = L.encode(L.TELEM, 1, bytes(L.TELEM_SIZE))
        for _ in range(20000):                 # ~ 0.5 MB: far past a pipe's 64 KiB
            port.write(frame)
            port.flush()
            assert port.n <= P.OUT_MAX
        assert port.dropped > 0
        kept = port.n
        got = bytearray()
        os.set_blocking(r, False)

        def drain():
            while True:
                try:
                    b = os.read(r, 65536)
                except BlockingIOError:
                    return
                got.extend(b)
        drain()
        port.flush()                             # room again: the kept bytes go out
        assert port.n == 0 and kept > 0
        drain()
        items = L.Decoder().feed(bytes(got))
        assert all(i[0] != L.BAD for i in items)
        assert len(items) + port.dropped == 20000   # every frame sent whole, or dropped and counted
    os.close(r)
    os.close(rx_w)


json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                          max_leaves=5)
fuzz_payload = st.one_of(
    st.dictionaries(st.sampled_from(["link", "host", "current_uA", "duration_ms", "sha256", "reason", "start",
                                     "count", "on", "decim", "x"]), json_value, max_size=3).map(
        lambda d: json.dumps(d).encode()).filter(lambda b: len(b) <= L.MAX_PAYLOAD),
    st.binary(max_size=40))
fuzz_frame = st.tuples(st.sampled_from(list(L.HOST_TYPES)) | st.integers(0, 255), st.integers(0, L.SEQ_MASK),
                       fuzz_payload, st.sampled_from(["ok", "crc", "garbage"]))


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(fuzz_frame, min_size=20, max_size=60))
def test_fuzzed_frames_during_stimulation(frames):
    """Any frames from a second client during a session: the output never exceeds the
    protocol, no frame makes an internal error, and the session ends only by a command
    (a STOP or ABORT among the frames) or runs on."""
    from tes import journal
    with tempfile.TemporaryDirectory() as storage:
        h = Host(storage).started()
        for typ, seq, payload, kind in frames:
            raw = bytearray(L.encode(typ, seq, payload)) if len(payload) <= L.MAX_PAYLOAD else bytearray(b"\x00")
            if kind == "crc" and len(raw) > 4:
                raw[len(raw) // 2] ^= 0x5A
                raw = raw[:-1].replace(b"\x00", b"\x01") + b"\x00"
            elif kind == "garbage":
                raw = bytes(payload).replace(b"\x00", b"\x01") + b"\x00"
            h.port.inq.extend(raw)
            h.app.service()
            errs = [json.loads(p).get("error") for t, _, p in h.frames() if t == L.ERROR]
            assert "internal" not in errs
            h.run(2)                               # the real host heartbeats on
            assert h.hal.peak_uA <= 1000 + 10
            if h.app.session is None:
                break
        if h.app.session is None:
            last = journal.sessions(storage)[-1]
            assert last["outcome"] in ("stopped", "aborted"), last
