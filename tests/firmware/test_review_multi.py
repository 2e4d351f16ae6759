"""Review of the multi-electrode block path (issue 12, helper-27): cases the first tests did
not pin down. Two electrodes failing in different blocks of one sense; a hard fault late in
a batch after a soft one early in it; an electrode asked for no current; a small electrode
beside a large return share (its impedance lockout several times the protocol's) lifting
off on the simulated network: the open circuit stops it all the same, at once.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
from tes import multicontrol as MC
from tes import supervisor as S

from test_app_multi import liftoff, sim_events, sim_run
from test_multicontrol import FakeHal, cur, four, mproto, run, session


def batch_case(faults, host_lost_from=None):
    """four() on a fake HAL writing and sensing 8 samples (4 blocks of 2) at once: batches
    start at multiples of 8 (600 is one). -> (code, control)."""
    hal = FakeHal()
    hal.lead = 8
    hal.faults = faults
    s = session(four(), hal)
    c = s.control
    for _ in range(200000):
        late = host_lost_from is not None and c.checked >= host_lost_from
        code = c.step(S.HOST_LOST_MS + 1 if late else 0)
        if code:
            return code, c
    raise AssertionError("no code")


def test_two_electrodes_failing_in_different_blocks_of_one_sense_name_the_earlier():
    # The batch 600..607: one electrode opens in its second block, another in its fourth.
    # The earlier block decides, whichever electrode index comes first.
    for early, late in ((3, 1), (1, 3), (0, 2), (2, 0)):
        code, c = batch_case({early: ("open", 602), late: ("open", 606)})
        assert code == S.OPEN_CIRCUIT, (early, late, code)
        assert c.electrode == early, (early, late, c.electrode)
        assert c.checked == 604 and c.last_m == 2, c.checked
        sb, ib, vb, db, a = c.evidence()
        assert a == 2 and all(abs(x) <= 2 for x in ib[a:a + 2])     # the early one's block


def test_a_hard_fault_late_in_a_batch_wins_over_a_soft_one_early_in_it():
    # host-lost (soft, every electrode, from the batch's first block) and an open circuit
    # in its last block: the hard one, its electrode, every sample up to it checked.
    code, c = batch_case({2: ("open", 606)}, host_lost_from=600)
    assert code == S.OPEN_CIRCUIT and c.electrode == 2, (code, c.electrode)
    assert c.checked == 608
    # without the open: host-lost names none and the whole batch is checked
    code, c = batch_case({}, host_lost_from=600)
    assert code == S.HOST_LOST and c.electrode == -1 and c.checked == 608


def test_an_electrode_asked_for_no_current():
    # F4 at 0 uA all session: its overcurrent bound is the margin alone, its impedance
    # unjudged; current through it names it; its liftoff trips nothing (none flows).
    p = mproto([cur("F4", 0), cur("P4", 800), cur("T8", 800)])
    hal = FakeHal()
    s = session(p, hal)
    assert s.sups[0].st[S.T_IOVER] == S.OVER_MARGIN_uA and s.sups[0].st[S.T_ZMAX] == S.OPEN_OHM
    hal.faults = {0: ("over", 600, 150)}
    code = run(s)
    assert code == S.OVERCURRENT and s.control.electrode == 0, (code, s.control.electrode)
    assert 600 < s.control.checked <= 602
    # on the simulated network its liftoff changes nothing: no current was asked of it
    d = sim_run(small_beside_large(0), "h27-zero-lift", faults=[("liftoff", 800, "F4")])
    d.run_to_end()
    assert d.outcome() == ("completed", "completed") and not sim_events(d, "fault")
    assert "liftoff" in [ev for ms, ev in d.hal.log()]


def small_beside_large(amp):
    """F4 at amp uA beside P4 at 1000 uA, the return T8: F4's reading is its contact plus
    the return's times (amp + 1000) / amp."""
    p = mproto([cur("F4", amp), cur("P4", 1000)], ret="T8", fs=1000, duration_ms=1500, ramp_ms=200)
    for e in p["montage"]["electrodes"]:
        e["area_mm2"] = 0
    return p


def test_the_lockout_is_bounded_and_never_below_the_protocols():
    for zmax in (100, 20000, 50000):                 # the validator's range (limits: 50 kOhm)
        for peak in (1, 50, 100, 500, 4000):
            for ret in (peak, peak + 1, 2 * peak, 4000, 8000):
                if ret < peak:
                    continue
                z = MC.lockout(zmax, peak, ret)
                assert zmax <= z <= S.OPEN_OHM, (zmax, peak, ret, z)
                assert zmax * (peak + ret) < 1 << 30     # small ints on the 32-bit port
    assert MC.lockout(20000, 100, 1100) == 120000     # F4 below: six times the protocol's


