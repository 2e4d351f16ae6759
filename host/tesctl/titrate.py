"""`tesctl titrate`: a sensory-threshold staircase, then a protocol at a share of it.

Each bout is a real session of the base protocol's waveform (noise for nGVS) at the bout's
level, run through the same device path as `tesctl run` (tesctl.runner.Run: hello, firmware
check, upload, device validation, impedance check, start, telemetry, record), for
`bout_s` seconds at full level with short ramps. After each bout the participant answers
whether they felt anything (y/n, from the keyboard or any stdin). A simple 1-up/1-down
staircase: the level rises by one step after a "no" and falls by one step after a "yes";
a reversal is a change of direction; after `reversals` reversals the threshold is the mean
of the levels at the reversals. The protocol it writes is the base at
`percent` % of that threshold (its noise SD scaled by the same factor when the base sets
one), with the whole staircase in its [provenance].
"""
import json
import os

from tesctl import protowrite as W
from tesctl.errors import InputError, SessionEnded, safe_text

BOUT_RAMP_S = 1.0


def bout_doc(base_doc, level_uA, bout_s, n, provenance):
    """The base protocol cut to one bout at level_uA: its first stimulation block's
    waveform and settings, bout_s at full level, 1 s ramps, no sham."""
    stim = dict(base_doc.get("stimulation") or {})
    segs = [s for s in base_doc.get("segments") or [] if isinstance(s, dict) and "pause_s" not in s]
    if segs:
        stim.update(segs[0])          # a segment inherits [stimulation] and overrides it
    scale = level_uA / stim["amplitude_uA"]
    stim["amplitude_uA"] = level_uA
    if "noise_sd_uA" in stim:
        stim["noise_sd_uA"] = max(1, int(round(stim["noise_sd_uA"] * scale)))
    if "offset_uA" in stim:
        stim["offset_uA"] = 0           # a threshold of the waveform alone
    stim.update({"duration_s": bout_s, "ramp_up_s": BOUT_RAMP_S, "ramp_down_s": BOUT_RAMP_S})
    doc = {k: v for k, v in base_doc.items() if k in ("schema", "sample_rate_hz", "montage", "safety")}
    doc["name"] = "Titration bout %d: %d uA" % (n, level_uA)
    doc["stimulation"] = stim
    doc["provenance"] = provenance
    return doc


def scaled_doc(base_doc, amplitude_uA):
    """The base protocol with every stimulation block's amplitude (and noise SD, when set)
    scaled to amplitude_uA for the first block, in proportion for the others."""
    doc = json.loads(json.dumps(base_doc))
    tables = W.stim_tables(doc)
    first = tables[0]
    ref = first.get("amplitude_uA") or doc.get("stimulation", {}).get("amplitude_uA")
    scale = amplitude_uA / ref
    for t in tables:
        if "amplitude_uA" in t:
            t["amplitude_uA"] = max(1, int(round(t["amplitude_uA"] * scale)))
        if "noise_sd_uA" in t:
            t["noise_sd_uA"] = max(1, int(round(t["noise_sd_uA"] * scale)))
    return doc


class Staircase:
    """1-up/1-down: up one step after "no", down after "yes"; ends after `reversals`
    changes of direction; threshold = mean level at the reversals."""

    def __init__(self, start_uA, step_uA, max_uA, reversals):
        self.level = start_uA
        self.step = step_uA
        self.max = max_uA
        self.want = reversals
        self.trials = []            # (level, felt)
        self.reversal_levels = []
        self.direction = 0

    def done(self):
        return len(self.reversal_levels) >= self.want

    def answer(self, felt):
        self.trials.append((self.level, felt))
        direction = -1 if felt else 1
        if self.direction and direction != self.direction:
            self.reversal_levels.append(self.level)
        self.direction = direction
        if self.done():
            return
        nxt = self.level + direction * self.step
        if nxt > self.max:
            raise SessionEnded("no sensation reported up to %d uA (--max-uA): no threshold found, no protocol written"
                               % self.max)
        if nxt < self.step:
            raise SessionEnded("a sensation reported at the lowest level, %d uA: no threshold found (start lower or "
                               "use a smaller --step-uA), no protocol written" % self.level)
        self.level = nxt

    def threshold(self):
        return sum(self.reversal_levels) / len(self.reversal_levels)


def check_options(start_uA, step_uA, max_uA, limits_max):
    if step_uA < 1 or start_uA < step_uA:
        raise InputError("--start-uA %d: must be at least one step (--step-uA %d)" % (start_uA, step_uA))
    if max_uA > limits_max:
        raise InputError("--max-uA %d: above the board's peak current limit %d uA" % (max_uA, limits_max))
    if start_uA > max_uA:
        raise InputError("--start-uA %d: above --max-uA %d" % (start_uA, max_uA))


