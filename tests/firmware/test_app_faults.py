"""Every fault kind through the real device app (tes.app) on the simulated board: output
zero (and the enable off) within the bound, the right reason, and the journal record.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import json

from hal.sim import SimHal, SimReset
from tes import journal
from tes import link as L
from tes.app import App
from tes.board import load_checked

try:
    import os
    _HERE = os.path.dirname(__file__)
except (ImportError, AttributeError):
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
BOARD = load_checked(_HERE + "/../../boards/sim.json")
DEFAULT_FS = 5000   # tesctl.protofile.DEFAULT_SAMPLE_RATE


class Port:
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


def protocol(fs, waveform="dc", duration_ms=6000):
    seg = {"kind": "stim", "waveform": waveform, "amplitude_uA": 2000 if waveform == "dc" else 1500,
           "offset_uA": 0, "frequency_mHz": 10000 if waveform == "sine" else 0, "phase_deg": 0,
           "band_mHz": [0, 0], "seed": 1, "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False,
           "duration_ms": duration_ms, "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    return {"schema": 1, "name": "faults", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


def _storage(tag):
    d = "build/test-app-faults-" + tag
    try:
        os.mkdir("build")
    except OSError:
        pass
    try:
        os.mkdir(d)
    except OSError:
        pass
    try:
        os.remove(d + "/journal.log")
    except OSError:
        pass
    return d


def start_session(proto, storage_tag, hal=None, faults=()):
    """A device app on the simulated board, after LOAD, a passed CHECK and START."""
    storage = _storage(storage_tag)
    hal = hal or SimHal(BOARD, storage=storage)
    port = Port()
    app = App(hal, BOARD, port, "x", faults=faults)
    data = L.dumps(proto).encode()
    seq = 0
    for payload in L.load_payloads(data):
        port.inq += L.encode(L.LOAD, seq, payload)
        seq += 1
    port.inq += L.encode(L.CHECK, seq, b"{}")
    app.service()
    port.inq += L.encode(L.START, seq + 1, json.dumps({"sha256": app.sha}).encode())
    app.service()
    assert app.session is not None
    return app, hal, port, seq + 2


def run(kind, at_ms, fs=DEFAULT_FS, waveform="dc", duration_ms=6000):
    """-> (latency_us from onset to zero, outcome, reason, journal's last record)."""
    app, hal, port, _ = start_session(protocol(fs, waveform, duration_ms), kind, faults=[(kind, at_ms)])
    storage = app.storage
    outcome = None
    try:
        while app.session is not None:
            if kind != "host-lost":
                app.last_rx = hal.ticks_ms()     # a healthy host's heartbeats
            app.control_step()
        outcome = app.faults[-1] if app.faults else "completed"
    except SimReset as e:
        app = App(hal, BOARD, port, "x", boot_reason=e.args[0])   # the board boots again
        outcome = e.args[0]
    onset_ms = [ms for ms, ev in hal.log() if ev == kind][0]
    assert not hal.en
    last = journal.sessions(storage)[-1]
    return hal.zero_at_us - onset_ms * 1000, outcome, last


def check_hard(kind, fs=DEFAULT_FS, waveform="dc", bound_us=2000, reason=None):
    latency, outcome, rec = run(kind, 3000, fs, waveform)
    reason = reason or kind
    assert outcome == reason, (kind, outcome)
    assert 0 <= latency <= bound_us, (kind, fs, latency)
    assert (rec["outcome"], rec["reason"]) == ("fault", reason), rec
    assert rec["delivered_charge_uC"] > 0


def test_liftoff():
    check_hard("liftoff", reason="open-circuit")
    check_hard("liftoff", fs=1000, reason="open-circuit")


def test_short():
    check_hard("short")
    check_hard("short", fs=1000)


def test_dac_stuck_on_a_moving_waveform():
    check_hard("dac-stuck", waveform="sine")
    check_hard("dac-stuck", fs=1000, waveform="sine")


def test_adc_stuck():
    check_hard("adc-stuck")
    # At 1 kS/s one conversion a block: six alike conversions take 6 ms (docs/safety.md).
    check_hard("adc-stuck", fs=1000, bound_us=6000)


def test_soft_stops_ramp_down_then_zero():
    for kind, reason, lo, hi in (("drift", "impedance-high", 200000, 15000000),
                                 ("host-lost", "host-lost", 3000000, 5000000)):
        latency, outcome, rec = run(kind, 1000, duration_ms=40000)
        assert outcome == reason, (kind, outcome)
        assert lo <= latency <= hi, (kind, latency)     # detection, then a ramp, not a drop
        assert (rec["outcome"], rec["reason"]) == ("fault", reason)


def test_stall_and_reset_boot_with_the_output_off():
    for kind, bound_us in (("stall", 1000000), ("reset", 0)):
        latency, outcome, rec = run(kind, 3000)
        assert outcome == ("watchdog" if kind == "stall" else "reset")
        assert 0 <= latency <= bound_us, (kind, latency)
        # The open record was closed at boot: the journal keeps the ending and the charge.
        assert (rec["outcome"], rec["reason"]) == ("fault", "reset"), rec
        assert rec["delivered_charge_uC"] >= 0


def test_safety_stop_takes_over_a_long_operator_ramp():
    p = protocol(DEFAULT_FS, duration_ms=60000)
    p["segments"][0]["ramp_down_ms"] = 300000     # the longest ramp the limits allow
    app, hal, port, seq = start_session(p, "stop-then-lost")
    while hal.ticks_ms() < 3000:
        app.last_rx = hal.ticks_ms()
        app.control_step()
    port.inq += L.encode(L.STOP, seq, b"{}")
    app.service()
    assert app.session.outcome == ("stopped", "operator-stop")
    t_stop = hal.ticks_ms()
    while app.session is not None:             # the host goes silent during the ramp
        app.control_step()
        assert hal.ticks_ms() - t_stop < 10000, "host-lost did not cut the 5-minute ramp"
    last = journal.sessions(app.storage)[-1]
    assert (last["outcome"], last["reason"]) == ("fault", "host-lost")
    assert not hal.en


def test_fault_while_streaming_needs_a_new_check():
    p = protocol(DEFAULT_FS)
    storage = _storage("stream-fault")
    hal = SimHal(BOARD, storage=storage)
    port = Port()
    app = App(hal, BOARD, port, "x")
    seq = 0
    for payload in L.load_payloads(L.dumps(p).encode()):
        port.inq += L.encode(L.LOAD, seq, payload)
        seq += 1
    port.inq += L.encode(L.CHECK, seq, b"{}") + L.encode(L.STREAM, seq + 1, b'{"on":true}')
    app.service()
    assert app.state == L.STREAMING
    hal.inject("short", hal.ticks_ms() + 200)
    while app.session is not None:
        app.last_rx = hal.ticks_ms()
        app.control_step()
    assert app.state == L.FAULT and not hal.en
    port.inq += L.encode(L.START, seq + 2, json.dumps({"sha256": app.sha}).encode())
    app.service()
    assert app.session is None and not hal.en


class WrappingClock(SimHal):
    """A board clock: ticks_ms wraps at 2**30 ms. Starts 4 s before the wrap."""
    OFFSET = (1 << 30) - 4000

    def ticks_ms(self):
        return (SimHal.ticks_ms(self) + self.OFFSET) & 0x3FFFFFFF


def test_session_runs_through_the_tick_wrap():
    p = protocol(DEFAULT_FS, duration_ms=6000)
    hal = WrappingClock(BOARD, storage=_storage("wrap"))
    app, hal, port, seq = start_session(p, "wrap", hal)
    telem_before = app.last_telem
    while app.session is not None:
        app.last_rx = hal.ticks_ms()
        app.control_step()
        assert SimHal.ticks_ms(hal) < 20000, "the session did not end across the wrap"
    assert app.last_telem != telem_before
    last = journal.sessions(app.storage)[-1]
    assert (last["outcome"], last["reason"]) == ("completed", "completed")


def test_raw_streaming_allocates_nothing_between_ticks_and_resets_at_hello():
    import sys
    p = protocol(10000, duration_ms=3000)
    app, hal, port, seq = start_session(p, "raw-lock")
    port.inq += L.encode(L.RAWREQ, seq, b'{"on":true}')
    app.service()
    assert app.raw_on
    locked = 0
    mp = sys.implementation.name == "micropython"
    if mp:
        import micropython
    from tes.app import ticks_diff
    while app.session is not None:
        app.last_rx = hal.ticks_ms()
        quiet = (ticks_diff(app.next_tick, hal.ticks_ms()) > 1 and app.session.engine.left > 20)
        if quiet and mp:
            micropython.heap_lock()
            try:
                app.control_step()
            finally:
                micropython.heap_unlock()
            locked += 1
        else:
            app.control_step()
    assert app.raw_dropped == 0
    assert locked > 1000 or not mp
    app.raw_on = True
    port.inq += L.encode(L.HELLO, 0, b'{"link":1}')
    app.service()
    assert app.raw_on is False
