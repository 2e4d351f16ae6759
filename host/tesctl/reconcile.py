"""Sessions the host did not see to their end (it was killed, or the link failed) are
listed in a small index; the next connection to the same board closes them from the
device's journal, which every stop writes whatever happens to the host."""
import json
import os

from tesctl.recorder import now_iso, write_json_atomic


def state_dir():
    d = os.environ.get("TESCTL_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tesctl")
    os.makedirs(d, exist_ok=True)
    return d


def _index_path():
    return os.path.join(state_dir(), "pending.json")


def _load():
    try:
        with open(_index_path()) as f:
            data = json.load(f)
        return data if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def add(session_dir, unit, sid, sha256):
    """Remember a session until it is closed; `unit` is the device's own id (HELLO's
    "unit"), so records of another board of the same model are never taken for it."""
    items = [p for p in _load() if p.get("dir") != str(session_dir)]
    items.append({"dir": os.path.abspath(str(session_dir)), "unit": unit, "sid": sid, "sha256": sha256})
    write_json_atomic(_index_path(), items)


def remove(session_dir):
    path = os.path.abspath(str(session_dir))
    write_json_atomic(_index_path(), [p for p in _load() if p.get("dir") != path])


def reconcile(device, log=print):
    """Close pending sessions of this unit from its journal. Returns the dirs updated."""
    unit = device.info.get("unit")
    pending = [p for p in _load() if unit and p.get("unit") == unit]
    if not pending:
        return []
    journal = {r.get("id"): r for r in device.journal()}
    done = []
    for p in pending:
        rec = journal.get(p.get("sid"))
        path = os.path.join(p["dir"], "session.json")
        if rec is None or rec.get("outcome") == "open" or rec.get("protocol_sha256") != p.get("sha256"):
            continue
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            remove(p["dir"])
            continue
        meta.update({"outcome": rec["outcome"], "reason": rec.get("reason"),
                     "delivered_charge_uC": rec.get("delivered_charge_uC", 0), "complete": True,
                     "reconciled_from_journal": True, "reconciled_at": now_iso(), "journal_record": rec})
        if rec.get("start_ms") is not None and rec.get("end_ms") is not None:
            meta["device_duration_s"] = round((rec["end_ms"] - rec["start_ms"]) / 1000.0, 3)
        write_json_atomic(path, meta)
        remove(p["dir"])
        done.append(p["dir"])
        log("reconciled %s from the device journal: %s (%s)" % (p["dir"], rec["outcome"], rec.get("reason")))
    return done
