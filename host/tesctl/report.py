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
                row = {k: _num(rec.get(k)) for k in ("set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC")}
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
        "telemetry_span_s": (ts[-1] - ts[0]) if ts else 0.0,
        "peak_meas_uA": max(currents) if currents else None,
        "plateau_z_ohm": _stats(plateau_z),
        "v_max_mV": max(volts) if volts else None,
        "telemetry_rows": len(rows),
        "telemetry_rows_recorded": meta.get("telemetry_rows"),
        "lost_frames": meta.get("lost_frames"),
        "faults": _faults(events),
        "events": len(events),
    }


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
    lines.append("outcome    " + outcome_text(s["outcome"], s["reason"]))
    if s["reconciled_at"]:
        lines.append("record     completed from the device journal at %s" % s["reconciled_at"])
    lines.append("time       %s -> %s" % (s["started_at"] or "?", s["ended_at"] or "?"))
    extra = [k + " " + str(s[k]) for k in ("board", "firmware_version", "subject") if s.get(k)]
    if extra:
        lines.append("device     " + ", ".join(extra))
    note = STIM_SOURCE_NOTE.get(s["stim_duration_source"], "")
    lines.append("stim time  %s s%s" % (_fmt(s["stim_duration_s"]), note))
    q = s["delivered_charge_uC"]
    lines.append("charge     %s mC delivered (device); %.3f mC integral of |meas_uA| over telemetry"
                 % (_fmt(q / 1000.0 if q is not None else None, "%.3f"), s["telemetry_charge_uC"] / 1000.0))
    lines.append("current    peak |meas| %s uA" % _fmt(s["peak_meas_uA"], "%.0f"))
    z = s["plateau_z_ohm"]
    lines.append("impedance  plateau " + ("mean %.0f, min %.0f, max %.0f ohm (%d readings)"
                                          % (z["mean"], z["min"], z["max"], z["n"]) if z else "n/a"))
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

    fig, axes = plt.subplots(4, 1, figsize=(11, 9.5), sharex=True,
                             gridspec_kw={"height_ratios": [1.1, 1.3, 1, 1]})
    ax_cmd, ax_i, ax_z, ax_v = axes

    plan = commanded(proto) if proto else None
    if plan:
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

    if rows:
        ax_i.plot(*_series(rows, "set_uA"), color="tab:blue", lw=1, label="set")
        ax_i.plot(*_series(rows, "meas_uA"), color="tab:orange", lw=1, label="measured", alpha=0.85)
        ax_i.legend(loc="upper right", fontsize=8)
        ax_z.plot(*_series(rows, "z_ohm"), color="tab:green", lw=1)
        ax_v.plot(*_series(rows, "v_mV"), color="tab:purple", lw=1)
        zmax = ((proto or {}).get("safety") or {}).get("impedance_max_ohm")
        if zmax:
            ax_z.axhline(zmax, color="tab:red", ls="--", lw=0.8, label="limit %d ohm" % zmax)
            ax_z.legend(loc="upper right", fontsize=8)
    for ax, text in ((ax_i, "no telemetry"), (ax_z, "no impedance readings"), (ax_v, "no telemetry")):
        if not ax.lines:
            ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", color="0.4")
    ax_i.set_ylabel("current (uA)")
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
    for ax in axes:
        ax.grid(alpha=0.3)

    flag = "" if s["complete"] else "  [INCOMPLETE]"
    from tesctl.errors import safe_text
    title = "%s\noutcome: %s%s" % (safe_text(s["name"], limit=120), outcome_text(s["outcome"], s["reason"]), flag)
    fig.suptitle(title, fontsize=11, color="black" if s["outcome"] == "completed" else "tab:red")
    fig.tight_layout()
    out = os.path.join(str(session_dir), "report.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
