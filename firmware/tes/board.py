"""Board files: load and check.

A board file (boards/NAME.json) describes one build of the analog stage; docs/hardware.md
maps every number to the circuit. check() refuses a file that is malformed or that would
widen the compiled-in safety ceiling (tes.limits). The uA <-> DAC code conversion lives in
hal.calib. All figures are integers: uA, mV, ohm, nF, ms, Hz.
"""
import json

from hal.calib import check_calibration, code_to_ua, conversion
from tes.limits import board_limits

# The analog stage's own current limit may sit above the 4 mA software ceiling (a margin
# for calibration and ramps) but not beyond this: it is the backstop for a firmware fault.
HW_LIMIT_CEILING_uA = 5000
# Highest compliance a board may declare: beyond it the stage is no longer low-voltage.
COMPLIANCE_CEILING_V = 60
# A calibration whose slope strays further than this (percent) from the nominal current
# source is refused: it points at a wrong load resistor or a wiring fault, not drift.
CAL_TOLERANCE_PCT = 10

MCUS = ("rp2", "esp32", "sim")
# Where the return electrode of a montage connects: "ground", the common node the board's
# current sources push against (so Kirchhoff holds in the circuit). "driven" (the return
# driven by a source of its own with the negated sum) is how a board would add one more
# electrode per source; it is not implemented, so a board file may not declare it yet.
RETURNS = ("ground",)
DAC_BITS = {"mcp4922": 12}
ADC_KINDS = ("rp2040", "esp32")
ADC_CHANNELS = ("current_channel", "voltage_channel", "readback_channel")
SIM_MODEL_KEYS = ("series_ohm", "skin_ohm", "skin_ohm_floor", "skin_tau_s", "skin_nF",
                  "adc_noise_uA", "adc_noise_mV", "drift_ohm_per_s", "fault_drift_ohm_per_s",
                  "liftoff_ohm", "short_ohm", "seed")


def load(path):
    with open(path) as f:
        return json.load(f)


def load_checked(path):
    board = load(path)
    problems = check(board)
    if problems:
        raise ValueError("%s: %s" % (path, "; ".join(problems)))
    return board


def _int(obj, key, where, problems, lo=None, hi=None):
    """Check obj[key] is an int within [lo, hi]; return it or None."""
    if not isinstance(obj, dict) or key not in obj:
        problems.append("%s%s: missing" % (where, key))
        return None
    v = obj[key]
    if type(v) is not int:
        problems.append("%s%s: must be an integer" % (where, key))
        return None
    if lo is not None and v < lo:
        problems.append("%s%s = %d: below %d" % (where, key, v, lo))
        return None
    if hi is not None and v > hi:
        problems.append("%s%s = %d: above %d" % (where, key, v, hi))
        return None
    return v


def _obj(board, key, problems):
    v = board.get(key)
    if v is None:
        problems.append("%s: missing" % key)
        return None
    if not isinstance(v, dict):
        problems.append("%s: must be an object" % key)
        return None
    return v


def nominal_nA_per_code(cs):
    """The current source's design slope in nA per code, or None if not declared."""
    if "nA_per_code" in cs:
        v = cs["nA_per_code"]
        return v if type(v) is int and v > 0 else None
    v = cs.get("uA_per_code")
    if isinstance(v, list) and len(v) == 2 and type(v[0]) is int and type(v[1]) is int \
            and v[0] > 0 and v[1] > 0:
        return v[0] * 1000 // v[1]
    return None


