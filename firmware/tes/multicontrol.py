"""The block loop of a session of C >= 2 driven electrodes (issue 12): tes.control's loop
over interleaved buffers, one Supervisor per driven electrode and one for the return.

Imported only by such a session (a board's RAM pays for what it imports). The HAL takes
and gives samples interleaved, sample-major (word k*C + c: driven electrode c at sample
k; docs/wire.md, hal/base.py). The engine's fill_driven gives one array per driven
electrode (fill_all's, without the return's: no DAC drives it); they are interleaved for
write(), and what sense() hands over is split back into one block per electrode, so each
Supervisor runs its unchanged kernel on its own electrode.

The return is the board's ground: its current is minus the sum of the driven ones', sample
by sample, in set, measured and readback alike. Its Supervisor checks overcurrent against
the return's own bound, the readback, tracking, charge; it has no voltage of its own, so
its kernel gets v = i (a fixed 1 kOhm, on which no voltage rule trips) and its impedance
lockout is off. Faults: the first block with a hard fault on any electrode decides (in it
the lower index: driven order, the return last); with soft faults only, the first soft
one's block, every sample sensed checked all the same. Naming: that electrode, except
  - open-circuit or compliance on two or more driven electrodes in the block, every other
    one carrying no current there (mean |set| under 50 uA): their common node, the return
    (one electrode open alone is itself, even when the others are between two phases);
  - impedance-high with every driven electrode carrying current (two at least) risen
    alike since its first impedance window (common_rise): the return;
  - host-lost and duration-budget: the session's rules, not an electrode's (-1).
The app zeroes every source (hal.zero) on a hard fault and soft-stops every channel on a
soft one. Nothing in run() allocates (tests/firmware/test_multicontrol.py runs it heap
locked); every per-sample int stays well within +/-2**30 (C <= 8 currents of a few mA).
"""
try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

from array import array

from tes import link as L
from tes import multi as MP
from tes import supervisor as S
from tes import validate as V
from tes.control import FILL_MAX, Control

NONE = -1               # electrode: no electrode named


def supervisors(proto, limits, board, fs, period):
    """One Supervisor per driven electrode (driven order) and the return's last, each with
    its own current bound: its peak over the segments (tes.validate.electrode_bounds; the
    return's is the sum of the channels') plus the margin every supervisor allows, and its
    own impedance lockout (lockouts). The charge budget stays the board's per-electrode
    limit, as for two electrodes: the validator proved every electrode's bound under it,
    and a budget at the bound itself would stop an honest session whose measured current
    runs within the tracking rule's 10 % above its set."""
    sense = board.get("sense") or {}
    comp = board.get("compliance_V", 30) * 1000
    tol = sense.get("readback_tol_uA", 50)
    peak = {}
    for b in V.electrode_bounds(proto):
        peak[b[0]] = b[2]
    ret = V.return_name(proto)
    zs = lockouts(proto) + [S.OPEN_OHM]
    out = []
    for k, name in enumerate(V.driven_names(proto) + [ret]):
        lim = dict(limits)
        if peak[name] < lim["max_current_uA"]:
            lim["max_current_uA"] = peak[name]
        out.append(S.Supervisor(lim, {"impedance_max_ohm": zs[k]}, fs, compliance_mV=comp, dac_tol_uA=tol,
                                period_samples=period, lockin=False))   # TELEM's rows carry no phase
    st = out[-1].st
    st[S.T_ZMAX] = S.OPEN_OHM   # the return's v = i reads 1 kOhm: no lockout applies
    st[S.T_NOISY] = 0           # a sum of C noisy channels; stuck only if the set moves
    return out


def carried_uA(seg):
    """The most the return carries in stim segment seg (uA). Exact where the return's current
    is a fixed multiple of every channel's (the engine's envelope scales all alike): each
    channel O + A*sin(wt) of one w (dc: O = its level, A = 0; a sine at 180 deg: -A), every
    (O, A) in proportion (O_j*A_i == O_i*A_j): the return, minus their sum, is then at most
    |sum O| + |sum A|. Otherwise (other phases or frequencies, offsets out of proportion,
    pulse, noise) the bound, the sum of the channels' peaks (tes.validate.peak_uA): an
    electrode's mean|V|/mean|I| then holds no fixed share of the return's contact."""
    so = sa = o0 = a0 = f0 = 0
    for ch in seg["currents"]:
        o = ch["offset_uA"]
        a = ch["amplitude_uA"]
        if ch["waveform"] == "dc":
            o, a = o + a, 0
        elif ch["waveform"] != "sine" or (a and ch["phase_deg"] % 180):
            return V.peak_uA(seg)
        elif ch["phase_deg"]:
            a = -a
        if a and f0 and ch["frequency_mHz"] != f0:
            return V.peak_uA(seg)
        if a:
            f0 = ch["frequency_mHz"]
        if o * a0 != o0 * a:      # |O|, |A| <= 4 mA: small ints
            return V.peak_uA(seg)
        if not (o0 or a0):
            o0, a0 = o, a         # the first channel with current: the others' proportion
        so += o
        sa += a
    return abs(so) + abs(sa)


