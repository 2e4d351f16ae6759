"""Validate a canonical protocol against the limits of the device it will run on.

The same code runs on the host (tesctl validate) and on the device (every load), so the
device never relies on the host having checked. A canonical protocol uses integer units
only (uA, ms, mHz, us); see docs/protocols.md. Each problem is a tuple
(path, value, relation, limit, why), e.g. ("segments[0].amplitude_uA", 5000, "<=", 4000,
"peak current"), so the host can print it in the protocol file's own units.

Two forms, told apart by the montage's shape (both schema 1):
- two electrodes: montage {anode, cathode, electrode_area_mm2} and flat stim segments
  (STIM_KEYS); amplitude_uA >= 0, the montage gives the polarity. Unchanged since schema 1.
- several electrodes: montage {electrodes: [{name, area_mm2}...], return: NAME}; each stim
  segment holds the shared timing (MULTI_STIM_KEYS) and `currents`, one per driven
  electrode in montage order (the return excluded), each with the waveform keys of a flat
  segment plus "electrode" (CURRENT_KEYS), amplitude and offset signed (current into the
  electrode, positive = anodal). The return's current is by definition minus the sum of
  the others at every sample, so the currents sum to zero by construction (Kirchhoff).
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
ONLINE_TOP_KEYS = dict(TOP_KEYS)
ONLINE_TOP_KEYS["online"] = dict
MONTAGE_KEYS = {"anode": str, "cathode": str, "electrode_area_mm2": int}
# The multi-electrode form: the montage, its electrodes, a stim segment, one channel.
MULTI_MONTAGE_KEYS = {"electrodes": list, "return": str}
ELECTRODE_KEYS = {"name": str, "area_mm2": int}
TIMING_KEYS = ("duration_ms", "ramp_up_ms", "ramp_down_ms", "ramp_shape")
MULTI_STIM_KEYS = {"kind": str, "duration_ms": int, "ramp_up_ms": int, "ramp_down_ms": int,
                   "ramp_shape": str, "currents": list}
CURRENT_KEYS = {"electrode": str}
for _k in STIM_KEYS:
    if _k != "kind" and _k not in TIMING_KEYS:
        CURRENT_KEYS[_k] = STIM_KEYS[_k]
NAME_MAX = 8              # electrode name: 1..8 characters (a 10-20 position fits)
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


def is_multi(proto):
    """True for the multi-electrode form (a montage that lists its electrodes)."""
    return "electrodes" in proto["montage"]


def electrode_names(proto):
    """Every electrode of the montage in montage order (two-electrode form: anode, cathode)."""
    m = proto["montage"]
    if "electrodes" in m:
        return [e["name"] for e in m["electrodes"]]
    return [m["anode"], m["cathode"]]


def driven_names(proto):
    """The electrodes with a source of their own, in montage order: every one but the
    return (two-electrode form: the anode). The engine's channels, in this order."""
    m = proto["montage"]
    if "electrodes" in m:
        return [e["name"] for e in m["electrodes"] if e["name"] != m["return"]]
    return [m["anode"]]


def return_name(proto):
    m = proto["montage"]
    return m["return"] if "electrodes" in m else m["cathode"]


def stim_ms(seg):
    return seg["ramp_up_ms"] + seg["duration_ms"] + seg["ramp_down_ms"]


def channel_peak_uA(ch):
    """Peak |current| of one channel (a flat segment or one of `currents`): |offset| + |amplitude|."""
    return abs(ch["offset_uA"]) + abs(ch["amplitude_uA"])


def peak_uA(seg):
    """Largest |current| a segment puts through any electrode: the flat segment's peak, or
    for the multi form the return's bound, the sum of the channels' peaks (at least any one)."""
    if seg["kind"] != "stim":
        return 0
    if "currents" in seg:
        total = 0
        for ch in seg["currents"]:
            total += channel_peak_uA(ch)
        return total
    return abs(seg["offset_uA"]) + seg["amplitude_uA"]


def _charge(peak, seg):
    ms2 = 2 * seg["duration_ms"] + seg["ramp_up_ms"] + seg["ramp_down_ms"]
    return (peak * ms2 + 1999) // 2000


def charge_bound_uC(seg):
    """Upper bound of the charge a segment delivers: peak current over the plateau and
    half of it over the ramps (a ramp's mean is at most half its end for both shapes).
    Multi form: through the electrode that carries the most, the return (peak_uA)."""
    if seg["kind"] != "stim":
        return 0
    return _charge(peak_uA(seg), seg)


