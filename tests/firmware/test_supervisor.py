"""Supervisor + SimHal + Engine, block by block (tests/firmware/simrun.py): every fault
kind is caught, hard faults zero the output within 2 ms, soft stops ramp down."""
import sys
from array import array

from hal.base import SENSE_LEN, I_MEAN, I_MIN, I_MAX, V_MEAN, V_PEAK, ADC_MOVES, DAC_BACK
from tes.limits import CEILING
from tes.supervisor import (Supervisor, OK, OVERCURRENT, COMPLIANCE, CHARGE_BUDGET,
                            DURATION_BUDGET, HOST_LOST, OPEN_CIRCUIT, is_hard, NAMES)
import simrun as S

MP = sys.implementation.name == "micropython"
DC = S.proto([S.stim()])                                   # 0.5 s up, 3 s, 0.5 s down
SINE = S.proto([S.stim(waveform="sine", amplitude_uA=1500, frequency_mHz=10000)])


def test_clean_session_completes_with_its_charge():
    r = S.run(DC)
    assert r.outcome == "completed" and r.reason == ""
    assert abs(r.charge_uC - 7000) <= 20, r.charge_uC     # 2 mA * (3 s + 2 * 0.25 s)
    assert r.peak_uA <= 2000
    assert S.run(SINE).outcome == "completed"


def _hard(kind, p, at, bound_ms=2.0, reason=None, **kw):
    r = S.run(p, [(kind, at)], **kw)
    assert r.outcome == "fault" and r.reason == (reason or kind), (kind, r)
    assert not r.hal.en
    assert r.latency_ms() <= bound_ms, (kind, r.latency_ms())
    return r


def test_liftoff_is_open_circuit_within_2ms():
    _hard("liftoff", DC, 1700, reason="open-circuit")
    _hard("liftoff", SINE, 1234, reason="open-circuit")
    _hard("liftoff", S.proto([S.stim()], fs=10000), 1700, reason="open-circuit")


def test_short_within_2ms():
    _hard("short", DC, 1700)
    _hard("short", S.proto([S.stim()], fs=10000), 2100)


def test_dac_stuck_within_2ms_once_visible():
    # A sine moves the set current > 10 uA per ms at once: visible from the onset.
    _hard("dac-stuck", SINE, 1500)
    _hard("dac-stuck", S.proto([S.stim(waveform="sine", amplitude_uA=1500,
                                       frequency_mHz=10000)], fs=5000), 1500)
    # Frozen on a DC plateau: harmless until the ramp-down moves the set current.
    r = S.run(DC, [("dac-stuck", 1700)])
    assert r.reason == "dac-stuck" and 3500 <= r.zero_us // 1000 <= 3505, r.zero_us


def test_adc_stuck():
    # 6 still samples: 6 ms at 1 kS/s, within 2 ms from 3 kS/s up.
    _hard("adc-stuck", DC, 1700, bound_ms=6.0)
    _hard("adc-stuck", S.proto([S.stim()], fs=5000), 1700)
    _hard("adc-stuck", S.proto([S.stim()], fs=10000), 1700)


def test_compliance_when_load_climbs_faster_than_the_soft_stop():
    b = S.sim_board(fault_drift_ohm_per_s=200000)   # 200 ohm per ms
    r = S.run(DC, [("drift", 1500)], board=b)
    assert r.reason in ("impedance-high", "compliance", "tracking-error"), r
    assert r.peak_uA <= 2000


def _soft(kind, p, at, reason, **kw):
    r = S.run(p, [(kind, at)], record=True, **kw)
    assert r.outcome == "stopped" and r.reason == reason, (kind, r)
    # After the stop the set current falls to zero along a ramp, never rises.
    after = [abs(b[1]) for b in r.blocks if b[0] > r.stop_us]
    assert after and after[-1] <= 10
    assert all(x <= after[0] + 2 for x in after)
    assert not r.hal.en and r.zero_us >= r.stop_us
    return r


def test_drift_soft_stops_on_impedance():
    b = S.sim_board(fault_drift_ohm_per_s=2000)
    r = _soft("drift", S.proto([S.stim(duration_ms=20000)]), 1000, "impedance-high", board=b)
    assert r.stop_us < 6000000          # 8.5 kOhm + 2 kOhm/s passes 12.75 kOhm headroom


