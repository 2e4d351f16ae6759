"""The device app under a storm of hypothesis-generated frames (>= 10,000 in all): bad
frames (garbage, bad CRC, oversize, unknown or out-of-order commands, wrong fields) get an
ERROR and change nothing; nothing ever switches the output on without LOAD, a passed
CHECK and a START naming the loaded protocol's hash."""
import json
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from hal.sim import SimHal
from tes import link as L
from tes.app import CHECK_UA, App
from tes.session import CHECK, STREAM
from tes.board import load_checked
from tesctl.paths import BOARDS

BOARD = load_checked(str(BOARDS / "sim.json"))
FRAMES_SEEN = [0]


class FakePort:
    def __init__(self):
        self.inq = bytearray()
        self.out = bytearray()
        self.eof = False

    def read(self, limit=2048):
        data = bytes(self.inq[:limit])
        del self.inq[:limit]
        return data

    def wait(self, ms):
        return bool(self.inq)

    def write(self, data):
        self.out += data

    def pending(self):
        return 0

    def flush(self):
        pass


def device_frames(port):
    dec = L.Decoder()
    items = dec.feed(bytes(port.out))
    port.out.clear()
    assert all(i[0] != L.BAD for i in items), "the device sent a corrupt frame"
    return items


json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                          max_leaves=6)
field_names = st.sampled_from(["link", "host", "current_uA", "duration_ms", "sha256", "reason", "start", "count",
                               "on", "decim", "x", ""])
# \uXXXX escapes can make a small object's JSON longer than a frame holds (link.encode
# refuses it): keep only payloads that fit, so the test never fails on its own input.
json_payload = st.dictionaries(field_names, json_value, max_size=4).map(
    lambda d: json.dumps(d).encode()).filter(lambda b: len(b) <= L.MAX_PAYLOAD)
host_type = st.sampled_from(list(L.HOST_TYPES)) | st.integers(0, 255)
frame = st.one_of(
    st.tuples(st.just("ok"), host_type, st.integers(0, 0xFFFF), json_payload),
    st.tuples(st.just("ok"), host_type, st.integers(0, 0xFFFF), st.binary(max_size=64)),
    st.tuples(st.just("crc"), host_type, st.integers(0, 0xFFFF), st.binary(max_size=32)),
    st.tuples(st.just("garbage"), st.just(0), st.just(0), st.binary(min_size=1, max_size=80)),
    st.tuples(st.just("oversize"), st.just(0), st.just(0), st.just(b"")),
)


