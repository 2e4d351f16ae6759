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
