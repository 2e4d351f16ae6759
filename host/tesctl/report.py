"""Session report: a summary of a recorded session directory and a report.png.

Reads what `tesctl run` writes (session.json, telemetry.csv, events.tsv). Everything but
session.json may be missing, empty or cut short (a host killed mid-session), so every reader
here skips what it cannot parse instead of failing.
"""
import csv
import json
import math
import os
from array import array

from tes.engine import PAUSE, RAMP_DOWN, RAMP_UP, SHAM_OFF, Engine, build_phases

from tesctl.errors import InputError

# Engine samples are exact but CPython synthesis is slow (noise ~6 us/sample); above this
# cost the commanded panel falls back to the analytic envelope of each phase.
ENGINE_BUDGET = 1_500_000
NOISE_COST = 8
ENVELOPE_WIDTH = 3000       # min/max buckets across the plot
STIM_STATES = ("ramp-up", "plateau", "ramp-down")
NUM_COLUMNS = ("set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC",
               "set_rms_uA", "meas_rms_uA", "meas_peak_uA", "v_rms_mV", "z_phase_deg")
SINE_MEAN_ABS = 2 * math.sqrt(2) / math.pi    # mean |I| / RMS of a sine
ZOOM_CYCLES = 4             # report.png's zoom: this many cycles of a sine/pulse (else 0.2 s)


class ReportError(InputError):
    """The directory is not a readable session (one-line message)."""


def blinded_text(meta):
    """The one line a blinded session's clear record gets (docs/study.md): there is nothing
    in it to report, and who may open it does so with `tesctl study unblind`."""
    from tesctl.errors import safe_text
    name = meta.get("study_name") or meta.get("study_id") or "?"
    return safe_text("blinded session of study %s (participant %s): its record is sealed; the study manager opens "
                     "it with `tesctl study unblind`, and `tesctl report` works on the opened record"
                     % (name, meta.get("participant") or "?"), limit=500)


