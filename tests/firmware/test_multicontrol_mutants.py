"""tes.multicontrol where its mutation run (tools/mutate.py) found the first tests silent:
the TELEM a session of several driven electrodes sends (each row's figures and the main
fields are the right electrode's, unknown is -1 on the wire and 0 ohm is 0, all four
figures 0 before the first period window, no frame without samples, fifty frames a second
on a late grid, period() read once a window); the HAL's fast trip armed with the return's
bound and reported on the very first pass; a fill of FILL_MAX samples of every electrode
at once; the checks of a batch past a soft fault's block (no sample checked twice, none
from outside the batch); a converter fault on every electrode named for none, one on a
single electrode named for it even beside a later one of the same kind; a first impedance
window kept once taken; the rise rule over the supervisor's whole range of impedances;
what the return carries with an electrode without current between the others; no lock-in
sums in such a session, and the driver's check_samples doing the per-sample work; the
journal record of a named fault the same as tes.journal.finish's, plus the electrode.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
import struct

from tes import engine as E
from tes import journal as J
from tes import link as L
from tes import multicontrol as MC
from tes import supervisor as S
from tes import validate as V
from tes.control import END, FILL_MAX

from devrun import DeviceRun, storage_dir
from test_app_multi import AppRun, ring4x1
from test_multicontrol import FakeHal, R_OHM, cur, four, mproto, run, session
from test_review_multi import control4, headroom_case, rise_case


def near(x, want, tol):
    return want - tol <= x <= want + tol


# ---- TELEM ------------------------------------------------------------------------------

class GainHal(FakeHal):
    """FakeHal with each driven electrode's measured current at gains[c] per cent of what
    it was given (within the tracking rule) and its voltage that current times R_OHM;
    in the stimulation session, the electrodes in vzero read 0 V (a contact of no
    impedance: the check before it sees R_OHM, so it passes)."""

    def __init__(self, gains, vzero=(), **kw):
        FakeHal.__init__(self, **kw)
        self.gains = gains
        self.vzero = vzero
        self.live = False

    def session_started(self):
        FakeHal.session_started(self)
        self.live = True

    def sense(self, sb, ib, vb, db, n, b):
        m = FakeHal.sense(self, sb, ib, vb, db, n, b)
        C = self.C
        for w in range(m * C):
            c = w % C
            ib[w] = ib[w] * self.gains[c] // 100
            vb[w] = 0 if self.live and c in self.vzero else ib[w] * R_OHM // 1000
        return m


def five():
    """F4 a 10 Hz sine of 300 uA, P4 -400, T8 500, FC1 0 and O1 200 uA DC; the return Cz
    listed third. Measured at 90, 92, 94, 96 and 98 % (GainHal); O1 reads 0 V."""
    p = mproto([cur("F4", 300, "sine", 10000), cur("P4", -400), cur("T8", 500), cur("FC1", 0), cur("O1", 200)],
               ret="Cz", fs=1000, duration_ms=600, names=["F4", "P4", "Cz", "T8", "FC1", "O1"])
    return p, GainHal((90, 92, 94, 96, 98), vzero=(4,), storage="build/test-devrun-mutants")


def row_z_word(payload, k):
    """Row k's z_ohm field as the wire carries it (i32: -1, ff ff ff ff, is unknown)."""
    return struct.unpack_from("<i", payload, L.TELEM_SIZE + 1 + k * L.TELEM_EL_SIZE + 12)[0]


