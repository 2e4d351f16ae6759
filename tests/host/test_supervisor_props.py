"""Properties of the device app on the simulated board (CPython, hypothesis): over random
waveforms and loads, no delivered sample exceeds the limits, a clean session on a load
the stage can drive completes, and an injected hard fault is caught within 2 ms of the
moment it becomes observable."""
import json
import os
import sys
from array import array

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "firmware"))
from devrun import BOARD, DeviceRun  # noqa: E402
from tes import supervisor as S  # noqa: E402
from tes.engine import Engine  # noqa: E402
from tes.limits import board_limits  # noqa: E402

LIMIT = board_limits(BOARD)[0]["max_current_uA"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FS = 5000


def protocol(wave, amp, freq_hz):
    seg = {"kind": "stim", "waveform": wave, "amplitude_uA": amp, "offset_uA": 0,
           "frequency_mHz": freq_hz * 1000 if wave == "sine" else 0, "phase_deg": 0, "band_mHz": [0, 0],
           "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 1500,
           "ramp_up_ms": 300, "ramp_down_ms": 300, "ramp_shape": "linear"}
    return {"schema": 1, "name": "p", "sample_rate_hz": FS,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 50000}}


def board(load):
    b = json.loads(json.dumps(BOARD))
    b["model"].update(load)
    b["model"]["skin_ohm_floor"] = load["skin_ohm"] // 2
    return b


def loads():
    return st.fixed_dictionaries({
        "series_ohm": st.integers(200, 2000),
        "skin_ohm": st.integers(2000, 12000),
        "skin_nF": st.integers(10, 3000),
    })


@SETTINGS
@given(st.sampled_from(["dc", "sine"]), st.integers(100, LIMIT), st.integers(1, 100), loads())
def test_no_sample_exceeds_the_limit_and_clean_runs_complete(wave, amp, freq, load):
    d = DeviceRun(protocol(wave, amp, freq), "prop-clean", board=board(load))
    d.run_to_end()
    assert d.hal.peak_uA <= LIMIT
    outcome, reason = d.outcome()
    # Only a load the stage cannot drive within its compliance may stop a clean run.
    need_mV = amp * (load["series_ohm"] + load["skin_ohm"]) // 1000
    if need_mV < 25000:
        assert (outcome, reason) == ("completed", "completed"), (outcome, reason, need_mV)
    else:
        assert outcome == "completed" or reason in ("compliance", "impedance-high"), reason


def observable_ms(kind, p, at_ms):
    """Session time (ms) at or after at_ms at which the fault can be seen at all."""
    e = Engine(p)
    samples = array("i", [0] * e.total)
    e.fill(samples, e.total)
    start = at_ms * FS // 1000
    if kind == "liftoff":
        for k in range(start, len(samples) - 1):
            if abs(samples[k]) >= 200:            # the collapse rule's threshold
                return k * 1000 // FS
    elif kind == "short":
        # The rule needs a mean |i| >= its floor over a block or a SHORT_WIN_MS window: seen
        # once |set| has stayed above the floor (+ ADC noise) for two windows running, so
        # that a whole window, however the supervisor's windows fall, lies inside.
        span = 2 * S.SHORT_WIN_MS * FS // 1000
        run = 0
        for k in range(start, len(samples) - 1):
            run = run + 1 if abs(samples[k]) >= S.SHORT_MIN_uA + 20 else 0
            if run >= span:
                return k * 1000 // FS
    else:  # dac-stuck: the set current has moved away from the frozen code
        ref = samples[start - 1] if start else 0
        for k in range(start, len(samples)):
            if abs(samples[k] - ref) > 12:
                return k * 1000 // FS
    return None


@SETTINGS
@given(st.sampled_from(["dc", "sine"]), st.integers(300, 2000), st.integers(1, 40), loads(),
       st.sampled_from(["liftoff", "short", "dac-stuck"]), st.integers(50, 2000))
def test_injected_fault_is_never_missed(wave, amp, freq, load, kind, at):
    p = protocol(wave, amp, freq)
    d = DeviceRun(p, "prop-fault", board=board(load), faults=[(kind, at)])
    d.run_to_end()
    assert d.hal.peak_uA <= LIMIT
    seen = observable_ms(kind, p, at)
    if seen is None:
        return                         # never observable (e.g. frozen on a flat plateau)
    outcome, reason = d.outcome()
    assert outcome == "fault", (kind, outcome, reason)
    # A short is judged per block once the set current has kept its sign for SIGN_HOLD_MS
    # (from the session start on a DC protocol), else over SHORT_WIN_MS windows.
    steady = wave == "dc" and seen >= S.SIGN_HOLD_MS + 1
    bound = 2 if (kind != "short" or steady) else 2 * S.SHORT_WIN_MS + 5
    zero_ms = d.hal.zero_at_us // 1000 - d.t0
    assert zero_ms <= seen + bound + 1, (kind, wave, seen, zero_ms, reason)
