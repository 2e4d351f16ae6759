"""Validate a canonical protocol against the limits of the device it will run on.

The same code runs on the host (tesctl validate) and on the device (every load), so the
device never relies on the host having checked. A canonical protocol uses integer units
only (uA, ms, mHz, us); see docs/protocols.md. Each problem is a tuple
(path, value, relation, limit, why), e.g. ("segments[0].amplitude_uA", 5000, "<=", 4000,
"peak current"), so the host can print it in the protocol file's own units.
"""

WAVEFORMS = ("dc", "sine", "noise", "pulse")
RAMP_SHAPES = ("linear", "cosine")
SCHEMA = 1

# Every key of a canonical stimulation segment, with its type; all are required.
STIM_KEYS = {
    "kind": str, "waveform": str, "amplitude_uA": int, "offset_uA": int,
    "frequency_mHz": int, "phase_deg": int, "band_mHz": list, "seed": int,
    "noise_sd_uA": int, "pulse_width_us": int, "biphasic": bool,
    "duration_ms": int, "ramp_up_ms": int, "ramp_down_ms": int, "ramp_shape": str,
}
PAUSE_KEYS = {"kind": str, "duration_ms": int}
SHAM_KEYS = {"ramp_up_ms": int, "plateau_ms": int, "ramp_down_ms": int, "double": bool}
TOP_KEYS = {"schema": int, "name": str, "sample_rate_hz": int, "montage": dict,
            "segments": list, "sham": (dict, type(None)), "safety": dict}
MONTAGE_KEYS = {"anode": str, "cathode": str, "electrode_area_mm2": int}
SAFETY_KEYS = {"impedance_max_ohm": int}
SEED_MAX = (1 << 30) - 1
MAX_AREA_MM2 = 100000     # 1000 cm^2: larger is no electrode (0: area not given)


def _is(value, kind):
    # bool is an int subclass in CPython: keep the two apart so true never counts as 1.
    if isinstance(kind, tuple):
        return any(_is(value, k) for k in kind)
    if kind is int:
        return type(value) is int
    return isinstance(value, kind)


def _typename(kind):
    if isinstance(kind, tuple):
        return " or ".join(_typename(k) for k in kind)
    return {int: "integer", str: "string", bool: "boolean", list: "array",
            dict: "object"}.get(kind, "null")


def _check_keys(obj, keys, path, out):
    """Structure: every key known, present and of its type. Returns True if usable."""
    ok = True
    for key in obj:
        if key not in keys:
            out.append((path + key, obj[key], "is", "not a known field", "unknown field"))
            ok = False
    for key in keys:
        if key not in obj:
            out.append((path + key, None, "is", "required", "missing field"))
            ok = False
        elif not _is(obj[key], keys[key]):
            out.append((path + key, obj[key], "is", _typename(keys[key]), "wrong type"))
            ok = False
    return ok


def stim_ms(seg):
    return seg["ramp_up_ms"] + seg["duration_ms"] + seg["ramp_down_ms"]


def peak_uA(seg):
    if seg["kind"] != "stim":
        return 0
    return abs(seg["offset_uA"]) + seg["amplitude_uA"]


def charge_bound_uC(seg):
    """Upper bound of the charge a segment delivers: peak current over the plateau and
    half of it over the ramps (a ramp's mean is at most half its end for both shapes)."""
    if seg["kind"] != "stim":
        return 0
    ms2 = 2 * seg["duration_ms"] + seg["ramp_up_ms"] + seg["ramp_down_ms"]
    return (peak_uA(seg) * ms2 + 1999) // 2000


def _range(out, path, value, low, high, why):
    if value < low:
        out.append((path, value, ">=", low, why))
    elif value > high:
        out.append((path, value, "<=", high, why))


