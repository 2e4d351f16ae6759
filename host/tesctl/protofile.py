"""Protocol files: TOML as people write it -> the canonical protocol the device runs.

The canonical form uses integer units only (uA, ms, mHz, us); its compact, key-sorted
JSON is what the host sends, and its SHA-256 names the protocol everywhere. Structural
problems (unknown keys, types, NaN) are found here, in the file's own terms; limits are
checked by tes.validate, the same code the device runs, and reported back in file terms.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import stat
from decimal import Decimal, InvalidOperation
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from tes import validate as V
from tes.limits import CEILING

MAX_FILE_BYTES = 64 * 1024
MAX_CANONICAL_BYTES = 16384     # the device's limit on a canonical protocol (tes.app MAX_LOAD)
MAX_SHOWN = 60                  # characters of a value shown in a problem
MIN_NOISE_SD_RATIO = 0.5        # a noise band whose filter gives less than half the asked SD is refused
SCHEMA = 1

# TOML stimulation field -> (canonical key, kind, scale). kind: int, num (float allowed),
# str, bool, band. scale converts file units to canonical integer units.
STIM_FIELDS = {
    "waveform": ("waveform", "str", None),
    "amplitude_uA": ("amplitude_uA", "int", 1),
    "offset_uA": ("offset_uA", "int", 1),
    "frequency_hz": ("frequency_mHz", "num", 1000),
    "phase_deg": ("phase_deg", "int", 1),
    "band_hz": ("band_mHz", "band", 1000),
    "seed": ("seed", "int", 1),
    "noise_sd_uA": ("noise_sd_uA", "int", 1),
    "pulse_width_us": ("pulse_width_us", "int", 1),
    "biphasic": ("biphasic", "bool", None),
    "duration_s": ("duration_ms", "num", 1000),
    "ramp_up_s": ("ramp_up_ms", "num", 1000),
    "ramp_down_s": ("ramp_down_ms", "num", 1000),
    "ramp_shape": ("ramp_shape", "str", None),
}
STIM_DEFAULTS = {"offset_uA": 0, "phase_deg": 0, "seed": 1, "biphasic": False,
                 "ramp_up_s": 30, "ramp_down_s": 30, "ramp_shape": "linear"}
# Fields each waveform uses (docs/protocols.md, "used by"); any other is refused.
COMMON = ("waveform", "amplitude_uA", "duration_s", "ramp_up_s", "ramp_down_s", "ramp_shape", "offset_uA")
USED = {"dc": COMMON,
        "sine": COMMON + ("frequency_hz", "phase_deg"),
        "pulse": COMMON + ("frequency_hz", "pulse_width_us", "biphasic"),
        "noise": COMMON + ("band_hz", "seed", "noise_sd_uA")}
# Fields a waveform needs and no default can supply.
REQUIRED = {"dc": ("amplitude_uA", "duration_s"),
            "sine": ("amplitude_uA", "duration_s", "frequency_hz"),
            "pulse": ("amplitude_uA", "duration_s", "frequency_hz", "pulse_width_us"),
            "noise": ("amplitude_uA", "duration_s", "band_hz")}
SHAM_FIELDS = {"ramp_up_s": ("ramp_up_ms", "num", 1000), "plateau_s": ("plateau_ms", "num", 1000),
               "ramp_down_s": ("ramp_down_ms", "num", 1000), "double": ("double", "bool", None)}
MONTAGE_FIELDS = {"anode": ("anode", "str", None), "cathode": ("cathode", "str", None),
                  "electrode_area_cm2": ("electrode_area_mm2", "num", 100)}
SAFETY_FIELDS = {"impedance_max_ohm": ("impedance_max_ohm", "int", 1)}
# The multi-electrode form (docs/montages.md): [montage] return + [montage.electrodes], one
# electrode per key in montage order; [stimulation.currents] (and a segment's currents) sets
# each driven electrode's waveform fields over the shared ones. Timing stays shared.
MULTI_MONTAGE_FIELDS = ("return", "electrodes")
ELECTRODE_FIELDS = {"area_cm2": ("area_mm2", "num", 100)}
TIMING_FIELDS = ("duration_s", "ramp_up_s", "ramp_down_s", "ramp_shape")
CURRENT_FIELDS = {k: v for k, v in STIM_FIELDS.items() if k not in TIMING_FIELDS}
MAX_ELECTRODE_NAME = 8
TOP_FIELDS = ("schema", "name", "description", "sample_rate_hz", "montage", "stimulation",
              "segments", "sham", "safety", "provenance", "online")
# [online] (docs/online.md): what may change while the session runs, and its bounds. Each
# parameter is a table of min, max, step (file units) and interval_s; burst = true or a
# table of interval_s and start. The canonical "online" is present only when the file has it.
ONLINE_PARAMS = {"amplitude_uA": ("amplitude_uA", "int", 1), "offset_uA": ("offset_uA", "int", 1),
                 "frequency_hz": ("frequency_mHz", "num", 1000), "phase_deg": ("phase_deg", "int", 1)}
ONLINE_FIELDS = ("ramp_s", "burst") + tuple(ONLINE_PARAMS)
ONLINE_RAMP_S = 0.1
# [provenance]: where a personalized protocol's parameters came from (tesctl iaf, tesctl
# titrate). Not part of the canonical protocol (the device never sees it); checked here and
# copied into session.json as protocol_provenance. key -> kind: str, num, int, strs (array of
# strings), sha256 (64 lowercase hex digits).
PROVENANCE_FIELDS = {
    "kind": "str", "created_at": "str", "created_by": "str", "base_protocol": "str",
    "base_protocol_sha256": "sha256", "source_file": "str", "source_sha256": "sha256", "channels": "strs",
    "method": "str", "estimate": "str", "estimate_hz": "num", "paf_hz": "num", "cog_hz": "num",
    "certainty": "str", "channels_with_peak": "int", "threshold_uA": "int", "percent_of_threshold": "num",
    "step_uA": "int", "bout_s": "num", "trials": "strs", "bouts_dir": "str", "subject": "str", "note": "str",
}
# 5 kS/s: every safety bound holds at the default rate (a stuck sense ADC is seen within
# 2 ms only from 3 kS/s), a 640 Hz noise band fits, and ramps are smooth.
DEFAULT_SAMPLE_RATE = 5000
DEFAULT_IMPEDANCE_MAX = 20000
# Canonical key -> (file key, scale) for reporting limit problems in the file's terms.
TO_FILE = {c: (f, s) for table in (STIM_FIELDS, SHAM_FIELDS, MONTAGE_FIELDS, SAFETY_FIELDS, ELECTRODE_FIELDS)
           for f, (c, _, s) in table.items()}


class ProtocolError(Exception):
    """The file could not be turned into a canonical protocol; .problems lists why."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


