"""Online changes (tes.online, issue 15): the protocol's [online] bounds, the device's
judge of every change, and the engine applying what it accepted at its exact sample.

Exactness is checked against closed forms, not against the engine itself: a DC ramp is
a0 + da*(j+1)//n sample by sample; a sine's phase after a frequency change is the exact
rational phase of the two frequencies; a phase change adds its step spread over the ramp,
dq per sample and dq + 1 for the last r samples (n*dq + r = the step, exactly).
Runs under CPython (pytest), the unix port and the 32-bit WebAssembly port."""
from array import array

from tes import link as L
from tes import online as O
from tes import validate as V
from tes.engine import Engine
from tes.limits import CEILING
from tes.tables import SINE

from devrun import DeviceRun

try:
    import micropython
except ImportError:
    micropython = None

FS = 1000
UP, FLAT, DOWN = 500, 6000, 500


def protocol(waveform="sine", amp=1000, params=None, burst=None, ramp_ms=100, freq=10000, phase=0, fs=FS,
             offset=0):
    seg = {"kind": "stim", "waveform": waveform, "amplitude_uA": amp, "offset_uA": offset,
           "frequency_mHz": freq if waveform == "sine" else 0, "phase_deg": phase if waveform == "sine" else 0,
           "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False,
           "duration_ms": FLAT, "ramp_up_ms": UP, "ramp_down_ms": DOWN, "ramp_shape": "linear"}
    if params is None:
        params = {"amplitude_uA": {"min": 0, "max": 2000, "step": 500, "interval_ms": 1000}}
    return {"schema": 1, "name": "online", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000},
            "online": {"ramp_ms": ramp_ms, "params": params, "burst": burst}}


def run(engine, n):
    out = array("i", [0] * n)
    got = 0
    buf = array("i", [0] * 97)          # blocks that straddle every change
    while got < n:
        m = engine.fill(buf, min(97, n - got))
        if m == 0:
            break
        for i in range(m):
            out[got + i] = buf[i]
        got += m
    return out


def paths(proto, lim=None):
    return [p[0] for p in V.check(proto, lim or CEILING)]


# ---- the section ------------------------------------------------------------------------
def test_an_online_section_is_valid_and_optional():
    assert V.check(protocol(), CEILING) == []
    p = protocol()
    del p["online"]
    assert V.check(p, CEILING) == []


def test_online_bounds_must_hold_the_protocols_value_and_the_limits():
    b = {"min": 0, "max": 2000, "step": 500, "interval_ms": 1000}
    p = protocol(params={"amplitude_uA": dict(b, min=1001)})
    assert paths(p) == ["online.params.amplitude_uA.min"]
    p = protocol(params={"amplitude_uA": dict(b, max=999)})
    assert paths(p) == ["online.params.amplitude_uA.max"]
    p = protocol(params={"amplitude_uA": dict(b, step=0)})
    assert paths(p) == ["online.params.amplitude_uA.step"]
    p = protocol(params={"amplitude_uA": dict(b, max=4000)})
    assert V.check(p, CEILING) == []
    p = protocol(params={"amplitude_uA": dict(b, max=4001)})
    assert paths(p) == ["online.params"]           # the peak the bounds allow
    lim = dict(CEILING, max_current_uA=3000)
    assert paths(protocol(params={"amplitude_uA": dict(b, max=3000)}), lim) == []
    assert paths(protocol(params={"amplitude_uA": dict(b, max=3001)}), lim) == ["online.params"]
    # offset and amplitude together: the largest of both
    p = protocol(params={"amplitude_uA": dict(b, max=3000), "offset_uA": dict(b, min=-1000, max=1000)})
    assert V.check(p, CEILING) == []
    p = protocol(params={"amplitude_uA": dict(b, max=3000), "offset_uA": dict(b, min=-1001, max=1000)})
    assert paths(p) == ["online.params"]


def test_online_charge_bound_is_at_the_largest_current():
    b = {"min": 0, "max": 2000, "step": 500, "interval_ms": 1000}
    p = protocol(params={"amplitude_uA": b})
    seg = p["segments"][0]
    ms2 = 2 * seg["duration_ms"] + seg["ramp_up_ms"] + seg["ramp_down_ms"]
    bound = (2000 * ms2 + 1999) // 2000
    assert paths(p, dict(CEILING, max_charge_uC=bound)) == []
    assert paths(p, dict(CEILING, max_charge_uC=bound - 1)) == ["online.params"]


