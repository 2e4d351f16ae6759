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
TOP_FIELDS = ("schema", "name", "description", "sample_rate_hz", "montage", "stimulation",
              "segments", "sham", "safety", "provenance")
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
TO_FILE = {c: (f, s) for table in (STIM_FIELDS, SHAM_FIELDS, MONTAGE_FIELDS, SAFETY_FIELDS)
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
    montage = _fields(montage_in, MONTAGE_FIELDS, "montage.", problems)
    for key in ("anode", "cathode"):
        if key not in montage_in:
            problems.append("montage.%s: missing (electrode position, e.g. F3)" % key)
    safety = _fields(_table(doc.get("safety", {}), "safety", problems) or {}, SAFETY_FIELDS, "safety.", problems)

    base_in = doc.get("stimulation")
    base = {}
    if base_in is not None and _table(base_in, "stimulation", problems) is not None:
        base = _fields(base_in, STIM_FIELDS, "stimulation.", problems)
    segments = []
    layout = {}
    if "segments" in doc:
        segs_in = doc["segments"]
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
            fields = dict(base)
            fields.update(_fields(s, STIM_FIELDS, path, problems))
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
    if problems:
        return None, problems, layout, None
    canon = {
        "schema": SCHEMA,
        "name": pname,
        "sample_rate_hz": fs,
        "montage": {"anode": montage["anode"], "cathode": montage["cathode"],
                    "electrode_area_mm2": montage.get("electrode_area_cm2", 0)},
        "segments": segments,
        "sham": sham,
        "safety": {"impedance_max_ohm": safety.get("impedance_max_ohm", DEFAULT_IMPEDANCE_MAX)},
    }
    return canon, [], layout, provenance


def _file_path(cpath, layout, canon):
    """Canonical path (segments[0].duration_ms) -> (file path, scale)."""
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
        if seg["kind"] == "stim" and seg["waveform"] == "noise" and seg["amplitude_uA"] > 0:
            ratio = noise_sd_ratio(seg, canon["sample_rate_hz"])
            if ratio < MIN_NOISE_SD_RATIO:
                out.append("%sband_hz = [%s, %s]: the band carries too little power: the engine's filter "
                           "delivers %.1f%% of noise_sd_uA at %d S/s (widen the band or move it below Nyquist)"
                           % (layout.get(i, "segments[%d]." % i), _in_units(seg["band_mHz"][0], 1000),
                              _in_units(seg["band_mHz"][1], 1000), 100 * ratio, canon["sample_rate_hz"]))
    return out


def check_data(data: bytes, limits=None, name="protocol") -> Loaded:
    limits = limits or dict(CEILING)
    canon, problems, layout, provenance = parse_full(data, name)
    warnings = []
    if canon is not None:
        problems = [explain(p, layout, canon) for p in V.check(canon, limits)]
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
