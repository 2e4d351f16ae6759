"""Sessions the host did not see to their end (it was killed, the link failed, the board
was killed or reset) are listed in a small index; the next connection to the same board
closes them from the device's journal, which every stop writes whatever happens to the
host (and which the board closes at boot after a reset or a power loss).

A record completed from the journal is as whole as one the host saw end (docs/cli.md):
outcome, reason, delivered charge, stimulation time and end time in session.json, the
fault and the end in events.tsv, `complete: true`, and `reconciled_from_journal: true`
with the journal record it came from. Where the journal lacks a figure (a board that
reset keeps its charge through the reset but not its stimulation time), the host's own
telemetry gives it and `stim_duration_source` says so.
"""
import json
import os
from datetime import datetime, timedelta

from tesctl.errors import safe_text
from tesctl.recorder import fault_label, now_iso, sort_events, write_json_atomic
from tesctl.report import load_telemetry, outcome_text

STIM_STATES = ("ramp-up", "plateau", "ramp-down")     # the phases with current set
STIM_SLACK_S = 1.0


def state_dir_name():
    return os.environ.get("TESCTL_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tesctl")


def state_dir():
    d = state_dir_name()
    os.makedirs(d, exist_ok=True)
    return d


def _index_path():
    return os.path.join(state_dir(), "pending.json")


def _valid(p):
    """An index entry as run writes it; anything else (a hand-edited file) is skipped."""
    return (isinstance(p, dict) and isinstance(p.get("dir"), str) and p["dir"]
            and isinstance(p.get("unit"), (str, type(None))) and isinstance(p.get("sid"), (int, str, type(None)))
            and not isinstance(p.get("sid"), bool) and isinstance(p.get("sha256"), (str, type(None))))


def _load():
    try:
        path = _index_path()
        if os.path.getsize(path) > 4 * 1024 * 1024:
            return []
        with open(path) as f:
            data = json.load(f)
        return [p for p in data if _valid(p)] if isinstance(data, list) else []
    except (OSError, ValueError, RecursionError):
        return []


def add(session_dir, unit, sid, sha256):
    """Remember a session until it is closed; `unit` is the device's own id (HELLO's
    "unit"), so records of another board of the same model are never taken for it."""
    items = [p for p in _load() if p.get("dir") != str(session_dir)]
    items.append({"dir": os.path.abspath(str(session_dir)), "unit": unit, "sid": sid, "sha256": sha256})
    write_json_atomic(_index_path(), items)


def remove(session_dir):
    path = os.path.abspath(str(session_dir))
    items = _load()
    if any(p.get("dir") == path for p in items):
        write_json_atomic(_index_path(), [p for p in items if p.get("dir") != path])


def move(old_dir, new_dir):
    """The record of a pending session went elsewhere (a fallback place): follow it."""
    old, new = os.path.abspath(str(old_dir)), os.path.abspath(str(new_dir))
    items = _load()
    if any(p.get("dir") == old for p in items):
        for p in items:
            if p.get("dir") == old:
                p["dir"] = new
        write_json_atomic(_index_path(), items)


def reconcile(device, log=print):
    """Close pending sessions of this unit from its journal. Returns the dirs updated.
    A record it cannot complete now (its directory gone, full or read-only, a broken
    file) is a warning, never an error: the connection goes on, and the entry stays for
    a later try while its directory exists."""
    unit = device.info.get("unit")
    pending = [p for p in _load() if unit and p.get("unit") == unit]
    if not pending:
        return []
    journal = {r.get("id"): r for r in device.journal() if isinstance(r, dict)}
    done = []
    for p in pending:
        rec = journal.get(p.get("sid"))
        if rec is None or rec.get("outcome") == "open" or rec.get("protocol_sha256") != p.get("sha256"):
            continue
        try:
            meta = complete_from_journal(p["dir"], rec)
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as e:
            gone = not os.path.isdir(p["dir"])
            log("warning: cannot complete %s from the device journal (%s)%s" % (
                safe_text(p["dir"]), getattr(e, "strerror", None) or e,
                ": its directory is gone" if gone else ": will try again at the next connection"))
            if gone:
                _try(remove, p["dir"], log)
            continue
        _try(remove, p["dir"], log)
        done.append(p["dir"])
        log("reconciled %s from the device journal: %s" % (safe_text(p["dir"]),
                                                           outcome_text(meta["outcome"], meta["reason"])))
    return done


def _try(fn, arg, log):
    try:
        fn(arg)
    except OSError as e:
        log("warning: cannot update the pending-session index in %s: %s" % (state_dir_name(), e.strerror or e))


