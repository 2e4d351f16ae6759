"""Properties of the uA <-> DAC code conversion (CPython + hypothesis)."""
import os
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from hal import calib
from tes import board

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONVS = [calib.conversion(board.load_checked(os.path.join(ROOT, "boards", n + ".json")))
         for n in ("pico-mcp4922", "esp32-mcp4922", "sim")]


@st.composite
def conversions(draw):
    """Any plausible calibration of a 12-bit bipolar stage, plus the real boards'."""
    if draw(st.booleans()):
        return draw(st.sampled_from(CONVS))
    zero = draw(st.integers(1800, 2300))
    full = draw(st.integers(zero + 500, 4095))
    nA_per_code = draw(st.integers(1500, 3000))
    return {"zero_code": zero, "span_code": full - zero,
            "span_uA": (full - zero) * nA_per_code // 1000 or 1,
            "code_max": 4095, "hw_limit_uA": draw(st.integers(1000, board.HW_LIMIT_CEILING_uA))}


def exact_uA(conv, code):
    return Fraction((code - conv["zero_code"]) * conv["span_uA"], conv["span_code"])


@settings(max_examples=500)
@given(conversions(), st.integers(-20000, 20000))
def test_code_in_range_and_within_hw_limit(conv, uA):
    code = calib.ua_to_code(conv, uA)
    assert 0 <= code <= conv["code_max"]
    hw = conv["hw_limit_uA"]
    assert abs(exact_uA(conv, code)) <= hw
    assert abs(calib.code_to_ua(conv, code)) <= hw


@settings(max_examples=500)
@given(conversions(), st.integers(-20000, 20000), st.integers(-20000, 20000),
       st.integers(0, 4095), st.integers(0, 4095))
def test_monotonic(conv, a, b, c, d):
    assert calib.ua_to_code(conv, min(a, b)) <= calib.ua_to_code(conv, max(a, b))
    assert calib.code_to_ua(conv, min(c, d)) <= calib.code_to_ua(conv, max(c, d))


@settings(max_examples=500)
@given(conversions(), st.integers(-4000, 4000))
def test_nearest_code_when_reachable(conv, uA):
    """Inside the hardware limit and the DAC range, the code is the nearest one."""
    hw = conv["hw_limit_uA"]
    if abs(uA) > hw:
        return
    code = calib.ua_to_code(conv, uA)
    step = Fraction(conv["span_uA"], conv["span_code"])
    if 0 < code < conv["code_max"] and abs(exact_uA(conv, code)) + step <= hw:
        assert abs(exact_uA(conv, code) - uA) <= step / 2


@settings(max_examples=300)
@given(st.integers(1900, 2200), st.integers(2000, 2600), st.integers(3000, 4000))
def test_calibration_recovers_the_stage(true_zero, nA_per_code, full_code):
    """Readings from a stage of unknown offset and slope give back its zero code."""
    def stage(code):
        return (code - true_zero) * nA_per_code // 1000
    cal = calib.calibrate(stage(2048), stage(full_code), 2048, full_code, 1000)
    assert abs(cal["zero_code"] - true_zero) <= 1
    assert board.check_calibration(cal, 4095) == []
