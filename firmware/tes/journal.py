"""Append-only session journal on device storage, one record per line:

    J1 <crc32 of the JSON text, 8 hex digits> <JSON object>\\n

A record is valid only if its line is complete (ends in a newline) and its CRC matches,
so a write torn by a reset, or garbage after it, costs that record and nothing before it.

Session records carry: id, protocol_sha256 (hex), start_ms, end_ms, outcome
(open | completed | stopped | aborted | fault), reason, delivered_charge_uC, stim_ms (time
with a nonzero set current, the supervisor's count; null when unknown), and wall_s when
the wall clock is known. begin() writes an "open" record at session start; finish() writes
the closing record with the same id. At boot, recover() closes any session still open (the
board reset or lost power mid-session) with outcome "fault", reason "reset", and boot_ms
(this boot's clock): its end_ms and stim_ms are those of the last checkpoint (null
without one), since the clock that start_ms counts on did not survive the reset.
"""
import binascii
import json
import os

NAME = "journal.log"
OUTCOMES = ("open", "completed", "stopped", "aborted", "fault")


def _path(d):
    return d + "/" + NAME


def _sync():
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def _crc(text):
    return binascii.crc32(text.encode()) & 0xFFFFFFFF


def append(d, record):
    """Write one record and flush it to storage before returning."""
    _heal(d)
    text = json.dumps(record)
    line = "J1 %08x %s\n" % (_crc(text), text)
    with open(_path(d), "a") as f:
        f.write(line)
        f.flush()
    _sync()


def _parse(line):
    if not line.startswith("J1 ") or len(line) < 13 or line[11] != " ":
        return None
    text = line[12:]
    try:
        if int(line[3:11], 16) != _crc(text):
            return None
        rec = json.loads(text)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def records(d):
    """Valid records, oldest first, one at a time (a generator): memory follows the
    longest record, not the journal. Torn or garbled lines are skipped."""
    try:
        f = open(_path(d))
    except OSError:
        return
    with f:
        while True:
            line = f.readline()
            if not line:
                break
            # A line without its newline is a torn write (the last one): never trust it.
            if line[-1] == "\n":
                rec = _parse(line[:-1])
                if rec is not None:
                    yield rec


def read(d):
    """All valid records, oldest first (a list: for tests and small journals)."""
    return list(records(d))


def _next_id(records):
    top = 0
    for r in records:
        i = r.get("id")
        if type(i) is int and i > top:
            top = i
    return top + 1


def next_id(d):
    return _next_id(records(d))


def open_record(sid, protocol_sha256, start_ms, wall_s=None):
    rec = {"id": sid, "protocol_sha256": protocol_sha256, "start_ms": start_ms,
           "end_ms": None, "outcome": "open", "reason": "", "delivered_charge_uC": 0, "stim_ms": None}
    if wall_s is not None:
        rec["wall_s"] = wall_s
    return rec


def begin(d, protocol_sha256, start_ms, wall_s=None, sid=None):
    """Record a session as open; returns its id for finish(). Pass sid (from next_id at
    boot, counted on) to spare a read of the whole journal."""
    if sid is None:
        sid = _next_id(records(d))
    append(d, open_record(sid, protocol_sha256, start_ms, wall_s))
    return sid


def checkpoint(d, sid, delivered_charge_uC, now_ms, opened=None, stim_ms=None):
    """Note progress of an open session, so a reset keeps the charge (and stimulation time)
    so far. With `opened` (the open record, kept by the caller) nothing is read back."""
    if opened is None:
        for r in records(d):
            if r.get("id") == sid and r.get("outcome") == "open":
                opened = r
        if opened is None:
            return None
    rec = dict(opened)
    rec["delivered_charge_uC"] = delivered_charge_uC
    rec["end_ms"] = now_ms
    rec["stim_ms"] = stim_ms
    append(d, rec)
    return rec


def finish(d, sid, outcome, reason, delivered_charge_uC, end_ms, wall_s=None, opened=None, stim_ms=None,
           changes=None):
    """The session's end. changes: the online changes applied, [[at_ms, param, value], ...]
    (tes.online; kept only when there were some, so other records read as before)."""
    if outcome not in OUTCOMES[1:]:
        raise ValueError("journal: outcome must be one of %s" % ", ".join(OUTCOMES[1:]))
    if opened is None:
        for r in records(d):
            if r.get("id") == sid:
                opened = r
    rec = {"id": sid, "protocol_sha256": opened["protocol_sha256"] if opened else "",
           "start_ms": opened["start_ms"] if opened else None, "end_ms": end_ms,
           "outcome": outcome, "reason": reason, "delivered_charge_uC": delivered_charge_uC, "stim_ms": stim_ms}
    if wall_s is not None:
        rec["wall_s"] = wall_s
    if changes:
        rec["changes"] = changes
    append(d, rec)
    return rec


def sessions(d):
    """Latest record per session id, oldest session first."""
    last = {}
    order = []
    for r in records(d):
        sid = r.get("id")
        if sid not in last:
            order.append(sid)
        last[sid] = r
    return [last[s] for s in order]


KEEP_SESSIONS = 200


def compact(d, keep=KEEP_SESSIONS):
    """Rewrite the journal with the latest record of the last `keep` sessions, so it does
    not grow with every checkpoint (write then rename: a reset mid-way keeps the old one).
    Returns the number of sessions kept."""
    kept = sessions(d)[-keep:]
    path = _path(d)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for rec in kept:
            text = json.dumps(rec)
            f.write("J1 %08x %s\n" % (_crc(text), text))
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)
    _sync()
    return len(kept)


def recover(d, now_ms=None, retained=None):
    """At boot: close every session still open as fault/reset. now_ms: this boot's clock
    (kept as boot_ms). retained: (sid, charge_uC, stim_ms) the board kept through the reset
    (hal.retained()): the freshest charge and stimulation time of that session. Returns the
    new records."""
    out = []
    for r in sessions(d):
        if r.get("outcome") == "open":
            charge = r.get("delivered_charge_uC", 0)
            stim = r.get("stim_ms")
            if retained is not None and retained[0] == r["id"]:
                if retained[1] > charge:
                    charge = retained[1]
                if len(retained) > 2 and (stim is None or retained[2] > stim):
                    stim = retained[2]
            rec = {"id": r["id"], "protocol_sha256": r.get("protocol_sha256", ""), "start_ms": r.get("start_ms"),
                   "end_ms": r.get("end_ms"), "outcome": "fault", "reason": "reset",
                   "delivered_charge_uC": charge, "stim_ms": stim, "boot_ms": now_ms}
            if "wall_s" in r:
                rec["wall_s"] = r["wall_s"]
            append(d, rec)
            out.append(rec)
    return out


def _heal(d):
    """End a torn last line with a newline, so the next record starts on a line of its own
    (the torn bytes become one invalid line that read() skips)."""
    try:
        with open(_path(d), "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            last = f.read(1)
    except OSError:
        return
    if last != b"\n":
        with open(_path(d), "a") as f:
            f.write("\n")
