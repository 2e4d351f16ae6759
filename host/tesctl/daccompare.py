"""`tesctl dac-compare`: what the DAC latched (a `tesctl hil --dac-log` CSV) against what the
engine says it should (a `tesctl preview --csv` of the same protocol).

The preview's currents become codes through the firmware's own calibration code
(hal.calib.conversion and ua_to_code, with the board file's calibration). The log holds
every latch of the session and everything around it (impedance check, idle zero latches,
other sessions), so the session is found first: candidate starts are the latches around
each output-enable event (a session enables the output as it starts), or, in a log with
none, come from a cross-correlation of the channel-A codes' deviations from zero code;
each is scored by code matches on the time grid (a dropped or extra latch shifts indices,
not times). The comparison itself is on that grid: latch k
of the session is due at t0 + k/fs, where t0 is the matched first latch; the first latch
within half a period of a slot fills it (missing: slots no latch filled; extra: the
other latches in the session's span).

A board with two current sources (`current_sources` 2, one MCP4922: channel A drives source
1, channel B source 2) runs multi-electrode protocols, whose preview has one column per
electrode (`t_s,<E>_uA,...`, the driven electrodes first, the return last: it has no DAC
channel). The session is found on channel A as above; channel B is then compared on the
same grid, against zero code when the preview drives one electrode only (a two-electrode
montage or a `t_s,current_uA` preview). A slot counts as within 0/1 code only if every
compared channel is.
"""
import csv
from dataclasses import dataclass, field

import numpy as np

from hal.calib import conversion, ua_to_code


class CompareError(Exception):
    """Bad input; one sentence."""


@dataclass
class Result:
    samples: int = 0              # expected samples (preview rows)
    compared: int = 0             # slots with a latch
    within0: int = 0
    within1: int = 0
    worst_codes: int = 0
    worst_uA: float = 0.0
    worst_at_s: float = 0.0
    first_bad_s: float = None     # first sample more than one code off (None: none)
    missing: int = 0
    extra: int = 0
    fs: int = 0
    t0_s: float = 0.0
    interval_mean_us: float = 0.0
    worst_grid_us: float = 0.0
    enable_off_in_session: int = 0
    notes: list = field(default_factory=list)
    # Per compared DAC channel: dicts with channel ("A"/"B"), electrode (the preview column's
    # name; None for a channel the preview does not drive: zero code expected), within0,
    # within1, worst_codes, worst_uA, worst_at_s, first_bad_s.
    channels: list = field(default_factory=list)

    @property
    def share0(self):
        return self.within0 / self.samples if self.samples else 0.0

    @property
    def share1(self):
        return self.within1 / self.samples if self.samples else 0.0

    @property
    def ok(self):
        return self.samples > 0 and self.missing == 0 and self.share1 >= 0.999


def read_preview(path):
    """-> (fs, [(name, [uA])]): the driven columns. `t_s,current_uA` (a two-electrode
    protocol) gives [("current", uA)]; `t_s,<E1>_uA,...,<R>_uA` (a multi-electrode montage)
    gives every electrode but the last, the return (minus the sum of the others)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise CompareError("cannot read %s: %s" % (path, e.strerror)) from None
    head = rows[0] if rows else []
    cols = head[1:]
    single = head == ["t_s", "current_uA"]
    multi = (not single and len(cols) >= 2 and head[0] == "t_s"
             and all(c.endswith("_uA") and len(c) > 3 for c in cols))
    if not (single or multi):
        if head[:2] == ["t_s", "current_uA"]:
            raise CompareError("%s has %d current columns after current_uA; a preview has one" % (path, len(cols)))
        raise CompareError("%s is not a `tesctl preview --csv` file (header t_s,current_uA or t_s,<E>_uA,...)"
                           % path)
    if len(rows) < 3:
        raise CompareError("%s holds fewer than two samples" % path)
    n = 1 if single else len(cols) - 1
    try:
        t1 = float(rows[2][0]) - float(rows[1][0])
        data = [[int(r[1 + c]) for r in rows[1:]] for c in range(n)]
        if any(len(r) != len(head) for r in rows[1:]):
            raise ValueError
    except (ValueError, IndexError):
        raise CompareError("%s has a malformed row" % path) from None
    if t1 <= 0:
        raise CompareError("%s: time does not increase" % path)
    names = ["current"] if single else [c[:-3] for c in cols[:-1]]
    return int(round(1.0 / t1)), list(zip(names, data))


def read_daclog(path):
    """-> (t_ns, code_a, code_b, enable) arrays of the latch rows, and the enable-change rows
    (t_ns, enable). A row whose enable differs from the row before is an enable change."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise CompareError("cannot read %s: %s" % (path, e.strerror)) from None
    if not rows or rows[0] != ["t_ns", "dac_a", "dac_b", "enable"]:
        raise CompareError("%s is not a `tesctl hil --dac-log` file (header t_ns,dac_a,dac_b,enable)" % path)
    try:
        data = np.array([[int(x) for x in r] for r in rows[1:] if r], dtype=np.int64).reshape(-1, 4)
    except ValueError:
        raise CompareError("%s has a malformed row" % path) from None
    prev = np.concatenate(([data[0, 3] if len(data) else 0], data[:-1, 3])) if len(data) else data[:, 3]
    change = data[:, 3] != prev
    latches = data[~change]
    return latches, data[change][:, [0, 3]]