def test_a_small_electrode_with_a_high_lockout_still_opens_at_once():
    # Its lockout is 120 kOhm (100 uA) or 520 kOhm (40 uA, under the 50 uA open-circuit
    # floor): a liftoff is not an impedance for the lockout to judge but an open circuit
    # (compliance, or V/I past 1 MOhm), hard, named, within the two-electrode bound.
    for amp, tag in ((100, "h27-small-100"), (40, "h27-small-40")):
        latency, f, end, rec = liftoff(small_beside_large(amp), "F4", 800, tag)
        assert f["fault"] in ("open-circuit", "compliance") and f["detail"] == "hard", (amp, f)
        assert f["electrode"] == "F4" and rec["electrode"] == "F4", (amp, f, rec)
        assert 0 <= latency <= 2000, (amp, latency)


def test_a_compliance_fault_wins_over_host_lost_in_its_block():
    # onset mid-block (current in its first sample): compliance, hard, over the soft
    # host-lost every electrode reports in the same block
    code, c = batch_case({2: ("open", 607)}, host_lost_from=600)
    assert code == S.COMPLIANCE and c.electrode == 2 and c.checked == 608, (code, c.electrode, c.checked)


def test_a_soft_code_every_step_is_reported_every_step():
    # host-lost comes each block of the soft stop it begins: every check reports it (the
    # app's stop logic sees it; a stale per-electrode code must not swallow it)
    s = session(four(), FakeHal())
    c = s.control
    for _ in range(3):
        assert c.step(S.HOST_LOST_MS + 1) == S.HOST_LOST and c.electrode == -1
    c.electrode = 2                 # a clean check names no electrode, whatever came before
    assert c.step(0) == 0 and c.electrode == -1


def test_one_sample_blocks_name_and_evidence():
    # 1 kS/s: blocks of one sample, 4 sensed at once; the open electrode's block is the third
    p = mproto([cur("C3", 500), cur("FC1", 500), cur("CP5", 500), cur("FC5", 500)], ret="Cz", fs=1000)
    hal = FakeHal()
    hal.lead = 4
    hal.faults = {1: ("open", 302)}
    s = session(p, hal)
    assert run(s) == S.OPEN_CIRCUIT
    c = s.control
    assert c.electrode == 1 and c.checked == 303 and c.last_m == 1
    sb, ib, vb, db, a = c.evidence()
    assert a == 2 and abs(ib[a]) <= 2 and vb[a] >= 29000 and sb[a] == 500


def test_the_supervisors_thresholds_are_the_boards():
    from devrun import BOARD

    from test_multicontrol import LIMITS
    p = mproto([cur("F4", 1000), cur("P4", 500)])
    sups = MC.supervisors(p, LIMITS, BOARD, 2000, 0)
    comp = BOARD["compliance_V"] * 1000
    for x in sups:
        assert x.st[S.T_VCOMP] == comp * S.COMPLIANCE_PCT // 100
        assert x.st[S.T_DACTOL] == BOARD["sense"]["readback_tol_uA"]
    # a board that leaves them out: 30 V and 50 uA
    bare = dict(BOARD)
    del bare["compliance_V"]
    bare["sense"] = {}
    for x in MC.supervisors(p, LIMITS, bare, 2000, 0):
        assert x.st[S.T_VCOMP] == 30000 * S.COMPLIANCE_PCT // 100 and x.st[S.T_DACTOL] == 50
    del bare["sense"]
    assert MC.supervisors(p, LIMITS, bare, 2000, 0)[0].st[S.T_DACTOL] == 50
    assert MC.lockout(20000, 1, 1) == 20000          # one microampere is a current: judged


def control4():
    return session(four(), FakeHal()).control


def test_carries_is_a_mean_of_fifty_microamps_over_the_block():
    c = control4()
    sb = c.sbs[2]
    for vals, want in (((50, 50), True), ((50, 49), False), ((-50, -50), True), ((-1, 99), True),
                       ((-1, 98), False), ((0, 100), True), ((0, 99), False)):
        sb[4] = vals[0]
        sb[5] = vals[1]
        assert c.carries(2, 4, 6) == want, (vals, want)     # a later block of the batch
        sb[0] = vals[0]
        sb[1] = vals[1]
        assert c.carries(2, 0, 2) == want, (vals, want)


def rise_case(z0s, zs, sets):
    """common_rise over block 0..1 with each driven electrode's first impedance window z0,
    its last z and its set current."""
    c = control4()
    for k in range(4):
        c.zbase[k] = z0s[k]
        c.sts[k][S.S_ZLAST] = zs[k]
        c.sbs[k][0] = c.sbs[k][1] = sets[k]
    return c.common_rise(0, 2)