def electrode_bounds(proto):
    """[(name, area_mm2, peak_uA, charge_uC)] per electrode in montage order: the largest
    peak over the segments and the session's charge bound (the return's: the channels' sums)."""
    segs = proto["segments"]
    if not is_multi(proto):
        m = proto["montage"]
        peak = _peak(proto)
        charge = 0
        for seg in segs:
            charge += charge_bound_uC(seg)
        return [(m["anode"], m["electrode_area_mm2"], peak, charge),
                (m["cathode"], m["electrode_area_mm2"], peak, charge)]
    ret = proto["montage"]["return"]
    out = []
    j = 0
    for e in proto["montage"]["electrodes"]:
        peak = charge = 0
        for seg in segs:
            if seg["kind"] != "stim":
                continue
            p = peak_uA(seg) if e["name"] == ret else channel_peak_uA(seg["currents"][j])
            peak = max(peak, p)
            charge += _charge(p, seg)
        if e["name"] != ret:
            j += 1
        out.append((e["name"], e["area_mm2"], peak, charge))
    return out


def _range(out, path, value, low, high, why):
    if value < low:
        out.append((path, value, ">=", low, why))
    elif value > high:
        out.append((path, value, "<=", high, why))


def _check_stim(seg, path, fs, lim, out):
    """A flat (two-electrode) stim segment: its waveform and its timing, in today's order."""
    if not _check_kind(seg, path, out):
        return
    _check_shape(seg, path, out)
    _check_level(seg, path, lim, out, False)
    _check_timing(seg, path, fs, lim, out)
    _check_wave(seg, path, fs, out)


def _check_kind(ch, path, out):
    if ch["waveform"] not in WAVEFORMS:
        out.append((path + "waveform", ch["waveform"], "one of", WAVEFORMS, "unknown waveform"))
        return False
    return True


def _check_shape(seg, path, out):
    if seg["ramp_shape"] not in RAMP_SHAPES:
        out.append((path + "ramp_shape", seg["ramp_shape"], "one of", RAMP_SHAPES, "unknown ramp shape"))


def _check_level(ch, path, lim, out, signed):
    """Amplitude and offset of a channel: peak |offset| + |amplitude| within the limit;
    the two-electrode form keeps amplitude >= 0 (the montage gives the polarity)."""
    amp, off = ch["amplitude_uA"], ch["offset_uA"]
    if amp < 0 and not signed:
        out.append((path + "amplitude_uA", amp, ">=", 0, "polarity comes from the montage"))
    elif abs(off) + abs(amp) > lim["max_current_uA"]:
        out.append((path + "amplitude_uA", abs(off) + abs(amp), "<=", lim["max_current_uA"],
                    "peak current |offset| + amplitude" if not signed else "peak current |offset| + |amplitude|"))
    if ch["waveform"] == "dc" and off != 0:
        out.append((path + "offset_uA", off, "=", 0, "a dc segment sets its level with amplitude_uA"))


def _check_timing(seg, path, fs, lim, out):
    """Duration and ramps of a stim segment (shared by every channel of the multi form)."""
    if seg["duration_ms"] <= 0:
        out.append((path + "duration_ms", seg["duration_ms"], ">", 0, "stimulation duration"))
    for key in ("ramp_up_ms", "ramp_down_ms"):
        _range(out, path + key, seg[key], lim["min_ramp_ms"], lim["max_ramp_ms"], "ramp length")


def _check_wave(ch, path, fs, out):
    """Frequency, phase, pulse width, noise band and seed of one channel (or flat segment)."""
    wf = ch["waveform"]
    amp = abs(ch["amplitude_uA"])
    nyq_mhz = fs * 500  # Nyquist frequency in mHz
    f = ch["frequency_mHz"]
    if wf == "sine":
        if f <= 0:
            out.append((path + "frequency_mHz", f, ">", 0, "sine frequency"))
        elif f * 10 > fs * 1000:
            out.append((path + "frequency_mHz", f, "<=", fs * 100, "at least 10 samples per cycle"))
        _range(out, path + "phase_deg", ch["phase_deg"], 0, 359, "phase")
    if wf == "pulse":
        if f <= 0:
            out.append((path + "frequency_mHz", f, ">", 0, "pulse rate"))
        elif f >= nyq_mhz:
            out.append((path + "frequency_mHz", f, "<", nyq_mhz, "below the Nyquist frequency"))
        else:
            width = ch["pulse_width_us"]
            active = width * (2 if ch["biphasic"] else 1)
            period_us = 1000000000 // f
            if width * fs < 1000000:
                out.append((path + "pulse_width_us", width, ">=", (1000000 + fs - 1) // fs,
                            "one sample at the sample rate"))
            elif active >= period_us:
                out.append((path + "pulse_width_us", width, "<", period_us // (2 if ch["biphasic"] else 1),
                            "pulses must fit in the period"))
    if wf == "noise":
        band = ch["band_mHz"]
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
        _range(out, path + "seed", ch["seed"], 0, SEED_MAX, "noise seed")
        _range(out, path + "noise_sd_uA", ch["noise_sd_uA"], 1, max(1, amp),
               "noise standard deviation within the peak")