def expected_codes(board, ua, source=0):
    """-> (codes, conversion) of source `source` (0: channel A): the board's calibration,
    or its [source] entry when the board file lists one per source."""
    cal = board["calibration"]
    conv = conversion(board, cal[source] if isinstance(cal, list) else cal)
    return np.array([ua_to_code(conv, u) for u in ua], dtype=np.int64), conv


def find_offsets(got, want, zero, peaks=32):
    """Candidate indices in `got` where the sequence `want` may start: around the highest
    peaks of the cross-correlation of the deviations from zero code (FFT). The session may
    run past the end of the log (it stopped early), so every start is allowed."""
    n, m = len(got), len(want)
    a = (got - zero).astype(float)
    b = (want - zero).astype(float)
    if not b.any() or not n:
        return [0]
    size = 1 << int(np.ceil(np.log2(n + m)))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[:n]
    cand = set()
    for k in np.argsort(corr)[-peaks:]:
        cand.update(range(max(0, int(k) - 3), min(n - 1, int(k) + 3) + 1))
    return sorted(cand)


def _grid(t, codes, t0, period, want):
    """Latches on the time grid from t0: -> (slot of each latch in the span, first-latch mask)."""
    lo, hi = t0 - period / 2, t0 + (len(want) - 0.5) * period
    sel = np.nonzero((t >= lo) & (t < hi))[0]
    slot = np.rint((t[sel] - t0) / period).astype(np.int64)
    first = np.zeros(len(sel), dtype=bool)
    _, idx = np.unique(slot, return_index=True)
    first[idx] = True
    return sel, slot, first


def find_start(t, a, want, zero, period, enables_on=(), spread=20):
    """Time of the session's first latch. A session enables the output as it starts
    (tes.app begin()), so with enable events in the log the candidates are the latches
    just around each enable; without (a board with no enable pin) they come from the
    correlation peaks and their neighbours (a dropped or extra latch shifts indices). Each
    is tried as the grid's origin and scored by the slots holding a code within one of the
    expected: first over the session's first 0.1 s (a real start agrees from its first
    samples, even in a session that stopped early), then over the whole session."""
    cand = {}                     # candidate index -> distance (latches) from its anchor
    for te in enables_on:
        i = int(np.searchsorted(t, te))
        for c in range(max(0, i - 2), min(len(t), i + spread + 1)):
            cand[c] = min(cand.get(c, spread + 3), abs(c - i))
    if not cand:
        for o in find_offsets(a, want, zero):
            for c in range(max(0, o - spread), min(len(t), o + spread + 1)):
                cand[c] = min(cand.get(c, spread + 3), abs(c - o))
    early = max(1, int(round(0.1e9 / period)))
    best, best_score = 0, None
    for c in sorted(cand):
        sel, slot, first = _grid(t, a, float(t[c]), period, want)
        ok = np.abs(a[sel][first] - want[slot[first]]) <= 1
        # Ties (a start in zero codes) go to the latch nearest the enable or the peak.
        score = (int(np.count_nonzero(ok & (slot[first] < early))), int(np.count_nonzero(ok)), -cand[c])
        if best_score is None or score > best_score:
            best, best_score = c, score
    return float(t[best])