def test_online_scope_and_what_each_waveform_may_change():
    b = {"min": 1000, "max": 20000, "step": 500, "interval_ms": 1000}
    assert paths(protocol("dc", params={"frequency_mHz": b})) == ["online.params.frequency_mHz"]
    assert V.check(protocol("sine", params={"frequency_mHz": b}), CEILING) == []
    assert paths(protocol("sine", params={"frequency_mHz": dict(b, max=100001)})) == \
        ["online.params.frequency_mHz.max"]
    assert paths(protocol("sine", params={"frequency_mHz": dict(b, min=0)})) == ["online.params.frequency_mHz.min"]
    p = protocol()
    p["sham"] = {"ramp_up_ms": 100, "plateau_ms": 0, "ramp_down_ms": 100, "double": False}
    assert "online" in paths(p)
    p = protocol()
    p["segments"].append({"kind": "pause", "duration_ms": 1000})
    assert paths(p) == ["online"]
    p = protocol(ramp_ms=0)
    assert paths(p) == ["online.ramp_ms"]
    assert paths(protocol(ramp_ms=CEILING["min_ramp_ms"] - 1)) == ["online.ramp_ms"]   # no step without a ramp
    assert paths(protocol(ramp_ms=CEILING["min_ramp_ms"])) == []
    b = {"min": 0, "max": 359, "step": 10, "interval_ms": 0}
    assert paths(protocol("dc", params={"phase_deg": b})) == ["online.params.phase_deg"]
    assert paths(protocol("sine", params={"phase_deg": b})) == []
    assert paths(protocol("sine", params={"phase_deg": dict(b, step=181)})) == ["online.params.phase_deg.step"]
    # spread over the ramp, a phase step is a frequency offset: step/360 cycles over ramp_ms.
    # 10 Hz at 1 kS/s (limit 100 Hz), ramp 100 ms: 180 degrees add 5 Hz; at 95 Hz, 180 is too much
    f = {"min": 5000, "max": 95000, "step": 1000, "interval_ms": 0}
    assert paths(protocol("sine", params={"phase_deg": dict(b, step=180), "frequency_mHz": f})) == []
    f["max"] = 95001
    assert paths(protocol("sine", params={"phase_deg": dict(b, step=180), "frequency_mHz": f})) == \
        ["online.params.phase_deg.step"]
    b = {"min": 0, "max": 2000, "step": 500, "interval_ms": CEILING["max_session_ms"] + 1}
    assert paths(protocol(params={"amplitude_uA": b})) == ["online.params.amplitude_uA.interval_ms"]
    assert paths(protocol(ramp_ms=65535)) == []
    assert paths(protocol(ramp_ms=65536)) == ["online.ramp_ms"]
    p = protocol(burst={"interval_ms": 100, "start": "maybe"})
    assert paths(p) == ["online.burst.start"]
    p = protocol()
    p["online"]["extra"] = 1
    assert paths(p) == ["online.extra"]


# ---- the judge --------------------------------------------------------------------------
def test_every_refusal_at_its_boundary():
    p = protocol(params={"amplitude_uA": {"min": 500, "max": 2000, "step": 500, "interval_ms": 1000},
                         "frequency_mHz": {"min": 5000, "max": 20000, "step": 2000, "interval_ms": 0}},
                 ramp_ms=100)
    up, end = UP, UP + FLAT          # the plateau's samples at 1 kS/s
    ramp = 100
    e = Engine(p)
    assert e.change(O.PHASE, 10, up) == ("not-online", up)
    assert e.change(O.AMP, 499, up)[0] == "out-of-bounds"
    assert e.change(O.AMP, 2001, up)[0] == "out-of-bounds"
    assert e.change(O.AMP, 1501, up)[0] == "step"
    assert e.change(O.AMP, 1000, up - 1)[0] == "outside-plateau"
    assert e.change(O.AMP, 1000, end - ramp + 1)[0] == "outside-plateau"
    assert e.change(O.FREQ, 12000, end - 1) == (None, end - 1)     # not ramped: to the last sample
    assert e.change(O.FREQ, 12000, end)[0] == "outside-plateau"
    e = Engine(p)
    assert e.change(O.AMP, 1500, up + 1000) == (None, up + 1000)
    assert e.change(O.AMP, 2000, up + 999)[0] == "out-of-order"
    assert e.change(O.AMP, 2000, up + 1999)[0] == "too-soon"       # 1000 ms apart at least
    assert e.change(O.AMP, 2000, up + 2000) == (None, up + 2000)   # 500 from 1500: the step
    assert e.change(O.FREQ, 12000, up + 2000 + ramp - 1) == (None, up + 2000 + ramp - 1)
    run(e, up + 2500)
    assert e.change(O.AMP, 1500, up + 2499)[0] == "late"
    assert e.change(O.AMP, 1500, None) == ("too-soon", up + 2500)
    e = Engine(p)
    for k in range(O.QUEUE):
        assert e.change(O.FREQ, 12000 - 2000 * (k % 2), up + k)[0] is None
    assert e.change(O.FREQ, 12000, up + O.QUEUE)[0] == "busy"