def lockouts(proto):
    """Each driven electrode's impedance lockout (driven order): lockout() of its peak and
    what the return carries (carried_uA) in each stim segment, the largest over the
    segments (one lockout serves the session), but never above what the session's peaks
    give (lockout() of c's peak and the return's bound, the rule before carried_uA): with
    several segments the largest alone could judge a segment where c and the return form a
    plain path by another's figure (c at 100 uA beside 1 mA, then 400 uA alone: 120 kOhm
    against the peaks' 37.5). S.OPEN_OHM for one that never carries current. The 4x1 ring
    (-500 uA each, the centre +2 mA): 2.5 x the protocol's; two tACS sites in phase: 1.5 x;
    in anti-phase, or DC sites of +/- 500 uA: the protocol's."""
    zmax = proto["safety"]["impedance_max_ohm"]
    names = V.driven_names(proto)
    peak = {}
    for b in V.electrode_bounds(proto):
        peak[b[0]] = b[2]
    ret_peak = peak[V.return_name(proto)]
    zs = [0] * len(names)
    for seg in proto["segments"]:
        if seg["kind"] != "stim":
            continue
        r = carried_uA(seg)
        for j, ch in enumerate(seg["currents"]):
            p = V.channel_peak_uA(ch)
            if p:
                z = lockout(zmax, p, r)
                if z > zs[j]:
                    zs[j] = z
    for j in range(len(zs)):
        cap = lockout(zmax, peak[names[j]], ret_peak)
        if zs[j] > cap:
            zs[j] = cap
    return [z or S.OPEN_OHM for z in zs]


def lockout(zmax, peak, ret):
    """Electrode c's impedance lockout at its peak current `peak` beside a return carrying
    `ret` at most. What it measures, V_c / I_c, is its own contact plus the return's times
    I_return / I_c (the return's voltage is in every electrode's): a 4x1 ring electrode
    reads its own contact plus four times the centre's (the return). The protocol's
    lockout bounds a two-electrode path, two contacts; this one locks out above the most a
    montage whose contacts are all at most half of it can read, |Z_c + r Z_ret| <=
    zmax * (1 + k) / 2 with k = ret / peak >= |r| (r = I_return / I_c, either sign; zmax
    itself for one driven electrode), but never under zmax: where the return carries less
    than c (k < 1), c reads mostly its own contact (alone where the sites' currents cancel
    in the return), and may reach what a two-electrode path allows. An electrode without
    current has no impedance to judge. zmax <= 50 kOhm and peak + ret <= 8 mA (the
    validator's bounds) keep zmax * (peak + ret) under 2**30."""
    if peak <= 0:
        return S.OPEN_OHM
    z = zmax * (peak + ret) // (2 * peak)
    if z < zmax:
        return zmax
    return z if z < S.OPEN_OHM else S.OPEN_OHM


class MultiSup:
    """The session's supervisor as the app sees it (tes.app: charge, time, the HAL's fast
    trip): the return's state and figures (the total current), and the largest charge
    and stimulation time of any electrode, which the record and TELEM carry."""

    def __init__(self, sups):
        self.sups = sups
        self.ret = sups[-1]
        self.st = self.ret.st
        self.sts = [s.st for s in sups]

    @property
    @micropython.native     # every TELEM frame: no list, no call per electrode
    def charge_uC(self):
        q = 0
        k = S.S_QUC
        for st in self.sts:
            if st[k] > q:           # Supervisor.charge_uC
                q = st[k]
        return q

    @property
    def stim_ms(self):
        return max([s.stim_ms for s in self.sups])

    @property
    def code(self):
        return self.ret.code

    def window(self):
        return self.ret.window()

    def period(self):
        return self.ret.period()


def _arrays(k, n):
    return [array("i", [0] * n) for _ in range(k)]