class Loaded:
    """A protocol file, converted and checked."""

    def __init__(self, path, canonical, problems, warnings, layout, provenance=None):
        self.path = path
        self.canonical = canonical
        self.problems = problems
        self.warnings = warnings
        self.layout = layout  # canonical segment index -> file path prefix
        self.provenance = provenance  # the [provenance] table (not sent to the device), or None

    @property
    def ok(self):
        return not self.problems

    def canonical_bytes(self):
        return canonical_bytes(self.canonical)

    def sha256(self):
        return hashlib.sha256(self.canonical_bytes()).hexdigest()


def canonical_bytes(canon):
    return json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _fmt(v, depth=0):
    if isinstance(v, list):            # shallow and short: a value can be nested thousands deep
        text = "[...]" if depth >= 3 else "[%s%s]" % (", ".join(_fmt(x, depth + 1) for x in v[:8]),
                                                      ", ..." if len(v) > 8 else "")
        return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        text = json.dumps(v)         # escapes control characters
    elif isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        text = str(int(v))
    elif isinstance(v, dict):
        text = "a table"
    else:
        text = str(v)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...(%d characters)" % len(text)


def _did_you_mean(key, known):
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return " (did you mean %r?)" % close[0] if close else ""


def _convert(value, kind, scale, path, problems):
    """One file value -> canonical integer/str/bool, or None with a problem recorded."""
    if kind == "str":
        if not isinstance(value, str):
            problems.append("%s = %s: must be a string" % (path, _fmt(value)))
            return None
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            problems.append("%s = %s: must be true or false" % (path, _fmt(value)))
            return None
        return value
    if kind == "band":
        if not isinstance(value, list) or len(value) != 2:
            problems.append("%s = %s: must be [low, high] in Hz" % (path, _fmt(value)))
            return None
        out = [_convert(v, "num", scale, "%s[%d]" % (path, i), problems) for i, v in enumerate(value)]
        return None if None in out else out
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append("%s = %s: must be a number" % (path, _fmt(value)))
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        problems.append("%s = %s: must be a finite number" % (path, _fmt(value)))
        return None
    if abs(value) >= 1 << 52:
        problems.append("%s = %s: out of range" % (path, _fmt(value)))
        return None
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            problems.append("%s = %s: must be a whole number" % (path, _fmt(value)))
            return None
        value = int(value)
    # The decimal the file wrote (repr is the shortest that reads back the same float),
    # scaled exactly: anything finer than the unit is refused, never rounded.
    try:
        scaled = Decimal(repr(value)) * scale
    except InvalidOperation:
        problems.append("%s = %s: must be a number" % (path, _fmt(value)))
        return None
    if scaled != scaled.to_integral_value():
        problems.append("%s = %s: finer than the resolution %s" % (path, _fmt(value), _fmt(1 / scale)))
        return None
    return int(scaled)


def _table(obj, path, problems):
    if not isinstance(obj, dict):
        problems.append("%s: must be a table" % path)
        return None
    return obj


def _fields(obj, spec, path, problems, extra=()):
    """Convert the known fields of one table; unknown keys are problems."""
    out = {}
    for key, value in obj.items():
        if key in extra:
            continue
        if key not in spec:
            problems.append("%s%s: unknown field%s" % (path, key, _did_you_mean(key, list(spec) + list(extra))))
            continue
        ckey, kind, scale = spec[key]
        converted = _convert(value, kind, scale, path + key, problems)
        if converted is not None:
            out[key] = converted
    return out