# ---- completing a record ------------------------------------------------------------------
def complete_from_journal(session_dir, rec, host_saw_end=False, reason=None):
    """Complete DIR's session.json and events.tsv from the device's journal record `rec`.
    host_saw_end: the host recorded up to the device's end (it saw the board reboot), so
    its telemetry is a whole account, not one that stops early. reason: what the host
    knows better than the journal (the boot said "watchdog"; the journal says "reset").
    Returns the new meta."""
    session_dir = str(session_dir)
    path = os.path.join(session_dir, "session.json")
    with open(path) as f:
        meta = json.load(f)
    if not isinstance(meta, dict):
        raise ValueError("session.json is not a JSON object")
    rows = load_telemetry(session_dir)
    outcome, reason = rec["outcome"], reason or rec.get("reason") or ""
    # The larger of the journal's, the telemetry's and what the host recorded itself: a
    # journal that lost a figure (0 after a reset) never replaces one the host saw.
    host_charge = meta.get("delivered_charge_uC")
    host_charge = host_charge if isinstance(host_charge, (int, float)) and not isinstance(host_charge, bool) else 0
    charge = max([_num(rec.get("delivered_charge_uC")), host_charge] + [r["charge_uC"] for r in rows if r["charge_uC"]])
    tel_s = telemetry_stim_s(rows)
    # The journal's time unless the host's telemetry shows clearly more (the retained
    # figure lags by up to 0.1 s; a journal that lost it says 0).
    if rec.get("stim_ms") is not None and rec["stim_ms"] / 1000.0 + STIM_SLACK_S >= tel_s:
        stim_s, source = rec["stim_ms"] / 1000.0, "device"
    elif rec.get("stim_ms") is not None:
        stim_s, source = tel_s, "telemetry"
    else:
        # A host killed mid-session left no link-lost reason: its telemetry stops before the
        # device's end, and the time it shows is a lower bound.
        stopped_early = not host_saw_end and meta.get("reason") is None
        stim_s, source = telemetry_stim_s(rows), "telemetry-lower-bound" if stopped_early else "telemetry"
    end_t = _end_t(meta, rec, rows)
    meta.update({"outcome": outcome, "reason": reason, "delivered_charge_uC": charge,
                 "stim_duration_s": round(stim_s, 3), "stim_duration_source": source,
                 "ended_at": _wall(meta, end_t), "complete": True, "telemetry_rows": len(rows),
                 "reconciled_from_journal": True, "reconciled_at": now_iso(), "journal_record": rec})
    if outcome == "fault" and rec.get("electrode"):
        meta["fault_electrode"] = rec["electrode"]      # a multi session's fault pinned on one electrode
    _add_events(session_dir, rows, end_t, outcome, reason, rec.get("electrode") if outcome == "fault" else None)
    write_json_atomic(path, meta)
    return meta


def telemetry_stim_s(rows):
    """Time with current set, from telemetry: every interval that ends in a stimulating
    phase (20 ms a row; pauses and sham-off have no current)."""
    total = 0.0
    for prev, row in zip(rows, rows[1:]):
        if row["state"] in STIM_STATES and row["t_s"] > prev["t_s"]:
            total += row["t_s"] - prev["t_s"]
    return total


def _end_t(meta, rec, rows):
    """Session time (s) of the device's end, or None if nothing places it. A record the
    app closed counts on the session's own clock; one closed at boot (boot_ms) does not:
    the board stopped at the last telemetry that showed current (or later, unseen)."""
    stim_rows = [r["t_s"] for r in rows if r["state"] in STIM_STATES]
    if "boot_ms" not in rec and rec.get("end_ms") is not None:
        if meta.get("device_t0_ms") is not None:
            return (rec["end_ms"] - meta["device_t0_ms"]) / 1000.0
        if stim_rows and rec.get("start_ms") is not None:
            return stim_rows[0] + (rec["end_ms"] - rec["start_ms"]) / 1000.0
    if stim_rows:
        return stim_rows[-1]
    return rows[-1]["t_s"] if rows else None


def _wall(meta, end_t):
    """The wall time of session time end_t (from when session time 0 arrived), never
    later than now (a fast simulated clock outruns the wall)."""
    now = datetime.fromisoformat(now_iso())
    base = meta.get("t0_at") or meta.get("started_at")
    try:
        t = datetime.fromisoformat(base) + timedelta(seconds=end_t or 0.0)
    except (TypeError, ValueError):
        return now_iso()
    return min(t, now).isoformat(timespec="milliseconds")


def _add_events(session_dir, rows, end_t, outcome, reason, electrode=None):
    """What a host that saw the end would have written: the phase the telemetry ends in
    (a host that stopped early never wrote it), the fault and the end; then the rows in
    onset order."""
    path = os.path.join(session_dir, "events.tsv")
    try:
        with open(path) as f:
            have = f.read()
    except OSError:
        have = ""
    events = [(_float(ln.split("\t")[0]), ln.split("\t")[2]) for ln in have.splitlines()[1:] if ln.count("\t") >= 2]
    names = {name for _, name in events}
    end = end_t if end_t is not None else 0.0
    add = []
    last = _last_phase(rows)
    if last is not None and not any(name == last[1] and t is not None and t >= last[0] - 0.5 for t, name in events):
        add.append((last[0], max(0.0, end - last[0]), last[1]))
    if outcome == "fault" and fault_label(reason, electrode) not in names:
        add.append((end, 0.0, fault_label(reason, electrode)))
    if "end:%s" % outcome not in names:
        add.append((end, 0.0, "end:%s" % outcome))
    with open(path, "a") as f:
        if not have:
            f.write("onset\tduration\ttrial_type\n")
        elif not have.endswith("\n"):
            f.write("\n")              # the line a killed host left half written
        for onset, duration, name in add:
            f.write("%.3f\t%.3f\t%s\n" % (onset, duration, name))
    sort_events(session_dir)


def _last_phase(rows):
    """(onset, name) of the last stimulating phase in the telemetry, or None."""
    j = len(rows) - 1
    while j >= 0 and rows[j]["state"] not in STIM_STATES:
        j -= 1
    if j < 0:
        return None
    k = j
    while k > 0 and rows[k - 1]["state"] == rows[j]["state"]:
        k -= 1
    return rows[k]["t_s"], rows[j]["state"]


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else 0


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None