def test_ramped_changes_do_not_overlap():
    p = protocol(params={"amplitude_uA": {"min": 0, "max": 2000, "step": 2000, "interval_ms": 0},
                         "offset_uA": {"min": -500, "max": 500, "step": 500, "interval_ms": 0}},
                 burst={"interval_ms": 0, "start": "on"}, ramp_ms=100)
    e = Engine(p)
    assert e.change(O.AMP, 1200, UP + 10)[0] is None
    assert e.change(O.OFFSET, 300, UP + 109)[0] == "ramping"
    assert e.change(O.BURST, 0, UP + 109)[0] == "ramping"
    assert e.change(O.OFFSET, 300, UP + 110)[0] is None


def test_no_change_is_the_protocol_without_its_section():
    for wf in ("dc", "sine"):
        p = protocol(wf)
        q = protocol(wf)
        del q["online"]
        n = (UP + FLAT + DOWN) * FS // 1000
        assert run(Engine(p), n + 10) == run(Engine(q), n + 10)


def test_a_dc_amplitude_change_ramps_exactly_and_holds():
    p = protocol("dc", params={"amplitude_uA": {"min": 0, "max": 2000, "step": 1500, "interval_ms": 0}},
                 ramp_ms=250)
    e = Engine(p)
    at = UP + 1234
    assert e.change(O.AMP, 2000, at)[0] is None
    out = run(e, UP + FLAT + DOWN)
    n = 250
    assert out[at - 1] == 1000
    for j in range(n):
        assert out[at + j] == 1000 + 1000 * (j + 1) // n, j
    assert out[at + n] == 2000
    assert out[UP + FLAT - 1] == 2000
    # the protocol's own ramp-down starts from the changed level: no step
    assert out[UP + FLAT] <= 2000 and out[UP + FLAT] >= 2000 - 2000 // DOWN - 1
    assert out[UP + FLAT + DOWN - 1] <= 2000 // DOWN + 1


def _sine_at(ph):
    k = ph >> 10
    a = SINE[k]
    return a + (((SINE[k + 1] - a) * (ph & 1023)) >> 10)


def _phase(cycles_num, den):
    """Phase (2**20 a cycle) of cycles_num/den cycles, exact, as the accumulator keeps it."""
    return (cycles_num << 20) // den & 0xFFFFF


def test_a_frequency_change_is_phase_continuous_and_exact():
    f0, f1 = 10000, 13700           # mHz
    p = protocol("sine", amp=1000, freq=f0,
                 params={"frequency_mHz": {"min": 1000, "max": 20000, "step": 5000, "interval_ms": 0}})
    e = Engine(p)
    at = UP + 777
    assert e.change(O.FREQ, f1, at)[0] is None
    out = run(e, UP + FLAT)
    den = FS * 1000
    for k in range(UP, UP + FLAT):
        # cycles (x den) at sample k: f0 per sample up to the change, f1 after
        c = f0 * k if k <= at else f0 * at + f1 * (k - at)
        want = (1000 * _sine_at(_phase(c, den)) + 16384) >> 15
        assert out[k] == want, (k, out[k], want)