def encode(kind, typ, seq, payload):
    if kind == "garbage":
        return payload.replace(b"\x00", b"\x01") + b"\x00"
    if kind == "oversize":
        return b"\x07" * (L.MAX_ENCODED + 10) + b"\x00"
    raw = bytearray(L.encode(typ, seq, payload))
    if kind == "crc":
        raw[len(raw) // 2] ^= 0x5A
        if 0 in raw[:-1]:
            raw = raw[:-1].replace(b"\x00", b"\x01") + b"\x00"
    return bytes(raw)


@settings(max_examples=160, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(frames=st.lists(frame, min_size=80, max_size=140))
def _storm(frames):
    with tempfile.TemporaryDirectory() as storage:
        hal = SimHal(BOARD, storage=storage)
        port = FakePort()
        app = App(hal, BOARD, port, fw_sha256="f" * 64)
        device_frames(port)
        for kind, typ, seq, payload in frames:
            before = (app.state, app.sha, app.session)
            port.inq += encode(kind, typ, seq, payload)
            app.service()
            replies = device_frames(port)
            FRAMES_SEEN[0] += 1
            # Without LOAD + a passed CHECK + START naming the loaded hash, the only current
            # that may flow is the <= 100 uA test current of CHECK or STREAM.
            s = app.session
            assert s is None or (s.kind in (CHECK, STREAM) and hal.en), "output switched on by a fuzzed frame"
            if s is not None:
                assert s.proto["segments"][0]["amplitude_uA"] <= CHECK_UA
                for _ in range(3):          # let it run a little: the block loop, checked
                    if app.session is not None:
                        app.control_step()
                assert hal.peak_uA <= CHECK_UA + 10
            else:
                assert not hal.en
            assert app.running or typ == L.EXIT
            app.running = True
            if kind in ("crc", "garbage", "oversize") or typ not in L.HOST_TYPES:
                assert (app.state, app.sha) == before[:2] or before[2] is not None, \
                    "a bad frame changed the device"
            errors = [r for r in replies if r[1 - 1] == L.ERROR]
            for _, _, p in errors:
                obj = json.loads(p)
                assert obj["error"] in L.ERROR_CODES
            if errors and kind == "ok" and typ in L.HOST_TYPES and typ not in (L.LOAD, L.CHECK) \
                    and before[2] is None:
                assert (app.state, app.sha) == before[:2], "a refused command changed the state"


def test_device_survives_10000_fuzzed_frames():
    FRAMES_SEEN[0] = 0
    _storm()
    assert FRAMES_SEEN[0] >= 10000, FRAMES_SEEN[0]


def test_start_before_load_is_refused_and_nothing_runs():
    with tempfile.TemporaryDirectory() as storage:
        hal = SimHal(BOARD, storage=storage)
        port = FakePort()
        app = App(hal, BOARD, port, fw_sha256="f" * 64)
        device_frames(port)
        port.inq += L.encode(L.HELLO, 0, L.dumps({"link": L.LINK_VERSION}).encode())
        port.inq += L.encode(L.START, 1, json.dumps({"sha256": "0" * 64}).encode())
        app.service()
        errs = [json.loads(p) for t, _, p in device_frames(port) if t == L.ERROR]
        assert [e["error"] for e in errs] == ["bad-state"]
        assert app.session is None and not hal.en
        # Duplicate sequence number: out-of-order, answered and ignored.
        port.inq += L.encode(L.STATUS, 1, b"{}")
        app.service()
        errs = [json.loads(p) for t, _, p in device_frames(port) if t == L.ERROR]
        assert [e["error"] for e in errs] == ["out-of-order"]


def _started_app(storage):
    from tesctl import protofile
    loaded = protofile.check_data(b"""schema = 1
name = "t"
[montage]
anode = "F3"
cathode = "Fp2"
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 60
ramp_up_s = 1
ramp_down_s = 1
""")
    hal = SimHal(BOARD, storage=storage)
    port = FakePort()
    app = App(hal, BOARD, port, fw_sha256="f" * 64)
    seq = 0
    for payload in L.load_payloads(loaded.canonical_bytes()):
        port.inq += L.encode(L.LOAD, seq, payload)
        seq += 1
    port.inq += L.encode(L.CHECK, seq, b"{}")
    app.service()
    while app.state == L.CHECKING:          # the check runs through the block loop
        app.control_step()
    port.inq += L.encode(L.START, seq + 1, json.dumps({"sha256": loaded.sha256()}).encode())
    app.service()
    assert app.session is not None and hal.en
    return app, hal, port


def test_exception_in_the_control_loop_zeroes_and_records():
    with tempfile.TemporaryDirectory() as storage:
        app, hal, port = _started_app(storage)
        for _ in range(200):            # 2 s: each step runs blocks until the next 10 ms tick
            app.control_step()

        def broken(*args):
            raise ValueError("injected bug")
        app.session.control._check = broken     # the supervisor call of the block path
        port.eof = True                 # after the fault, the idle loop ends the run
        app.run()
        assert app.session is None and not hal.en and hal.code == hal.z
        from tes import journal
        last = journal.sessions(storage)[-1]
        assert (last["outcome"], last["reason"]) == ("fault", "internal")
        assert last["delivered_charge_uC"] > 0


def test_no_flash_write_mid_session_and_the_charge_is_retained_every_tick():
    # A flash write stalls a board's CPU for tens of ms while its output queue holds a few:
    # the journal is written at the start and the end only; in between the charge so far
    # goes to memory that survives a reset (hal.retain), read back at boot (hal.retained).
    from tes import journal
    with tempfile.TemporaryDirectory() as storage:
        app, hal, port = _started_app(storage)
        writes = []
        real = (journal.checkpoint, journal.read)
        journal.checkpoint = lambda *a, **k: writes.append(a)
        journal.read = lambda d: writes.append(d) or real[1](d)
        retained = []
        try:
            for _ in range(13000):      # 65 s: the whole session
                app.last_rx = hal.ticks_ms()    # a healthy host
                app.control_step()
                if app.session is None:
                    break
                r = hal.retained()
                if not retained or r != retained[-1]:
                    retained.append(r)
        finally:
            journal.checkpoint, journal.read = real
        assert writes == []
        assert len(retained) > 100 and all(r[0] == 1 for r in retained)
        charges = [r[1] for r in retained]
        assert charges == sorted(charges) and charges[-1] > 0
        stims = [r[2] for r in retained]
        assert stims == sorted(stims) and 0 < stims[-1] <= 65000
        recs = [r for r in journal.read(storage) if r["id"] == 1]
        assert [r["outcome"] for r in recs] == ["open", "completed"]
        assert abs(recs[-1]["delivered_charge_uC"] - charges[-1]) <= charges[-1] // 50 + 2


@given(a=st.integers(0, (1 << 30) - 1), b=st.integers(-(1 << 28), 1 << 28))
def test_tick_arithmetic_wraps_like_a_board_and_stays_small(a, b):
    from tes.app import ticks_add, ticks_diff
    c = ticks_add(a, b)
    assert c == (a + b) % (1 << 30)
    assert ticks_diff(c, a) == b
    # every intermediate is a 31-bit small int on a board: no allocation in the control loop
    assert -(1 << 30) <= a - c < (1 << 30) and 0x3FFFFFFF - max(b, 0) >= 0
