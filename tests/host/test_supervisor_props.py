"""Properties of Engine + SimHal + Supervisor (CPython, hypothesis): no delivered sample
exceeds the limits, and an injected hard fault is caught within 2 ms of the moment it
becomes observable."""
import os
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "firmware"))
import simrun as S  # noqa: E402
from tes.engine import Engine  # noqa: E402
from tes.limits import board_limits  # noqa: E402

LIMIT = board_limits(S.sim_board())[0]["max_current_uA"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def protocol(wave, amp, freq_hz):
    seg = S.stim(waveform=wave, amplitude_uA=amp, frequency_mHz=freq_hz * 1000 if wave == "sine" else 0,
                 duration_ms=1500, ramp_up_ms=300, ramp_down_ms=300)
    return S.proto([seg])


def loads():
    return st.fixed_dictionaries({
        "series_ohm": st.integers(200, 2000),
        "skin_ohm": st.integers(2000, 12000),
        "skin_nF": st.integers(10, 3000),
    })


@SETTINGS
@given(st.sampled_from(["dc", "sine"]), st.integers(100, LIMIT), st.integers(1, 100), loads())
def test_no_sample_exceeds_the_limit(wave, amp, freq, load):
    load["skin_ohm_floor"] = load["skin_ohm"] // 2
    r = S.run(protocol(wave, amp, freq), board=S.sim_board(**load))
    assert r.peak_uA <= LIMIT
    assert r.outcome in ("completed", "stopped", "fault")
    if r.outcome == "fault":           # only compliance can stop a clean run, and rightly
        assert r.reason in ("compliance", "tracking-error"), r


def observable_ms(kind, p, at_ms, frozen_uA=None):
    """First ms at or after at_ms at which the fault can be seen at all."""
    e = Engine(p)
    fs = p["sample_rate_hz"]
    samples = []
    from array import array
    buf = array("i", [0] * 1000)
    while True:
        n = e.fill(buf, 1000)
        if not n:
            break
        samples.extend(buf[:n])
    start = at_ms * fs // 1000
    if kind in ("liftoff", "short"):
        need = 20 if kind == "liftoff" else 110   # 100 uA rule + ADC noise and DAC step
        for k in range(start, len(samples) - 1):
            if abs(samples[k]) >= need and abs(samples[k + 1]) >= need:
                return k * 1000 // fs
    else:  # dac-stuck: the set current has moved away from the frozen code
        ref = samples[start - 1] if start else 0
        for k in range(start, len(samples)):
            if abs(samples[k] - ref) > 12:
                return k * 1000 // fs
    return None


@SETTINGS
@given(st.sampled_from(["dc", "sine"]), st.integers(300, 2000), st.integers(1, 40), loads(),
       st.sampled_from(["liftoff", "short", "dac-stuck"]), st.integers(50, 2000))
def test_injected_fault_is_never_missed(wave, amp, freq, load, kind, at):
    load["skin_ohm_floor"] = load["skin_ohm"] // 2
    p = protocol(wave, amp, freq)
    b = S.sim_board(**load)
    r = S.run(p, [(kind, at)], board=b)
    assert r.peak_uA <= LIMIT
    seen = observable_ms(kind, p, at)
    if seen is None:
        return                         # never observable (e.g. frozen on a flat plateau)
    assert r.outcome == "fault", (kind, r)
    assert r.zero_us <= (seen + 2) * 1000 + 1000, (kind, seen, r.zero_us)


@SETTINGS
@given(st.integers(1, 4), st.integers(100, 2900))   # session ends at 3000 ms
def test_adc_stuck_is_caught(k, at):
    fs = 1000 * k
    r = S.run(S.proto([S.stim(duration_ms=2000)], fs=fs), [("adc-stuck", at)])
    assert r.outcome == "fault" and r.reason in ("adc-stuck",), r
    assert r.latency_ms() <= max(2, 6000 // fs + 1)