def _num(text):
    """float, or None for empty / unparseable cells (open-circuit z, truncated rows)."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


MAX_JSON_BYTES = 64 << 20
MAX_TABLE_BYTES = 1 << 30


def checked_file(path, limit):
    """True for a regular file within `limit` bytes, False if there is none; ReportError
    for a device, FIFO, socket or directory in its place, or one too large (read before
    its type is known, /dev/zero never ends and a FIFO blocks)."""
    import stat
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise ReportError("%s: not a regular file (a device, FIFO, socket or directory)" % path)
    if st.st_size > limit:
        raise ReportError("%s: %d bytes, more than a session record holds (%d)" % (path, st.st_size, limit))
    return True


def load_session(session_dir):
    path = os.path.join(str(session_dir), "session.json")
    if not os.path.isdir(str(session_dir)) or not checked_file(path, MAX_JSON_BYTES):
        raise ReportError("%s is not a session directory (no session.json)" % session_dir)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except RecursionError:
        raise ReportError("%s: not a session record (nested too deeply)" % path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError("%s: not valid JSON (%s)" % (path, str(e).splitlines()[0])) from None
    if not isinstance(meta, dict):
        raise ReportError("%s: not a session record (expected a JSON object)" % path)
    return meta


def load_telemetry(session_dir):
    """Rows as dicts with floats (None where empty); rows without a valid t_s are dropped."""
    path = os.path.join(str(session_dir), "telemetry.csv")
    rows = []
    if not checked_file(path, MAX_TABLE_BYTES):
        return rows
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            for rec in csv.DictReader(f):
                t = _num(rec.get("t_s"))
                if t is None:
                    continue
                row = {k: _num(rec.get(k)) for k in NUM_COLUMNS}
                for k in rec:     # a multi session's per-electrode columns (NAME_meas_uA, ...)
                    if k is not None and k not in row and k != "state":
                        row[k] = _num(rec.get(k))
                row["t_s"] = t
                row["state"] = (rec.get("state") or "").strip()
                rows.append(row)
    except (OSError, csv.Error):
        pass                      # a cut-off or broken file: the rows before it
    return rows


def load_events(session_dir):
    """[(onset, duration, trial_type)] sorted by onset; the recorder writes state rows
    when the state ends, so the file is not in time order."""
    path = os.path.join(str(session_dir), "events.tsv")
    out = []
    if not checked_file(path, MAX_TABLE_BYTES):
        return out
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\r\n").split("\t")
                onset = _num(parts[0])
                if onset is None or len(parts) < 3:
                    continue      # header or a cut-off last line
                out.append((onset, _num(parts[1]) or 0.0, parts[2].strip()))
    except OSError:
        pass
    out.sort(key=lambda e: e[0])
    return out


def _trapz_abs(ts, ys):
    """Integral of |y| dt (trapezoid). Rows with a missing value are skipped (bridged)."""
    total = 0.0
    prev = None
    for t, y in zip(ts, ys):
        if y is None:
            continue
        if prev is not None and t > prev[0]:
            total += (t - prev[0]) * (abs(y) + abs(prev[1])) / 2.0
        prev = (t, y)
    return total


def _stats(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def _faults(events):
    """fault:<name> events; the bare 'fault' state row only when no named fault exists."""
    named = [(t, e) for t, _, e in events if e.startswith("fault:")]
    return named or [(t, e) for t, _, e in events if e == "fault"]


def _group_markers(events, span):
    """[(onset, label)] with events closer than 1% of the span merged into one label,
    so a fault, its state change and the end do not print on top of each other."""
    out = []
    for onset, _, label in events:
        if out and onset - out[-1][0] <= span * 0.01:
            if label != "fault" or not out[-1][1].startswith("fault:"):
                out[-1] = (out[-1][0], out[-1][1] + ", " + label)
        else:
            out.append((onset, label))
    return out


def _mean(values):
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def waveform_figures(rows, proto):
    """The operator's figures per waveform (docs/cli.md "Summary"), from the plateau rows:
    kind, frequency; level (tDCS: mean of the 20 ms means); the device's whole-period
    RMS (mean), peak (largest), set RMS, and the lock-in phase (mean, sine only)."""
    from tesctl.display import waveform_info
    kind, freq, offset = waveform_info(proto)
    plateau = [r for r in rows if r["state"] == "plateau"] or [r for r in rows if r["state"] in STIM_STATES]
    peaks = [r["meas_peak_uA"] for r in plateau if r["meas_peak_uA"] is not None]
    return {"kind": kind, "frequency_hz": freq, "offset": offset,
            "level_uA": _mean(r["meas_uA"] for r in plateau),
            "set_level_uA": _mean(r["set_uA"] for r in plateau),
            "rms_uA": _mean(r["meas_rms_uA"] for r in plateau),
            "set_rms_uA": _mean(r["set_rms_uA"] for r in plateau),
            "peak_uA": max(peaks) if peaks else None,
            "v_rms_mV": _mean(r["v_rms_mV"] for r in plateau),
            "z_phase_deg": _mean(r["z_phase_deg"] for r in plateau)}


def stimulation_text(w):
    """One line, per waveform: what the live view shows, as plateau figures."""
    from tesctl.display import LABELS
    if w["kind"] == "dc":
        return "tDCS level %s uA (set %s uA), plateau mean" % (_fmt(w["level_uA"], "%.0f"),
                                                               _fmt(w["set_level_uA"], "%.0f"))
    if w["rms_uA"] is None:
        return "%s: no whole-period figures in telemetry.csv (recorded without them)" % LABELS.get(w["kind"])
    freq = "" if w["frequency_hz"] is None else " %g Hz" % w["frequency_hz"]
    text = "%s%s peak %s uA RMS %.0f uA (set RMS %s uA)" % (
        LABELS.get(w["kind"], w["kind"]), freq if w["kind"] != "noise" else "", _fmt(w["peak_uA"], "%.0f"),
        w["rms_uA"], _fmt(w["set_rms_uA"], "%.0f"))
    if w["offset"]:
        text += " mean %s uA" % _fmt(w["level_uA"], "%.0f")
    return text + ", plateau (device's whole-period figures)"


def _charge_check(ts, rows, wave, names):
    """(uC, how) or (None, None): the host's own estimate of the device's charge figure from
    telemetry. A multi session's device figure is the largest electrode's (tes.multicontrol
    charge_uC), so its check is the largest electrode's integral, from NAME_ columns: the main
    columns carry the total, which cancels between anti-phase sites."""
    prefix = [n + "_" for n in names] or [""]
    if wave["kind"] == "dc":
        key, scale, how = "meas_uA", 1.0, "integral of |meas_uA| (20 ms means) over telemetry"
    elif wave["kind"] == "sine" and not wave["offset"] and any(r.get(prefix[0] + "meas_rms_uA") is not None
                                                               for r in rows):
        key, scale = "meas_rms_uA", SINE_MEAN_ABS
        how = "integral of meas_rms_uA x 2*sqrt(2)/pi (a sine's mean |I|) over telemetry"
    else:
        return None, None                  # means cancel for AC; RMS is not mean |I| for noise
    best = max(_trapz_abs(ts, [r.get(p + key) for r in rows]) for p in prefix) * scale
    if names:
        how += ", the largest electrode's (as the device counts)"
    return best, how


def summarize(session_dir) -> dict:
    meta = load_session(session_dir)
    if meta.get("blinded") is True:
        return {"dir": str(session_dir), "blinded": True, "text": blinded_text(meta),
                "outcome": meta.get("outcome"), "reason": meta.get("reason"),
                "complete": bool(meta.get("complete", False))}
    rows = load_telemetry(session_dir)
    events = load_events(session_dir)
    proto = meta.get("protocol") if isinstance(meta.get("protocol"), dict) else {}
    ts = [r["t_s"] for r in rows]
    meas = [r["meas_uA"] for r in rows]
    plateau_z = [r["z_ohm"] for r in rows if r["state"] == "plateau"]
    volts = [abs(r["v_mV"]) for r in rows if r["v_mV"] is not None]
    currents = [abs(v) for v in meas if v is not None]
    wave = waveform_figures(rows, proto)
    dev_peaks = [r["meas_peak_uA"] for r in rows if r["meas_peak_uA"] is not None]
    plateau_ph = [r["z_phase_deg"] for r in rows if r["state"] == "plateau" and r["z_phase_deg"] is not None]
    cross, cross_how = _charge_check(ts, rows, wave, session_electrodes(meta)[0])
    return {
        "dir": str(session_dir),
        "name": proto.get("name") or meta.get("name") or "(unnamed protocol)",
        "protocol_sha256": meta.get("protocol_sha256") or "",
        "outcome": meta.get("outcome"),
        "reason": meta.get("reason"),
        "complete": bool(meta.get("complete", False)),
        "reconciled_at": meta.get("reconciled_at") if meta.get("reconciled_from_journal") else None,
        "stim_duration_source": meta.get("stim_duration_source") or "device",
        "started_at": meta.get("started_at"),
        "ended_at": meta.get("ended_at"),
        "subject": meta.get("subject"),
        "board": meta.get("board"),
        "firmware_version": meta.get("firmware_version"),
        "stim_duration_s": _num(meta.get("stim_duration_s")),
        "delivered_charge_uC": _num(meta.get("delivered_charge_uC")),
        # Phase-blind like the device's own count; telemetry carries 20 ms means, so for
        # AC waveforms (tACS, tRNS) this is far below the device's figure: DC check only.
        "telemetry_charge_uC": _trapz_abs(ts, meas),
        "charge_check_uC": cross,
        "charge_check_how": cross_how,
        "waveform": wave,
        "telemetry_span_s": (ts[-1] - ts[0]) if ts else 0.0,
        # The device's per-window peak of |measured| over every sample when recorded; else the
        # largest 20 ms mean (which for AC is not a peak: said so in the text).
        "peak_meas_uA": max(dev_peaks) if dev_peaks else (max(currents) if currents else None),
        "peak_source": "device" if dev_peaks else ("telemetry-means" if currents else None),
        "plateau_z_phase_deg": _stats(plateau_ph),
        "plateau_z_ohm": _stats(plateau_z),
        "v_max_mV": max(volts) if volts else None,
        "telemetry_rows": len(rows),
        "telemetry_rows_recorded": meta.get("telemetry_rows"),
        "lost_frames": meta.get("lost_frames"),
        "faults": _faults(events),
        "events": len(events),
        "fault_electrode": meta.get("fault_electrode"),
        "electrodes": electrode_figures(meta, rows, wave["kind"]),
    }


def session_electrodes(meta):
    """(names in montage order, return) of a multi session's record, or ([], None): the
    telemetry.csv has per-electrode columns for these (session.json `montage`)."""
    m = meta.get("montage") if isinstance(meta.get("montage"), dict) else None
    if not m or not isinstance(m.get("electrodes"), list) or len(m["electrodes"]) < 3:
        return [], None
    names = [e.get("name") for e in m["electrodes"] if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return names, m.get("return")


def electrode_figures(meta, rows, kind):
    """Per electrode of a multi session, its plateau figures: (name, level or RMS uA, mean
    |Z| ohm or None, is the return); [] for a two-electrode session."""
    names, ret = session_electrodes(meta)
    plateau = [r for r in rows if r["state"] == "plateau"] or [r for r in rows if r["state"] in STIM_STATES]
    key = "meas_uA" if kind == "dc" else "meas_rms_uA"
    return [(n, _mean(r.get("%s_%s" % (n, key)) for r in plateau), _mean(r.get("%s_z_ohm" % n) for r in plateau),
             n == ret) for n in names]


def outcome_text(outcome, reason):
    """'completed', 'fault (host-lost)': the outcome once, the reason where it adds something."""
    outcome = outcome or "none"
    return outcome if not reason or reason == outcome else "%s (%s)" % (outcome, reason)


# Where stim_duration_s came from, when not from the device (a board that reset loses it).
STIM_SOURCE_NOTE = {"telemetry": " (host telemetry: the device lost its count in a reset)",
                    "telemetry-lower-bound": " or more (host telemetry, which stopped before the device did)"}


def _fmt(v, spec="%.1f", none="n/a"):
    return none if v is None else spec % v


def summary_text(s) -> str:
    if s.get("blinded"):
        return s["text"]
    lines = []
    if not s["complete"]:
        lines.append("INCOMPLETE (host stopped mid-session): figures cover what was recorded")
    lines.append("protocol   %s  [sha256 %s]" % (s["name"], (s["protocol_sha256"] or "?")[:12]))
    where = s.get("fault_electrode")
    lines.append("outcome    " + outcome_text(s["outcome"], s["reason"])
                 + (" at electrode %s" % where if where and s["outcome"] == "fault" else ""))
    if s["reconciled_at"]:
        lines.append("record     completed from the device journal at %s" % s["reconciled_at"])
    lines.append("time       %s -> %s" % (s["started_at"] or "?", s["ended_at"] or "?"))
    extra = [k + " " + str(s[k]) for k in ("board", "firmware_version", "subject") if s.get(k)]
    if extra:
        lines.append("device     " + ", ".join(extra))
    note = STIM_SOURCE_NOTE.get(s["stim_duration_source"], "")
    lines.append("stim time  %s s%s" % (_fmt(s["stim_duration_s"]), note))
    q = s["delivered_charge_uC"]
    check = s.get("charge_check_uC")
    lines.append("charge     %s mC delivered (the device's figure: |I| on every sample); host check: %s"
                 % (_fmt(q / 1000.0 if q is not None else None, "%.3f"),
                    "%.3f mC, %s" % (check / 1000.0, s["charge_check_how"]) if check is not None
                    else "none (telemetry's 20 ms means cancel for AC)"))
    if s.get("waveform"):
        lines.append("stimulus   " + stimulation_text(s["waveform"]))
    src = {"device": " (device, largest per-window peak over every sample)",
           "telemetry-means": " (largest 20 ms mean: no per-sample peak recorded)"}.get(s.get("peak_source"), "")
    lines.append("current    peak |meas| %s uA%s" % (_fmt(s["peak_meas_uA"], "%.0f"), src))
    z = s["plateau_z_ohm"]
    ph = s.get("plateau_z_phase_deg")
    if s.get("electrodes"):
        lines.append("impedance  per electrode, below (each driven electrode's path: its contact and its share "
                     "of the return's)")
    else:
        lines.append("impedance  plateau " + ("|Z| mean %.0f, min %.0f, max %.0f ohm (%d readings)"
                                              % (z["mean"], z["min"], z["max"], z["n"]) if z else "n/a")
                     + (", phase mean %.1f deg (V relative to I)" % ph["mean"] if ph else ""))
    for name, level, z, ret in s.get("electrodes") or ():
        lines.append("%-10s %s %s uA, %s" % (name, "level" if (s.get("waveform") or {}).get("kind") == "dc" else "RMS",
                                            _fmt(level, "%.0f"), "the return (ground)" if ret else
                                            "|Z| mean %s ohm" % _fmt(z, "%.0f")) + " (plateau)")
    lines.append("voltage    max |v| %s V" % _fmt(None if s["v_max_mV"] is None else s["v_max_mV"] / 1000.0, "%.2f"))
    lines.append("telemetry  %d rows over %.1f s, %s lost frames"
                 % (s["telemetry_rows"], s["telemetry_span_s"], _fmt(s["lost_frames"], "%d", "?")))
    if s["faults"]:
        lines.append("faults     " + "; ".join("%s at %.2f s" % (e, t) for t, e in s["faults"]))
    else:
        lines.append("faults     none")
    # Names, subjects and reasons come from files: printed with control characters escaped.
    from tesctl.errors import safe_text
    return "\n".join(safe_text(ln, limit=500) for ln in lines)


# ---- the commanded waveform -------------------------------------------------------------

def _engine_envelope(proto, width):
    """(t, lo, hi) from the engine's own samples, min/max per bucket, streamed."""
    eng = Engine(proto)
    fs = proto["sample_rate_hz"]
    step = max(1, eng.total // width)
    buf = array("i", [0] * step)
    t, lo, hi = [], [], []
    k = 0
    while True:
        n = eng.fill(buf, step)
        if not n:
            break
        part = buf[:n] if n < step else buf
        t.append(k / fs)
        lo.append(min(part))
        hi.append(max(part))
        k += n
    return t, lo, hi


def _phase_envelope(proto):
    """(t, lo, hi) bounds per phase, without synthesis: offset + amplitude * envelope."""
    fs = proto["sample_rate_hz"]
    t, lo, hi = [], [], []
    k = 0
    for state, n, i in build_phases(proto):
        seg = proto["segments"][i]
        amp, off = seg.get("amplitude_uA", 0), seg.get("offset_uA", 0)
        wf = seg.get("waveform", "dc")
        a_lo = amp if wf == "dc" else (0 if wf == "pulse" and not seg.get("biphasic") else -amp)
        for j in range(9):
            x = j / 8
            if state in (PAUSE, SHAM_OFF):
                e = 0.0
            elif state in (RAMP_UP, RAMP_DOWN):
                e = x if seg.get("ramp_shape") != "cosine" else 0.5 - 0.5 * math.cos(math.pi * x)
                e = 1 - e if state == RAMP_DOWN else e
            else:
                e = 1.0
            t.append((k + x * n) / fs)
            lo.append(e * (off + min(a_lo, amp)))
            hi.append(e * (off + max(a_lo, amp)))
        k += n
    return t, lo, hi


def _engine_envelope_multi(proto, width):
    """[(name, t, lo, hi)] per electrode in montage order, min/max per bucket of the
    engine's own samples (Engine.fill_all), streamed."""
    eng = Engine(proto)
    fs = proto["sample_rate_hz"]
    step = max(1, eng.total // width)
    bufs = [array("i", [0] * step) for _ in range(eng.channels + 1)]
    t, lo, hi = [], [[] for _ in bufs], [[] for _ in bufs]
    k = 0
    while True:
        n = eng.fill_all(bufs, step)
        if not n:
            break
        t.append(k / fs)
        for c, buf in enumerate(bufs):
            part = buf[:n] if n < step else buf
            lo[c].append(min(part))
            hi[c].append(max(part))
        k += n
    m = proto["montage"]
    driven = iter(range(eng.channels))
    return [(e["name"], t, lo[c], hi[c]) for e in m["electrodes"]
            for c in [eng.channels if e["name"] == m["return"] else next(driven)]]


def commanded_multi(proto):
    """_engine_envelope_multi of a multi-form protocol within the engine budget, else None."""
    try:
        total = sum(n for _, n, _ in build_phases(proto)) * len(proto["montage"]["electrodes"])
        noisy = any(c.get("waveform") == "noise" for s in proto["segments"] for c in s.get("currents", ()))
        if total * (NOISE_COST if noisy else 1) > ENGINE_BUDGET:
            return None
        return _engine_envelope_multi(proto, ENVELOPE_WIDTH)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None


def commanded(proto):
    """(t, lo, hi, exact) for the protocol's whole plan; None if it cannot be built."""
    try:
        phases = build_phases(proto)
        cost = sum(n * (NOISE_COST if proto["segments"][i].get("waveform") == "noise" else 1)
                   for _, n, i in phases)
        if cost <= ENGINE_BUDGET:
            return _engine_envelope(proto, ENVELOPE_WIDTH) + (True,)
        return _phase_envelope(proto) + (False,)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None


# ---- the figure -------------------------------------------------------------------------

def _stim_start(events, rows):
    """Session time at which the engine's sample 0 went out: the first ramp-up."""
    for t, _, e in events:
        if e == "ramp-up":
            return t
    for r in rows:
        if r["state"] in STIM_STATES:
            return r["t_s"]
    return 0.0


def _series(rows, key):
    return [r["t_s"] for r in rows], [math.nan if r[key] is None else r[key] for r in rows]


def _marker_color(label):
    if "fault" in label:
        return "tab:red"
    if "end:" in label or "stop" in label:
        return "black"
    return "0.4"


MAX_RAW_READ = 10_000_000     # raw samples read for the zoom at most (a line each)


def read_raw(session_dir, start, count):
    """count samples of raw_set_uA.txt from index start (the device's sample index since
    START), or None when there is no such file or it does not reach that far."""
    path = os.path.join(str(session_dir), "raw_set_uA.txt")
    if not checked_file(path, MAX_TABLE_BYTES):
        return None
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if i >= min(start + count, MAX_RAW_READ):
                    break
                if i >= start:
                    v = _num(line)
                    if v is None:
                        return None
                    out.append(v)
    except OSError:
        return None
    return out if len(out) == count else None


def zoom_window(s, proto, events, rows):
    """(session time, seconds, what) of the zoom: ZOOM_CYCLES cycles of a sine or pulse
    train (0.2 s of anything else) starting 1 s into the plateau (or its middle if shorter)."""
    w = s.get("waveform") or {}
    f = w.get("frequency_hz")
    span = ZOOM_CYCLES / f if f else 0.2
    what = "%d cycles at %g Hz" % (ZOOM_CYCLES, f) if f else "%.1f s" % span
    plat = [t for t, _, e in events if e == "plateau"]
    start = plat[0] if plat else next((r["t_s"] for r in rows if r["state"] == "plateau"), None)
    if start is None:
        return None
    ends = [r["t_s"] for r in rows if r["state"] == "plateau"]
    end = ends[-1] if ends else start
    at = start + 1.0 if end - start >= 1.0 + span else start + max(0.0, (end - start - span) / 2)
    return at, span, what


def _zoom(ax, session_dir, meta, proto, rows, events, s):
    from tesctl.plots import zoom_panel

    def say(text):
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", color="0.4")
        ax.set_ylabel("zoom")

    if not meta.get("raw"):
        return say("zoom of commanded vs measured current: no raw samples were recorded (run with --raw)")
    win = zoom_window(s, proto or {}, events, rows)
    fs = (proto or {}).get("sample_rate_hz")
    if win is None or not isinstance(fs, int) or fs <= 0:
        return say("zoom: no plateau in the record")
    at, span, what = win
    t0 = _stim_start(events, rows)
    first = int(round((at - t0) * fs))
    samples = read_raw(session_dir, first, max(2, int(span * fs)))
    if samples is None:
        return say("zoom: the raw samples do not cover the plateau at %.1f s" % at)
    t_at = t0 + first / fs
    tel = [(r["t_s"], r["meas_uA"]) for r in rows
           if t_at <= r["t_s"] - 0.01 <= t_at + span and r["meas_uA"] is not None]
    near = [r for r in rows if t_at <= r["t_s"] <= t_at + span + 0.2]
    peak = max((r["meas_peak_uA"] for r in near if r["meas_peak_uA"] is not None), default=None)
    rms = _mean(r["meas_rms_uA"] for r in near)
    zoom_panel(ax, t_at, fs, samples, tel, peak, rms, what)


ELECTRODE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                    "tab:olive", "tab:cyan")


def _commanded_multi_panel(ax, plan, t0):
    """Every electrode's commanded envelope (engine samples, min/max), overlaid."""
    if not plan:
        ax.text(0.5, 0.5, "commanded: too long to synthesize here (each electrode's set current is below)",
                transform=ax.transAxes, ha="center", color="0.4")
        return
    for k, (name, t, lo, hi) in enumerate(plan):
        ax.fill_between([x + t0 for x in t], lo, hi, step="post", color=ELECTRODE_COLORS[k % 9], alpha=0.5,
                        lw=0.6, label=name)
    ax.legend(loc="upper right", fontsize=8, ncol=min(len(plan), 5))


def electrode_lockouts(proto, names, ret):
    """{driven electrode: its impedance lockout (ohm)} as the device computes it (its
    reading holds its share of the return's contact: tes.multicontrol.lockouts), not the
    protocol's figure; {} when the record's protocol cannot say."""
    from tes import validate as V
    from tes.multicontrol import lockouts
    try:
        z = dict(zip(V.driven_names(proto), lockouts(proto)))
        return {n: z[n] for n in names if n != ret}
    except (KeyError, TypeError, ValueError, IndexError):
        return {}


def _electrode_panels(ax_rows, ax_v, names, ret, rows, s, proto):
    """One row per electrode: set and measured current (the 20 ms means; for AC the
    device's whole-period RMS too) and, on the right axis, its |Z| (not the return's: it
    is ground); the electrodes' voltages to the return on ax_v."""
    ac = (s.get("waveform") or {}).get("kind") != "dc"
    zmax = ((proto or {}).get("safety") or {}).get("impedance_max_ohm")
    locks = electrode_lockouts(proto, names, ret) if zmax and proto else {}
    for k, (ax, name) in enumerate(zip(ax_rows, names)):
        color = ELECTRODE_COLORS[k % 9]
        if rows:
            ax.plot(*_series_opt(rows, name + "_set_uA"), color="0.5", lw=1, label="set")
            ax.plot(*_series_opt(rows, name + "_meas_uA"), color=color, lw=1, label="measured (20 ms means)")
            if ac:
                ax.plot(*_series_opt(rows, name + "_meas_rms_uA"), color="black", lw=1, label="measured RMS")
            ax_v.plot(*_series_opt(rows, name + ("_v_rms_mV" if ac else "_v_mV")), color=color, lw=1,
                      label=name + (" (RMS)" if ac else ""))
        ax.set_ylabel("%s%s (uA)" % (name, " return" if name == ret else ""))
        if name != ret and rows:
            az = ax.twinx()
            az.plot(*_series_opt(rows, name + "_z_ohm"), color="tab:green", lw=0.8, ls="--", label="|Z|")
            if locks.get(name):
                az.axhline(locks[name], color="tab:red", ls=":", lw=0.8, label="lockout")
            az.set_ylabel("|Z| (ohm)", color="tab:green", fontsize=8)
        if ax.lines:
            ax.legend(loc="upper left", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no telemetry", transform=ax.transAxes, ha="center", color="0.4")
    if ax_v.lines:
        ax_v.legend(loc="upper right", fontsize=7, ncol=min(len(names), 5))


def _series_opt(rows, key):
    """_series for a column a row may lack (a per-electrode column)."""
    return [r["t_s"] for r in rows], [math.nan if r.get(key) is None else r[key] for r in rows]


def write_report(session_dir) -> str:
    meta = load_session(session_dir)
    if meta.get("blinded") is True:
        # A blinded record has nothing in clear to draw: `tesctl report` says so in one line
        # and ends with exit 0 (no report.png, which would be empty in every arm alike).
        import click
        click.echo(blinded_text(meta))
        raise click.exceptions.Exit(0)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(session_dir)
    meta = load_session(session_dir)
    rows = load_telemetry(session_dir)
    events = load_events(session_dir)
    proto = meta.get("protocol") if isinstance(meta.get("protocol"), dict) else None

    names, ret = session_electrodes(meta)
    if names:
        # A multi session: the commanded currents, the total (the return's), one row per
        # electrode (its current and |Z|), the electrodes' voltages, the zoom.
        n = len(names)
        fig, axes_all = plt.subplots(4 + n, 1, figsize=(11, 9 + 1.6 * n),
                                     gridspec_kw={"height_ratios": [1.1, 1.1] + [1] * n + [1, 1.2]})
        ax_cmd, ax_i = axes_all[0], axes_all[1]
        ax_rows, ax_v, ax_zoom = axes_all[2:2 + n], axes_all[2 + n], axes_all[3 + n]
        ax_z = None
        axes = list(axes_all[:3 + n])
    else:
        fig, axes_all = plt.subplots(5, 1, figsize=(11, 12), gridspec_kw={"height_ratios": [1.1, 1.3, 1, 1, 1.2]})
        ax_cmd, ax_i, ax_z, ax_v, ax_zoom = axes_all
        axes = list(axes_all[:4])
    for ax in axes[1:]:
        ax.sharex(ax_cmd)

    plan = commanded(proto) if proto and not names else None
    if names:
        _commanded_multi_panel(ax_cmd, commanded_multi(proto) if proto else None, _stim_start(events, rows))
    elif plan:
        t0 = _stim_start(events, rows)
        t, lo, hi, exact = plan
        t = [x + t0 for x in t]
        ax_cmd.fill_between(t, lo, hi, step="post" if exact else None, color="tab:blue", lw=0.6,
                            label="engine samples (min/max)" if exact else "phase bounds")
        end = rows[-1]["t_s"] if rows else t0
        if s["outcome"] != "completed" and t and end < t[-1]:
            # The plan ran on past the recorded end: fade what was never delivered, and keep
            # the x axis on what happened (an early fault would be a sliver of a long plan).
            ax_cmd.axvspan(end, t[-1], color="white", alpha=0.7, zorder=3,
                           label="not delivered (plan ends at %.0f s)" % t[-1])
            ax_cmd.set_xlim(min(0.0, t[0]), end + max(1.0, 0.1 * end))
        ax_cmd.legend(loc="upper right", fontsize=8)
    else:
        ax_cmd.text(0.5, 0.5, "no protocol in session.json", transform=ax_cmd.transAxes, ha="center")
    ax_cmd.set_ylabel("commanded (uA)")
    if names:
        _electrode_panels(ax_rows, ax_v, names, ret, rows, s, proto)
        if rows and s["outcome"] != "completed":      # an early end: the x axis on what happened
            end = rows[-1]["t_s"]
            ax_cmd.set_xlim(min(0.0, rows[0]["t_s"]), end + max(1.0, 0.1 * end))

    if rows:
        # A multi session's main columns carry the driven electrodes' sum: drawn negated, as
        # the return's current (the total), so its means and its RMS and peak share a sign.
        sign = -1 if names else 1
        for key, color, label, alpha in (("set_uA", "tab:blue", "set", 1), ("meas_uA", "tab:orange",
                                                                              "measured (20 ms means)", 0.85)):
            t, y = _series(rows, key)
            ax_i.plot(t, [sign * v for v in y], color=color, lw=1, label=label, alpha=alpha)
        if any(r["meas_rms_uA"] is not None for r in rows):
            ax_i.plot(*_series(rows, "meas_peak_uA"), color="tab:red", lw=1, label="measured peak (device)")
            ax_i.plot(*_series(rows, "meas_rms_uA"), color="black", lw=1, label="measured RMS (device)")
        ax_i.legend(loc="upper right", fontsize=8)
        if ax_z is not None:
            ax_z.plot(*_series(rows, "z_ohm"), color="tab:green", lw=1)
            ax_v.plot(*_series(rows, "v_mV"), color="tab:purple", lw=1)
        zmax = ((proto or {}).get("safety") or {}).get("impedance_max_ohm")
        if zmax and ax_z is not None:
            ax_z.axhline(zmax, color="tab:red", ls="--", lw=0.8, label="limit %d ohm" % zmax)
            ax_z.legend(loc="upper right", fontsize=8)
    for ax, text in ((ax_i, "no telemetry"), (ax_z, "no impedance readings"), (ax_v, "no telemetry")):
        if ax is not None and not ax.lines:
            ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", color="0.4")
    ax_i.set_ylabel("total = %s (uA)" % ret if names else "current (uA)")
    if ax_z is not None:
        ax_z.set_ylabel("impedance (ohm)")
    ax_v.set_ylabel("voltage (mV)")
    ax_v.set_xlabel("session time (s)")

    span = max([r["t_s"] for r in rows[-1:]] + [e[0] for e in events[-1:]] + [1.0])
    x0, x1 = ax_cmd.get_xlim()
    for k, (onset, label) in enumerate(_group_markers(events, span)):
        color = _marker_color(label)
        for ax in axes:
            ax.axvline(onset, color=color, lw=0.7, ls=":", zorder=0)
        # Horizontal labels on three staggered rows above the top panel: neighbours rarely collide.
        label = label if len(label) <= 40 else label[:39] + "..."
        right = (onset - x0) > 0.75 * (x1 - x0)     # near the right edge: text to the left of the line
        ax_cmd.annotate(label, (onset, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-2 if right else 2, 3 + 10 * (k % 3)), textcoords="offset points", fontsize=7,
                        va="bottom", ha="right" if right else "left", color=color, annotation_clip=False)
    for ax in axes_all:
        ax.grid(alpha=0.3)
    _zoom(ax_zoom, session_dir, meta, proto, rows, events, s)

    flag = "" if s["complete"] else "  [INCOMPLETE]"
    from tesctl.errors import safe_text
    where = " at electrode %s" % s["fault_electrode"] if s.get("fault_electrode") and s["outcome"] == "fault" else ""
    title = "%s\noutcome: %s%s%s" % (safe_text(s["name"], limit=120), outcome_text(s["outcome"], s["reason"]),
                                     safe_text(where, limit=40), flag)
    fig.suptitle(title, fontsize=11, color="black" if s["outcome"] == "completed" else "tab:red")
    fig.tight_layout()
    out = os.path.join(str(session_dir), "report.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