def _check_stim(seg, path, fs, lim, out):
    wf = seg["waveform"]
    if wf not in WAVEFORMS:
        out.append((path + "waveform", wf, "one of", WAVEFORMS, "unknown waveform"))
        return
    if seg["ramp_shape"] not in RAMP_SHAPES:
        out.append((path + "ramp_shape", seg["ramp_shape"], "one of", RAMP_SHAPES, "unknown ramp shape"))
    amp, off = seg["amplitude_uA"], seg["offset_uA"]
    if amp < 0:
        out.append((path + "amplitude_uA", amp, ">=", 0, "polarity comes from the montage"))
    elif abs(off) + amp > lim["max_current_uA"]:
        out.append((path + "amplitude_uA", abs(off) + amp, "<=", lim["max_current_uA"],
                    "peak current |offset| + amplitude"))
    if wf == "dc" and off != 0:
        out.append((path + "offset_uA", off, "=", 0, "a dc segment sets its level with amplitude_uA"))
    if seg["duration_ms"] <= 0:
        out.append((path + "duration_ms", seg["duration_ms"], ">", 0, "stimulation duration"))
    for key in ("ramp_up_ms", "ramp_down_ms"):
        _range(out, path + key, seg[key], lim["min_ramp_ms"], lim["max_ramp_ms"], "ramp length")
    nyq_mhz = fs * 500  # Nyquist frequency in mHz
    f = seg["frequency_mHz"]
    if wf == "sine":
        if f <= 0:
            out.append((path + "frequency_mHz", f, ">", 0, "sine frequency"))
        elif f * 10 > fs * 1000:
            out.append((path + "frequency_mHz", f, "<=", fs * 100, "at least 10 samples per cycle"))
        _range(out, path + "phase_deg", seg["phase_deg"], 0, 359, "phase")
    if wf == "pulse":
        if f <= 0:
            out.append((path + "frequency_mHz", f, ">", 0, "pulse rate"))
        elif f >= nyq_mhz:
            out.append((path + "frequency_mHz", f, "<", nyq_mhz, "below the Nyquist frequency"))
        else:
            width = seg["pulse_width_us"]
            active = width * (2 if seg["biphasic"] else 1)
            period_us = 1000000000 // f
            if width * fs < 1000000:
                out.append((path + "pulse_width_us", width, ">=", (1000000 + fs - 1) // fs,
                            "one sample at the sample rate"))
            elif active >= period_us:
                out.append((path + "pulse_width_us", width, "<", period_us // (2 if seg["biphasic"] else 1),
                            "pulses must fit in the period"))
    if wf == "noise":
        band = seg["band_mHz"]
        if len(band) != 2 or not all(type(b) is int for b in band):
            out.append((path + "band_mHz", band, "is", "[low, high] integers", "noise band"))
        else:
            low, high = band
            if low < 0:
                out.append((path + "band_mHz[0]", low, ">=", 0, "band low edge"))
            if high <= low:
                out.append((path + "band_mHz[1]", high, ">", low, "band high edge above low edge"))
            elif high * 2 > fs * 1000:
                out.append((path + "band_mHz[1]", high, "<=", nyq_mhz,
                            "sample rate at least twice the band's upper edge"))
        _range(out, path + "seed", seg["seed"], 0, SEED_MAX, "noise seed")
        _range(out, path + "noise_sd_uA", seg["noise_sd_uA"], 1, max(1, amp),
               "noise standard deviation within the peak")


