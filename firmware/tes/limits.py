"""Safety limits: a compiled-in ceiling that a board file may narrow but never widen.

Ceiling figures: Bikson et al. 2016 (Brain Stimulation, PMC5007190): no serious adverse
effect in >33,200 sessions at <= 4 mA, <= 40 min and <= 7.2 C per session.
"""

CEILING = {
    "max_current_uA": 4000,          # peak |current| of any sample
    "max_stim_ms": 40 * 60 * 1000,   # stimulation time per session, ramps included
    "max_charge_uC": 7200000,        # 7.2 C, bound computed from the peak current
    "max_session_ms": 3 * 3600 * 1000,  # whole session, pauses included
    "max_sample_rate_hz": 50000,
    "min_sample_rate_hz": 100,
    "max_ramp_ms": 300000,           # 5 min
    "min_ramp_ms": 100,              # no current step without a ramp (Starstim: 100 ms)
    "max_impedance_ohm": 50000,      # highest impedance lockout a protocol may set
    "max_segments": 32,
    "max_sources": 8,                # independent current sources: a montage has at most this + 1 electrodes
}

# Current density above which validation warns (0.06 mA/cm^2, Neuroelectrics guideline).
DENSITY_WARN_uA_PER_CM2 = 60
# Limits that set a floor rather than a ceiling: a board may raise them, never lower them.
_FLOORS = ("min_sample_rate_hz", "min_ramp_ms")


def board_limits(board):
    """Return (limits, problems): CEILING narrowed by board["limits"], the board's
    hardware current limit and its current sources (`current_sources`, 1 when a board
    does not give it: max_sources). A board value that would widen the ceiling is a problem."""
    limits = dict(CEILING)
    problems = []
    given = board.get("limits", {}) if board else {}
    if not isinstance(given, dict):
        return limits, ["limits: must be an object"]
    for key in given:
        value = given[key]
        if key not in CEILING:
            problems.append("limits.%s: unknown limit" % key)
        elif type(value) is not int:
            problems.append("limits.%s: must be an integer" % key)
        elif key in _FLOORS and value < CEILING[key]:
            problems.append("limits.%s = %d: below the compiled-in floor %d" % (key, value, CEILING[key]))
        elif key not in _FLOORS and value > CEILING[key]:
            problems.append("limits.%s = %d: above the compiled-in ceiling %d" % (key, value, CEILING[key]))
        else:
            limits[key] = value
    hw = board.get("hw_current_limit_uA") if board else None
    if hw is not None:
        if type(hw) is not int or hw <= 0:
            problems.append("hw_current_limit_uA: must be a positive integer")
        elif hw < limits["max_current_uA"]:
            limits["max_current_uA"] = hw
    rate = board.get("max_sample_rate_hz") if board else None
    if rate is not None:
        if type(rate) is not int or rate <= 0:
            problems.append("max_sample_rate_hz: must be a positive integer")
        elif rate > CEILING["max_sample_rate_hz"]:
            problems.append("max_sample_rate_hz = %d: above the compiled-in ceiling %d"
                            % (rate, CEILING["max_sample_rate_hz"]))
        elif rate < limits["max_sample_rate_hz"]:
            limits["max_sample_rate_hz"] = rate
    # No board at all (host validation without --board) keeps the ceiling; a board file
    # without the key has one source (every board file written before it stays valid).
    sources = board.get("current_sources", 1) if board is not None else CEILING["max_sources"]
    if type(sources) is not int or sources <= 0:
        problems.append("current_sources: must be a positive integer")
    elif sources > CEILING["max_sources"]:
        problems.append("current_sources = %d: above the compiled-in ceiling %d" % (sources, CEILING["max_sources"]))
    elif sources < limits["max_sources"]:
        limits["max_sources"] = sources
    pace = board.get("pace_hz") if board else None
    if pace is not None:
        if type(pace) is not int or pace <= 0:
            problems.append("pace_hz: must be a positive integer")
        else:
            limits["pace_hz"] = pace     # the sample rate must divide it (exact hardware pacing)
    return limits, problems