def _stim_segment(fields, path, problems, present=()):
    """Canonical stim segment from converted file fields (file keys -> values)."""
    wf = fields.get("waveform")
    if wf is None:
        if not any(p.startswith(path + "waveform") for p in problems):
            problems.append("%swaveform: missing (one of dc, sine, noise, pulse)" % path)
        return None
    if wf not in REQUIRED:
        problems.append("%swaveform = %s: unknown waveform (one of dc, sine, noise, pulse)%s"
                        % (path, _fmt(wf), _did_you_mean(wf, REQUIRED)))
        return None
    missing = [k for k in REQUIRED[wf] if k not in fields and k not in present]  # present but bad: reported
    for k in missing:
        problems.append("%s%s: missing (needed by waveform %s)" % (path, k, _fmt(wf)))
    if missing or any(k not in fields for k in REQUIRED[wf]):
        return None
    merged = {}
    for key, default in STIM_DEFAULTS.items():
        ckey, kind, scale = STIM_FIELDS[key]
        merged[ckey] = default * scale if scale else default
    for key, value in fields.items():
        merged[STIM_FIELDS[key][0]] = value
    seg = {"kind": "stim", "frequency_mHz": 0, "band_mHz": [0, 0], "pulse_width_us": 0}
    seg.update(merged)
    seg.setdefault("noise_sd_uA", max(1, seg["amplitude_uA"] // 3) if wf == "noise" else 0)
    return seg


def parse(data: bytes, name="protocol"):
    """File bytes -> (canonical or None, problems, layout)."""
    return parse_full(data, name)[:3]


def parse_full(data: bytes, name="protocol"):
    """File bytes -> (canonical or None, problems, layout, provenance table or None)."""
    if len(data) > MAX_FILE_BYTES:
        return None, ["%s: file is %d bytes, over the %d-byte limit" % (name, len(data), MAX_FILE_BYTES)], {}, None
    if not data.strip():
        return None, ["%s: file is empty" % name], {}, None
    if b"\x00" in data:
        return None, ["%s: binary file (contains NUL bytes), not TOML" % name], {}, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        return None, ["%s: line %d: not UTF-8 text" % (name, line)], {}, None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return None, ["%s: not valid TOML: %s" % (name, e)], {}, None
    except RecursionError:
        return None, ["%s: not a protocol: arrays or tables nested too deeply" % name], {}, None
    try:
        return _parse_doc(doc)
    except RecursionError:
        return None, ["%s: not a protocol: values nested too deeply" % name], {}, None


def _unused(table, wf, path, problems):
    """Fields set in this table that waveform wf does not use: refused, never ignored."""
    for key in table:
        if key in STIM_FIELDS and key not in USED[wf]:
            problems.append("%s%s: not used by waveform %s (it uses %s)" % (path, key, _fmt(wf), ", ".join(USED[wf])))


def _provenance(doc, problems):
    """The [provenance] table checked, or None when absent."""
    if "provenance" not in doc:
        return None
    table = _table(doc["provenance"], "provenance", problems)
    if table is None:
        return None
    out = {}
    for key, value in table.items():
        kind = PROVENANCE_FIELDS.get(key)
        path = "provenance." + key
        if kind is None:
            problems.append("%s: unknown field%s" % (path, _did_you_mean(key, PROVENANCE_FIELDS)))
        elif kind in ("str", "sha256") and not isinstance(value, str):
            problems.append("%s = %s: must be a string" % (path, _fmt(value)))
        elif kind == "sha256" and not (len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            problems.append("%s = %s: must be a SHA-256 (64 lowercase hex digits)" % (path, _fmt(value)))
        elif kind == "strs" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append("%s = %s: must be an array of strings" % (path, _fmt(value)))
        elif kind in ("num", "int") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                         or (isinstance(value, float) and not math.isfinite(value))):
            problems.append("%s = %s: must be a finite number" % (path, _fmt(value)))
        elif kind == "int" and isinstance(value, float) and not value.is_integer():
            problems.append("%s = %s: must be a whole number" % (path, _fmt(value)))
        else:
            out[key] = int(value) if kind == "int" else value
    return out


def _entries(segs_in, segments, layout, problems):
    """The [[segments]] entries: pauses go straight into `segments`; yields (path, table)
    of each stimulation entry, its canonical index already in `layout`."""
    if not isinstance(segs_in, list) or not segs_in:
        problems.append("segments: must be a non-empty array of tables ([[segments]])")
        segs_in = []
    for i, s in enumerate(segs_in):
        path = "segments[%d]." % i
        if _table(s, path[:-1], problems) is None:
            continue
        layout[len(segments)] = path
        if "pause_s" in s:
            others = [k for k in s if k != "pause_s"]
            if others:
                problems.append("%s%s: a pause segment takes only pause_s" % (path, others[0]))
            ms = _convert(s["pause_s"], "num", 1000, path + "pause_s", problems)
            if ms is not None:
                segments.append({"kind": "pause", "duration_ms": ms})
            continue
        yield path, s


def _single_segments(doc, base_in, problems):
    """The anode/cathode form's segments: (canonical segments, layout)."""
    base = {}
    if base_in is not None and _table(base_in, "stimulation", problems) is not None:
        _no_currents(base_in, "stimulation.", problems)
        base = _fields(_without(base_in, "currents"), STIM_FIELDS, "stimulation.", problems)
    segments = []
    layout = {}
    if "segments" in doc:
        for path, s in _entries(doc["segments"], segments, layout, problems):
            fields = dict(base)
            _no_currents(s, path, problems)
            fields.update(_fields(_without(s, "currents"), STIM_FIELDS, path, problems))
            seg = _stim_segment(fields, path, problems, set(base_in if isinstance(base_in, dict) else {}) | set(s))
            if seg is not None:
                # Inherited [stimulation] fields are defaults shared by every segment; the
                # segment's own fields must be ones its waveform uses.
                _unused(s, seg["waveform"], path, problems)
                segments.append(seg)
    elif isinstance(base_in, dict):
        layout[0] = "stimulation."
        seg = _stim_segment(base, "stimulation.", problems, set(base_in))
        if seg is not None:
            _unused(base_in, seg["waveform"], "stimulation.", problems)
            segments.append(seg)
    elif base_in is not None:
        pass                          # not a table: reported above
    else:
        problems.append("stimulation: missing (a [stimulation] table or [[segments]])")

    return segments, layout


def _without(table, key):
    return {k: v for k, v in table.items() if k != key}


def _no_currents(table, path, problems):
    if isinstance(table, dict) and "currents" in table:
        problems.append("%scurrents: per-electrode currents need the multi-electrode montage "
                        "([montage.electrodes] and montage.return), not anode/cathode" % path)


def _key(name):
    """An electrode name as it appears in a problem's path: bare, or quoted as TOML would."""
    bare = bool(name) and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else json.dumps(name)


def _name_hint(name, names):
    """did you mean: the same name in another case first (cz for Cz), else the closest."""
    same = [n for n in names if n.lower() == name.lower()]
    return " (did you mean %r?)" % same[0] if same else _did_you_mean(name, names)


def _multi_montage(m, problems):
    """[montage] return + [montage.electrodes] -> the canonical multi-electrode montage."""
    for key in m:
        if key in MONTAGE_FIELDS:
            problems.append("montage.%s: anode/cathode do not mix with montage.return and [montage.electrodes]: "
                            "name every electrode in [montage.electrodes]" % key)
        elif key not in MULTI_MONTAGE_FIELDS:
            problems.append("montage.%s: unknown field%s" % (key, _did_you_mean(key, MULTI_MONTAGE_FIELDS)))
    electrodes = []
    els = m.get("electrodes")
    if els is None:
        problems.append("montage.electrodes: missing (one key per electrode, in montage order, "
                        "e.g. C3 = { area_cm2 = 35 })")
    elif not isinstance(els, dict):
        problems.append("montage.electrodes = %s: must be a table ([montage.electrodes], one key per electrode)"
                        % _fmt(els))
        els = None
    else:
        for name, spec in els.items():
            path = "montage.electrodes." + _key(name)
            if not 1 <= len(name) <= MAX_ELECTRODE_NAME:
                problems.append("%s: electrode name of %d characters, must be 1 to %d"
                                % (path, len(name), MAX_ELECTRODE_NAME))
            elif name != _key(name):
                problems.append("%s: electrode name must be letters, digits, - and _ only (it names a CSV "
                                "column and a record field)" % path)
            if not isinstance(spec, dict):
                problems.append("%s = %s: must be a table, e.g. { area_cm2 = 35 } or {}" % (path, _fmt(spec)))
                continue
            fields = _fields(spec, ELECTRODE_FIELDS, path + ".", problems)
            electrodes.append({"name": name, "area_mm2": fields.get("area_cm2", 0)})
        if len(els) < 2:
            problems.append("montage.electrodes: %d electrode, a montage needs at least 2 (one of them the return)"
                            % len(els))
    ret = m.get("return")
    names = list(els) if els else []
    if ret is None:
        problems.append("montage.return: missing (the electrode whose current is minus the sum of the others%s)"
                        % (", one of " + ", ".join(names) if names else ""))
    elif not isinstance(ret, str):
        problems.append("montage.return = %s: must be a string (the name of an electrode)" % _fmt(ret))
    elif els is not None and ret not in els:
        problems.append("montage.return = %s: not an electrode of [montage.electrodes]%s"
                        % (_fmt(ret), _name_hint(ret, names)))
    return {"electrodes": electrodes, "return": ret}


def _currents(table, path, montage, problems, montage_ok=True):
    """A stimulation or segment table's `currents`: {electrode: (converted fields, keys given)}."""
    cur = table.get("currents")
    if cur is None:
        return {}
    if not isinstance(cur, dict):
        problems.append("%scurrents = %s: must be a table, one key per driven electrode, e.g. "
                        "P4 = { phase_deg = 180 }" % (path, _fmt(cur)))
        return {}
    names = [e["name"] for e in montage["electrodes"]]
    out = {}
    for name, spec in cur.items():
        p = "%scurrents.%s" % (path, _key(name))
        if not montage_ok:
            pass                    # the montage's problems come first: no electrode is known
        elif name == montage["return"]:
            problems.append("%s: %s is the return electrode: its current is minus the sum of the others, "
                            "it takes no fields" % (p, name))
            continue
        elif name not in names:
            problems.append("%s: not an electrode of [montage.electrodes]%s" % (p, _name_hint(name, names)))
            continue
        if not isinstance(spec, dict):
            problems.append("%s = %s: must be a table, e.g. { amplitude_uA = -500 }" % (p, _fmt(spec)))
            out[name] = ({}, set(CURRENT_FIELDS))   # said: no field of it is also "missing"
            continue
        for key in spec:
            if key in TIMING_FIELDS:
                problems.append("%s.%s: timing is shared by every electrode (one envelope): set it in "
                                "[stimulation] or in the segment" % (p, key))
        fields = _fields({k: v for k, v in spec.items() if k not in TIMING_FIELDS}, CURRENT_FIELDS, p + ".", problems)
        out[name] = (fields, set(spec))
    return out


def _multi_segment(ci, shared, origin, curs, prefix, driven, present, layout, problems):
    """One canonical multi-electrode stim segment from the shared fields (file key -> value,
    origin: file key -> the prefix that set it) and the per-electrode tables in `curs`
    (outermost first: [stimulation.currents], then the segment's own), or None."""
    if not driven:
        return None
    if "duration_s" not in shared:
        if "duration_s" not in present:
            problems.append("%sduration_s: missing (shared by every electrode)" % prefix)
        return None
    channels, found = [], []
    for j, name in enumerate(driven):
        fields, org, given = dict(shared), dict(origin), set(present)
        cpath = "%scurrents.%s." % (prefix, _key(name))
        for table, tprefix in curs:
            if name in table:
                fields.update(table[name][0])
                given |= table[name][1]
                org.update({k: "%scurrents.%s." % (tprefix, _key(name)) for k in table[name][0]})
        mine = []
        seg = _stim_segment(fields, cpath, mine, given)
        found.append((cpath, mine))
        for key in CURRENT_FIELDS:
            layout[(ci, j, key)] = org.get(key, cpath)
        if seg is not None:
            cur = {"electrode": name}
            cur.update({STIM_FIELDS[k][0]: seg[STIM_FIELDS[k][0]] for k in CURRENT_FIELDS})
            if seg["waveform"] == "noise" and "noise_sd_uA" not in fields:
                cur["noise_sd_uA"] = max(1, abs(cur["amplitude_uA"]) // 3)   # signed amplitude
            channels.append((cur, seg))
    # A problem every electrode has (a waveform missing from the shared fields, say) is one
    # problem of the shared fields, said once.
    shared_msgs = [{prefix + m[len(c):] for m in mine if m.startswith(c)} for c, mine in found]
    common = set.intersection(*shared_msgs) if shared_msgs else set()
    if common:
        c0, mine0 = found[0]
        problems.extend(prefix + m[len(c0):] for m in mine0 if m.startswith(c0) and prefix + m[len(c0):] in common)
    for c, mine in found:
        problems.extend(m for m in mine if not (m.startswith(c) and prefix + m[len(c):] in common))
    if len(channels) != len(driven) or not driven:
        return None
    seg = channels[0][1]
    out = {"kind": "stim"}
    out.update({STIM_FIELDS[k][0]: seg[STIM_FIELDS[k][0]] for k in TIMING_FIELDS})
    out["currents"] = [cur for cur, _ in channels]
    return out


def _unused_shared(table, waveforms, path, problems):
    """Shared waveform fields that no electrode's waveform uses: refused, never ignored."""
    for key in table:
        if key in CURRENT_FIELDS and waveforms and not any(key in USED[wf] for wf in waveforms):
            problems.append("%s%s: not used by any electrode's waveform (%s)"
                            % (path, key, ", ".join(sorted(set(waveforms)))))


def _multi_segments(doc, montage, montage_ok, problems):
    """The multi-electrode form's segments: (canonical segments, layout). layout maps a
    canonical segment index to its file prefix, as for the anode/cathode form, and
    (segment index, channel index, file key) to the prefix of the table that set that field.
    With a montage that has problems, only the fields are checked (no electrode is known)."""
    driven = [e["name"] for e in montage["electrodes"] if e["name"] != montage["return"]] if montage_ok else []
    first = len(problems)
    base_in = doc.get("stimulation")
    base, base_cur = {}, {}
    if base_in is not None and _table(base_in, "stimulation", problems) is not None:
        base = _fields(_without(base_in, "currents"), STIM_FIELDS, "stimulation.", problems)
        base_cur = _currents(base_in, "stimulation.", montage, problems, montage_ok)
    base_keys = set(base_in) if isinstance(base_in, dict) else set()
    segments, layout = [], {}

    def stim(table_in, own, own_cur, path, outer):
        ci = len(segments)
        shared = dict(outer)
        shared.update(own)
        origin = {k: "stimulation." for k in outer}
        origin.update({k: path for k in own})
        curs = [(base_cur, "stimulation.")] + ([(own_cur, path)] if own_cur is not base_cur else [])
        seg = _multi_segment(ci, shared, origin, curs, path, driven, base_keys | set(table_in), layout, problems)
        if seg is not None:
            wfs = [c["waveform"] for c in seg["currents"]]
            _unused_shared(table_in, wfs, path, problems)
            for c in seg["currents"]:
                for table, tprefix in curs:
                    if c["electrode"] in table:
                        _unused({k: 1 for k in table[c["electrode"]][1]}, c["waveform"],
                                "%scurrents.%s." % (tprefix, _key(c["electrode"])), problems)
            segments.append(seg)

    if "segments" in doc:
        for path, s in _entries(doc["segments"], segments, layout, problems):
            own = _fields(_without(s, "currents"), STIM_FIELDS, path, problems)
            stim(s, own, _currents(s, path, montage, problems, montage_ok), path, base)
    elif isinstance(base_in, dict):
        layout[0] = "stimulation."
        stim(base_in, base, base_cur, "stimulation.", {})
    elif base_in is None:
        problems.append("stimulation: missing (a [stimulation] table or [[segments]])")
    # [stimulation.currents] is inherited by every segment: its problems are said once.
    problems[first:] = list(dict.fromkeys(problems[first:]))
    return segments, layout


def _parse_doc(doc):
    problems = []
    for key in doc:
        if key not in TOP_FIELDS:
            problems.append("%s: unknown field%s" % (key, _did_you_mean(key, TOP_FIELDS)))
    schema = doc.get("schema")
    if schema is None:
        problems.append("schema: missing (use schema = %d)" % SCHEMA)
    elif type(schema) is not int or schema != SCHEMA:
        problems.append("schema = %s: unsupported (this tesctl reads schema %d)" % (_fmt(schema), SCHEMA))
    pname = doc.get("name")
    if not isinstance(pname, str) or not pname.strip():
        problems.append("name: missing or empty" if pname is None or isinstance(pname, str)
                        else "name = %s: must be a string" % _fmt(pname))
    if "description" in doc and not isinstance(doc["description"], str):
        problems.append("description: must be a string")
    fs = doc.get("sample_rate_hz", DEFAULT_SAMPLE_RATE)
    fs = _convert(fs, "int", 1, "sample_rate_hz", problems)

    montage_in = _table(doc.get("montage", {}), "montage", problems) or {}
    multi = any(k in montage_in for k in MULTI_MONTAGE_FIELDS)
    if multi:
        before = len(problems)
        montage = _multi_montage(montage_in, problems)
        montage_ok = len(problems) == before
    else:
        montage = _fields(montage_in, MONTAGE_FIELDS, "montage.", problems)
        for key in ("anode", "cathode"):
            if key not in montage_in:
                problems.append("montage.%s: missing (electrode position, e.g. F3)" % key)
    safety = _fields(_table(doc.get("safety", {}), "safety", problems) or {}, SAFETY_FIELDS, "safety.", problems)

    base_in = doc.get("stimulation")
    if multi:
        segments, layout = _multi_segments(doc, montage, montage_ok, problems)
    else:
        segments, layout = _single_segments(doc, base_in, problems)

    sham = None
    if "sham" in doc and _table(doc["sham"], "sham", problems) is not None:
        sham_in = _fields(doc["sham"], SHAM_FIELDS, "sham.", problems, extra=("enabled",))
        enabled = doc["sham"].get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append("sham.enabled = %s: must be true or false" % _fmt(enabled))
        elif enabled:
            first = next((s for s in segments if s["kind"] == "stim"), None)
            sham = {"ramp_up_ms": first["ramp_up_ms"] if first else 30000, "plateau_ms": 0,
                    "ramp_down_ms": first["ramp_down_ms"] if first else 30000, "double": False}
            for key, value in sham_in.items():
                sham[SHAM_FIELDS[key][0]] = value
    provenance = _provenance(doc, problems)
    online = _online(doc["online"], problems) if "online" in doc else None
    if problems:
        return None, problems, layout, None
    canon = {
        "schema": SCHEMA,
        "name": pname,
        "sample_rate_hz": fs,
        "montage": montage if multi else {"anode": montage["anode"], "cathode": montage["cathode"],
                                          "electrode_area_mm2": montage.get("electrode_area_cm2", 0)},
        "segments": segments,
        "sham": sham,
        "safety": {"impedance_max_ohm": safety.get("impedance_max_ohm", DEFAULT_IMPEDANCE_MAX)},
    }
    if online is not None:
        canon["online"] = online
    return canon, [], layout, provenance


def _online(table, problems):
    """[online] -> the canonical section (tes.online), problems in the file's terms."""
    t = _table(table, "online", problems)
    if t is None:
        return None
    out = {"ramp_ms": int(ONLINE_RAMP_S * 1000), "params": {}, "burst": None}
    for key, value in t.items():
        path = "online." + key
        if key == "ramp_s":
            v = _convert(value, "num", 1000, path, problems)
            if v is not None:
                out["ramp_ms"] = v
        elif key == "burst":
            if value is True or value is False:
                out["burst"] = {"interval_ms": 0, "start": "on"} if value else None
                continue
            b = _table(value, path, problems)
            if b is None:
                continue
            burst = {"interval_ms": 0, "start": "on"}
            for f, v in b.items():
                if f == "interval_s":
                    c = _convert(v, "num", 1000, path + "." + f, problems)
                    if c is not None:
                        burst["interval_ms"] = c
                elif f == "start":
                    c = _convert(v, "str", None, path + "." + f, problems)
                    if c is not None:
                        burst["start"] = c
                else:
                    problems.append("%s.%s: unknown field%s" % (path, f, _did_you_mean(f, ("interval_s", "start"))))
            out["burst"] = burst
        elif key in ONLINE_PARAMS:
            ckey, kind, scale = ONLINE_PARAMS[key]
            b = _table(value, path, problems)
            if b is None:
                continue
            bound = {"interval_ms": 0}
            for f, v in b.items():
                if f in ("min", "max", "step"):
                    c = _convert(v, kind, scale, path + "." + f, problems)
                elif f == "interval_s":
                    c = _convert(v, "num", 1000, path + "." + f, problems)
                    f = "interval_ms"
                else:
                    problems.append("%s.%s: unknown field%s" % (path, f, _did_you_mean(f, ("min", "max", "step",
                                                                                          "interval_s"))))
                    continue
                if c is not None:
                    bound[f] = c
            for need in ("min", "max", "step"):
                if need not in b:
                    problems.append("%s.%s: missing (the bounds of an online change: min, max, step)" % (path, need))
            out["params"][ckey] = bound
        else:
            problems.append("%s: unknown field%s" % (path, _did_you_mean(key, ONLINE_FIELDS)))
    return out


_ONLINE_TO_FILE = {v[0]: (k, v[2]) for k, v in ONLINE_PARAMS.items()}


def _online_file_path(cpath):
    """online.params.frequency_mHz.max -> (online.frequency_hz.max, 1000), and the like."""
    parts = cpath.split(".")
    if cpath == "online.ramp_ms":
        return "online.ramp_s", 1000
    if len(parts) >= 3 and parts[1] == "params" and parts[2] in _ONLINE_TO_FILE:
        fkey, scale = _ONLINE_TO_FILE[parts[2]]
        if len(parts) == 4 and parts[3] == "interval_ms":
            return "online.%s.interval_s" % fkey, 1000
        return ".".join(["online", fkey] + parts[3:]), scale
    if cpath == "online.burst.interval_ms":
        return "online.burst.interval_s", 1000
    return cpath, None


_CURRENT_PATH = re.compile(r"segments\[(\d+)\]\.currents\[(\d+)\](?:\.(\w+))?(\[\d+\])?$")
_ELECTRODE_PATH = re.compile(r"montage\.electrodes\[(\d+)\](?:\.(\w+))?$")


def _multi_file_path(cpath, layout, canon):
    """A multi-electrode path (segments[0].currents[1].amplitude_uA, montage.electrodes[2].area_mm2)
    -> (file path, scale), or None for any other path."""
    m = _CURRENT_PATH.match(cpath)
    if m:
        i, j, key, index = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4) or ""
        try:
            name = _key(canon["segments"][i]["currents"][j]["electrode"])
        except (IndexError, KeyError, TypeError):
            return None
        own = "%scurrents.%s" % (layout.get(i, "segments[%d]." % i), name)
        if key in (None, "electrode"):
            return own, None
        fkey, scale = TO_FILE.get(key, (key, None))
        return layout.get((i, j, fkey), own + ".") + fkey + index, scale
    m = _ELECTRODE_PATH.match(cpath)
    if m:
        try:
            path = "montage.electrodes." + _key(canon["montage"]["electrodes"][int(m.group(1))]["name"])
        except (IndexError, KeyError, TypeError):
            return None
        if m.group(2) in (None, "name"):
            return path, None
        fkey, scale = TO_FILE.get(m.group(2), (m.group(2), None))
        return path + "." + fkey, scale
    return None


def _file_path(cpath, layout, canon):
    """Canonical path (segments[0].duration_ms) -> (file path, scale)."""
    if cpath.startswith("online"):
        return _online_file_path(cpath)
    multi = _multi_file_path(cpath, layout, canon)
    if multi is not None:
        return multi
    head, _, key = cpath.rpartition(".")
    index = ""
    if key.endswith("]") and "[" in key:
        key, index = key[:key.index("[")], key[key.index("["):]
    if head.startswith("segments["):
        i = int(head[len("segments["):-1])
        prefix = layout.get(i, "segments[%d]." % i)
        seg = canon["segments"][i]
        if seg["kind"] == "pause" and key == "duration_ms":
            return prefix + "pause_s", 1000
        fkey, scale = TO_FILE.get(key, (key, None))
        return prefix + fkey + index, scale
    if cpath == "segments":
        return ("segments" if any(v.startswith("segments") for v in layout.values()) else "stimulation"), None
    fkey, scale = TO_FILE.get(key, (key, None))
    return (head + "." if head else "") + fkey + index, scale


def _in_units(v, scale):
    if scale in (None, 1) or isinstance(v, (bool, str)) or not isinstance(v, int):
        return _fmt(v)
    return _fmt(v / scale)


def explain(problem, layout, canon):
    """One canonical-validator problem as a line in the file's terms."""
    cpath, value, rel, limit, why = problem
    fpath, scale = _file_path(cpath, layout, canon)
    if cpath == "segments" and "time" in why:
        return "%s: %s is %s s, must be %s %s s" % (fpath, why.replace(" (ms)", ""), _in_units(value, 1000),
                                                    rel, _in_units(limit, 1000))
    if cpath == "segments" and "(uC)" in why:
        return "%s: %s is %s C, must be %s %s C" % (fpath, why.replace(" (uC)", ""), _in_units(value, 10**6),
                                                    rel, _in_units(limit, 10**6))
    if rel == "is":
        return "%s = %s: %s (%s)" % (fpath, _in_units(value, scale), why, limit)
    if rel == "divides":
        return "%s = %s: must divide %s (%s)" % (fpath, _fmt(value), _fmt(limit), why)
    if rel == "one of":
        return "%s = %s: %s, must be one of %s" % (fpath, _fmt(value), why, ", ".join(limit))
    return "%s = %s: must be %s %s (%s)" % (fpath, _in_units(value, scale), rel, _in_units(limit, scale), why)


def noise_sd_ratio(seg, fs):
    """The share of the asked noise SD that the engine's band filter can deliver (1.0: all
    of it). The engine's gain is capped (tes.noise.GAIN_MAX): a band its filter passes
    almost nothing of (a sliver at Nyquist, a few mHz wide) comes out as near silence."""
    from tes import noise as N
    st = N.design(seg, fs)
    probe = list(st)
    probe[N.N_GAIN] = 1 << 12
    energy, x = 0, N.X_LIMIT
    for k in range(4096):
        y = N.filter_step(probe, x)
        energy += y * y
        x = 0
        if k & 15 == 15 and N._settled(probe):
            break
    var_out = (4 * (1024 * 1024 - 1) // 12) * energy // (N.X_LIMIT * N.X_LIMIT)
    want = seg["noise_sd_uA"] * 32768 // max(1, seg["amplitude_uA"])
    need = want * 4096 // N.isqrt(max(1, var_out)) if var_out else float("inf")
    return 1.0 if need <= N.GAIN_MAX else N.GAIN_MAX / need


def host_checks(canon, layout):
    """What the host refuses beyond tes.validate: a protocol larger than the device holds,
    a noise band that carries too little power."""
    out = []
    size = len(canonical_bytes(canon))
    if size > MAX_CANONICAL_BYTES:
        out.append("protocol: its canonical form is %d bytes, the device holds at most %d (shorten name, "
                   "description or montage names, or use fewer segments)" % (size, MAX_CANONICAL_BYTES))
    for i, seg in enumerate(canon["segments"]):
        if seg["kind"] != "stim":
            continue
        prefix = layout.get(i, "segments[%d]." % i)
        if "currents" in seg:    # multi-electrode: each channel's own band, with its signed amplitude
            chans = [(dict(c, amplitude_uA=abs(c["amplitude_uA"])),
                      layout.get((i, j, "band_hz"), "%scurrents.%s." % (prefix, _key(c["electrode"]))))
                     for j, c in enumerate(seg["currents"])]
        else:
            chans = [(seg, prefix)]
        for ch, where in chans:
            if ch["waveform"] == "noise" and ch["amplitude_uA"] > 0:
                ratio = noise_sd_ratio(ch, canon["sample_rate_hz"])
                if ratio < MIN_NOISE_SD_RATIO:
                    out.append("%sband_hz = [%s, %s]: the band carries too little power: the engine's filter "
                               "delivers %.1f%% of noise_sd_uA at %d S/s (widen the band or move it below Nyquist)"
                               % (where, _in_units(ch["band_mHz"][0], 1000),
                                  _in_units(ch["band_mHz"][1], 1000), 100 * ratio, canon["sample_rate_hz"]))
    return out


def is_multi(canon):
    """True for the multi-electrode form (montage.electrodes), False for anode/cathode."""
    return isinstance(canon, dict) and "electrodes" in canon.get("montage", {})


def electrode_names(canon):
    """The montage's electrodes in montage order (anode, cathode for the two-electrode form)."""
    m = canon["montage"]
    return [e["name"] for e in m["electrodes"]] if is_multi(canon) else [m["anode"], m["cathode"]]


def session_electrodes(canon):
    """The electrode names (montage order) of a multi session, one with two or more driven
    electrodes, whose records are per electrode; None for any other protocol (the
    two-electrode multi form runs and records as the anode/cathode form does)."""
    if not is_multi(canon) or len(canon["montage"]["electrodes"]) < 3:
        return None
    return electrode_names(canon)


def montage_record(canon):
    """session.json `montage` of a multi-form protocol: its electrodes (name, area_mm2),
    the return and the driven electrodes in driven order; None for anode/cathode."""
    if not is_multi(canon):
        return None
    m = canon["montage"]
    return {"electrodes": [dict(e) for e in m["electrodes"]], "return": m["return"],
            "driven": V.driven_names(canon)}


def electrode_peaks(canon):
    """{electrode: largest peak current (uA) over the stim segments}: a driven electrode's
    |offset| + |amplitude|, the return's the sum of the others' (its bound). Multi form only."""
    names = electrode_names(canon)
    ret = canon["montage"]["return"]
    peaks = dict.fromkeys(names, 0)
    for seg in canon["segments"]:
        if seg["kind"] != "stim":
            continue
        total = 0
        for c in seg["currents"]:
            p = abs(c["offset_uA"]) + abs(c["amplitude_uA"])
            peaks[c["electrode"]] = max(peaks[c["electrode"]], p)
            total += p
        peaks[ret] = max(peaks[ret], total)
    return peaks


MULTI_ONLY_IN = "tesctl validate, preview and run"


def refuse_multi(canon, command):
    """One sentence refusing a multi-electrode protocol in a command that runs only the
    anode/cathode form today, or None (docs/montages.md lists the commands)."""
    if not is_multi(canon):
        return None
    return ("%s does not take a multi-electrode montage (%s) yet: this version runs those in %s only "
            "(docs/montages.md)"
            % (command, ", ".join(electrode_names(canon)), MULTI_ONLY_IN))


def check_data(data: bytes, limits=None, name="protocol") -> Loaded:
    limits = limits or dict(CEILING)
    canon, problems, layout, provenance = parse_full(data, name)
    warnings = []
    if canon is not None:
        problems = [explain(p, layout, canon) for p in V.check(canon, limits)]
        if is_multi(canon):   # a shared field's problem is found once per electrode: said once
            problems = list(dict.fromkeys(problems))
        if not problems:
            problems = host_checks(canon, layout)
        if not problems:
            warnings = V.warnings(canon)
    return Loaded(name, canon, problems, warnings, layout, provenance)


def read_protocol(path):
    """The bytes of a protocol file: a regular file only (not a FIFO, device or socket),
    its size checked before reading, never more read than the limit. OSError/ValueError
    with one sentence otherwise."""
    fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError("is a directory, not a protocol file")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a device, FIFO or socket): give a protocol file")
        if st.st_size > MAX_FILE_BYTES:
            raise ValueError("file is %d bytes, over the %d-byte limit" % (st.st_size, MAX_FILE_BYTES))
        chunks, n = [], 0
        while n <= MAX_FILE_BYTES:
            b = os.read(fd, MAX_FILE_BYTES + 1 - n)
            if not b:
                break
            chunks.append(b)
            n += len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load(path, limits=None) -> Loaded:
    path = Path(path)
    try:
        data = read_protocol(path)
    except IsADirectoryError:
        return Loaded(str(path), None, ["%s: is a directory, not a protocol file" % path], [], {})
    except ValueError as e:
        return Loaded(str(path), None, ["%s: %s" % (path, e)], [], {})
    except OSError as e:
        return Loaded(str(path), None, ["%s: cannot read (%s)" % (path, e.strerror or e)], [], {})
    return check_data(data, limits, str(path))
