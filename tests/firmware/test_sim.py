"""SimHal: the analog model, faults and virtual clock (unix port and CPython)."""
import sys
import time
from array import array

from hal.calib import conversion, ua_to_code, code_to_ua
from hal.sim import SimHal, SimReset, SimHang
from devrun import BOARD

MP = sys.implementation.name == "micropython"
# The sim board's sense ADC: 12 bits over 3.3 V, 2.7 uA and 16 mV a code, with +/-8 uA and
# +/-40 mV of noise: one reading is within NOISE_UA of the truth.
NOISE_UA = 8 + 3
# Block figures these tests read, from the per-sample sense (hal.base.Hal.sense).
I_MEAN, I_MIN, I_MAX, V_MEAN, V_PEAK, ADC_MOVES, DAC_BACK, SENSE_LEN = 0, 1, 2, 3, 4, 5, 6, 7
_SB = array("i", [0] * 256)
_IB = array("i", [0] * 256)
_VB = array("i", [0] * 256)
_DB = array("i", [0] * 256)


def sim_board(**model):
    import json
    b = json.loads(json.dumps(BOARD))
    b["model"].update(model)
    return b


def sense_block(h, out):
    """hal.sense of the block just written -> out[I_MEAN..DAC_BACK] (allocation-free)."""
    n = h.sense(_SB, _IB, _VB, _DB, 256, 1)
    if n == 0:
        return
    isum = vsum = moves = vpk = 0
    imin = imax = _IB[0]
    for j in range(n):
        i = _IB[j]
        isum += i
        vsum += _VB[j]
        if i < imin:
            imin = i
        if i > imax:
            imax = i
        if j and i != _IB[j - 1]:
            moves += 1
        a = _VB[j] if _VB[j] >= 0 else -_VB[j]
        if a > vpk:
            vpk = a
    out[I_MEAN] = isum // n
    out[I_MIN] = imin
    out[I_MAX] = imax
    out[V_MEAN] = vsum // n
    out[V_PEAK] = vpk
    out[ADC_MOVES] = moves
    out[DAC_BACK] = _DB[n - 1]


def hal(fs=1000, **model):
    h = SimHal(sim_board(**model), storage="build/sim-storage-test")
    h.start(fs)
    h.enable(True)
    return h