def _check_montage(m, lim, out):
    """The multi-electrode montage; returns the driven electrodes' names in montage order,
    or None if the montage is unusable (the segments' currents are then not matched)."""
    if not _check_keys(m, MULTI_MONTAGE_KEYS, "montage.", out):
        return None
    els = m["electrodes"]
    if len(els) < 2:
        out.append(("montage.electrodes", len(els), ">=", 2, "electrodes of a montage"))
        return None
    ok = True
    names = []
    for k, e in enumerate(els):
        path = "montage.electrodes[%d]" % k
        if not isinstance(e, dict):
            out.append((path, e, "is", "object", "wrong type"))
            ok = False
            continue
        if not _check_keys(e, ELECTRODE_KEYS, path + ".", out):
            ok = False
            continue
        name = e["name"]
        if not 1 <= len(name) <= NAME_MAX:
            out.append((path + ".name", name, "is", "1 to %d characters" % NAME_MAX, "electrode name"))
            ok = False
        elif name in names:
            out.append((path + ".name", name, "is", "unique", "each electrode once in the montage"))
            ok = False
        names.append(name)
        _range(out, path + ".area_mm2", e["area_mm2"], 0, MAX_AREA_MM2, "electrode area (0: not given)")
    sources = lim.get("max_sources", 1)
    if len(els) - 1 > sources:
        out.append(("montage.electrodes", len(els) - 1, "<=", sources,
                    "current sources: one per electrode but the return, at most the board's"))
    if m["return"] not in names:
        out.append(("montage.return", m["return"], "one of", tuple(names), "the return names an electrode"))
        return None
    return [n for n in names if n != m["return"]] if ok else None


def _check_multi_stim(seg, path, fs, lim, driven, out):
    """A stim segment of the multi form: shared timing, then each channel's waveform."""
    if not _check_keys(seg, MULTI_STIM_KEYS, path, out):
        return False
    _check_shape(seg, path, out)
    _check_timing(seg, path, fs, lim, out)
    chans = seg["currents"]
    usable = True
    over = False
    if driven is not None and len(chans) != len(driven):
        out.append((path + "currents", len(chans), "=", len(driven),
                    "one current per electrode but the return (its current is minus their sum)"))
        usable = False
    total = 0
    for j, ch in enumerate(chans):
        cpath = "%scurrents[%d]." % (path, j)
        if not isinstance(ch, dict):
            out.append((cpath[:-1], ch, "is", "object", "wrong type"))
            usable = False
            continue
        if not _check_keys(ch, CURRENT_KEYS, cpath, out):
            usable = False
            continue
        if driven is not None and j < len(driven) and ch["electrode"] != driven[j]:
            out.append((cpath + "electrode", ch["electrode"], "=", driven[j],
                        "every electrode but the return once, in montage order"))
            usable = False
        if not _check_kind(ch, cpath, out):
            usable = False
            continue
        if channel_peak_uA(ch) > lim["max_current_uA"]:
            over = True       # said for the channel: the return's bound would only repeat it
        _check_level(ch, cpath, lim, out, True)
        _check_wave(ch, cpath, fs, out)
        total += channel_peak_uA(ch)
    if usable and not over and total > lim["max_current_uA"]:
        out.append((path + "currents", total, "<=", lim["max_current_uA"],
                    "the return's peak: the sum of the channels' peaks"))
    return usable


