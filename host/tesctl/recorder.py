"""The session directory (contract in docs/cli.md): written as it happens, so a host killed
mid-session still leaves a valid, readable record.

session.json is rewritten atomically (temp file + rename) at start, every few seconds and
at the end; telemetry.csv and events.tsv are appended and flushed at least once a second.
"""
import json
import os
import time
from array import array
from datetime import datetime, timezone

from tesctl.clock import Clock
from tesctl.errors import TesctlError

EVENTS_HEADER = "onset\tduration\ttrial_type\n"
# docs/cli.md "Session files": set_uA, meas_uA, v_mV are 20 ms window means; the RMS and peak
# columns and z_ohm (v_rms / meas_rms) are over the device's last whole-period window.
TELEMETRY_HEADER = ("t_s", "state", "set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC",
                    "set_rms_uA", "meas_rms_uA", "meas_peak_uA", "v_rms_mV", "z_phase_deg")
# A multi-electrode session (docs/cli.md "Session directory"): after those, per electrode in
# montage order, the figures of tes.link.unpack_telem_electrodes under NAME_<suffix>.
ELECTRODE_SUFFIXES = ("set_uA", "meas_uA", "v_mV", "z_ohm", "set_rms_uA", "meas_rms_uA", "v_rms_mV")
Z_UNKNOWN = 0xFFFFFFFF          # tes.link's "no impedance" (also -1 or None from the codec)
FLUSH_S = 0.5
JSON_EVERY_S = 2.0
# Contact quality (docs/safety.md): a drying sponge shows as an impedance that rises
# steadily, long before the absolute lockout.
CONTACT_RISE_PCT_PER_MIN = 20   # at least this fast...
CONTACT_SUSTAIN_S = 60          # ...over this long: every CONTACT_BIN_S mean above the one before
CONTACT_BIN_S = 10
CONTACT_STATES = ("ramp-up", "plateau", "ramp-down")
CONTACT_WARNING = "warning:contact-drying"


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def lsl_local_clock():
    """pylsl.local_clock if pylsl imports (it ships liblsl; the clock needs no stream), else
    None: the clock mapping then records null for LSL (docs/records.md, "Clock")."""
    from tesctl import lsl
    try:
        return lsl._pylsl().local_clock
    except lsl.LslError:
        return None


def telemetry_header(electrodes=None):
    """The telemetry.csv columns: TELEMETRY_HEADER, then per electrode NAME_<suffix>."""
    return TELEMETRY_HEADER + tuple("%s_%s" % (name, suffix) for name in (electrodes or ())
                                    for suffix in ELECTRODE_SUFFIXES)


def fault_label(fault, electrode=None):
    """events.tsv's (and the LSL marker's) name of a fault: fault:NAME, or in a multi session
    fault:NAME:ELECTRODE for a fault the device pinned on one electrode."""
    return "fault:%s%s" % (fault, ":%s" % electrode if electrode else "")


def z_cell(z):
    """An impedance figure, or None when the device does not know it."""
    return None if z is None or z < 0 or z == Z_UNKNOWN else z


def electrode_cells(n, rows):
    """The per-electrode part of a row (leading comma): n electrodes' 7-tuples, or empty
    cells for a frame without them (an idle frame after the end)."""
    if not n:
        return ""
    if not rows or len(rows) != n:
        return "," * (len(ELECTRODE_SUFFIXES) * n)
    out = []
    for s, m, v, z, srms, mrms, vrms in rows:
        z = z_cell(z)
        out.append(",%d,%d,%d,%s,%d,%d,%d" % (s, m, v, "" if z is None else z, srms, mrms, vrms))
    return "".join(out)


def write_json_atomic(path, obj):
    tmp = "%s.tmp" % path
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)        # no half file left where a disk filled up
        except OSError:
            pass
        raise