def hold(h, uA, ms, blk=1):
    """Drive a constant current for ms; return the last sense figures."""
    buf = array("i", [uA] * blk)
    out = array("i", [0] * SENSE_LEN)
    for _ in range(ms * h.fs // 1000 // blk):
        h.write(buf, blk)
        sense_block(h, out)
        h.feed()
    return out


def test_ohms_law_steady_state():
    h = hal(series_ohm=1000, skin_ohm=10000, skin_ohm_floor=10000)
    s = hold(h, 1000, 200)
    assert abs(s[I_MEAN] - 1000) <= NOISE_UA, s[I_MEAN]
    want = 1000 * 11000 // 1000  # mV
    assert abs(s[V_MEAN] - want) * 100 <= 2 * want, (s[V_MEAN], want)
    s = hold(h, -1500, 200)
    assert abs(s[I_MEAN] + 1500) <= NOISE_UA and abs(s[V_MEAN] + 16500) <= 330


def test_dac_quantization_matches_board_calibration():
    h = hal()
    conv = conversion(h.board)
    out = array("i", [0] * SENSE_LEN)
    buf = array("i", [0])
    for uA in range(-4000, 4001, 37):
        buf[0] = uA
        h.write(buf, 1)
        sense_block(h, out)
        assert out[DAC_BACK] == code_to_ua(conv, ua_to_code(conv, uA)), uA
        assert abs(out[DAC_BACK] - uA) <= 3


def test_compliance_collapse_with_big_load():
    h = hal(series_ohm=500, skin_ohm=40000, skin_ohm_floor=40000)
    s = hold(h, 2000, 300)
    expect = 30000 * 1000 // 40500    # compliance / load, uA
    assert abs(s[I_MEAN] - expect) <= 15, (s[I_MEAN], expect)
    assert 29000 <= s[V_PEAK] <= 30010, s[V_PEAK]


def test_hw_current_limit_clamps():
    b = sim_board()
    b["hw_current_limit_uA"] = 1000
    h = SimHal(b)
    h.start(1000)
    h.enable(True)
    s = hold(h, 3000, 50)
    assert s[I_MAX] <= 1003 and h.peak_uA <= 1000, (s[I_MAX], h.peak_uA)


def test_enable_off_means_no_current():
    h = hal()
    h.enable(False)
    s = hold(h, 2000, 20)
    assert h.peak_uA == 0 and abs(s[I_MEAN]) <= NOISE_UA


def test_skin_resistance_falls_while_current_flows():
    h = hal(skin_ohm=10000, skin_ohm_floor=4000, skin_tau_s=2)
    hold(h, 0, 2000, 10)
    assert h.skin == 10000             # no current: no change
    hold(h, 1000, 2000, 10)            # one time constant
    assert 5900 <= h.skin <= 6500, h.skin   # 4000 + 6000/e = 6207
    hold(h, 1000, 10000, 10)
    assert h.skin < 4100


def test_rc_slows_the_voltage_step():
    h = hal(series_ohm=500, skin_ohm=8000, skin_ohm_floor=8000, skin_nF=2000)  # tau 16 ms
    s = hold(h, 1000, 1)
    assert s[V_MEAN] < 1500                  # first ms: mostly the series R
    s = hold(h, 1000, 200)
    assert abs(s[V_MEAN] - 8500) < 200


def test_virtual_clock():
    h = hal(fs=3000)
    assert h.ticks_ms() == 0
    buf = array("i", [0] * 7)
    for _ in range(3000):
        h.write(buf, 7)
        assert h.room() == 0                    # one 1 ms block (3 samples) is queued
        h.sense(_SB, _IB, _VB, _DB, 256, 1)
        assert h.room() == 3
    assert h.ticks_ms() == 7000 and h.now_us() == 7000000
    h.wait(5)
    assert h.ticks_ms() == 7005


def test_room_and_sense_queue():
    h = hal()
    buf = array("i", [100, 200, 300])
    assert h.room() == 1                        # 1 kS/s: a 1 ms block is one sample
    h.write(buf, 3)
    h.write(buf, 2)
    assert h.room() == 0
    assert h.sense(_SB, _IB, _VB, _DB, 2, 1) == 2 and list(_SB[:2]) == [100, 200]
    assert h.sense(_SB, _IB, _VB, _DB, 8, 1) == 3 and list(_SB[:3]) == [300, 100, 200]
    assert h.sense(_SB, _IB, _VB, _DB, 8, 1) == 0 and h.room() == 1


def test_realtime_paces_writes():
    b = sim_board()
    h = SimHal(b, realtime=True)
    h.start(1000)
    buf = array("i", [0] * 10)
    t0 = time.ticks_ms() if MP else time.monotonic() * 1000
    for _ in range(8):
        h.write(buf, 10)
        h.sense(_SB, _IB, _VB, _DB, 256, 1)
    t1 = time.ticks_ms() if MP else time.monotonic() * 1000
    assert t1 - t0 >= 65, t1 - t0


def _fault(kind, at=100, uA=2000, ms=200, **model):
    h = hal(**model)
    h.inject(kind, at)
    return h, hold(h, uA, ms)


def test_liftoff_opens_the_circuit():
    h, s = _fault("liftoff")
    assert abs(s[I_MEAN]) <= NOISE_UA and s[V_PEAK] >= 29900
    assert h.log() == [(100, "liftoff")]


def test_short_drops_voltage():
    h, s = _fault("short")
    assert abs(s[I_MEAN] - 2000) <= NOISE_UA and abs(s[V_MEAN]) <= 30


def test_dac_stuck_freezes_output_and_readback():
    h = hal()
    h.inject("dac-stuck", 50)
    buf = array("i", [0])
    out = array("i", [0] * SENSE_LEN)
    for t in range(200):
        buf[0] = t * 10
        h.write(buf, 1)
        sense_block(h, out)
    assert abs(out[DAC_BACK] - 490) <= 3 and abs(out[I_MEAN] - 490) <= NOISE_UA
    h.zero()                    # the enable still cuts the output
    hold(h, 0, 5)
    assert h.i_true == 0


def test_adc_stuck_freezes_readings():
    h, s = _fault("adc-stuck")
    a = list(s)
    s = hold(h, 500, 50)
    assert s[ADC_MOVES] == 0 and s[I_MEAN] == a[I_MEAN] and s[V_MEAN] == a[V_MEAN]
    assert s[I_MIN] == s[I_MAX]


def test_noise_moves_the_adc_and_is_deterministic():
    s1 = list(hold(hal(), 1000, 50, 10))
    s2 = list(hold(hal(), 1000, 50, 10))
    assert s1 == s2 and s1[ADC_MOVES] >= 5


def test_drift_raises_impedance():
    h, s = _fault("drift", at=0, ms=2000, fault_drift_ohm_per_s=2000, skin_tau_s=100000)
    assert 11800 <= h.skin <= 12200, h.skin   # 8000 + 2 s * 2000 ohm/s
    assert s[V_MEAN] > 2000 * 12000 // 1000


def test_host_lost_flag():
    h = hal()
    h.inject("host-lost", 30)
    hold(h, 0, 20)
    assert not h.host_gone
    hold(h, 0, 20)
    assert h.host_gone


def test_stall_fires_the_watchdog():
    h = hal()
    h.start_watchdog(50)
    h.inject("stall", 100)
    try:
        hold(h, 2000, 200)
        raise AssertionError("no watchdog reset")
    except SimReset as e:
        assert e.args[0] == "watchdog"
    # Last feed after the block that ended at 99 ms; the loop hung at 100 ms.
    assert h.ticks_ms() == 149 and not h.en and h.resets == 1
    assert h.zero_at_us == 149000
    assert h.log() == [(100, "stall"), (149, "watchdog")]


def test_stall_without_watchdog_hangs_with_output_on():
    h = hal()
    h.inject("stall", 10)
    try:
        hold(h, 2000, 50)
        raise AssertionError("no hang")
    except SimHang:
        pass
    assert h.en and h.stalled()


def test_watchdog_not_fed_resets():
    h = hal()
    h.start_watchdog(20)
    buf = array("i", [1000])
    try:
        for _ in range(100):
            h.write(buf, 1)
        raise AssertionError("no watchdog reset")
    except SimReset:
        pass
    assert h.ticks_ms() == 20 and not h.en


def test_reset_zeroes_from_onset():
    h = hal()
    h.inject("reset", 40)
    try:
        hold(h, 2000, 100)
        raise AssertionError("no reset")
    except SimReset as e:
        assert e.args[0] == "reset"
    assert h.zero_at_us == 40000 and not h.en and h.ticks_ms() == 40
    s = hold(h, 2000, 10)        # after reboot the enable is off until the app says so
    assert h.peak_uA == 2000 or h.i_true == 0
    assert abs(s[I_MEAN]) <= NOISE_UA


def test_storage_is_a_real_directory():
    import os
    h = SimHal(sim_board(), storage="build/sim-storage-test/x")
    d = h.storage()
    with open(d + "/probe", "w") as f:
        f.write("ok")
    os.remove(d + "/probe")


def test_write_and_sense_allocate_nothing():
    if not MP:
        return
    import micropython
    h = hal()
    h.start_watchdog(1000)
    for kind, at in (("liftoff", 5), ("dac-stuck", 6), ("adc-stuck", 7), ("drift", 8),
                     ("host-lost", 9)):
        h.inject(kind, at)
    buf = array("i", [1500] * 10)
    out = array("i", [0] * SENSE_LEN)
    h.write(buf, 10)
    micropython.heap_lock()
    try:
        for _ in range(20):
            h.write(buf, 10)
            sense_block(h, out)
            h.feed()
        h.zero()
    finally:
        micropython.heap_unlock()
    assert len(h.log()) == 5