def compare(daclog, preview, board):
    fs, driven = read_preview(preview)
    sources = board.get("current_sources", 1)
    if len(driven) > sources:
        raise CompareError("%s drives %d electrodes (%s) but board %s has %d current source(s)" % (
            preview, len(driven), ", ".join(name for name, _ in driven), board.get("id", "?"), sources))
    if len(driven) > 2:
        raise CompareError("%s drives %d electrodes; a DAC log holds two channels (A, B)" % (preview, len(driven)))
    nch = min(sources, 2)          # the log holds channels A and B
    names = [name for name, _ in driven] + [None] * (nch - len(driven))
    n = len(driven[0][1])
    wants, convs = [], []
    for c in range(nch):
        w, conv = expected_codes(board, driven[c][1] if c < len(driven) else [0] * n, c)
        wants.append(w)
        convs.append(conv)
    want, conv = wants[0], convs[0]
    r = Result(samples=len(want), fs=fs)
    latches, enables = read_daclog(daclog)
    if not len(latches):
        r.missing = len(want)
        r.notes.append("the DAC log holds no latches")
        return r
    t, a = latches[:, 0].astype(float), latches[:, 1]
    period = 1e9 / fs
    on = enables[enables[:, 1] == 1][:, 0] if len(enables) else ()
    # A board's first sample comes a while after the enable (hal.rp2: GAP_MS, at least two
    # DMA chunks, and the app's work between enable and the first write: 68 ms was seen at
    # 1 kS/s on the virtual RP2040): look 150 ms past it, at least 64 latches.
    t0 = find_start(t, a, want, conv["zero_code"], period, on, spread=max(64, int(round(150e6 / period))))
    r.t0_s = t0 / 1e9
    sel, slot, first = _grid(t, a, t0, period, want)
    r.extra = int(np.count_nonzero(~first))
    r.compared = int(np.count_nonzero(first))
    r.missing = len(want) - r.compared
    k = slot[first]
    errs = [latches[:, 1 + c][sel][first] - wants[c][k] for c in range(nch)]
    worst = None
    for c, e in enumerate(errs):
        ch = {"channel": "AB"[c], "electrode": names[c], "within0": int(np.count_nonzero(e == 0)),
              "within1": int(np.count_nonzero(np.abs(e) <= 1)), "worst_codes": 0, "worst_uA": 0.0,
              "worst_at_s": 0.0, "first_bad_s": None}
        bad = np.nonzero(np.abs(e) > 1)[0]
        if len(bad):
            ch["first_bad_s"] = int(k[bad].min()) / fs
        if len(e):
            i = int(np.argmax(np.abs(e)))
            ch["worst_codes"] = int(e[i])
            ch["worst_uA"] = ch["worst_codes"] * convs[c]["span_uA"] / convs[c]["span_code"]
            ch["worst_at_s"] = int(k[i]) / fs
            if worst is None or abs(ch["worst_codes"]) > abs(worst["worst_codes"]):
                worst = ch
        r.channels.append(ch)
    err = np.max(np.abs(np.stack(errs)), axis=0) if len(k) else np.zeros(0, dtype=np.int64)
    r.within0 = int(np.count_nonzero(err == 0))
    r.within1 = int(np.count_nonzero(err <= 1))
    bad = np.nonzero(err > 1)[0]
    if len(bad):
        r.first_bad_s = int(k[bad].min()) / fs
    if worst is not None:
        r.worst_codes, r.worst_uA, r.worst_at_s = worst["worst_codes"], worst["worst_uA"], worst["worst_at_s"]
        r.worst_grid_us = float(np.max(np.abs(t[sel][first] - (t0 + k * period)))) / 1000
    if len(sel) > 1:
        r.interval_mean_us = float(np.mean(np.diff(t[sel]))) / 1000
    if len(enables):
        lo, hi = t0 - period / 2, t0 + (len(want) - 0.5) * period
        inside = (enables[:, 0] >= lo) & (enables[:, 0] < hi) & (enables[:, 1] == 0)
        r.enable_off_in_session = int(np.count_nonzero(inside))
    return r


def report_lines(r):
    period_us = 1e6 / r.fs if r.fs else 0
    lines = [
        "session found at %.6f s (board time) in the DAC log; %d samples expected at %d S/s" % (
            r.t0_s, r.samples, r.fs),
        "compared %d%s: within 0 codes %d (%.2f%%), within 1 code %d (%.2f%%)" % (
            r.compared, " (channels %s together)" % " and ".join(c["channel"] for c in r.channels)
            if len(r.channels) > 1 else "", r.within0, 100 * r.share0, r.within1, 100 * r.share1),
        "worst error %+d codes (%+.1f uA) at %.3f s; first sample more than 1 code off: %s" % (
            r.worst_codes, r.worst_uA, r.worst_at_s, "none" if r.first_bad_s is None else "%.3f s" % r.first_bad_s),
        "missing %d, extra %d" % (r.missing, r.extra),
        "latch timing: interval mean %.3f us (ideal %.3f us), worst deviation from the grid %.3f us" % (
            r.interval_mean_us, period_us, r.worst_grid_us),
    ]
    if r.enable_off_in_session:
        lines.append("output enable dropped %d time(s) during the session" % r.enable_off_in_session)
    if len(r.channels) > 1:
        for ch in r.channels:
            lines.append("channel %s (%s): within 0 codes %d, within 1 code %d; worst %+d codes (%+.1f uA) at %.3f s; "
                         "first more than 1 code off: %s" % (
                             ch["channel"], ch["electrode"] or "not driven: zero code", ch["within0"], ch["within1"],
                             ch["worst_codes"], ch["worst_uA"], ch["worst_at_s"],
                             "none" if ch["first_bad_s"] is None else "%.3f s" % ch["first_bad_s"]))
    lines += r.notes
    lines.append("PASS: within 1 code for >= 99.9% with none missing" if r.ok else
                 "FAIL: needs >= 99.9% within 1 code and no missing samples")
    return lines