def test_bursts_gate_the_current_with_ramps():
    p = protocol("sine", amp=1000, params={}, burst={"interval_ms": 0, "start": "off"}, ramp_ms=50)
    e = Engine(p)
    on, off = UP + 1000, UP + 3000
    assert e.change(O.BURST, 1, on)[0] is None
    assert e.change(O.BURST, 0, off)[0] is None
    out = run(e, UP + FLAT + DOWN)
    assert max(abs(v) for v in out[:on]) == 0            # off from the start, ramp-up included
    assert max(abs(v) for v in out[on + 50:off]) > 990
    assert max(abs(v) for v in out[off + 50:]) == 0
    assert max(abs(v) for v in out[on:on + 5]) < 1000 * 6 // 50


def test_changes_allocate_nothing_in_the_fill():
    p = protocol("sine", params={"amplitude_uA": {"min": 0, "max": 2000, "step": 500, "interval_ms": 0},
                                 "frequency_mHz": {"min": 1000, "max": 20000, "step": 5000, "interval_ms": 0},
                                 "phase_deg": {"min": 0, "max": 359, "step": 180, "interval_ms": 0},
                                 "offset_uA": {"min": -500, "max": 500, "step": 500, "interval_ms": 0}},
                 burst={"interval_ms": 0, "start": "on"})
    e = Engine(p)
    for k, (code, v) in enumerate(((O.AMP, 1500), (O.FREQ, 12000), (O.BURST, 0), (O.BURST, 1), (O.PHASE, 180),
                                   (O.OFFSET, -300))):
        assert e.change(code, v, UP + 200 + 300 * k)[0] is None
    buf = array("i", [0] * 64)
    total = 0
    if micropython is not None:
        micropython.heap_lock()
    try:
        while True:
            n = e.fill(buf, 64)
            if n == 0:
                break
            total += n
    finally:
        if micropython is not None:
            micropython.heap_unlock()
    assert total == (UP + FLAT + DOWN) * FS // 1000
    assert e.applied == 6


def test_a_soft_stop_after_a_change_starts_from_the_changed_level():
    p = protocol("dc", params={"amplitude_uA": {"min": 0, "max": 2000, "step": 1000, "interval_ms": 0}})
    e = Engine(p)
    assert e.change(O.AMP, 2000, UP + 100)[0] is None
    out = run(e, UP + 1000)
    assert out[UP + 999] == 2000
    e.soft_stop(400)
    rest = run(e, 1000)
    assert 2000 - 2000 // 400 - 1 <= rest[0] <= 2000
    assert all(rest[i + 1] <= rest[i] for i in range(399))
    assert e.change(O.AMP, 1500, None)[0] == "stopping"


# ---- through the device app -------------------------------------------------------------
def _capture(d):
    frames = []
    dec = L.Decoder()
    d.port.write = lambda data: frames.extend(dec.feed(bytes(data)))
    return frames


def _json(frames, typ):
    return [L.decode_json(f[2])[0] for f in frames if f[0] == typ]


def test_the_device_applies_a_change_at_its_session_time_and_records_it():
    p = protocol("dc", params={"amplitude_uA": {"min": 0, "max": 2000, "step": 600, "interval_ms": 500}},
                 ramp_ms=100)
    d = DeviceRun(p, "online-app")
    frames = _capture(d)
    d.run_until(d.t0 + 1000)
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 1600, "at_ms": 2000})
    replies = _json(frames, L.REPLY)
    assert replies[-1]["at_ms"] == 2000 and replies[-1]["at_sample"] == 2000
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 2300, "at_ms": 3000})
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 900, "at_ms": 3000})
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 1700, "at_ms": 2100})
    d.send(L.CHANGE, {"param": "frequency_mHz", "value": 2000})
    errors = _json(frames, L.ERROR)
    assert [(x["error"], x["detail"]) for x in errors] == [
        ("refused", "out-of-bounds"), ("refused", "step"), ("refused", "too-soon"), ("refused", "not-online")]
    d.run_to_end()
    assert d.outcome() == ("completed", "completed")
    s = d.samples
    base = d.first
    assert s[base + 1999] == 1000
    assert [s[base + 2000 + j] for j in range(100)] == [1000 + 600 * (j + 1) // 100 for j in range(100)]
    assert s[base + 2100] == 1600
    events = [e for e in _json(frames, L.EVENT) if e.get("ev") == "change"]
    assert [(e["param"], e["value"], e["at_ms"]) for e in events] == [("amplitude_uA", 1600, 2000)]
    assert d.last_record()["changes"] == [[2000, "amplitude_uA", 1600, 2000]]


def test_a_change_without_a_session_or_outside_the_protocol_is_refused():
    p = protocol("dc")
    del p["online"]
    d = DeviceRun(p, "online-none")
    frames = _capture(d)
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 1000})
    assert _json(frames, L.ERROR)[-1]["detail"] == "not-online"
    d.send(L.ABORT)
    d.send(L.CHANGE, {"param": "amplitude_uA", "value": 1000})
    assert _json(frames, L.ERROR)[-1]["error"] == "bad-state"
    assert d.last_record().get("changes") is None


