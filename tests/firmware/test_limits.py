"""The compiled-in safety ceiling and how a board file narrows it (tes.limits).

The ceiling figures are the documented ones (docs/safety.md, Bikson et al. 2016): each is
pinned here, and every narrowing rule is tried just under, at and just over its bound.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes.limits import CEILING, DENSITY_WARN_uA_PER_CM2, board_limits


def test_ceiling_is_the_documented_one():
    assert CEILING == {
        "max_current_uA": 4000,              # 4 mA
        "max_stim_ms": 2400000,              # 40 min
        "max_charge_uC": 7200000,            # 7.2 C
        "max_session_ms": 10800000,          # 3 h, pauses included
        "max_sample_rate_hz": 50000,
        "min_sample_rate_hz": 100,
        "max_ramp_ms": 300000,               # 5 min
        "min_ramp_ms": 100,                  # no step without a ramp
        "max_impedance_ohm": 50000,
        "max_segments": 32,
        "max_sources": 8,                    # independent current sources (issue 12)
    }
    assert DENSITY_WARN_uA_PER_CM2 == 60     # 0.06 mA/cm^2


def test_no_board_is_the_ceiling_and_a_copy():
    lim, problems = board_limits(None)
    assert lim == CEILING and problems == []
    lim["max_current_uA"] = 1
    assert CEILING["max_current_uA"] == 4000    # callers cannot widen the ceiling by mutation
    lim, problems = board_limits({})
    # a board file without current_sources has one source; the rest is the ceiling
    assert lim["max_sources"] == 1 and problems == []
    lim["max_sources"] = CEILING["max_sources"]
    assert lim == CEILING


def test_current_sources_narrow_max_sources():
    for n in (1, 2, 7, 8):
        lim, problems = board_limits({"current_sources": n})
        assert problems == [] and lim["max_sources"] == n, (n, problems)
    lim, problems = board_limits({"current_sources": 9})
    assert problems == ["current_sources = 9: above the compiled-in ceiling 8"] and lim["max_sources"] == 8
    for bad in (0, -1, True, 2.0, "2", None):
        lim, problems = board_limits({"current_sources": bad})
        assert problems == ["current_sources: must be a positive integer"], (bad, problems)
    lim, problems = board_limits({"current_sources": 8, "limits": {"max_sources": 3}})
    assert problems == [] and lim["max_sources"] == 3        # the board's limits narrow it further
    lim, problems = board_limits({"current_sources": 2, "limits": {"max_sources": 3}})
    assert problems == [] and lim["max_sources"] == 2


def test_board_limit_narrows_at_or_under_the_ceiling():
    for key in ("max_current_uA", "max_stim_ms", "max_charge_uC", "max_session_ms", "max_sample_rate_hz",
                "max_ramp_ms", "max_impedance_ohm", "max_segments"):
        top = CEILING[key]
        for value in (top, top - 1, 1):
            lim, problems = board_limits({"limits": {key: value}})
            assert problems == [], (key, value, problems)
            assert lim[key] == value, (key, value)
        lim, problems = board_limits({"limits": {key: top + 1}})
        assert lim[key] == top, key                # refused: the ceiling stands
        assert problems == ["limits.%s = %d: above the compiled-in ceiling %d" % (key, top + 1, top)], problems


def test_floors_may_rise_never_fall():
    for key in ("min_sample_rate_hz", "min_ramp_ms"):
        floor = CEILING[key]
        for value in (floor, floor + 1, floor * 10):
            lim, problems = board_limits({"limits": {key: value}})
            assert problems == [] and lim[key] == value, (key, value)
        lim, problems = board_limits({"limits": {key: floor - 1}})
        assert lim[key] == floor
        assert problems == ["limits.%s = %d: below the compiled-in floor %d" % (key, floor - 1, floor)], problems


def test_limit_values_must_be_integers_and_known():
    for bad in (True, False, 2000.0, "2000", None, [2000]):
        lim, problems = board_limits({"limits": {"max_current_uA": bad}})
        assert lim["max_current_uA"] == 4000, bad
        assert problems == ["limits.max_current_uA: must be an integer"], (bad, problems)
    lim, problems = board_limits({"limits": {"max_volts": 5}})
    assert problems == ["limits.max_volts: unknown limit"] and "max_volts" not in lim
    lim, problems = board_limits({"limits": [1, 2]})
    assert problems == ["limits: must be an object"] and lim == CEILING


def test_several_problems_are_all_reported():
    lim, problems = board_limits({"limits": {"max_current_uA": 5000, "min_ramp_ms": 10, "max_segments": 8},
                                  "hw_current_limit_uA": 0, "max_sample_rate_hz": 60000})
    assert len(problems) == 4, problems
    assert lim["max_segments"] == 8 and lim["max_current_uA"] == 4000 and lim["min_ramp_ms"] == 100


def test_hardware_current_limit_narrows_only_downward():
    # A board whose analog stage limits at 3000 uA: the software limit follows it down.
    for hw, want in ((3000, 3000), (3999, 3999), (4000, 4000), (4001, 4000), (4500, 4000), (1, 1)):
        lim, problems = board_limits({"hw_current_limit_uA": hw})
        assert problems == [] and lim["max_current_uA"] == want, (hw, lim["max_current_uA"])
    # With a board limit below it, the hardware limit narrows further only if lower still.
    lim, _ = board_limits({"limits": {"max_current_uA": 2000}, "hw_current_limit_uA": 2500})
    assert lim["max_current_uA"] == 2000
    lim, _ = board_limits({"limits": {"max_current_uA": 2000}, "hw_current_limit_uA": 1500})
    assert lim["max_current_uA"] == 1500
    lim, _ = board_limits({"limits": {"max_current_uA": 2000}, "hw_current_limit_uA": 2000})
    assert lim["max_current_uA"] == 2000


def test_hardware_current_limit_must_be_a_positive_integer():
    for bad in (0, -1, -4000, True, 4000.0, "4000"):
        lim, problems = board_limits({"hw_current_limit_uA": bad})
        assert problems == ["hw_current_limit_uA: must be a positive integer"], (bad, problems)
        assert lim["max_current_uA"] == 4000
    lim, problems = board_limits({"hw_current_limit_uA": None})
    assert problems == [] and lim["max_current_uA"] == 4000


def test_board_sample_rate_narrows_and_never_widens():
    for rate, want in ((20000, 20000), (49999, 49999), (50000, 50000), (1, 1)):
        lim, problems = board_limits({"max_sample_rate_hz": rate})
        assert problems == [] and lim["max_sample_rate_hz"] == want, rate
    lim, problems = board_limits({"max_sample_rate_hz": 50001})
    assert lim["max_sample_rate_hz"] == 50000
    assert problems == ["max_sample_rate_hz = 50001: above the compiled-in ceiling 50000"], problems
    for bad in (0, -5, True, 1000.0):
        lim, problems = board_limits({"max_sample_rate_hz": bad})
        assert problems == ["max_sample_rate_hz: must be a positive integer"], (bad, problems)
        assert lim["max_sample_rate_hz"] == 50000
    # The board's own "limits" entry and its max_sample_rate_hz: the lower one wins.
    lim, _ = board_limits({"limits": {"max_sample_rate_hz": 10000}, "max_sample_rate_hz": 20000})
    assert lim["max_sample_rate_hz"] == 10000
    lim, _ = board_limits({"limits": {"max_sample_rate_hz": 30000}, "max_sample_rate_hz": 20000})
    assert lim["max_sample_rate_hz"] == 20000
    lim, _ = board_limits({"limits": {"max_sample_rate_hz": 20000}, "max_sample_rate_hz": 20000})
    assert lim["max_sample_rate_hz"] == 20000


def test_board_pacing_clock_is_carried_when_positive():
    # A board paced by hardware names its clock: validation then needs a sample rate that
    # divides it. The clock is taken as given when it is a positive integer, refused otherwise.
    for pace in (1, 2, 1000000, 256000000):
        lim, problems = board_limits({"pace_hz": pace})
        assert problems == [] and lim["pace_hz"] == pace, (pace, problems)
    for bad in (0, -1, -1000000, True, False, 1000000.0, "1000000"):
        lim, problems = board_limits({"pace_hz": bad})
        assert problems == ["pace_hz: must be a positive integer"], (bad, problems)
        assert "pace_hz" not in lim, bad
    lim, problems = board_limits({"pace_hz": None})
    assert problems == [] and "pace_hz" not in lim
    lim, problems = board_limits({})
    assert "pace_hz" not in lim