class MultiControl(Control):
    """tes.control.Control's loop, unchanged, over C electrodes: its fill is fill_driven
    interleaved, its sense is hal.sense split per electrode, its check runs every
    electrode's supervisor on the blocks sensed (check_run each) and names the fault."""

    def __init__(self, hal, engine, sups, fs, C):
        Control.__init__(self, hal, engine, sups[C], fs)
        self.sups = sups
        self.C = C
        cap = self.cap
        # engine.fill_driven -> per electrode, then interleaved into out for hal.write; or,
        # where the driver takes one block per source (write_blocks, hal.base: optional),
        # electrode c's at flat[c * FILL_MAX:], written as they are (no interleaving pass)
        self._hal_write_blocks = getattr(hal, "write_blocks", None)
        if self._hal_write_blocks is not None:
            self.flat = array("i", [0] * (FILL_MAX * (C + 1)))
            mv = memoryview(self.flat)
            self.outs = [mv[c * FILL_MAX:(c + 1) * FILL_MAX] for c in range(C + 1)]
            self.out = array("i")
        else:
            self.outs = _arrays(C + 1, FILL_MAX)
            self.out = array("i", [0] * (FILL_MAX * C))
        # hal.sense, interleaved (none where the driver's sense_split gives them per electrode)
        w = 0 if getattr(hal, "sense_split", None) is not None else cap * C
        self.rsb = array("i", [0] * w)
        self.rib = array("i", [0] * w)
        self.rvb = array("i", [0] * w)
        self.rdb = array("i", [0] * w)
        # per electrode (the return last): set, measured, voltage, readback one after another
        # in one array, so a Thumb kernel finds them a stride apart (supervisor.use_samples)
        self.sbs, self.ibs, self.vbs, self.dbs = [], [], [], []
        for _ in range(C + 1):
            mv = memoryview(array("i", [0] * (4 * cap)))
            for k, bufs in enumerate((self.sbs, self.ibs, self.vbs, self.dbs)):
                bufs.append(mv[k * cap:(k + 1) * cap])
        S.use_samples(getattr(hal, "check_samples", None))     # (hal.base: optional)
        engine.use_sine_flat(getattr(hal, "sine_flat", None))  # (hal.base: optional)
        self.zero_v = array("i", [0] * cap)        # the return's voltage, for the evidence
        self.sts = [s.st for s in sups]
        self.checks = [s.kernel_run for s in sups]
        self.codes = array("i", [0] * (C + 1))      # per electrode: (samples checked << 5) | code
        self.zbase = array("i", [0] * C)            # each driven electrode's first impedance window
        # TELEM (telemetry()): each electrode's latest period() (tes.multi.telem_rows' prow),
        # the L_CNT it was read at, the rows' montage order, the kernel's figures
        self.prow = array("i", [-1, 0, 0, 0, 0] * (C + 1))
        self.pseen = array("i", [0] * (C + 1))
        self.torder = array("i", [0] * (C + 1))
        self.tfig = array("i", [0] * (4 + 3 * (C + 1) + 7))
        self.electrode = NONE               # the electrode the last check's fault names (C: the return)
        self.esb = self.sbs[C]              # the evidence: the named electrode's arrays...
        self.eib = self.ibs[C]
        self.evb = self.zero_v
        self.edb = self.dbs[C]
        self.j0 = 0                         # ...from this sample of them
        # Control's loop calls these (bound once: binding allocates, the loop runs heap-locked)
        self._fill_driven = engine.fill_driven     # the return's samples: from what is sensed
        self._hal_sense = hal.sense
        self._hal_sense_split = getattr(hal, "sense_split", None)     # (hal.base: optional)
        self._neg = engine.mk.neg_into
        self._interleave = engine.mk.interleave     # tes.multi's, or its viper twin on a board
        self._split = engine.mk.split
        if self._hal_write_blocks is not None:
            self._fill = self.fill_blocks
            self._write = self.write_blocks
        else:
            self._fill = self.fill_words
        self._sense = self.sense_split
        self._check = self.check_all
        self._multi = True
        self._ck = (C, self.codes, self.checks, self.sts, self.sbs, self.ibs, self.vbs, self.dbs, self.zbase)

    def evidence(self):
        """The faulting block, tes.app's fault event: (set, measured, voltage, readback, first)."""
        return self.esb, self.eib, self.evb, self.edb, self.j0

    @micropython.native
    def carries(self, c, j0, j):
        """Driven electrode c asked for current in samples j0..j-1 (mean |set| >= 50 uA)."""
        sb = self.sbs[c]
        a = 0
        for k in range(j0, j):
            v = sb[k]
            a += v if v >= 0 else -v
        return a >= S.OPEN_MIN_uA * (j - j0)

    @micropython.native
    def common_rise(self, j0, j):
        """Impedance-high: the return's contact, when every driven electrode carrying current
        (two at least) reads an impedance risen since its first window by at least half the
        largest rise, in per mille of that first window: the return's voltage is in every
        electrode's, an electrode's own contact in its own alone."""
        C = self.C
        sts = self.sts
        zb = self.zbase
        lo = 1 << 29
        hi = 0
        n = 0
        for c in range(C):
            if not self.carries(c, j0, j):
                continue
            z0 = zb[c]
            if z0 <= 0:
                return False
            r = (sts[c][S.S_ZLAST] - z0) * 1000 // z0
            n += 1
            if r < lo:
                lo = r
            if r > hi:
                hi = r
        return n >= 2 and hi > 0 and 2 * lo >= hi

    def electrode_name(self, names):
        """The name of the electrode the last fault names (names: driven order, the return
        last), or None."""
        return names[self.electrode] if self.electrode >= 0 else None

    @micropython.native
    def fill_words(self, out, n):
        """Control's fill: n samples of every driven electrode, interleaved into out."""
        k = self._fill_driven(self.outs, n)
        self._interleave(out, self.outs, k, self.C)
        return k

    @micropython.native
    def fill_blocks(self, out, n):
        """Control's fill where the driver takes one block per source: n samples of every
        driven electrode, each in its own block of flat (out is not used)."""
        return self._fill_driven(self.outs, n)

    @micropython.native
    def write_blocks(self, out, n):
        """Control's write then: the driver's write_blocks of flat (out is not used)."""
        self._hal_write_blocks(self.flat, n, FILL_MAX)

    @micropython.native
    def sense_split(self, sb, ib, vb, db, cap, b):
        """Control's sense: hal.sense's interleaved samples split per electrode (or the
        driver's sense_split, which gives them so); sb gets the total current's set (the
        driven ones' sum) for the raw stream's tap."""
        C = self.C
        ss = self._hal_sense_split
        if ss is not None:
            m = ss(self.sbs, self.ibs, self.vbs, self.dbs, cap, b)
        else:
            m = self._hal_sense(self.rsb, self.rib, self.rvb, self.rdb, cap, b)
            if m:
                self._split(self.rsb, self.rib, self.rvb, self.rdb, self.sbs, self.ibs, self.vbs, self.dbs, m, C)
        if m and self.tap is not None:
            self._neg(sb, self.sbs[C], 0, m)
        return m

    @micropython.native
    def check_all(self, st, sb, ib, vb, db, m, host_age_ms, j0, b):
        """Control's check (supervisor.check_run's contract): every electrode's supervisor
        over the m samples from j0 in blocks of b -> (samples up to and including the block
        of the first hard fault << 5) | its code, or, with soft faults only, (m << 5) | the
        first one's code: every sample is checked (Control drops what follows the block it
        is given, and a soft code, host-lost say, comes every block of a soft stop: a driver
        that senses several blocks at once would never see its checked count reach its
        written one). decide() names the electrode. (Control calls it with j0 = 0 but for
        a soft code that left samples, which this never returns: j0 is honoured all the
        same, or such a call would check the batch's first samples again.)"""
        C, codes, checks, sts, sbs, ibs, vbs, dbs, zb = self._ck     # (one lookup, not nine)
        self.electrode = NONE
        jh = m + 1                  # the first hard fault's block end, over every electrode
        js = m + 1                  # ...and the first soft one's
        for c in range(C + 1):
            codes[c] = 0
            j = 0
            while j < m:            # past a soft fault's block: the rest is checked too
                k = checks[c](sts[c], sbs[c], ibs[c], vbs[c], dbs[c], m - j, host_age_ms, j0 + j, b)
                j += k >> 5
                x = k & 31
                if x == 0:
                    break
                if (S.OPEN_CIRCUIT <= x <= S.COMPLIANCE) or x >= S.MEMORY:
                    codes[c] = (j << 5) | x
                    if j < jh:
                        jh = j
                    break
                if codes[c] == 0:
                    codes[c] = (j << 5) | x
                    if j < js:
                        js = j
            if c < C and zb[c] <= 0:
                zb[c] = sts[c][S.S_ZLAST]
        if jh <= m:
            return (jh << 5) | self.decide(jh, j0)
        if js <= m:
            return (m << 5) | self.decide(js, j0)
        return m << 5

    @micropython.native
    def decide(self, j, at):
        """The fault of the block ending j samples after `at` (check_all's j0) -> its code;
        sets electrode and the evidence. Only on a fault: its cost does not matter, its
        allocation would (the heap is locked)."""
        C = self.C
        codes = self.codes
        b = self.block
        code = 0
        e = NONE
        hard = False
        for c in range(C + 1):
            k = codes[c]
            x = k & 31
            if x == 0 or (k >> 5) != j:
                continue
            h = (S.OPEN_CIRCUIT <= x <= S.COMPLIANCE) or x >= S.MEMORY
            if code == 0 or (h and not hard):
                code = x
                e = c
                hard = h
        j0 = at + (j - 1) // b * b          # the block's first sample in the arrays
        je = at + j                         # ...and its end
        if code == S.HOST_LOST or code == S.DURATION_BUDGET:
            e = NONE
        elif code == S.DAC_STUCK or code == S.ADC_STUCK:
            # The return has no converter of its own (its readback and current are the
            # driven ones' sums): tripped there first, or on every driven electrode at once,
            # the fault is the board's converters', named for no electrode.
            n = 0
            for c in range(C):
                if (codes[c] >> 5) == j and codes[c] & 31 == code:
                    n += 1
            if e == C or n == C:
                e = NONE
        elif code == S.IMPEDANCE_HIGH:
            if self.common_rise(j0, je):
                e = C
        elif code == S.OPEN_CIRCUIT or code == S.COMPLIANCE:
            opened = 0                      # driven electrodes with a load fault of the same kind
            fine = 0                        # ...and others carrying current all the same
            for c in range(C):
                x = codes[c] & 31
                if (codes[c] >> 5) == j and (x == S.OPEN_CIRCUIT or x == S.COMPLIANCE):
                    opened += 1
                    continue
                if self.carries(c, j0, je):
                    fine += 1
            if opened >= 2 and fine == 0:
                e = C
        self.electrode = e
        k = e if e >= 0 else 0
        self.esb = self.sbs[k]
        self.eib = self.ibs[k]
        self.evb = self.zero_v if k == C else self.vbs[k]
        self.edb = self.dbs[k]
        self.j0 = j0
        return code