def test_a_soft_stop_inside_an_online_ramp_starts_from_the_level_of_the_moment():
    p = protocol("dc", params={"amplitude_uA": {"min": 0, "max": 2000, "step": 1000, "interval_ms": 0}},
                 ramp_ms=400)
    e = Engine(p)
    at = UP + 100
    assert e.change(O.AMP, 2000, at)[0] is None
    out = run(e, at + 100)                       # a quarter of the way up the 400-sample ramp
    mid = out[at + 99]
    assert mid == 1000 + 1000 * 100 // 400
    e.soft_stop(300)
    rest = run(e, 400)
    # the stop's first sample is at most the level of the moment (never the target, 2000)
    assert mid - mid // 300 - 1 <= rest[0] <= mid, (mid, rest[0])
    assert all(rest[i + 1] <= rest[i] for i in range(299)) and rest[299] <= mid // 300 + 1



def test_phase_steps_are_circular_and_spread_over_the_ramp():
    p = protocol(params={"phase_deg": {"min": 0, "max": 359, "step": 20, "interval_ms": 0}}, phase=350)
    e = Engine(p)
    assert e.change(O.PHASE, 10, UP)[0] is None          # 350 -> 10: 20 degrees
    assert e.change(O.PHASE, 349, UP + 100)[0] == "step"  # 10 -> 349: 21 degrees
    e = Engine(p)
    assert e.change(O.PHASE, 10, UP)[0] is None
    assert e.change(O.PHASE, 0, UP + 99)[0] == "ramping"   # the spread takes ramp_ms
    assert e.change(O.PHASE, 0, UP + 100)[0] is None


def _spread(at, n, d):
    """Extra phase units added before sample k by a step d spread from sample `at` over n."""
    dq = d // n
    r = d - n * dq

    def extra(k):
        j = min(max(k - at, 0), n)               # advances of the spread before sample k
        return j * dq + max(0, j - (n - r))
    return extra


def test_a_phase_change_adds_its_step_exactly_spread_over_the_ramp():
    f0 = 6000
    for new, ramp in ((270, 100), (0, 137), (100, 250)):  # +180, -90 (shorter way), +10 degrees
        p = protocol("sine", amp=1500, freq=f0, phase=90, ramp_ms=ramp,
                     params={"phase_deg": {"min": 0, "max": 359, "step": 180, "interval_ms": 0},
                             "frequency_mHz": {"min": 1000, "max": 20000, "step": 5000, "interval_ms": 0}})
        e = Engine(p)
        at = UP + 321
        assert e.change(O.PHASE, new, at)[0] is None
        fat = at + ramp // 2                        # a frequency change inside the spread
        f1 = 7300
        assert e.change(O.FREQ, f1, fat)[0] is None
        out = run(e, UP + FLAT)
        den = FS * 1000
        d = ((new << 20) // 360 - (90 << 20) // 360) & 0xFFFFF
        if d > 1 << 19:
            d -= 1 << 20
        extra = _spread(at, ramp, d)
        base = (90 << 20) // 360
        prev = None
        for k in range(UP, UP + FLAT):
            c = f0 * k if k <= fat else f0 * fat + f1 * (k - fat)
            ph = (_phase(c, den) + base + extra(k)) & 0xFFFFF
            want = (1500 * _sine_at(ph) + 16384) >> 15
            assert out[k] == want, (new, k, out[k], want)
            if prev is not None:     # no jump: a step of at most the fastest slope at f + the spread
                assert abs(out[k] - prev) <= 1500 * 2 * 3.1416 * (20 + 500 / ramp) / FS + 2, (k, prev, out[k])
            prev = out[k]
        assert extra(UP + FLAT) == d and e.ps_extra == 0