def test_common_rise_names_the_return_only_for_a_rise_alike():
    on = (500, 500, 500, 500)
    base = (1000, 1000, 1000, 1000)
    assert rise_case(base, (2000, 1500, 1600, 1900), on)          # 1000, 500, 600, 900 per mille
    assert not rise_case(base, (2000, 1499, 1600, 1900), on)      # 499: under half of 1000
    assert rise_case(base, (1002, 1001, 1001, 1002), on)          # tiny, but alike
    assert rise_case(base, (1001, 1001, 1001, 1001), on)          # one per mille each
    assert not rise_case(base, (1000, 1000, 1000, 1000), on)      # no rise
    assert not rise_case(base, (900, 800, 900, 900), on)          # a fall
    assert not rise_case(base, (3000, 3000, 1000, 3000), on)      # one of them did not rise
    # only the electrodes carrying current count, two at least
    assert rise_case(base, (2000, 1000, 2000, 1000), (500, 0, 500, 0))
    assert not rise_case(base, (2000, 1000, 1000, 1000), (500, 0, 0, 0))
    # a carrying electrode without a first window yet: no judgement (the first electrode)
    assert not rise_case((1000, 0, 1000, 1000), (2000, 2000, 2000, 2000), on)
    assert not rise_case((1000, -1, 1000, 1000), (2000, 2000, 2000, 2000), on)
    assert rise_case((1000, -1, 1000, 1000), (2000, 2000, 2000, 2000), (500, 0, 500, 500))


class HeadroomHal(FakeHal):
    """The fake HAL with electrode e's voltage at 26 V (past the 85 % headroom, under the
    97 % compliance: impedance-high, soft) on the samples high[e] = (first, end)."""

    def __init__(self, high):
        FakeHal.__init__(self)
        self.high = high
        self.sensed = 0

    def start(self, fs, channels=1):
        FakeHal.start(self, fs, channels)
        self.sensed = 0

    def sense(self, sb, ib, vb, db, n, b):
        m = FakeHal.sense(self, sb, ib, vb, db, n, b)
        C = self.C
        for e in self.high:
            a, z = self.high[e]
            for k in range(m):
                if a <= self.sensed + k < z:
                    vb[k * C + e] = 26000
        self.sensed += m
        return m


def headroom_case(high, faults):
    hal = HeadroomHal(high)
    hal.lead = 8
    hal.faults = faults
    s = session(four(), hal)
    return run(s), s.control


def test_a_soft_fault_in_one_block_of_a_batch_checks_the_rest_of_it():
    # impedance-high in the batch's second block only: the rest of the batch is checked
    # (no more, no less), the fault named
    code, c = headroom_case({1: (602, 604)}, {})
    assert code == S.IMPEDANCE_HIGH and c.electrode == 1 and c.checked == 608, (code, c.electrode, c.checked)


def test_a_hard_fault_beside_a_soft_one_of_a_lower_index_in_one_block_is_hard():
    # electrode 0 past the headroom (soft) and electrode 2 at compliance (hard) in the
    # batch's last block: compliance, electrode 2 (a soft code there would only ramp down)
    code, c = headroom_case({0: (606, 608)}, {2: ("open", 607)})
    assert code == S.COMPLIANCE and c.electrode == 2 and c.checked == 608, (code, c.electrode, c.checked)


def test_check_all_checks_the_samples_from_its_j0():
    # Control.run calls its check again from j0 = j after a soft code that left samples
    # (check_run's contract): check_all must check samples j0.., not 0.. again.
    c = control4()
    C = 4
    for k in range(8):
        for e in range(C):
            i = 500 + (k + e) % 3 - 1            # a noisy ADC: never still
            c.sbs[e][k] = 500
            c.ibs[e][k] = i
            c.vbs[e][k] = i * 5
            c.dbs[e][k] = 500
        c.sbs[C][k] = -2000
        c.ibs[C][k] = c.vbs[C][k] = -sum(c.ibs[e][k] for e in range(C))
        c.dbs[C][k] = -2000
    for k in (4, 5):                             # electrode 1 off the skin in samples 4 and 5
        c.ibs[1][k] = 0
        c.vbs[1][k] = 29500
        c.ibs[C][k] = c.vbs[C][k] = -sum(c.ibs[e][k] for e in range(C))
    st = c.sts[C]
    assert c.check_all(st, c.sb, c.ib, c.vb, c.db, 4, 0, 0, 2) == 4 << 5     # 0..3: clean
    assert c.check_all(st, c.sb, c.ib, c.vb, c.db, 4, 0, 4, 2) == (2 << 5) | S.OPEN_CIRCUIT
    assert c.electrode == 1
    sb, ib, vb, db, a = c.evidence()
    assert a == 4 and list(ib[4:6]) == [0, 0] and list(vb[4:6]) == [29500, 29500]