# ---- the app's part of such a session (here, not in tes.app: a board pays for its bytecode
# only when it runs one) ---------------------------------------------------------------------
@micropython.native     # every tick, 50 a second
def telemetry(app, s):
    """TELEM of a session of several driven electrodes: a row per electrode (montage order)
    and the main fields (docs/wire.md): the total current (the return's, signed as the
    driven ones), the voltage of the driven electrode with the largest mean |v|. The
    return's means are minus the sums of the driven rows': each column sums to zero.
    The rows go straight from the supervisors' states into the link encoder's frame
    (engine.mk.telem_rows: tes.multi's, its viper twin on a board; send_telem's ext), no
    tuple and no copy; period() runs only for an electrode whose
    impedance window completed since the last frame. -> False when nothing was measured
    since the last frame."""
    sups = s.sups
    C = s.channels
    ctl = s.control
    sts = ctl.sts
    if sts[C][S.W_N] == 0:
        return False
    prow = ctl.prow
    seen = ctl.pseen
    latched = S.L_CNT
    for c in range(C + 1):
        k = sts[c][latched]
        if k != seen[c]:
            seen[c] = k
            p = sups[c].period()
            if p is not None:
                z = p[6]
                o = MP.TR_LEN * c
                # (an int32 field; unknown: -1. z <= 300,000 here: at most 30 V over >= 100 uA)
                prow[o] = z if z is not None and 0 <= z <= 0x3FFFFFFF else -1
                prow[o + 1] = p[1]
                prow[o + 2] = p[2]
                prow[o + 3] = p[4]
                prow[o + 4] = p[3]
    fig = ctl.tfig
    n = s.engine.mk.telem_rows(app.link.enc.raw, L.EXT_AT, sts, ctl.torder, prow, fig, C)
    o = MP.TR_LEN * C
    app.send_telem(fig[0], fig[1], fig[2], None, prow[o + 1], prow[o + 2], prow[o + 4], fig[3], None, ext=n)
    return True


def finish_named(app, s, outcome, reason, charge, stim_ms, electrode):
    """tes.journal.finish's record with the electrode a fault named (finish takes no such
    field; the same keys and values otherwise)."""
    from tes import journal as J
    o = s.opened
    rec = {"id": s.sid, "protocol_sha256": o["protocol_sha256"], "start_ms": o["start_ms"],
           "end_ms": app.hal.ticks_ms(), "outcome": outcome, "reason": reason, "delivered_charge_uC": charge,
           "stim_ms": stim_ms, "electrode": electrode}
    if s.changes:
        rec["changes"] = s.changes
    J.append(app.storage, rec)