def run_bout(doc, n, port, board, sessions_dir, fast, subject, log, warn):
    """Validate and run one bout as `tesctl run` would; -> (session dir, outcome, reason)."""
    from tesctl import protofile
    from tesctl.boards import resolve
    from tesctl.runner import Run, reserve_out_dir
    _, limits = resolve(board)
    path = os.path.join(sessions_dir, "bout-%02d.toml" % n)
    text = W.dumps(doc, header=("tesctl titrate: bout %d" % n,))
    loaded = protofile.check_data(text.encode("utf-8"), limits, path)
    if not loaded.ok:
        raise InputError("bout %d is not a valid protocol: %s" % (n, "; ".join(loaded.problems)))
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)
    out_dir, _ = reserve_out_dir(os.path.join(sessions_dir, "bout-%02d" % n), path)
    r = Run(loaded, port, out_dir, board=board, fast=fast, subject=subject, plain=True)
    outcome, reason, _ = r.execute(log=log, warn=warn)
    from tesctl.report import ReportError, write_report
    try:
        write_report(r.record_dir())        # the same session directory as `tesctl run` leaves
    except (ReportError, OSError, ValueError) as e:
        warn("warning: bout %d: no report.png: %s" % (n, safe_text(e)))
    return r.record_dir(), outcome, reason


def titrate(base, out, port, board, sessions_dir, percent, start_uA, step_uA, max_uA, bout_s, reversals, fast,
            subject, ask, log, warn):
    """The whole titration; -> dict summary. ask(n, level) -> True (felt) / False."""
    doc, base_loaded = W.read_base(base, "titrate")
    stims = [s for s in base_loaded.canonical["segments"] if s["kind"] == "stim"]
    if not stims:
        raise InputError("--protocol %s: has no stimulation block" % safe_text(base))
    sc = Staircase(start_uA, step_uA, max_uA, reversals)
    bouts = []
    n = 0
    while not sc.done():
        n += 1
        prov = {"kind": "titration-bout", "created_at": W.now_iso(), "base_protocol": os.path.abspath(str(base)),
                "base_protocol_sha256": base_loaded.sha256(), "step_uA": step_uA, "bout_s": bout_s}
        if subject:
            prov["subject"] = subject
        bdoc = bout_doc(doc, sc.level, bout_s, n, prov)
        log("bout %d: %d uA for %g s" % (n, sc.level, bout_s))
        record, outcome, reason = run_bout(bdoc, n, port, board, sessions_dir, fast, subject, log, warn)
        bouts.append({"bout": n, "level_uA": sc.level, "session": record, "outcome": outcome, "reason": reason})
        if outcome != "completed":
            raise SessionEnded("bout %d ended %s (%s): titration stopped, no protocol written (record in %s)"
                               % (n, outcome, reason, record))
        felt = ask(n, sc.level)
        bouts[-1]["felt"] = felt
        sc.answer(felt)
    threshold = sc.threshold()
    amplitude = int(round(threshold * percent / 100.0))
    if amplitude < 1:
        raise InputError("%g %% of the threshold %.0f uA is below 1 uA: no protocol written" % (percent, threshold))
    new = scaled_doc(doc, amplitude)
    new["name"] = "%s, %d uA (%g %% of a %.0f uA sensory threshold)" % (doc["name"], amplitude, percent, threshold)
    new["provenance"] = {
        "kind": "titration", "created_at": W.now_iso(), "created_by": "tesctl titrate",
        "base_protocol": os.path.abspath(str(base)), "base_protocol_sha256": base_loaded.sha256(),
        "method": "1-up/1-down staircase, %d uA steps, %g s bouts, %d reversals, threshold = mean level at the "
                  "reversals; participant's yes/no after each bout" % (step_uA, bout_s, reversals),
        "threshold_uA": int(round(threshold)), "percent_of_threshold": percent, "step_uA": step_uA,
        "bout_s": bout_s, "trials": ["%d uA: %s" % (lvl, "yes" if felt else "no") for lvl, felt in sc.trials],
        "bouts_dir": os.path.abspath(sessions_dir)}
    if subject:
        new["provenance"]["subject"] = subject
    from tesctl.boards import resolve
    _, limits = resolve(board)
    loaded = W.write(out, new, header=("Written by tesctl titrate from %s" % os.path.basename(str(base)),),
                     board_limits=limits)
    summary = {"threshold_uA": threshold, "reversal_levels_uA": sc.reversal_levels, "percent": percent,
               "amplitude_uA": amplitude, "protocol": os.path.abspath(str(out)), "protocol_sha256": loaded.sha256(),
               "trials": [{"level_uA": lvl, "felt": felt} for lvl, felt in sc.trials], "bouts": bouts}
    with open(os.path.join(sessions_dir, "titration.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    return summary