def check(proto, lim):
    """Every problem of a canonical protocol against limits `lim`; [] if it is valid."""
    out = []
    if not isinstance(proto, dict):
        return [("", proto, "is", "object", "a protocol is a JSON object")]
    if not _check_keys(proto, TOP_KEYS, "", out):
        return out
    if proto["schema"] != SCHEMA:
        out.append(("schema", proto["schema"], "=", SCHEMA, "schema version"))
    fs = proto["sample_rate_hz"]
    _range(out, "sample_rate_hz", fs, lim["min_sample_rate_hz"], lim["max_sample_rate_hz"], "sample rate")
    pace = lim.get("pace_hz")
    if not out and pace and pace % fs:
        # Output and sense are paced by hardware from the same crystal: only rates that
        # divide the pacing clock stay exactly in step, sample after sample.
        out.append(("sample_rate_hz", fs, "divides", pace, "exact hardware pacing on this board"))
    if out:
        return out
    if _check_keys(proto["montage"], MONTAGE_KEYS, "montage.", out):
        _range(out, "montage.electrode_area_mm2", proto["montage"]["electrode_area_mm2"], 0, MAX_AREA_MM2,
               "electrode area (0: not given)")
    if _check_keys(proto["safety"], SAFETY_KEYS, "safety.", out):
        _range(out, "safety.impedance_max_ohm", proto["safety"]["impedance_max_ohm"], 100,
               lim["max_impedance_ohm"], "impedance lockout")
    segs = proto["segments"]
    if not segs:
        out.append(("segments", 0, ">=", 1, "at least one segment"))
    elif len(segs) > lim["max_segments"]:
        out.append(("segments", len(segs), "<=", lim["max_segments"], "number of segments"))
    stim_total = session = charge = 0
    has_stim = False
    shortest = None
    for i, seg in enumerate(segs):
        path = "segments[%d]." % i
        if not isinstance(seg, dict) or seg.get("kind") not in ("stim", "pause"):
            out.append((path + "kind", seg.get("kind") if isinstance(seg, dict) else seg,
                        "one of", ("stim", "pause"), "segment kind"))
            continue
        if seg["kind"] == "pause":
            if _check_keys(seg, PAUSE_KEYS, path, out):
                if seg["duration_ms"] * fs < 1000:
                    out.append((path + "duration_ms", seg["duration_ms"], ">=", (1000 + fs - 1) // fs,
                                "pause of at least one sample"))
                else:
                    session += seg["duration_ms"]
            continue
        has_stim = True       # a stimulation segment, even one whose fields are wrong
        if not _check_keys(seg, STIM_KEYS, path, out):
            continue
        _check_stim(seg, path, fs, lim, out)
        if seg["duration_ms"] * fs < 1000 and seg["duration_ms"] > 0:
            out.append((path + "duration_ms", seg["duration_ms"], ">=", (1000 + fs - 1) // fs, "one sample"))
        total = stim_ms(seg)
        stim_total += total
        session += total
        charge += charge_bound_uC(seg)
        n = _n(seg["ramp_up_ms"], fs) + _n(seg["duration_ms"], fs) + _n(seg["ramp_down_ms"], fs)
        shortest = n if shortest is None else min(shortest, n)
    if not has_stim and segs:
        out.append(("segments", 0, ">=", 1, "at least one stimulation segment"))
    if stim_total > lim["max_stim_ms"]:
        out.append(("segments", stim_total, "<=", lim["max_stim_ms"], "total stimulation time (ms)"))
    if session > lim["max_session_ms"]:
        out.append(("segments", session, "<=", lim["max_session_ms"], "total session time (ms)"))
    if charge > lim["max_charge_uC"]:
        out.append(("segments", charge, "<=", lim["max_charge_uC"], "charge per session (uC)"))
    sham = proto["sham"]
    if sham is not None and _check_keys(sham, SHAM_KEYS, "sham.", out):
        for key in ("ramp_up_ms", "ramp_down_ms"):
            _range(out, "sham." + key, sham[key], lim["min_ramp_ms"], lim["max_ramp_ms"], "sham ramp length")
        if sham["plateau_ms"] < 0:
            out.append(("sham.plateau_ms", sham["plateau_ms"], ">=", 0, "sham plateau"))
        elif sham["plateau_ms"] and sham["plateau_ms"] * fs < 1000:
            out.append(("sham.plateau_ms", sham["plateau_ms"], ">=", (1000 + fs - 1) // fs, "one sample, or 0"))
        # Fit in samples, as the engine lays them out (each phase rounds down on its own).
        times = 2 if sham["double"] else 1
        ramps = _n(sham["ramp_up_ms"], fs) + _n(sham["ramp_down_ms"], fs)
        if shortest is not None and (ramps + _n(sham["plateau_ms"], fs)) * times > shortest:
            room = shortest // times - ramps
            limit = max(0, room) * 1000 // fs
            out.append(("sham.plateau_ms", sham["plateau_ms"], "<=", limit,
                        "sham fades (twice for a double sham) must fit in every stimulation segment"))
    return out


def _n(ms, fs):
    """Samples of a phase, rounded down as the engine does."""
    return ms * fs // 1000


def warnings(proto):
    """Advisories that do not block a protocol (current density)."""
    from tes.limits import DENSITY_WARN_uA_PER_CM2
    out = []
    area_mm2 = proto["montage"]["electrode_area_mm2"]
    peak = _peak(proto)
    if area_mm2 > 0 and peak * 100 > DENSITY_WARN_uA_PER_CM2 * area_mm2:
        out.append("current density %d.%03d mA/cm^2 (peak %d uA over %d.%02d cm^2) is above the 0.06 mA/cm^2 guideline"
                   % (peak * 100 // area_mm2 // 1000, peak * 100 // area_mm2 % 1000, peak,
                      area_mm2 // 100, area_mm2 % 100))
    for i, seg in enumerate(proto["segments"]):
        if seg["kind"] == "stim" and seg["waveform"] == "noise":
            low, high = seg["band_mHz"]
            if high < 2 * low:          # (a low-pass band, low = 0, has no octave rule)
                out.append("segments[%d]: noise band narrower than an octave: its filter skirts put more "
                           "than 10%% of the power outside the band" % i)
    return out


def density_uA_per_cm2(proto):
    area_mm2 = proto["montage"]["electrode_area_mm2"]
    return _peak(proto) * 100 // area_mm2 if area_mm2 > 0 else 0


def _peak(proto):
    """Largest peak current of any segment (0 for a protocol of pauses)."""
    peak = 0
    for seg in proto["segments"]:
        p = peak_uA(seg)
        if p > peak:
            peak = p
    return peak
