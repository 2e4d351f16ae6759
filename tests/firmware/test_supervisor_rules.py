"""Every supervisor rule on synthetic aligned samples: just under, at and just over its
threshold, on both polarities, with the code it must give. Each test runs on the plain
kernel and, where the viper emitter exists, on its twin.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import sys
from array import array

from tes import supervisor as S
from tes.limits import CEILING

FS = 1000          # one sample per ms: block n samples = n ms


def kernels():
    out = [False]
    if S._fast is not None:
        out.append(True)
    return out


def sup(fast, fs=FS, z_max=20000, period=0, dac_tol=10, noisy=True, **kw):
    return S.Supervisor(dict(CEILING), {"impedance_max_ohm": z_max}, fs, compliance_mV=30000,
                        dac_tol_uA=dac_tol, noisy_adc=noisy, period_samples=period, fast=fast, **kw)


class Feed:
    """Blocks of (set, i, v, readback) samples into a supervisor."""

    def __init__(self, s):
        self.s = s
        self.sb = array("i", [0] * 32)
        self.ib = array("i", [0] * 32)
        self.vb = array("i", [0] * 32)
        self.db = array("i", [0] * 32)
        self.k = 0

    def block(self, samples, age=0):
        n = 0
        for t in samples:
            s, i, v = t[0], t[1], t[2]
            self.sb[n], self.ib[n], self.vb[n] = s, i, v
            self.db[n] = t[3] if len(t) > 3 else s
            n += 1
        return self.s.check(self.sb, self.ib, self.vb, self.db, n, age)

    def noisy(self, s, i, v, n=1, age=0, d=None):
        """n samples near (s, i, v) with a little ADC noise (readings differ)."""
        out = []
        for _ in range(n):
            self.k += 1
            e = 1 if self.k & 1 else -1
            out.append((s, i + e, v + e, s if d is None else d))
        return self.block(out, age)

    def run(self, blocks, s, i, v, n=1):
        code = 0
        for _ in range(blocks):
            code = self.noisy(s, i, v, n)
            if code:
                return code
        return code


def each(fn):
    for fast in kernels():
        fn(fast)


def test_normal_load_is_ok_on_both_polarities():
    def t(fast):
        f = Feed(sup(fast))
        assert f.run(3000, 2000, 2000, 17000) == S.OK
        f = Feed(sup(fast))
        assert f.run(3000, -2000, -2000, -17000) == S.OK
    each(t)


def test_overcurrent():
    def t(fast):
        for i, want in ((4100, S.OK), (4101, S.OVERCURRENT), (-4100, S.OK), (-4101, S.OVERCURRENT)):
            f = Feed(sup(fast))
            # Set follows i so tracking stays quiet; v a normal load.
            d = -1 if i > 0 else 1           # the second reading a little smaller
            assert f.block([(i, i, 2000), (i, i + d, 2001)]) == want, (i, want)
            assert f.s.code == want
    each(t)


def test_compliance_and_open_at_compliance():
    def t(fast):
        for v in (29100, -29100):
            f = Feed(sup(fast))
            assert f.block([(1000, 1000, v)]) == S.COMPLIANCE
            f = Feed(sup(fast))
            assert f.block([(1000, 29, v)]) == S.OPEN_CIRCUIT     # 29100 mV / 29 uA > 1 MOhm
            f = Feed(sup(fast))
            assert f.block([(1000, 30, v)]) == S.COMPLIANCE       # exactly 970 kOhm: current flows
        f = Feed(sup(fast))
        assert f.block([(1000, 1000, 29099)]) == S.IMPEDANCE_HIGH  # under compliance, over headroom
    each(t)


def test_headroom_is_a_soft_stop():
    def t(fast):
        for v, want in ((25499, S.OK), (25500, S.IMPEDANCE_HIGH), (-25500, S.IMPEDANCE_HIGH)):
            f = Feed(sup(fast))
            assert f.block([(2000, 2000, v)]) == want, v
        assert not S.is_hard(S.IMPEDANCE_HIGH)
    each(t)


def test_dac_stuck_needs_two_samples_beyond_the_tolerance():
    def t(fast):
        for off in (10, -10):
            f = Feed(sup(fast))
            assert f.block([(1000, 1000, 5000, 1000 + off), (1000, 1001, 5001, 1000 + off)]) == S.OK
        for off in (11, -11):
            f = Feed(sup(fast))
            assert f.block([(1000, 1000, 5000, 1000 + off), (1000, 1001, 5001, 1000)]) == S.OK
            f = Feed(sup(fast))
            assert f.block([(1000, 1000, 5000, 1000 + off)]) == S.OK
            assert f.block([(1000, 1001, 5001, 1000 + off)]) == S.DAC_STUCK   # across blocks too
        f = Feed(sup(fast, dac_tol=50))
        assert f.block([(-800, -800, -4000, -751), (-800, -801, -4001, -849)]) == S.OK
        assert f.block([(-800, -800, -4000, -749), (-800, -801, -4001, -851)]) == S.DAC_STUCK
    each(t)


def test_open_circuit_by_voltage_over_current():
    def t(fast):
        # mean |set| >= 50 and mean |V| > 1000 * mean |I| (over 1 MOhm)
        f = Feed(sup(fast))
        assert f.block([(50, 20, 20001)]) == S.OPEN_CIRCUIT
        f = Feed(sup(fast))
        assert f.block([(-50, -20, -20001)]) == S.OPEN_CIRCUIT
        f = Feed(sup(fast))
        assert f.block([(50, 20, 20000)]) == S.OK
        f = Feed(sup(fast))
        assert f.block([(49, 20, 20001)]) == S.OK
    each(t)


def test_open_circuit_by_collapsed_current():
    def t(fast):
        for sgn in (1, -1):
            f = Feed(sup(fast))
            assert f.block([(200 * sgn, 24 * sgn, 200 * sgn)]) == S.OPEN_CIRCUIT     # 24 * 8 < 200
            f = Feed(sup(fast))
            assert f.block([(200 * sgn, 25 * sgn, 200 * sgn)]) == S.OK               # 25 * 8 = 200
            f = Feed(sup(fast))
            assert f.block([(199 * sgn, 0, 0)]) == S.OK                             # under 200 uA set
    each(t)


def test_short_on_a_steady_current_once_its_sign_held():
    def t(fast):
        for sgn in (1, -1):
            f = Feed(sup(fast))
            assert f.run(999, 1000 * sgn, 1000 * sgn, 5000 * sgn) == S.OK        # hold: 999 samples
            assert f.block([(1000 * sgn, 1000 * sgn, 99 * sgn)]) == S.OK         # hold 1000 reached now...
            assert f.block([(1000 * sgn, 1000 * sgn, 99 * sgn)]) == S.SHORT      # ...V/I = 99 ohm
            f = Feed(sup(fast))
            f.run(1200, 1000 * sgn, 1000 * sgn, 5000 * sgn)
            assert f.block([(1000 * sgn, 1000 * sgn, 100 * sgn)]) == S.OK        # 100 ohm: not a short
            f = Feed(sup(fast))
            f.run(1200, 299 * sgn, 299 * sgn, 1500 * sgn)
            assert f.block([(299 * sgn, 299 * sgn, 0)]) == S.OK                 # under 300 uA: blind
            f = Feed(sup(fast))
            f.run(1200, 300 * sgn, 300 * sgn, 1500 * sgn)
            assert f.block([(300 * sgn, 300 * sgn, 0)]) == S.SHORT
    each(t)


def test_short_on_an_alternating_current_needs_a_window():
    def t(fast):
        f = Feed(sup(fast))
        # The set current alternates sign every sample: the block rule never applies;
        # the 20 ms window rule does.
        codes = [f.block([(1000 if k & 1 else -1000, 1000 if k & 1 else -1000, 50 if k & 1 else -50)])
                 for k in range(40)]
        assert codes[:19] == [S.OK] * 19 and codes[19] == S.SHORT, codes
        f = Feed(sup(fast))
        codes = [f.block([(1000 if k & 1 else -1000, 1000 if k & 1 else -1000, 100 if k & 1 else -100)])
                 for k in range(100)]
        assert codes == [S.OK] * 100
    each(t)


def test_tracking_error_needs_two_blocks():
    def t(fast):
        for sgn in (1, -1):
            f = Feed(sup(fast))
            # tolerance: 100 uA + 10 % of mean |set| (1000 -> 100) + steps of set (none)
            assert f.block([(1000 * sgn, 1200 * sgn, 5000 * sgn)] * 4) == S.OK
            assert f.block([(1000 * sgn, 1200 * sgn, 5000 * sgn)] * 4) == S.OK       # exactly at it
            assert f.block([(1000 * sgn, 1201 * sgn, 5000 * sgn)] * 4) == S.OK       # first block over
            assert f.block([(1000 * sgn, 1201 * sgn, 5000 * sgn)] * 4) == S.TRACKING
            f = Feed(sup(fast))
            assert f.block([(1000 * sgn, 799 * sgn, 5000 * sgn)] * 4) == S.OK
            assert f.block([(1000 * sgn, 1000 * sgn, 5000 * sgn)] * 4) == S.OK       # a good block resets
            assert f.block([(1000 * sgn, 799 * sgn, 5000 * sgn)] * 4) == S.OK
    each(t)


def test_tracking_allows_one_step_of_skew_on_a_moving_set():
    def t(fast):
        f = Feed(sup(fast))
        # The set climbs 150 uA a sample and the measurement lags it by one sample.
        samples = [(1000 + 150 * k, 1000 + 150 * (k - 1), 5000) for k in range(8)]
        for _ in range(3):
            assert f.block(samples) == S.OK
    each(t)


def test_adc_stuck_needs_eight_unchanged_readings():
    def t(fast):
        f = Feed(sup(fast))
        f.noisy(1000, 1000, 5000)
        assert f.block([(1000, 1000, 5000)] * 8) == S.OK     # 8 equal readings: 7 unchanged
        assert f.block([(1000, 1000, 5000)]) == S.ADC_STUCK  # the 8th unchanged reading
        f = Feed(sup(fast))
        codes = [f.block([(-1000, -1001, -5000)]) for _ in range(9)]
        assert codes[:8] == [S.OK] * 8 and codes[8] == S.ADC_STUCK, codes
        # Only one channel still: not stuck.
        f = Feed(sup(fast))
        assert f.block([(1000, 1000, 5000 + k % 2) for k in range(20)]) == S.OK
        # A noise-free ADC on a still set is exempt; a moving set still catches it.
        f = Feed(sup(fast, noisy=False))
        assert f.block([(1000, 1000, 4999)]) == S.OK           # the set settles at 1000 uA
        assert f.block([(1000, 1000, 5000)] * 20) == S.OK
        f = Feed(sup(fast, noisy=False))
        assert f.block([(1000 + 50 * k, 1000, 5000) for k in range(12)]) == S.ADC_STUCK
    each(t)


def test_impedance_window_needs_two_windows_over_the_lockout():
    def t(fast):
        f = Feed(sup(fast, z_max=20000))
        # 100 ms windows at 1 kS/s; 1000 uA into 20.001 kOhm.
        codes = [f.noisy(1000, 1000, 20001) for _ in range(300)]
        assert codes[:199] == [S.OK] * 199 and codes[199] == S.IMPEDANCE_HIGH, codes.index(S.IMPEDANCE_HIGH)
        f = Feed(sup(fast, z_max=20000))
        codes = [f.noisy(-1000, -1000, -20000) for _ in range(300)]
        assert codes == [S.OK] * 300
        assert f.s.impedance_ohm() == 20000
        # Blocks under 100 uA do not count in the window.
        f = Feed(sup(fast, z_max=20000))
        codes = [f.noisy(97, 97, 9000) for _ in range(300)]
        assert codes == [S.OK] * 300 and f.s.impedance_ohm() == -1
    each(t)


def test_impedance_window_spans_whole_periods():
    assert S.z_window(1000) == 100
    assert S.z_window(5000) == 500
    assert S.z_window(5000, 500) == 500           # 10 Hz: one period is 100 ms
    assert S.z_window(5000, 193) == 579           # 25.9 Hz: 3 periods cover 100 ms
    assert S.z_window(5000, 1000) == 1000         # 5 Hz: one whole period, 200 ms
    assert S.z_window(1000, 10001) == 100         # slower than 0.1 Hz: treated as steady


def test_budgets_and_host_lost():
    def t(fast):
        f = Feed(sup(fast, charge_budget_uC=20))
        # 2000 uA for 10 samples at 1 kS/s = 20 uC, reached on the 10th sample.
        codes = [f.noisy(2000, 2000, 10000) for _ in range(10)]
        assert codes[:9] == [S.OK] * 9 and codes[9] == S.CHARGE_BUDGET, codes
        f = Feed(sup(fast, stim_budget_ms=5))
        codes = [f.noisy(100, 100, 500) for _ in range(5)]
        assert codes[:4] == [S.OK] * 4 and codes[4] == S.DURATION_BUDGET, codes
        f = Feed(sup(fast, stim_budget_ms=5))
        assert [f.noisy(0, 0, 0) for _ in range(20)] == [S.OK] * 20     # zero set is no stimulation
        f = Feed(sup(fast))
        assert f.noisy(1000, 1000, 5000, age=3000) == S.OK
        assert f.noisy(1000, 1000, 5000, age=3001) == S.HOST_LOST
    each(t)


def test_first_code_latches_and_hard_soft_split():
    def t(fast):
        f = Feed(sup(fast))
        assert f.noisy(1000, 1000, 5000, age=4000) == S.HOST_LOST
        assert f.block([(1000, 4200, 5000)]) == S.OVERCURRENT
        assert f.s.code == S.HOST_LOST
    each(t)
    hard = [c for c in range(len(S.NAMES)) if S.is_hard(c)]
    assert [S.NAMES[c] for c in hard] == ["open-circuit", "short", "overcurrent", "tracking-error",
                                          "dac-stuck", "adc-stuck", "compliance", "memory", "underrun"]


def test_charge_keeps_the_sub_uc_remainder_and_uses_magnitude():
    def t(fast):
        f = Feed(sup(fast))
        for k in range(3000):
            f.block([(1, 1 if k & 1 else -1, 10 + (k & 1))])   # |1 uA| for 3 s = 3 uC
        assert f.s.charge_uC == 3
        f = Feed(sup(fast, fs=5000))
        f.run(5000, -2000, -2000, -10000, n=1)                  # 2 mA for 1 s = 2000 uC
        assert f.s.charge_uC == 2000 and f.s.stim_ms == 1000
    each(t)


def test_telemetry_window_figures():
    def t(fast):
        f = Feed(sup(fast, fs=5000))
        # A 1000 uA-peak square-ish wave: +1000 and -1000 in turn, into 5 kOhm.
        for k in range(100):
            s = 1000 if k & 1 else -1000
            f.block([(s, s, 5 * s)])
        n, set_mean, set_rms, meas_mean, meas_rms, meas_peak, v_mean, v_rms, v_peak, z = f.s.window()
        assert n == 100 and set_mean == 0 and meas_mean == 0 and v_mean == 0
        assert set_rms == 1000 and meas_rms == 1000 and meas_peak == 1000
        assert abs(v_rms - 5000) <= 16 and v_peak == 5000
        assert abs(z - 5000) <= 16
        assert f.s.window() is None                  # cleared
        f.block([(50, 50, 250)])
        w = f.s.window()
        assert w[0] == 1 and w[9] is None            # under 100 uA: no impedance figure
    each(t)


def test_isqrt():
    for x in (0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 10 ** 6, (1 << 30) - 1):
        r = S.isqrt(x)
        assert r * r <= x < (r + 1) * (r + 1), x


def test_check_allocates_nothing():
    if sys.implementation.name != "micropython":
        return
    import micropython

    def t(fast):
        s = sup(fast, fs=20000)
        f = Feed(s)
        samples = [(2000, 2000 + k % 3, 17000 - k % 2) for k in range(20)]
        f.block(samples)
        micropython.heap_lock()
        try:
            for _ in range(300):
                c = s.check(f.sb, f.ib, f.vb, f.db, 20, 10)
        finally:
            micropython.heap_unlock()
        assert c == S.OK
    each(t)