def test_impedance_max_of_the_protocol():
    r = _soft("drift", S.proto([S.stim(amplitude_uA=500, duration_ms=20000)], z_max=10000),
              1000, "impedance-high", board=S.sim_board(fault_drift_ohm_per_s=2000))
    assert 1700000 <= r.stop_us <= 2300000, r.stop_us    # 8.5 k -> 10 k after 0.75 s


def test_host_lost_soft_stop_after_3s():
    r = _soft("host-lost", S.proto([S.stim(duration_ms=10000)]), 1000, "host-lost")
    assert 4000000 <= r.stop_us <= 4003000, r.stop_us


def test_stall_is_caught_by_the_watchdog():
    r = S.run(DC, [("stall", 1700)], wdt_ms=20)
    assert r.outcome == "fault" and r.reason == "watchdog" and not r.hal.en
    assert r.latency_ms() <= 20


def test_reset_zeroes_at_once():
    r = S.run(DC, [("reset", 1700)])
    assert r.reason == "reset" and r.latency_ms() == 0 and not r.hal.en


def test_journal_records_a_reset_session():
    from tes import journal
    d = "build/sim-storage-test/sup"
    S.SimHal(S.sim_board(), storage=d).storage()
    try:
        import os
        os.remove(d + "/" + journal.NAME)
    except OSError:
        pass
    S.run(DC, journal_dir=d)
    S.run(DC, [("reset", 1000)], journal_dir=d)
    fixed = journal.recover(d, 1000)
    assert len(fixed) == 1 and fixed[0]["reason"] == "reset"
    out = [(r["outcome"], r["reason"]) for r in journal.sessions(d)]
    assert out == [("completed", ""), ("fault", "reset")], out


# ---- the supervisor alone, on synthetic sense figures ----------------------------------
def _sup(**kw):
    lim = dict(CEILING)
    return Supervisor(lim, {"impedance_max_ohm": 20000}, 1000, **kw)


def _sense(i, v, moves=3, dac=None):
    s = array("i", [0] * SENSE_LEN)
    s[I_MEAN] = s[I_MIN] = s[I_MAX] = i
    s[V_MEAN] = v
    s[V_PEAK] = abs(v)
    s[ADC_MOVES] = moves
    s[DAC_BACK] = i if dac is None else dac
    return s


def test_rules_on_synthetic_figures():
    buf = array("i", [2000])
    assert _sup().check(buf, 1, _sense(2000, 17000)) == OK
    assert _sup().check(buf, 1, _sense(4200, 17000, dac=2000)) == OVERCURRENT
    assert _sup().check(buf, 1, _sense(1900, 29500, dac=2000)) == COMPLIANCE
    assert _sup().check(buf, 1, _sense(3, 29500, dac=2000)) == OPEN_CIRCUIT
    assert _sup().check(buf, 1, _sense(2000, 17000), 3001) == HOST_LOST
    assert _sup().check(buf, 1, _sense(2000, 17000), 3000) == OK
    s = _sup(charge_budget_uC=2000)       # 2 uC per 1 ms block at 2 mA
    codes = [s.check(buf, 1, _sense(2000, 17000)) for _ in range(1000)]
    assert codes[998] == OK and codes[999] == CHARGE_BUDGET and s.charge_uC == 2000
    s = _sup(stim_budget_ms=5)
    assert [s.check(buf, 1, _sense(2000, 17000)) for _ in range(5)][-1] == DURATION_BUDGET
    assert is_hard(OVERCURRENT) and not is_hard(HOST_LOST) and NAMES[CHARGE_BUDGET] == "charge-budget"


def test_charge_keeps_sub_uc_remainder():
    s = _sup()
    buf = array("i", [1])
    for _ in range(3000):
        s.check(buf, 1, _sense(1, 10))   # 1 uA for 3 s = 3 uC, one nC at a time
    assert s.charge_uC == 3


def test_impedance_estimate():
    s = _sup()
    buf = array("i", [1000])
    for _ in range(50):
        s.check(buf, 1, _sense(1000, 8500))
    assert s.impedance_ohm() == 8500
    assert s.impedance_ohm() == 8500          # no new data: the last figure


def test_check_allocates_nothing():
    if not MP:
        return
    import micropython
    s = _sup()
    buf = array("i", [2000] * 10)
    sense = _sense(2000, 17000)
    micropython.heap_lock()
    try:
        for _ in range(300):
            c = s.check(buf, 10, sense, 10)
        s.impedance_ohm()
    finally:
        micropython.heap_unlock()
    assert c == OK
