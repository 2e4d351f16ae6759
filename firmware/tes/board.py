"""Board files: load, check, and convert between microamps and DAC codes.

A board file (boards/NAME.json) describes one build of the analog stage; docs/hardware.md
maps every number to the circuit. check() refuses a file that is malformed or that would
widen the compiled-in safety ceiling (tes.limits). ua_to_code()/code_to_ua() are the only
way a current becomes a DAC code: drivers and the sim call them, commands never carry codes.
All figures are integers: uA, mV, ohm, nF, ms, Hz.
"""
import json

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
DAC_BITS = {"mcp4922": 12}
ADC_KINDS = ("ads1115",)
CAL_FILE = "calibration.json"
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


def check_calibration(cal, code_max, where="calibration."):
    """Problems with a calibration dict (from the board file or device storage)."""
    problems = []
    if not isinstance(cal, dict):
        return [where[:-1] + ": must be an object"]
    z = _int(cal, "zero_code", where, problems, 0, code_max)
    f = _int(cal, "full_scale_code", where, problems, 0, code_max)
    u = _int(cal, "full_scale_uA", where, problems)
    if z is not None and f is not None and f <= z:
        problems.append("%sfull_scale_code = %d: not above zero_code %d (mapping not monotonic)"
                        % (where, f, z))
    if u is not None and u <= 0:
        problems.append("%sfull_scale_uA = %d: must be positive (mapping not monotonic)" % (where, u))
    return problems


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
        adc = sense.get("adc")
        if not isinstance(adc, dict):
            problems.append("sense.adc: missing")
        else:
            if adc.get("kind") not in ADC_KINDS:
                problems.append("sense.adc.kind: must be one of %s" % ", ".join(ADC_KINDS))
            _int(adc, "bits", "sense.adc.", problems, 8, 24)
            _int(adc, "ref_mV", "sense.adc.", problems, 1)
            if real:
                i2c = adc.get("i2c")
                if not isinstance(i2c, dict):
                    problems.append("sense.adc.i2c: missing")
                else:
                    for k in ("bus", "sda", "scl", "freq", "addr"):
                        _int(i2c, k, "sense.adc.i2c.", problems, 0)

    if real or board.get("enable_pin") is not None:
        _int(board, "enable_pin", "", problems, 0)
    hw = _int(board, "hw_current_limit_uA", "", problems, 1, HW_LIMIT_CEILING_uA)
    _int(board, "compliance_V", "", problems, 1, COMPLIANCE_CEILING_V)
    _int(board, "max_sample_rate_hz", "", problems, 1)

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


def conversion(board, cal=None):
    """The dict ua_to_code/code_to_ua use: calibration (cal, e.g. from load_calibration,
    else the board file's), DAC code range and hardware current limit."""
    if cal is None:
        cal = board["calibration"]
    z = cal["zero_code"]
    return {
        "zero_code": z,
        "span_code": cal["full_scale_code"] - z,
        "span_uA": cal["full_scale_uA"],
        "code_max": (1 << board["dac"]["bits"]) - 1,
        "hw_limit_uA": board["hw_current_limit_uA"],
    }


def code_to_ua(conv, code):
    """Current a DAC code delivers, rounded toward zero (never overstates magnitude)."""
    p = (code - conv["zero_code"]) * conv["span_uA"]
    d = conv["span_code"]
    if p >= 0:
        return p // d
    return -((-p) // d)


def ua_to_code(conv, uA):
    """Nearest DAC code for uA, clamped to the hardware limit and to the DAC range.
    Products stay below 2**30 (|uA| <= 5000, codes < 4096): no big ints on a board."""
    hw = conv["hw_limit_uA"]
    if uA > hw:
        uA = hw
    elif uA < -hw:
        uA = -hw
    z = conv["zero_code"]
    sc = conv["span_code"]
    su = conv["span_uA"]
    p = uA * sc
    if p >= 0:
        code = z + (p + su // 2) // su
    else:
        code = z - ((-p + su // 2) // su)
    top = conv["code_max"]
    if code > top:
        code = top
    elif code < 0:
        code = 0
    # Rounding to nearest may land one code beyond the limit: step back toward zero.
    if (code - z) * su > hw * sc:
        code -= 1
    elif (z - code) * su > hw * sc:
        code += 1
    return code


def calibrate(zero_reading_uA, full_reading_uA, zero_code, full_code, load_ohm=0):
    """Calibration from two measurements into a known load resistor.

    zero_reading_uA: current measured with the DAC at zero_code (nominal zero);
    full_reading_uA: current measured at full_code. Across a 1 kOhm load, mV read == uA.
    Returns the calibration dict: the code that gives true zero, and the full-scale point.
    """
    dc = full_code - zero_code
    du = full_reading_uA - zero_reading_uA
    if dc <= 0 or du <= 0:
        raise ValueError("calibration: current did not rise with the code (check polarity and load)")
    # Solve reading = (code - z) * du / dc for reading == 0, rounded to nearest code.
    off = zero_reading_uA * dc
    if off >= 0:
        z = zero_code - (off + du // 2) // du
    else:
        z = zero_code + (-off + du // 2) // du
    if full_code <= z:
        raise ValueError("calibration: zero offset larger than the full-scale step")
    return {"zero_code": z, "full_scale_code": full_code, "full_scale_uA": full_reading_uA,
            "load_ohm": load_ohm}


def load_uA(load_mV, load_ohm):
    """Current through a known load from the voltage across it (uA = mV * 1000 / ohm)."""
    p = load_mV * 1000
    if p >= 0:
        return (p + load_ohm // 2) // load_ohm
    return -((-p + load_ohm // 2) // load_ohm)


def save_calibration(dirname, cal):
    """Write cal to dirname/calibration.json (write then rename, so a reset mid-write
    leaves the old file)."""
    path = dirname + "/" + CAL_FILE
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cal, f)
    import os
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)


def load_calibration(dirname, code_max=4095):
    """The stored calibration, or None if there is none. Raises ValueError if it is bad."""
    try:
        with open(dirname + "/" + CAL_FILE) as f:
            cal = json.load(f)
    except OSError:
        return None
    problems = check_calibration(cal, code_max, "stored calibration.")
    if problems:
        raise ValueError("; ".join(problems))
    return cal