def check(board):
    """Return a list of one-line problems; empty means the board file is usable."""
    if not isinstance(board, dict):
        return ["board: must be an object"]
    problems = []
    bid = board.get("id")
    if type(bid) is not str or not bid:
        problems.append("id: must be a non-empty string")
    mcu = board.get("mcu")
    if mcu not in MCUS:
        problems.append("mcu: must be one of %s" % ", ".join(MCUS))
    real = mcu != "sim"

    code_max = None
    dac = _obj(board, "dac", problems)
    if dac is not None:
        kind = dac.get("kind")
        if kind not in DAC_BITS:
            problems.append("dac.kind: must be one of %s" % ", ".join(DAC_BITS))
        else:
            bits = _int(dac, "bits", "dac.", problems)
            if bits is not None and bits != DAC_BITS[kind]:
                problems.append("dac.bits = %d: a %s has %d" % (bits, kind, DAC_BITS[kind]))
            elif bits is not None:
                code_max = (1 << bits) - 1
        if real:
            spi = dac.get("spi")
            if not isinstance(spi, dict):
                problems.append("dac.spi: missing")
            else:
                for k in ("bus", "sck", "mosi", "baudrate"):
                    _int(spi, k, "dac.spi.", problems, 0)
            _int(dac, "cs_pin", "dac.", problems, 0)
            if dac.get("ldac_pin") is not None:
                _int(dac, "ldac_pin", "dac.", problems, 0)
        if dac.get("channels", 1) not in (1, 2):
            problems.append("dac.channels: must be 1 or 2 (one source: channel B is the fixed reference "
                            "when 2; two sources: one each)")

    cs = _obj(board, "current_source", problems)
    nominal = None
    if cs is not None:
        if code_max is not None:
            _int(cs, "zero_code", "current_source.", problems, 0, code_max)
        nominal = nominal_nA_per_code(cs)
        if nominal is None:
            problems.append("current_source: needs nA_per_code (positive integer) or "
                            "uA_per_code [numerator, denominator]")

    sense = _obj(board, "sense", problems)
    if sense is not None:
        for k in ("shunt_ohm", "current_gain", "voltage_divider"):
            _int(sense, k, "sense.", problems, 1)
        if "readback_tol_uA" in sense:
            _int(sense, "readback_tol_uA", "sense.", problems, 1, 500)
        adc = sense.get("adc")
        if not isinstance(adc, dict):
            problems.append("sense.adc: missing")
        else:
            if adc.get("kind") not in ADC_KINDS:
                problems.append("sense.adc.kind: must be one of %s" % ", ".join(ADC_KINDS))
            bits = _int(adc, "bits", "sense.adc.", problems, 8, 16)
            ref = _int(adc, "ref_mV", "sense.adc.", problems, 1, 5000)
            mid = _int(adc, "mid_mV", "sense.adc.", problems, 0)
            if ref is not None and mid is not None and mid * 2 != ref:
                problems.append("sense.adc.mid_mV = %d: must be half of ref_mV %d (bipolar signals centred)"
                                % (mid, ref))
            # rp2040: ADC inputs 0..3 (GPIO 26..29); esp32: ADC1 GPIOs 32..39
            lo, hi = (32, 39) if adc.get("kind") == "esp32" else (0, 3)
            if "current_channels" in adc:
                _check_source_inputs(board, adc, lo, hi, problems)
            else:
                chans = [_int(adc, k, "sense.adc.", problems, lo, hi) for k in ADC_CHANNELS]
                if None not in chans and len(set(chans)) != 3:
                    problems.append("sense.adc: current, voltage and readback channels must differ")
                _check_latency(adc, 3, "current, voltage, readback", problems)
                if real and board.get("current_sources", 1) != 1:
                    problems.append("current_sources = %r: a board of several sources lists "
                                    "sense.adc.current_channels and voltage_channels" % board.get("current_sources"))
            del bits

    if real or board.get("enable_pin") is not None:
        _int(board, "enable_pin", "", problems, 0)
    hw = _int(board, "hw_current_limit_uA", "", problems, 1, HW_LIMIT_CEILING_uA)
    _int(board, "compliance_V", "", problems, 1, COMPLIANCE_CEILING_V)
    _int(board, "max_sample_rate_hz", "", problems, 1)
    if "pace_hz" in board:
        _int(board, "pace_hz", "", problems, 1)
    # current_sources (1 when absent) is checked by board_limits below, with the limits.
    if board.get("return", "ground") not in RETURNS:
        problems.append("return: must be one of %s (the return electrode's connection)" % ", ".join(RETURNS))

    cal = board.get("calibration")
    if cal is None:
        problems.append("calibration: missing")
    elif code_max is not None:
        cal_problems = check_calibration(cal, code_max)
        problems.extend(cal_problems)
        if not cal_problems and nominal is not None:
            slope = cal["full_scale_uA"] * 1000 // (cal["full_scale_code"] - cal["zero_code"])
            if abs(slope - nominal) * 100 > nominal * CAL_TOLERANCE_PCT:
                problems.append("calibration: %d nA per code is more than %d%% from the current "
                                "source's %d" % (slope, CAL_TOLERANCE_PCT, nominal))

    limits, limit_problems = board_limits(board)
    problems.extend(limit_problems)

    # The DAC must be able to deliver the largest current the limits allow, both ways.
    if not problems and hw is not None:
        conv = conversion(board)
        top = limits["max_current_uA"]
        if code_to_ua(conv, code_max) < top or code_to_ua(conv, 0) > -top:
            problems.append("dac range %d..%d uA cannot reach max_current_uA %d"
                            % (code_to_ua(conv, 0), code_to_ua(conv, code_max), top))

    if mcu == "sim":
        problems.extend(_check_model(board.get("model")))
    return problems


def _check_latency(adc, n, what, problems):
    lat = adc.get("latency_samples")
    if not (isinstance(lat, list) and len(lat) == n and all(type(x) is int and 0 <= x <= 4 for x in lat)):
        problems.append("sense.adc.latency_samples: must be %d integers 0..4 (%s)" % (n, what))


def _check_source_inputs(board, adc, lo, hi, problems):
    """A board of C current sources (issue 12, hal.rp2_multi): one DAC channel per source, a
    current and a voltage ADC input per source, no readback input."""
    C = board.get("current_sources", 1)
    chans = []
    for k in ("current_channels", "voltage_channels"):
        v = adc.get(k)
        if not (isinstance(v, list) and len(v) == C and all(type(x) is int and lo <= x <= hi for x in v)):
            problems.append("sense.adc.%s: must list current_sources = %r ADC inputs %d..%d" % (k, C, lo, hi))
            return
        chans += v
    if len(set(chans)) != len(chans):
        problems.append("sense.adc: every current and voltage input must differ")
    if adc.get("readback_channel") is not None:
        problems.append("sense.adc.readback_channel: none on a board of several sources")
    dac = board.get("dac")
    if isinstance(dac, dict) and dac.get("channels", 1) != C:
        problems.append("dac.channels = %r: one DAC channel per current source (%r)" % (dac.get("channels", 1), C))
    _check_latency(adc, 2, "current, voltage", problems)


def _check_model(model):
    if not isinstance(model, dict):
        return ["model: a sim board needs the electrode-skin model object"]
    problems = []
    for k in SIM_MODEL_KEYS:
        _int(model, k, "model.", problems, 0)
    if not problems and model["skin_ohm_floor"] > model["skin_ohm"]:
        problems.append("model.skin_ohm_floor = %d: above skin_ohm %d"
                        % (model["skin_ohm_floor"], model["skin_ohm"]))
    return problems