class ContactWatch:
    """Impedance rising steadily while current flows (a drying sponge; Antal et al. 2017:
    burns come from poor or drying contact). z_ohm is averaged over CONTACT_BIN_S-second
    bins of session time; the watch fires once when the last CONTACT_SUSTAIN_S seconds of
    bins (CONTACT_SUSTAIN_S / CONTACT_BIN_S + 1 bins, all with readings, each in a
    stimulating state) rise bin after bin and the last is at least
    CONTACT_RISE_PCT_PER_MIN % a minute (pro rata) above the first. feed() returns True
    at that row."""

    def __init__(self):
        self.bins = []            # [(bin index, mean z)] of the current unbroken run
        self._cur = None          # [bin index, sum, count]
        self.fired = False

    def feed(self, t_s, state, z_ohm):
        if self.fired:
            return False
        if state not in CONTACT_STATES or z_ohm is None:
            self.bins = []        # no reading, or no current: the run is broken
            self._cur = None
            return False
        b = int(t_s // CONTACT_BIN_S)
        if self._cur is not None and self._cur[0] != b:
            k, total, n = self._cur
            if self.bins and self.bins[-1][0] != k - 1:
                self.bins = []    # a bin without readings between
            self.bins.append((k, total / n))
            need = CONTACT_SUSTAIN_S // CONTACT_BIN_S + 1
            self.bins = self.bins[-need:]
            self._cur = None
            if len(self.bins) == need and self._rising():
                self.fired = True
                return True
        if self._cur is None:
            self._cur = [b, 0.0, 0]
        self._cur[1] += z_ohm
        self._cur[2] += 1
        return False

    def _rising(self):
        zs = [z for _, z in self.bins]
        if any(b <= a for a, b in zip(zs, zs[1:])):
            return False
        minutes = (len(zs) - 1) * CONTACT_BIN_S / 60.0
        return zs[-1] >= zs[0] * (1 + CONTACT_RISE_PCT_PER_MIN / 100.0 * minutes)


class Recorder:
    """The record of one session. A failure to write it (disk full, the directory removed,
    a pulled stick, a read-only mount) never reaches the session: the recorder keeps every
    row in memory, warns once, and at close writes the whole record again, to its own
    directory if it can, else to a fallback place it names (fallback_dir, failure)."""

    def __init__(self, out_dir, meta, warn=None, memory_only=False, electrodes=None):
        self.dir = str(out_dir)
        self.electrodes = list(electrodes or ())    # a multi session's names, montage order
        self.header = ",".join(telemetry_header(self.electrodes)) + "\n"
        self.memory_only = memory_only      # a blinded study's record: kept here, sealed at the end
        self.warn = warn or (lambda m: None)
        self.failure = None           # what went wrong writing the record, or None
        self.fallback_dir = None      # where the whole record went instead, or None
        self.meta = dict(meta)
        self.meta.update({"outcome": None, "reason": None, "complete": False, "started_at": now_iso(),
                          "ended_at": None, "delivered_charge_uC": 0, "stim_duration_s": 0.0,
                          "telemetry_rows": 0, "lost_frames": 0})
        self.json_path = os.path.join(self.dir, "session.json")
        self._tel_rows = []           # every row, in memory too: the record survives its files
        self._ev_rows = []
        self._raw = array("i")
        self._raw_file = None
        self._raw_next = None
        self._tel_file = self._ev_file = None
        self._closed = False
        self._open_state = None       # (onset, name) of the state whose duration is not known yet
        self._last_flush = time.monotonic()
        self._last_json = 0.0
        self.t0_ms = None
        self.contact = ContactWatch()
        # Device ms -> host wall clock and LSL clock, from every telemetry frame's arrival
        # (tesctl.clock); session.json "clock" has its summary.
        self._lsl_clock = lsl_local_clock()
        self.clock = Clock(lsl_clock="pylsl.local_clock" if self._lsl_clock else None)
        self.meta["clock"] = None
        self.on_warning = None        # called with (t_ms, text) when a warning goes into events.tsv
        if memory_only:
            return
        try:
            os.makedirs(self.dir, exist_ok=True)
            self._tel_file = open(os.path.join(self.dir, "telemetry.csv"), "w", newline="")
            self._tel_file.write(self.header)
            self._ev_file = open(os.path.join(self.dir, "events.tsv"), "w", newline="")
            self._ev_file.write(EVENTS_HEADER)
        except OSError as e:
            self._failed(e)
        self.save()

    # ---- failure --------------------------------------------------------------------
    def _failed(self, e):
        """Stop writing files; keep recording in memory; say so once."""
        if self.failure is None:
            self.failure = "%s%s" % (e.strerror or e, " (%s)" % e.filename if getattr(e, "filename", None) else "")
            self.meta["recording_failure"] = self.failure
            self.warn("warning: cannot write the session record in %s: %s. The session goes on; the record "
                      "is kept in memory and written in full at the end." % (self.dir, self.failure))
        for f in (self._tel_file, self._ev_file, self._raw_file):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._tel_file = self._ev_file = self._raw_file = None

    def _guard(self, fn, *args):
        if self.failure is not None:
            return
        try:
            fn(*args)
        except OSError as e:
            self._failed(e)

    # ---- recording ------------------------------------------------------------------
    def save(self):
        self._last_json = time.monotonic()
        self._clock_meta()
        if self.memory_only:
            return
        self._guard(write_json_atomic, self.json_path, self.meta)

    def t_s(self, t_ms):
        if self.t0_ms is None:
            # Session time 0 on the device's clock and on ours: a record completed later
            # from the device journal places the device's end time with them.
            self.t0_ms = t_ms
            self.meta.update({"device_t0_ms": t_ms, "t0_at": now_iso()})
        return (t_ms - self.t0_ms) / 1000.0

    def observe_clock(self, t_ms, rx_s=None):
        """A telemetry frame stamped t_ms on the device, read by the host at rx_s
        (time.time(); None: now). Its LSL time is rx_s on LSL's clock, read now."""
        now = time.time()
        rx = now if rx_s is None else rx_s
        lsl = None if self._lsl_clock is None else self._lsl_clock() - (now - rx)
        self.clock.observe(t_ms, rx, lsl)

    def _clock_meta(self):
        if self.clock.ready():
            self.meta["clock"] = self.clock.summary()

    def telemetry(self, t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, stats=None, rx_s=None,
                  electrodes=None):
        """One row. stats: tes.link.unpack_telem_stats of the frame (set_rms_uA, meas_rms_uA,
        meas_peak_uA, v_rms_mV, z_phase_cdeg), or None: those cells stay empty. rx_s: when
        the host read the frame (time.time()), for the clock mapping; None: now.
        electrodes: a multi session's tes.link.unpack_telem_electrodes (montage order)."""
        self.observe_clock(t_ms, rx_s)
        if stats is None:
            tail = ",,,,"
        else:
            ph = stats[4]
            tail = "%d,%d,%d,%d,%s" % (stats[0], stats[1], stats[2], stats[3],
                                       "" if ph is None else "%.2f" % (ph / 100.0))
        t_s = self.t_s(t_ms)
        line = "%.3f,%s,%d,%d,%d,%s,%s,%s%s\n" % (t_s, state, set_uA, meas_uA, v_mV,
                                                  "" if z_ohm is None else z_ohm, charge_uC, tail,
                                                  electrode_cells(len(self.electrodes), electrodes))
        if self.contact.feed(t_s, state, z_ohm):
            self.warning(t_ms, CONTACT_WARNING)
        self._tel_rows.append(line)
        if self._tel_file is not None:
            self._guard(self._tel_file.write, line)
        self.meta["telemetry_rows"] += 1
        self.meta["delivered_charge_uC"] = charge_uC
        self.tick()

    def open_raw(self):
        if self.memory_only:
            self.meta["raw"] = {"samples": 0, "gaps": [], "complete": None}
            return
        try:
            self._raw_file = open(os.path.join(self.dir, "raw_set_uA.txt"), "w")
        except OSError as e:
            self._raw_file = None
            self._failed(e)
        self.meta["raw"] = {"samples": 0, "gaps": [], "complete": None}

    def raw(self, first, samples):
        """Commanded samples from sample index `first`; a gap (samples missing) is recorded
        in session.json ("raw": samples, gaps)."""
        info = self.meta["raw"]
        if self._raw_next is not None and first != self._raw_next:
            info["gaps_total"] = info.get("gaps_total", 0) + 1
            if len(info["gaps"]) < 1000:
                info["gaps"].append({"at_sample": self._raw_next, "missing": first - self._raw_next})
        self._raw_next = first + len(samples)
        info["samples"] += len(samples)
        self._raw.extend(samples)
        if self._raw_file is not None:
            self._guard(self._raw_file.write, "".join("%d\n" % v for v in samples))

    def raw_note(self, text):
        """An interruption of the raw stream (another client turned it off, ...)."""
        self.meta.setdefault("raw", {"samples": 0, "gaps": [], "complete": None})
        self.meta["raw"].setdefault("interruptions", []).append(text)

    def state(self, t_ms, name):
        """A new phase; name None ends the last one without opening another."""
        onset = self.t_s(t_ms)
        self._close_state(onset)
        self._open_state = (onset, name) if name else None

    def event(self, t_ms, trial_type, duration=0.0):
        self._row(self.t_s(t_ms), duration, trial_type)

    def warning(self, t_ms, text):
        """A warning (the session goes on): a row in events.tsv, a note in session.json
        ("warnings": onset, text), and on_warning(t_ms, text) if set (LSL marker, screen)."""
        self.event(t_ms, text)
        self.meta.setdefault("warnings", []).append({"onset": self.t_s(t_ms), "warning": text})
        if self.on_warning is not None:
            self.on_warning(t_ms, text)

    def _close_state(self, end):
        if self._open_state is not None:
            onset, name = self._open_state
            self._row(onset, max(0.0, end - onset), name)
            self._open_state = None

    def _row(self, onset, duration, trial_type):
        line = "%.3f\t%.3f\t%s\n" % (onset, duration, trial_type)
        self._ev_rows.append(line)
        if self._ev_file is not None:
            self._guard(self._ev_file.write, line)

    def tick(self):
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_S:
            self.flush()
        if now - self._last_json >= JSON_EVERY_S:
            self.save()

    def flush(self):
        self._last_flush = time.monotonic()
        if self.failure is not None:
            return
        try:
            for f in (self._tel_file, self._ev_file, self._raw_file):
                if f is not None:
                    f.flush()
            if self._tel_file is not None:
                os.fsync(self._tel_file.fileno())
        except OSError as e:
            self._failed(e)

    def finish(self, outcome, reason, charge_uC, stim_ms, t_ms=None, lost=0):
        end = self.t_s(t_ms) if t_ms is not None else None
        if end is not None:
            self._close_state(end)
            self._row(end, 0.0, "end:%s" % outcome)
        self.meta.update({"outcome": outcome, "reason": reason, "delivered_charge_uC": charge_uC,
                          "stim_duration_s": round(stim_ms / 1000.0, 3), "complete": True,
                          "ended_at": now_iso(), "lost_frames": lost})
        self._clock_meta()
        self.close()

    def close(self):
        """End the record: flushed and sorted in its directory, or, if writing there failed
        at any time, the whole record from memory, there if it can, else in a fallback place."""
        if not self._closed:
            self._closed = True
            self.flush()
            for f in (self._tel_file, self._ev_file, self._raw_file):
                if f is not None:
                    self._guard(f.close)
            self._tel_file = self._ev_file = self._raw_file = None
            if self.memory_only:
                return self.dir
            if self.failure is None:
                self._guard(sort_events, self.dir)
        if self.failure is None:
            self.save()
            if self.failure is None:
                return self.dir
        return self._write_whole()

    def record_dir(self):
        return self.fallback_dir or self.dir

    def _write_whole(self):
        """Write the record from memory: its own directory if that works now (a directory
        removed mid-session is made again), else the first fallback place that takes it."""
        for d in [self.dir] + fallback_dirs(self.dir):
            try:
                os.makedirs(d, exist_ok=True)
                if d != self.dir and os.listdir(d):
                    continue                   # never over another record
                meta = dict(self.meta)
                if d != self.dir:
                    meta["recording_fallback"] = {"asked": os.path.abspath(self.dir), "written": d,
                                                  "failure": self.failure}
                self._dump(d, meta)
            except OSError:
                continue
            if d != self.dir:
                self.fallback_dir = d
                self.meta = meta
            return d
        raise RecordLost("the session record could not be written anywhere (%s; tried %s and %s)"
                         % (self.failure, self.dir, ", ".join(fallback_dirs(self.dir))))

    def _dump(self, d, meta):
        for name, data in self.files(meta).items():
            if name != "session.json":
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
        write_json_atomic(os.path.join(d, "session.json"), meta)

    def files(self, meta=None):
        """The whole record as {file name: bytes}, from memory (what a blinded study seals)."""
        meta = self.meta if meta is None else meta
        out = {"telemetry.csv": (self.header + "".join(self._tel_rows)).encode(),
               "events.tsv": (EVENTS_HEADER + "".join(sorted(self._ev_rows, key=_onset))).encode()}
        if "raw" in meta:
            out["raw_set_uA.txt"] = "".join("%d\n" % v for v in self._raw).encode()
        out["session.json"] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        return out


class RecordLost(TesctlError):
    """Not one place took the record (exit 3)."""


def fallback_dirs(session_dir):
    """Where a record goes when its own directory refuses it: $TESCTL_FALLBACK, the host's
    state directory, then the system's temporary directory; each a new folder."""
    import tempfile
    name = os.path.basename(os.path.abspath(str(session_dir))) or "session"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    bases = [os.environ.get("TESCTL_FALLBACK"),
             os.path.join(os.environ.get("TESCTL_STATE") or os.path.join(
                 os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tesctl"), "fallback"),
             os.path.join(tempfile.gettempdir(), "tesctl-fallback")]
    return [os.path.join(b, "%s-%s-%d" % (name, stamp, os.getpid())) for b in bases if b]


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
