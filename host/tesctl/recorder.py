"""The session directory (contract in docs/cli.md): written as it happens, so a host killed
mid-session still leaves a valid, readable record.

session.json is rewritten atomically (temp file + rename) at start, every few seconds and
at the end; telemetry.csv and events.tsv are appended and flushed at least once a second.
"""
import csv
import json
import os
import time
from datetime import datetime, timezone

TELEMETRY_HEADER = ("t_s", "state", "set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC")
FLUSH_S = 0.5
JSON_EVERY_S = 2.0


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_json_atomic(path, obj):
    tmp = "%s.tmp" % path
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Recorder:
    def __init__(self, out_dir, meta):
        self.dir = str(out_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.meta = dict(meta)
        self.meta.update({"outcome": None, "reason": None, "complete": False, "started_at": now_iso(),
                          "ended_at": None, "delivered_charge_uC": 0, "stim_duration_s": 0.0,
                          "telemetry_rows": 0, "lost_frames": 0})
        self.json_path = os.path.join(self.dir, "session.json")
        self._tel_file = open(os.path.join(self.dir, "telemetry.csv"), "w", newline="")
        self._tel = csv.writer(self._tel_file, lineterminator="\n")
        self._tel.writerow(TELEMETRY_HEADER)
        self._ev_file = open(os.path.join(self.dir, "events.tsv"), "w", newline="")
        self._ev_file.write("onset\tduration\ttrial_type\n")
        self._open_state = None       # (onset, name) of the state whose duration is not known yet
        self._last_flush = time.monotonic()
        self._last_json = 0.0
        self.t0_ms = None
        self.save()

    def save(self):
        write_json_atomic(self.json_path, self.meta)
        self._last_json = time.monotonic()

    def t_s(self, t_ms):
        if self.t0_ms is None:
            # Session time 0 on the device's clock and on ours: a record completed later
            # from the device journal places the device's end time with them.
            self.t0_ms = t_ms
            self.meta.update({"device_t0_ms": t_ms, "t0_at": now_iso()})
        return (t_ms - self.t0_ms) / 1000.0

    def telemetry(self, t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC):
        self._tel.writerow(("%.3f" % self.t_s(t_ms), state, set_uA, meas_uA, v_mV,
                            "" if z_ohm is None else z_ohm, charge_uC))
        self.meta["telemetry_rows"] += 1
        self.meta["delivered_charge_uC"] = charge_uC
        self.tick()

    def state(self, t_ms, name):
        """A new phase; name None ends the last one without opening another."""
        onset = self.t_s(t_ms)
        self._close_state(onset)
        self._open_state = (onset, name) if name else None

    def event(self, t_ms, trial_type, duration=0.0):
        self._row(self.t_s(t_ms), duration, trial_type)

    def _close_state(self, end):
        if self._open_state is not None:
            onset, name = self._open_state
            self._row(onset, max(0.0, end - onset), name)
            self._open_state = None

    def _row(self, onset, duration, trial_type):
        self._ev_file.write("%.3f\t%.3f\t%s\n" % (onset, duration, trial_type))

    def tick(self):
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_S:
            self.flush()
        if now - self._last_json >= JSON_EVERY_S:
            self.save()

    def flush(self):
        self._tel_file.flush()
        self._ev_file.flush()
        os.fsync(self._tel_file.fileno())
        self._last_flush = time.monotonic()

    def finish(self, outcome, reason, charge_uC, stim_ms, t_ms=None, lost=0):
        end = self.t_s(t_ms) if t_ms is not None else None
        if end is not None:
            self._close_state(end)
            self._row(end, 0.0, "end:%s" % outcome)
        self.meta.update({"outcome": outcome, "reason": reason, "delivered_charge_uC": charge_uC,
                          "stim_duration_s": round(stim_ms / 1000.0, 3), "complete": True,
                          "ended_at": now_iso(), "lost_frames": lost})
        self.close()

    def close(self):
        if not self._tel_file.closed:
            self.flush()
            self._tel_file.close()
            self._ev_file.close()
            self._sort_events()
        self.save()

    def _sort_events(self):
        sort_events(self.dir)


def sort_events(session_dir):
    """A phase's row is written when it ends (its duration known then); at the end put
    the rows in onset order, as BIDS readers expect (atomically: never half a file)."""
    path = os.path.join(str(session_dir), "events.tsv")
    with open(path) as f:
        lines = f.read().splitlines()
    rows = [ln for ln in lines[1:] if _onset(ln) is not None]     # drop a line cut short
    rows.sort(key=_onset)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join([lines[0] if lines else "onset\tduration\ttrial_type"] + rows) + "\n")
    os.replace(tmp, path)


def _onset(line):
    parts = line.split("\t")
    if len(parts) < 3:
        return None
    try:
        return float(parts[0])
    except ValueError:
        return None