def test_telem_rows_and_main_fields_are_each_electrodes_figures():
    p, hal = five()
    r = AppRun(p, hal)
    r.start()
    r.run_to_end()
    assert r.events("end")[-1]["outcome"] == "completed", r.events("end")
    ext = [f for f in r.telem() if len(f) > L.TELEM_SIZE]
    assert len(ext) >= 30
    # Before the first period window completes (>= 100 ms: the first four frames at
    # least): every RMS, the peak and v RMS 0, every z unknown (docs/wire.md).
    for f in ext[:4]:
        assert L.unpack_telem_stats(f) == (0, 0, 0, 0, None), L.unpack_telem_stats(f)
        for k, row in enumerate(L.unpack_telem_electrodes(f)):
            assert row[4:] == (0, 0, 0), (k, row)
            assert row_z_word(f, k) == -1, (k, row_z_word(f, k))
    # The plateau (ramps 100 ms, whole 100 ms windows of it): each row's figures are its
    # electrode's own; the main fields are the total current's (the return's, with the
    # driven ones' sign) and the voltage of T8, the driven electrode of largest mean |v|.
    sine = 300 * 707 // 1000
    want = {                                    # set RMS, measured RMS, v RMS, z
        "F4": (sine, sine * 90 // 100, sine * 90 * 5 // 100, 5000),
        "P4": (400, 368, 1840, 5000),
        "T8": (500, 470, 2350, 5000),
        "FC1": (0, 0, 0, None),                 # no current: no impedance (-1 on the wire)
        "O1": (200, 196, 0, 0),                 # 0 V at 196 uA: 0 ohm, not unknown
    }
    names = ["F4", "P4", "Cz", "T8", "FC1", "O1"]
    plateau = ext[len(ext) * 2 // 5:len(ext) * 3 // 5]
    assert len(plateau) >= 6
    for f in plateau:
        rows = L.unpack_telem_electrodes(f)
        for k, row in enumerate(rows):
            name = names[k]
            if name == "Cz":
                continue
            s_rms, m_rms, v_rms, z = want[name]
            assert near(row[4], s_rms, 3) and near(row[5], m_rms, 3) and near(row[6], v_rms, 15), (name, row)
            if z is None:
                assert row[3] is None and row_z_word(f, k) == -1, (name, row)
            else:
                assert row[3] is not None and near(row[3], z, 30), (name, row)
        # the return: its RMS, v RMS 0, z unknown
        cz = rows[2]
        assert cz[3] is None and row_z_word(f, 2) == -1 and cz[6] == 0, cz
        # total current: DC -400 + 500 + 200 = 300 set, 298 measured; the sine 300 (270)
        t_set = 367                             # sqrt(300**2 + 300**2 / 2)
        t_meas = 354                            # sqrt(298**2 + 270**2 / 2)
        assert near(cz[4], t_set, 3) and near(cz[5], t_meas, 3), cz
        main = L.unpack_telem(f)
        stats = L.unpack_telem_stats(f)
        assert main[5] is None and stats[4] is None, (main, stats)
        assert near(stats[0], t_set, 3) and near(stats[1], t_meas, 3), stats
        assert near(stats[2], 298 + 270, 12), stats         # the total's measured peak
        assert near(stats[3], 2350, 15), stats              # T8's v RMS
        assert near(main[4], 2350, 15), main                # ...and its mean voltage


class FakeApp:
    """What tes.multicontrol.telemetry uses of the app: the link's encoder (the rows go
    into its raw frame) and send_telem, kept."""

    def __init__(self):
        self.link = self
        self.enc = L.Encoder()
        self.sent = []

    def send_telem(self, *args, **kw):
        self.sent.append((args, kw.get("ext", 0)))


class Counting:
    """A supervisor's period(), counted."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.fn()


def test_telemetry_sends_a_frame_only_for_what_was_measured_and_reads_each_window_once():
    p = mproto([cur("F4", 500), cur("P4", 400), cur("T8", 300)], fs=1000, duration_ms=800)
    hal = FakeHal()
    s = session(p, hal)
    app = FakeApp()
    c = s.control
    # nothing measured yet: no frame, False (the app's grid then waits for one)
    assert MC.telemetry(app, s) is False and app.sent == []
    # one sample (1 kS/s: a block of one) is a frame
    assert c.step(0) == 0 and c.checked == 1
    assert MC.telemetry(app, s) is True and len(app.sent) == 1
    assert app.sent[0][1] == 1 + 4 * L.TELEM_EL_SIZE, app.sent[0]      # the rows' extension
    assert MC.telemetry(app, s) is False and len(app.sent) == 1         # nothing since
    # period() runs only for an electrode whose window completed since the last frame
    counts = [Counting(x.period) for x in s.sups]
    for x, k in zip(s.sups, counts):
        x.period = k
    latched0 = [st[S.L_CNT] for st in c.sts]
    frames = 0
    code = 0
    while not code:
        for _ in range(20):                     # a frame each 20 ms, as the app's tick
            code = c.step(0)
            if code:
                break
        if MC.telemetry(app, s):
            frames += 1
    assert code == END and frames >= 40
    for k in range(4):
        windows = c.sts[k][S.L_CNT] - latched0[k]
        assert 5 <= windows and 1 <= counts[k].calls <= windows, (k, windows, counts[k].calls)


def frames_in_a_second(pass_ms, tick_ms):
    """A session of four driven electrodes on the simulated board, passes of pass_ms and
    ticks that spend tick_ms of board time before they send: the frames sent in its
    second half-second to one and a half."""
    d = DeviceRun(ring4x1(duration_ms=4000), "mutants-rate-%d-%d" % (pass_ms, tick_ms), start=False)
    d.hal.PASS_MS = pass_ms
    d.load()
    d.check()
    d.send(L.START, {"sha256": d.app.sha})
    assert d.app.session is not None and d.app.session.channels == 4
    sent = []
    real = d.app.send_telem

    def counting(*args, **kw):
        sent.append(d.hal.ticks_ms())
        return real(*args, **kw)
    d.app.send_telem = counting
    feed = d.hal.feed

    def slow_feed():
        feed()
        d.hal.wait(tick_ms)
    d.hal.feed = slow_feed
    t0 = d.hal.ticks_ms()
    d.run_until(t0 + 2000)
    return [t for t in sent if t0 + 500 <= t < t0 + 1500]


def test_fifty_frames_a_second_on_the_grid_however_late_the_ticks():
    # tests/firmware/test_app_telem_rate.py for a session of four driven electrodes: the
    # frame goes out on the tick's grid time (telemetry() says it sent one), not the send's,
    # so a tick that starts late does not push the next frame a tick further.
    for pass_ms, tick_ms in ((2, 1), (3, 2)):
        times = frames_in_a_second(pass_ms, tick_ms)
        assert 49 <= len(times) <= 51, (pass_ms, tick_ms, len(times))


# ---- the HAL's fast trip ----------------------------------------------------------------

def test_the_fast_trip_is_armed_with_the_returns_own_bound():
    # hal.arm_trip gets the session supervisor's hard limits: a multi session's is the
    # return's (the total current: the sum of the channels' peaks and the margin)
    p = mproto([cur("F4", 1000), cur("P4", 600), cur("T8", 300)])
    hal = FakeHal(storage="build/test-devrun-mutants")
    r = AppRun(p, hal)
    r.start()
    s = r.app.session
    assert hal.trip[0] == 1900 + S.OVER_MARGIN_uA == s.sups[-1].st[S.T_IOVER], hal.trip
    assert hal.trip[1] == s.sups[-1].st[S.T_VCOMP]


def test_a_fast_trip_on_the_very_first_pass_is_reported_and_zeroes():
    # The board trips before the supervisors checked a sample: the fault names the source
    # (hal.tripped_source) and every source is zeroed, the record written.
    for source, name in ((0, "F4"), (2, "T8")):
        hal = FakeHal(storage="build/test-devrun-mutants")
        hal.later_trip = (S.OVERCURRENT, source, 0)
        r = AppRun(mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700), cur("T8", 300)]), hal)
        r.start()
        r.run_to_end()
        assert hal.zeros >= 1 and not hal.en and all(hal.level[c] == 0 for c in range(9))
        f = r.events("fault")[-1]
        assert (f["fault"], f["detail"], f["electrode"]) == ("overcurrent", "hard", name), f
        assert f["block"]["checked"] == 0 and f["block"]["set_uA"] == [], f
        end = r.events("end")[-1]
        assert (end["outcome"], end["reason"], end["electrode"]) == ("fault", "overcurrent", name), end
        rec = J.sessions(r.app.storage)[-1]
        assert (rec["outcome"], rec["electrode"]) == ("fault", name), rec
        assert r.app.state == L.FAULT


def test_a_fast_trip_mid_session_carries_a_block_the_supervisors_checked():
    # The fault event's block after a board's trip: last_m samples, all of one electrode's
    # (or the return's) last block checked, none from outside it.
    hal = FakeHal(storage="build/test-devrun-mutants")
    hal.later_trip = (S.OVERCURRENT, 1, 600)
    p = mproto([cur("F4", 1000, "sine", 6000), cur("P4", 1000, "sine", 6000, 180), cur("T8", 400)])
    r = AppRun(p, hal)
    r.start()
    r.run_to_end()
    f = r.events("fault")[-1]
    assert f["electrode"] == "P4", f
    blk = f["block"]
    C = 3
    n = len(blk["set_uA"])
    assert n == 2, blk                              # 2 kS/s: blocks of 2
    last = blk["checked"]
    cands = []
    for e in range(C):
        cands.append([hal.out[k * C + e] for k in range(last - n, last)])
    cands.append([-sum(hal.out[k * C + e] for e in range(C)) for k in range(last - n, last)])
    assert blk["set_uA"] in cands, (blk["set_uA"], cands)


# ---- the block loop ---------------------------------------------------------------------

class DeepHal(FakeHal):
    """FakeHal offering room for `lead` samples at once (a board offers a whole free chunk),
    sensed a control's cap at a time: the queue moves up as it is sensed."""

    def sense(self, sb, ib, vb, db, n, b):
        m = FakeHal.sense(self, sb, ib, vb, db, n, b)
        q = self.q
        off = 4 * m * self.C
        for w in range(4 * self.pend * self.C):
            q[w] = q[off + w]
        return m


def test_a_fill_of_fill_max_samples_of_every_electrode_at_once():
    # room() offers FILL_MAX samples: four electrodes' worth (4 x FILL_MAX words) go to
    # write() interleaved in one call, each the engine's sample, every one checked.
    p = four()
    hal = DeepHal()
    hal.lead = FILL_MAX
    s = session(p, hal)
    assert run(s) == END
    c = s.control
    total = E.Engine(p).total
    assert c.checked == c.written == hal.k == total and c.electrode == -1
    eng = E.Engine(p)
    from array import array
    outs = [array("i", [0] * FILL_MAX) for _ in range(5)]
    k = 0
    while True:
        n = eng.fill_all(outs, FILL_MAX)
        if not n:
            break
        for j in range(n):
            for e in range(4):
                assert hal.out[(k + j) * 4 + e] == outs[e][j], (k + j, e)
        k += n
    assert k == total


def test_a_soft_fault_early_in_a_batch_leaves_every_sample_checked_once():
    # impedance-high (soft) on electrode 1 in the batch's second block: the rest of its
    # batch is checked from where it stopped, over the batch's samples only. Every
    # supervisor has then seen exactly the samples checked (its telemetry window counts
    # them: nobody read it, fewer than W_MAX).
    code, c = headroom_case({1: (602, 604)}, {})
    assert code == S.IMPEDANCE_HIGH and c.electrode == 1 and c.checked == 608
    assert c.checked < S.W_MAX
    for e in range(5):
        assert c.sts[e][S.W_N] == c.checked, (e, c.sts[e][S.W_N], c.checked)


def test_a_first_impedance_window_once_taken_is_kept():
    # zbase: each driven electrode's first impedance window, taken at the first check that
    # finds one (S_ZLAST > 0: -1 before it), whatever its value, then never again.
    c = control4()
    C = 4
    for k in range(8):
        for e in range(C):
            i = 500 + (k + e) % 3 - 1
            c.sbs[e][k] = 500
            c.ibs[e][k] = i
            c.vbs[e][k] = i * 5
            c.dbs[e][k] = 500
        c.sbs[C][k] = -2000
        c.ibs[C][k] = c.vbs[C][k] = -sum(c.ibs[e][k] for e in range(C))
        c.dbs[C][k] = -2000
    st = c.sts[C]
    assert c.check_all(st, c.sb, c.ib, c.vb, c.db, 2, 0, 0, 2) == 2 << 5
    assert [c.zbase[e] for e in range(C)] == [-1] * C       # no window yet
    c.sts[0][S.S_ZLAST] = 1                 # the lowest impedance a window can give but 0
    c.sts[1][S.S_ZLAST] = 4800
    assert c.check_all(st, c.sb, c.ib, c.vb, c.db, 2, 0, 2, 2) == 2 << 5
    assert c.zbase[0] == 1 and c.zbase[1] == 4800 and c.zbase[2] == -1
    c.sts[0][S.S_ZLAST] = 9000
    c.sts[1][S.S_ZLAST] = 9100
    c.sts[2][S.S_ZLAST] = 5000
    assert c.check_all(st, c.sb, c.ib, c.vb, c.db, 2, 0, 4, 2) == 2 << 5
    assert c.zbase[0] == 1 and c.zbase[1] == 4800 and c.zbase[2] == 5000


class _Lcg:
    def __init__(self, seed):
        self.x = seed * 2654435761 % 2147483647 or 1

    def __call__(self, lo, hi):
        self.x = self.x * 48271 % 2147483647
        return lo + self.x % (hi - lo + 1)


def rise_rule(z0s, zs, sets):
    """common_rise's rule in plain words: every driven electrode carrying current (mean
    |set| >= 50 uA), two at least, has a first window and has risen by at least half the
    largest rise, in per mille of its first window; some rise."""
    rises = []
    for k in range(4):
        if abs(sets[k]) < S.OPEN_MIN_uA:
            continue
        if z0s[k] <= 0:
            return False
        rises.append((zs[k] - z0s[k]) * 1000 // z0s[k])
    return len(rises) >= 2 and max(rises) > 0 and 2 * min(rises) >= max(rises)


def test_the_rise_rule_over_every_impedance_a_window_can_give():
    # S_ZLAST is 0..OPEN_OHM (1 MOhm); a first window of 1 ohm rising to several hundred
    # kOhm gives rises near 10**9 per mille: the rule holds there as anywhere.
    on = (500, 500, 500, 500)
    assert rise_case((1, 1, 1, 1), (300001, 600001, 600001, 600001), on)      # 3e8 and 6e8: alike
    assert not rise_case((1, 1, 1, 1), (299001, 600001, 600001, 600001), on)
    assert rise_case((1, 1, 1000, 1000), (3, 3, 3000, 3000), on)              # 1 ohm is a first window
    assert rise_case((1, 1000, 1000, 1000), (S.OPEN_OHM, S.OPEN_OHM, S.OPEN_OHM, S.OPEN_OHM), on) is False
    rnd = _Lcg(7)
    for _ in range(200):
        z0s = []
        zs = []
        sets = []
        for k in range(4):
            z0s.append((0, 1, rnd(1, 5), rnd(100, 20000), rnd(1, S.OPEN_OHM))[rnd(0, 4)])
            zs.append((rnd(0, S.OPEN_OHM), z0s[k] * rnd(1, 3), S.OPEN_OHM)[rnd(0, 2)])
            sets.append((0, 500, -500)[rnd(0, 2)])
        assert rise_case(z0s, zs, sets) == rise_rule(z0s, zs, sets), (z0s, zs, sets)


# ---- naming a converter fault -----------------------------------------------------------

def test_a_readback_fault_on_every_electrode_is_the_boards_and_shows_the_first_electrodes_block():
    # Every driven DAC off by 500 uA from the same sample: the board's converters, named
    # for no electrode; the event's block is the first electrode's (the lower index of
    # those that tripped in it), its readback 500 uA off its set.
    p = mproto([cur("C3", 500), cur("FC1", 400), cur("CP5", 300), cur("FC5", 200)], ret="Cz")
    hal = FakeHal()
    hal.faults = dict((e, ("dac", 700)) for e in range(4))
    s = session(p, hal)
    assert run(s) == S.DAC_STUCK
    c = s.control
    assert c.electrode == -1 and c.electrode_name(s.names) is None
    assert 700 < c.checked <= 704
    sb, ib, vb, db, a = c.evidence()
    n = c.last_m
    assert n == 2 and list(sb[a:a + n]) == [500, 500], list(sb[a:a + n])
    assert [db[a + k] - sb[a + k] for k in range(n)] == [500, 500]
    assert all(near(vb[a + k], 2500, 5) for k in range(n)), list(vb[a:a + n])


def test_a_readback_fault_on_one_electrode_is_its_own_beside_a_later_one_in_the_batch():
    # Two driven electrodes, 8 samples sensed at once: F4's DAC off in the batch's second
    # block, P4's in its fourth. The earlier block decides and names F4: P4's fault, of
    # the same kind but in another block, does not make it the board's.
    p = mproto([cur("F4", 500), cur("P4", 400)], ret="Cz")
    hal = FakeHal()
    hal.lead = 8
    hal.faults = {0: ("dac", 602), 1: ("dac", 606)}
    s = session(p, hal)
    assert run(s) == S.DAC_STUCK
    c = s.control
    assert c.electrode == 0 and c.electrode_name(s.names) == "F4", c.electrode
    assert c.checked == 604


# ---- set-up ---------------------------------------------------------------------------------

def test_what_the_return_carries_with_an_electrode_without_current_between():
    # carried_uA's proportion rule compares every channel with the first one carrying
    # current; a channel of 0 uA between them changes nothing: a sine beside DC sites of
    # +/-300 uA is out of proportion, so the bound (the sum of the peaks), with or without
    # the idle channel.
    def seg(currents):
        return {"kind": "stim", "currents": currents}
    for currents in ([cur("F4", 500, "sine", 6000), cur("T8", 300), cur("O1", -300)],
                     [cur("F4", 500, "sine", 6000), cur("P4", 0), cur("T8", 300), cur("O1", -300)],
                     [cur("T8", 300), cur("P4", 0), cur("F4", 500, "sine", 6000), cur("O1", -300)]):
        sg = seg(currents)
        assert MC.carried_uA(sg) == V.peak_uA(sg) == 1100, (currents, MC.carried_uA(sg))
    # in proportion, the idle channel between: exact
    sg = seg([cur("T8", 300), cur("P4", 0), cur("O1", -300), cur("F4", 200)])
    assert MC.carried_uA(sg) == 200


def test_a_multi_session_keeps_no_lock_in_sums_and_its_charge_starts_at_zero():
    # docs/wire.md: the supervisors of such a session keep no lock-in sums (lockin=False),
    # so period() has no phase; MultiSup.charge_uC is the largest any electrode delivered:
    # 0 before any current.
    p = mproto([cur("F4", 1000, "sine", 10000), cur("P4", 1000, "sine", 10000, 180), cur("T8", 400)],
               fs=1000, duration_ms=600)
    s = session(p, FakeHal())
    assert s.sup.charge_uC == 0
    assert run(s) == END
    for x in s.sups:
        assert x.st[S.T_LOCKIN] == 0
        assert all(x.st[k] == 0 for k in range(S.P_PL, S.L_DH + 1)), [x.st[k] for k in range(S.P_PL, S.L_DH + 1)]
        per = x.period()
        assert per is not None and per[7] is None, per
    assert s.sup.charge_uC == max(x.charge_uC for x in s.sups) > 0


def test_the_drivers_check_samples_does_the_per_sample_work():
    # hal.base's optional check_samples (a board's Thumb kernel: the viper loop's per-sample
    # work in machine code, without which two sources at 5 kS/s miss their CPU budget):
    # a multi session hands it to the supervisors and it runs for every electrode, with the
    # same codes and states as the viper loop. (CPython has no viper: the same session.)
    from test_check_samples import F, Kernel
    got = []
    for with_kernel in (False, True):
        hal = FakeHal()
        hal.faults = {2: ("open", 700)}
        kern = None
        if with_kernel:
            kern = Kernel(16)               # the control's cap at 2 kS/s: 8 blocks of 2
            hal.check_samples = kern
        try:
            s = session(four(), hal)
            assert s.control.cap == 16
            code = run(s)
        finally:
            S.use_samples(None)
        c = s.control
        got.append((code, c.electrode, c.checked, [list(st[:S.X_STRIDE]) for st in c.sts]))
        if kern is not None and F is not None:
            assert kern.calls >= 5 * 700 // 2, kern.calls         # every block of every electrode
    assert got[0][:3] == (S.OPEN_CIRCUIT, 2, 702) and got[0] == got[1], (got[0][:3], got[1][:3])


# ---- the journal ---------------------------------------------------------------------------

class _Clock:
    def __init__(self, ms):
        self.ms = ms

    def ticks_ms(self):
        return self.ms


class _App:
    def __init__(self, storage, ms):
        self.storage = storage
        self.hal = _Clock(ms)


class _Sess:
    def __init__(self, sid, changes):
        self.sid = sid
        self.opened = J.open_record(sid, "ab" * 32, 1234)
        self.changes = changes


def test_a_named_faults_record_is_finishs_with_the_electrode():
    # finish_named writes tes.journal.finish's record (the same keys and values: online
    # changes only when there were some) and the electrode.
    for changes in ([[150, "amplitude", 900, 300], [400, "frequency", 5000, 800]], []):
        a = storage_dir("mutants-named")
        b = storage_dir("mutants-finish")
        s = _Sess(7, changes)
        MC.finish_named(_App(a, 9876), s, "fault", "open-circuit", 321, 4567, "P4")
        J.finish(b, 7, "fault", "open-circuit", 321, 9876, opened=s.opened, stim_ms=4567, changes=changes)
        named = J.sessions(a)[-1]
        plain = J.sessions(b)[-1]
        assert named.pop("electrode") == "P4"
        assert named == plain, (named, plain)
        assert ("changes" in named) == bool(changes)
