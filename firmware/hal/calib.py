"""Calibration: microamps <-> DAC codes for one board, and the two-point calibration that
sets them. Pure integer math, the only way a current becomes a DAC code: drivers and the
simulated board call it, commands never carry codes. Products stay below 2**30 (|uA| <=
5000, codes < 4096): no big ints on a board.
"""
import json

CAL_FILE = "calibration.json"


def _int(obj, key, where, problems, lo=None, hi=None):
    """obj[key] if it is an int within [lo, hi]; else None with a problem recorded."""
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


# ---- sense: ADC codes -> uA, mV ---------------------------------------------------------------
def fixed_scale(num, den):
    """(k, shift) with k / 2**shift ~ num / den and 2048 * k < 2**30, for a per-sample
    multiply and shift in place of a division: value = (code * k + half) >> shift."""
    shift = 16
    while shift > 0 and num * (1 << shift) // den >= 524288:
        shift -= 1
    return (num * (1 << shift) + den // 2) // den, shift


def scaled(code, k, shift):
    """code * k / 2**shift rounded to nearest (halves up), as the sense kernels do it."""
    return (code * k + (1 << (shift - 1))) >> shift


def sense_scales(board):
    """The fixed-point scales of a board's sense chain on its ADC (kind "rp2040": codes
    centred on mid_mV, ref_mV over 2**bits codes):
       current  uA per code  = ref_mV * 1000 / (2**bits * shunt_ohm * current_gain)
       voltage  mV per code  = ref_mV * voltage_divider / 2**bits
       readback DAC codes per ADC code = ref_mV / vref_mV (the DAC's full scale)
    -> dict mid (code), ki, si, kv, sv, kd, sd."""
    s = board["sense"]
    adc = s["adc"]
    codes = 1 << adc["bits"]
    ref = adc["ref_mV"]
    ki, si = fixed_scale(ref * 1000, codes * s["shunt_ohm"] * s["current_gain"])
    kv, sv = fixed_scale(ref * s["voltage_divider"], codes)
    kd, sd = fixed_scale(ref, board["dac"]["vref_mV"])
    return {"mid": (adc["mid_mV"] * codes + ref // 2) // ref, "ki": ki, "si": si, "kv": kv, "sv": sv,
            "kd": kd, "sd": sd}