def check(proto, lim):
    """Every problem of a canonical protocol against limits `lim`; [] if it is valid."""
    out = []
    if not isinstance(proto, dict):
        return [("", proto, "is", "object", "a protocol is a JSON object")]
    # "online" (tes.online) is the one optional key: absent, a protocol's bytes are as before.
    if not _check_keys(proto, ONLINE_TOP_KEYS if "online" in proto else TOP_KEYS, "", out):
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
    multi = "electrodes" in proto["montage"]
    driven = None
    if multi:
        driven = _check_montage(proto["montage"], lim, out)
    elif _check_keys(proto["montage"], MONTAGE_KEYS, "montage.", out):
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
    all_usable = True        # multi form: every channel usable, so per-electrode charge can be summed
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
        if multi:
            if not _check_multi_stim(seg, path, fs, lim, driven, out):
                all_usable = False
                if not _check_keys(seg, MULTI_STIM_KEYS, path, []):
                    continue
        else:
            if not _check_keys(seg, STIM_KEYS, path, out):
                continue
            _check_stim(seg, path, fs, lim, out)
        if seg["duration_ms"] * fs < 1000 and seg["duration_ms"] > 0:
            out.append((path + "duration_ms", seg["duration_ms"], ">=", (1000 + fs - 1) // fs, "one sample"))
        total = stim_ms(seg)
        stim_total += total
        session += total
        if not multi:
            charge += charge_bound_uC(seg)
        n = _n(seg["ramp_up_ms"], fs) + _n(seg["duration_ms"], fs) + _n(seg["ramp_down_ms"], fs)
        shortest = n if shortest is None else min(shortest, n)
    if not has_stim and segs:
        out.append(("segments", 0, ">=", 1, "at least one stimulation segment"))
    if stim_total > lim["max_stim_ms"]:
        out.append(("segments", stim_total, "<=", lim["max_stim_ms"], "total stimulation time (ms)"))
    if session > lim["max_session_ms"]:
        out.append(("segments", session, "<=", lim["max_session_ms"], "total session time (ms)"))
    if not multi and charge > lim["max_charge_uC"]:
        out.append(("segments", charge, "<=", lim["max_charge_uC"], "charge per session (uC)"))
    if multi and driven is not None and all_usable and has_stim:
        # Charge bound per electrode; the return carries the sum of the channels' bounds.
        for b in electrode_bounds(proto):
            if b[3] > lim["max_charge_uC"]:
                out.append(("segments", b[3], "<=", lim["max_charge_uC"], "charge per session (uC) at electrode "
                            + b[0]))
    if "online" in proto and not out:
        from tes import online
        online.check(proto, lim, out)
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
    """Advisories that do not block a protocol (current density, per electrode)."""
    from tes.limits import DENSITY_WARN_uA_PER_CM2
    out = []
    if "electrodes" in proto["montage"]:
        for name, area_mm2, peak, _q in electrode_bounds(proto):
            if area_mm2 > 0 and peak * 100 > DENSITY_WARN_uA_PER_CM2 * area_mm2:
                out.append("%s: %s" % (name, _density_text(peak, area_mm2)))
    else:
        area_mm2 = proto["montage"]["electrode_area_mm2"]
        peak = _peak(proto)
        if area_mm2 > 0 and peak * 100 > DENSITY_WARN_uA_PER_CM2 * area_mm2:
            out.append(_density_text(peak, area_mm2))
    for i, seg in enumerate(proto["segments"]):
        if seg["kind"] != "stim":
            continue
        chans = seg["currents"] if "currents" in seg else (seg,)
        for j, ch in enumerate(chans):
            if ch["waveform"] == "noise":
                low, high = ch["band_mHz"]
                if high < 2 * low:          # (a low-pass band, low = 0, has no octave rule)
                    where = "segments[%d]" % i if ch is seg else "segments[%d].currents[%d]" % (i, j)
                    out.append("%s: noise band narrower than an octave: its filter skirts put more "
                               "than 10%% of the power outside the band" % where)
    return out


def _density_text(peak, area_mm2):
    return ("current density %d.%03d mA/cm^2 (peak %d uA over %d.%02d cm^2) is above the 0.06 mA/cm^2 guideline"
            % (peak * 100 // area_mm2 // 1000, peak * 100 // area_mm2 % 1000, peak,
               area_mm2 // 100, area_mm2 % 100))


def density_uA_per_cm2(proto):
    """Peak current density; the multi form: the largest of any electrode, each over its own area."""
    if "electrodes" in proto["montage"]:
        top = 0
        for _name, area_mm2, peak, _q in electrode_bounds(proto):
            if area_mm2 > 0 and peak * 100 // area_mm2 > top:
                top = peak * 100 // area_mm2
        return top
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
