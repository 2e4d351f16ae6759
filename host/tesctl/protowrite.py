"""Write a personalized protocol: a ready or user protocol (BASE) with some fields changed
and a [provenance] table saying where the change came from (tesctl iaf, tesctl titrate).

The result is checked with the same loader `tesctl validate` uses before it is written, is
never written over an existing file, and keeps the base's structure (tables, segments);
comments of the base are not kept (the file says which base it came from).
"""
import json
import math
import os
from datetime import datetime, timezone

from tesctl import protofile
from tesctl.errors import InputError, safe_text

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ORDER = ("schema", "name", "description", "sample_rate_hz", "montage", "stimulation", "segments", "sham", "safety",
         "provenance")


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("not finite: %r" % v)
        return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)     # a TOML basic string is a JSON string
    if isinstance(v, list):
        return "[%s]" % ", ".join(_value(x) for x in v)
    raise ValueError("cannot write %r in a protocol file" % (v,))


def _table_lines(table):
    return ["%s = %s" % (k, _value(v)) for k, v in table.items()]


def dumps(doc, header=()):
    """A protocol document (as tomllib reads one) as TOML text."""
    lines = ["# " + h for h in header]
    keys = sorted(doc, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
    for k in keys:
        if not isinstance(doc[k], (dict, list)) or (isinstance(doc[k], list) and not any(
                isinstance(x, dict) for x in doc[k])):
            lines.append("%s = %s" % (k, _value(doc[k])))
    for k in keys:
        v = doc[k]
        if isinstance(v, dict):
            lines += ["", "[%s]" % k] + _table_lines(v)
        elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
            for item in v:
                lines += ["", "[[%s]]" % k] + _table_lines(item)
    return "\n".join(lines) + "\n"


def read_base(path, command="this command"):
    """(document, loaded) of a valid base protocol, or InputError listing its problems."""
    loaded = protofile.load(path)
    if not loaded.ok:
        raise InputError("--protocol %s is not a valid protocol: %s" % (safe_text(path), "; ".join(loaded.problems)))
    refused = protofile.refuse_multi(loaded.canonical, command)
    if refused:
        raise InputError("--protocol %s: %s" % (safe_text(path), refused))
    doc = tomllib.loads(protofile.read_protocol(path).decode("utf-8"))
    return doc, loaded


def check_out(out):
    """Refuse an output file that exists or cannot be written, before any work."""
    out = str(out)
    if os.path.exists(out):
        raise InputError("--out %s: already exists (a protocol file is never overwritten)" % safe_text(out))
    d = os.path.dirname(os.path.abspath(out)) or "."
    if not os.path.isdir(d):
        raise InputError("--out %s: directory %s does not exist" % (safe_text(out), safe_text(d)))
    if not os.access(d, os.W_OK | os.X_OK):
        raise InputError("--out %s: directory %s is not writable" % (safe_text(out), safe_text(d)))
    if not out.endswith(".toml"):
        raise InputError("--out %s: a protocol file name ends in .toml" % safe_text(out))


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write(out, doc, header=(), board_limits=None):
    """Validate the document as `tesctl validate` would and write it (never over a file):
    -> the Loaded protocol. InputError (exit 2) with every problem if it is not valid."""
    text = dumps(doc, header)
    loaded = protofile.check_data(text.encode("utf-8"), board_limits, str(out))
    if not loaded.ok:
        raise InputError("the protocol to write is not valid: %s" % "; ".join(loaded.problems))
    try:
        with open(str(out), "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise InputError("--out %s: already exists (a protocol file is never overwritten)" % safe_text(out)) from None
    except OSError as e:
        raise InputError("--out %s: cannot write it: %s" % (safe_text(out), e.strerror or e)) from None
    return loaded


def stim_tables(doc):
    """The stimulation tables of a document: [stimulation] and every non-pause segment."""
    out = []
    if isinstance(doc.get("stimulation"), dict):
        out.append(doc["stimulation"])
    for seg in doc.get("segments", []) or []:
        if isinstance(seg, dict) and "pause_s" not in seg:
            out.append(seg)
    return out
