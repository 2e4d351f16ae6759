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


def test_charge_counts_current_asked_for_and_current_beyond_the_noise_floor():
    def t(fast):
        # Zero set, readings within the floor (sense noise): no charge, over 2 s.
        f = Feed(sup(fast))
        for k in range(2000):
            e = S.Q_FLOOR_uA if k & 1 else -S.Q_FLOOR_uA
            assert f.block([(0, e, e * 5 + (k % 3))]) == S.OK
        assert f.s.charge_uC == 0
        # One uA past the floor with a zero set is current nobody asked for: counted.
        f = Feed(sup(fast))
        for k in range(1000):
            e = S.Q_FLOOR_uA + 1
            f.block([(0, e if k & 1 else -e, 5 * e + (k % 3))])
        assert f.s.charge_uC == S.Q_FLOOR_uA + 1                 # 21 uA for 1 s
        # With a set current, every reading counts, however small (1 uA for 3 s = 3 uC).
        f = Feed(sup(fast))
        for k in range(3000):
            f.block([(1, 1 if k & 1 else -1, 10 + (k & 1))])
        assert f.s.charge_uC == 3
    each(t)


def test_period_figures_over_whole_cycles():
    def t(fast):
        # A 10 Hz sine at 1 kS/s (100 samples a cycle), 1000 uA peak into 6 kOhm with V
        # lagging 40 degrees: period windows of 100 samples (one cycle).
        s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, 1000, dac_tol_uA=10, period_samples=100,
                         fast=fast)
        f = Feed(s)
        assert s.period() is None
        from math import pi, sin
        for k in range(250):
            ph = 2 * pi * k / 100
            a = int(round(1000 * sin(ph)))
            assert f.block([(a, a + (k % 3) - 1, int(round(6000 * sin(ph - 0.698))))]) == S.OK, k
            if k % 20 == 19:
                s.window()                       # the app reads its window 50 times a second
        p = s.period()
        n, set_rms, i_rms, i_pk, v_rms, v_pk, z, ph = p
        assert n == 100 and abs(set_rms - 707) <= 1 and abs(i_rms - 707) <= 2 and i_pk == 1001
        assert abs(v_rms - 4243) <= 3 and abs(v_pk - 6000) <= 2 and abs(z - 6000) <= 12, p
        assert abs(ph - (-3999)) <= 30, p        # V lags I by 0.698 rad: -40 degrees
        assert s.period() is p                   # the same window: computed once
        # A 20 ms window at the same time is a fifth of a cycle: its mean is a phase's.
        w = s.window()
        assert w is not None and abs(w[3]) > 50, w
    each(t)


def test_period_sums_keep_long_windows_exact():
    def t(fast):
        # 10 s windows (0.1 Hz) at 20 kS/s: 200000 samples of 4000 uA / 30 V; the sums of
        # squares pass 2**30 many times over (two words) and still give the RMS.
        s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 50000}, 20000, compliance_mV=40000, dac_tol_uA=10,
                         period_samples=200000, fast=fast)
        f = Feed(s)
        blk = [(3999, 4000 - (j & 1), 30000 - (j & 1)) for j in range(20)]
        for k in range(10000):
            assert f.block(blk) == S.OK, k
            if k % 400 == 0:
                s.window()
        n, set_rms, i_rms, i_pk, v_rms, v_pk, z, ph = s.period()
        assert ph is None                        # DC: no phase
        # (squares kept >> 6 and >> 10, as in the telemetry window: RMS to 1 unit, floored)
        assert n == 200000 and set_rms in (3998, 3999) and i_rms in (3998, 3999, 4000) and i_pk == 4000
        assert v_rms in (29998, 29999, 30000) and v_pk == 30000 and abs(z - 7500) <= 3
    each(t)


def test_lock_in_phase_sign_and_range():
    def t(fast):
        from math import pi, sin
        # Leading, lagging and in-phase V; 6 Hz at 1 kS/s (windows of whole 6 Hz periods
        # as the app asks for: 167 samples, not quite a whole one), 2 mA peak into 3 kOhm.
        for lag_deg in (-60, -15, 0, 30):
            s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, 1000, dac_tol_uA=10, period_samples=167,
                             fast=fast)
            f = Feed(s)
            for k in range(700):
                ph = 2 * pi * 6 * k / 1000
                a = int(round(2000 * sin(ph)))
                f.block([(a, a + (k % 3) - 1, int(round(6000 * sin(ph + lag_deg * pi / 180))))])
            got = s.period()[7]
            assert abs(got - 100 * lag_deg) <= 100, (lag_deg, got)
        # A square wave (biphasic pulses): the crest factor is not a sine's, no phase.
        s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, 1000, dac_tol_uA=10, period_samples=100,
                         fast=fast)
        f = Feed(s)
        for k in range(300):
            a = 1000 if (k // 50) & 1 else -1000
            f.block([(a, a + (k & 1), 3 * a + (k % 3))])
        assert s.period()[6] is not None and s.period()[7] is None
    each(t)


def test_two_word_mean_is_exact():
    for hi, lo, n in ((0, 5, 2), (1, 0, 1), (1000, 12345, 1000), (10476, 16777215, 200000), (63, 1, 7),
                      (29, 16777215, 1), (0, 0, 3), (123456, 654321, 500000), (5, 7, 4194303)):
        assert S._mean2(hi, lo, n) == (hi * 16777216 + lo) // n, (hi, lo, n)


def test_telemetry_window_figures():
    def t(fast):
        f = Feed(sup(fast, fs=5000))
        # A 1000 uA-peak square-ish wave: +1000 and -1000 in turn, into 5 kOhm.
        for k in range(100):
            s = 1000 if k & 1 else -1000
            f.block([(s, s, 5 * s)])
        n, set_mean, set_peak, meas_mean, meas_peak, v_mean, v_peak = f.s.window()
        assert n == 100 and set_mean == 0 and meas_mean == 0 and v_mean == 0
        assert set_peak == 1000 and meas_peak == 1000 and v_peak == 5000
        assert f.s.window() is None                  # cleared
        f.block([(50, 49, -250)])
        assert f.s.window() == (1, 50, 50, 49, 49, -250, 250)
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


# ---- the telemetry window, figure by figure ---------------------------------------------------

class WindowModel:
    """The telemetry window as documented (supervisor.py, window()): sums of set, i and v
    and the peaks of |.| over the samples since the last read; when a block starts on a
    window of W_MAX samples or more, every sum and the count are halved (>> 1) first.
    Figures: means rounded toward zero, and the peaks."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.n = self.s = self.i = self.v = 0
        self.spk = self.ipk = self.vpk = 0

    def block(self, samples):
        if self.n >= 1000:
            self.n >>= 1
            self.s >>= 1
            self.i >>= 1
            self.v >>= 1
        for t in samples:
            s, i, v = t[0], t[1], t[2]
            self.n += 1
            self.s += s
            self.i += i
            self.v += v
            self.spk = max(self.spk, abs(s))
            self.ipk = max(self.ipk, abs(i))
            self.vpk = max(self.vpk, abs(v))

    def window(self):
        n = self.n
        if n == 0:
            return None

        def mean(a):
            q = abs(a) // n
            return q if a >= 0 else -q
        out = (n, mean(self.s), self.spk, mean(self.i), self.ipk, mean(self.v), self.vpk)
        self.clear()
        return out


def feed_both(f, m, samples):
    m.block(samples)
    return f.block(samples)


def test_window_figures_are_exact():
    def t(fast):
        f = Feed(sup(fast, fs=5000))
        m = WindowModel()
        # Both polarities, readings that are not multiples of the fixed-point steps.
        for k in range(37):
            s = 1237 if k % 3 else -811
            assert feed_both(f, m, [(s, s + (k % 5) - 2, 4 * s + 7 * (k % 4)), (s, s + 1, 4 * s - 3)]) == S.OK
        w = f.s.window()
        assert w == m.window(), (w, m.window())
        assert w[0] == 74 and w[2] == 1237 and w[4] == 1239, w
        # Tiny readings: every square sum is 0, every peak 1, one-sample blocks.
        for k in range(12):
            e = 1 if k & 1 else -1
            assert feed_both(f, m, [(0, e, -e)]) == S.OK
        w = f.s.window()
        assert w == (12, 0, 0, 0, 1, 0, 1), w
        m.clear()
        # A window of zero current: no peak, no rms, no impedance.
        f2 = Feed(sup(fast, noisy=False))
        for _k in range(5):
            assert f2.block([(0, 0, 0)]) == S.OK
        assert f2.s.window() == (5, 0, 0, 0, 0, 0, 0)
        assert f2.s.window() is None
    each(t)


def test_window_means_round_toward_zero():
    def t(fast):
        for pair, want in (((1, 2), 1), ((-1, -2), -1), ((0, -1), 0), ((0, 1), 0), ((-3, 0), -1),
                           ((-2, -2), -2), ((3, 4), 3)):
            f = Feed(sup(fast, noisy=False))
            a, b = pair
            assert f.block([(a, a, a), (b, b, b)]) == S.OK
            w = f.s.window()
            assert (w[1], w[3], w[5]) == (want, want, want), (pair, w)
    each(t)


def test_window_halves_when_nobody_reads_it():
    def t(fast):
        # The window reaches exactly 999 or 1000 samples; the next block halves it only in
        # the second case (a block starts on a window of W_MAX = 1000 or more).
        for total, want_n in ((999, 999 + 9), (1000, 500 + 9), (1001, 501 + 9), (1990, 0)):
            f = Feed(sup(fast, fs=10000))
            m = WindowModel()
            k = 0
            while k < total:
                b = min(10, total - k)
                blk = [(2000 + (j & 1), 2100 - (j & 1), 9000 + 3 * (j & 1)) for j in range(b)]
                assert feed_both(f, m, blk) == S.OK
                k += b
            blk = [(-500 - (j & 1), -400 + (j & 1), -3000 - 5 * (j & 1)) for j in range(9)]
            assert feed_both(f, m, blk) == S.OK
            w = f.s.window()
            if want_n:
                assert w[0] == want_n, (total, w)
            assert w == m.window(), (total, w)
        # Without the halving the window would be a plain sum; with it, the newest samples
        # weigh more: 1000 at +2000 uA then 9 at -500 uA has a mean of about +1955 uA.
        f = Feed(sup(fast, fs=10000))
        for _ in range(100):
            f.block([(2000, 2000 + (j & 1), 9000 + (j & 1)) for j in range(10)])
        f.block([(-500, -500 + (j & 1), -3000 + (j & 1)) for j in range(9)])
        w = f.s.window()
        assert w[0] == 509 and 1950 <= w[1] <= 1960, w
    each(t)


# ---- the impedance window ----------------------------------------------------------------------

def test_impedance_window_counts_blocks_from_100_uA():
    def t(fast):
        for i, counted in ((100, True), (-100, True), (99, False), (-99, False)):
            f = Feed(sup(fast, z_max=20000))
            # i exactly i (v moves a little so the ADC is not stuck): 100 windows samples.
            for k in range(100):
                assert f.block([(i, i, 20 * i + (k & 1))]) == S.OK
            z = f.s.impedance_ohm()
            if counted:
                assert abs(z - 20000) <= 10, (i, z)
            else:
                assert z == -1, (i, z)
    each(t)


def test_impedance_of_a_long_window_keeps_its_precision():
    def t(fast):
        # A 0.2 Hz waveform: whole-period windows of 5 s (5000 one-sample blocks at 1 kS/s).
        # The sums pass 2**20: the rule scales both down before dividing, so the ratio holds.
        for amp, v0, zmax in ((2000, 15000, 7600), (-3100, -24000, 7700), (2500, 19999, 8000)):
            f = Feed(sup(fast, z_max=zmax, period=5000))
            zv = zi = 0
            codes = []
            for k in range(10000):
                i = amp + (k % 3)
                v = v0 + (k % 7) * (1 if amp > 0 else -1)
                if k < 5000:
                    zv += abs(v)
                    zi += abs(i)
                codes.append(f.block([(amp, i, v)]))
                if k == 4999:
                    z = f.s.impedance_ohm()
                    exact = 1000 * zv // zi
                    assert abs(z - exact) <= 2, (amp, z, exact)
            high = 1000 * zv // zi > zmax
            if high:
                assert codes[:9999] == [S.OK] * 9999 and codes[9999] == S.IMPEDANCE_HIGH, (amp, codes[-1])
            else:
                assert codes == [S.OK] * 10000, amp
    each(t)


def test_impedance_is_capped_at_one_megaohm():
    def t(fast):
        # A (hypothetical) 400 V stage: V/I of 1 MOhm and more is not in the range of the
        # other rules when the set current is small; the window's figure stops at OPEN_OHM.
        for v, want in ((200000, S.OPEN_OHM), (100050, S.OPEN_OHM), (100000, S.OPEN_OHM),
                        (99950, 999505), (-99950, 999505), (-200000, S.OPEN_OHM)):
            s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, FS, compliance_mV=400000,
                             dac_tol_uA=10, fast=fast)
            f = Feed(s)
            i = 100 if v > 0 else -100
            codes = []
            for k in range(200):
                codes.append(f.block([(40 if v > 0 else -40, i, v + (k & 1) * (1 if v > 0 else -1))]))
                s.window()          # read often: the v*v sums of a 400 V stage fill fast
            assert s.impedance_ohm() == want, (v, s.impedance_ohm())
            assert codes[:199] == [S.OK] * 199 and codes[199] == S.IMPEDANCE_HIGH, (v, codes)
    each(t)


# ---- short and adc-stuck, at their thresholds -------------------------------------------------

def test_short_window_needs_300_uA_mean():
    def t(fast):
        for amp, want in ((299, S.OK), (300, S.SHORT), (-299, S.OK), (-300, S.SHORT)):
            f = Feed(sup(fast))
            # Alternating sign every sample: only the 20 ms window rule can see it.
            codes = [f.block([(amp if k & 1 else -amp, amp if k & 1 else -amp, 20 if k & 1 else -20)])
                     for k in range(40)]
            if want == S.OK:
                assert codes == [S.OK] * 40, (amp, codes)
            else:
                assert codes[:19] == [S.OK] * 19 and codes[19] == S.SHORT, (amp, codes)
    each(t)


def test_noise_free_adc_stuck_on_a_set_moving_more_than_four_tolerances():
    def t(fast):
        for step, want in ((40, S.OK), (41, S.ADC_STUCK), (-40, S.OK), (-41, S.ADC_STUCK)):
            f = Feed(sup(fast, noisy=False, dac_tol=10))
            assert f.block([(1000, 1000, 4999)]) == S.OK
            # 11 unchanged readings while the set moves `step` in all over the block.
            blk = [(1000, 1000, 5000)] * 11 + [(1000 + step, 1000, 5000, 1000 + step)]
            assert f.block(blk) == want, (step, want)
    each(t)


def test_short_threshold_is_short_ohm_on_both_rules():
    # The impedance check before a session (tes.app) refuses under S.SHORT_OHM: the rule
    # during it must use the same figure, on the block rule and on the window rule.
    assert S.SHORT_OHM == 100
    def t(fast):
        for sgn in (1, -1):
            for v, want in ((S.SHORT_OHM - 1, S.SHORT), (S.SHORT_OHM, S.OK)):
                f = Feed(sup(fast))
                f.run(1200, 1000 * sgn, 1000 * sgn, 5000 * sgn)
                assert f.block([(1000 * sgn, 1000 * sgn, v * sgn)]) == want, (sgn, v)
        for v, want in ((S.SHORT_OHM - 1, S.SHORT), (S.SHORT_OHM, S.OK)):
            f = Feed(sup(fast))
            codes = [f.block([(1000 if k & 1 else -1000, 1000 if k & 1 else -1000, v if k & 1 else -v)])
                     for k in range(20)]
            assert codes[19] == want and codes[:19] == [S.OK] * 19, (v, codes)
    each(t)


def test_sign_hold_restarts_after_a_zero_set():
    def t(fast):
        for sgn in (1, -1):
            f = Feed(sup(fast))
            f.run(1200, 1000 * sgn, 1000 * sgn, 5000 * sgn)        # the sign has held 1200 samples
            assert f.block([(0, 0, 0)]) == S.OK                    # the set passes zero
            codes = [f.noisy(1000 * sgn, 1000 * sgn, 5000 * sgn) for _ in range(999)]
            assert codes == [S.OK] * 999
            # 999 samples since: a block of 50 ohm is no short yet; at 1000 it is.
            assert f.block([(1000 * sgn, 1000 * sgn, 50 * sgn)]) == S.OK, sgn
            assert f.block([(1000 * sgn, 1000 * sgn, 50 * sgn)]) == S.SHORT, sgn
            # A change of sign restarts it too.
            f = Feed(sup(fast))
            f.run(1200, 1000 * sgn, 1000 * sgn, 5000 * sgn)
            f.run(1, -1000 * sgn, -1000 * sgn, -5000 * sgn)
            assert f.block([(-1000 * sgn, -1000 * sgn, -50 * sgn)]) == S.OK, sgn
    each(t)


def test_dac_count_restarts_on_a_good_readback():
    def t(fast):
        for off in (11, -11):
            f = Feed(sup(fast))
            # bad, good, bad, good ...: never two running.
            blk = [(1000, 1000 + (k & 1), 5000 + (k & 1), 1000 + (off if k % 2 == 0 else 0)) for k in range(8)]
            assert f.block(blk) == S.OK
            assert f.block([(1000, 1000, 5000, 1000 + off)]) == S.OK        # after a good one
            assert f.block([(1000, 1001, 5001, 1000)]) == S.OK
            assert f.block([(1000, 1000, 5000, 1000 + off)]) == S.OK
            assert f.block([(1000, 1001, 5001, 1000 + off)]) == S.DAC_STUCK
    each(t)


def test_default_readback_tolerance_is_50_uA():
    def t(fast):
        for off, want in ((50, S.OK), (-50, S.OK), (51, S.DAC_STUCK), (-51, S.DAC_STUCK)):
            s = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, FS, fast=fast)
            f = Feed(s)
            assert f.block([(1000, 1000, 5000, 1000 + off), (1000, 1001, 5001, 1000 + off)]) == want, off
    each(t)


def test_magnitudes_of_minus_one():
    def t(fast):
        # |set| of a -1 uA sample counts +1 in the mean |set| (open-circuit floor: 50 uA).
        f = Feed(sup(fast))
        assert f.block([(99, 10, 20000), (-1, 11, 20001)]) == S.OPEN_CIRCUIT
        f = Feed(sup(fast))
        assert f.block([(-99, -10, -20000), (1, -11, -20001)]) == S.OPEN_CIRCUIT
        f = Feed(sup(fast))
        assert f.block([(98, 10, 20000), (-1, 11, 20001)]) == S.OK
        # A -1 uA tracking error counts +1: 801 over two blocks of 4 at 1000 uA (limit 800).
        for sgn in (1, -1):
            f = Feed(sup(fast))
            blk = [(1000 * sgn, 1267 * sgn, 5000 * sgn), (1000 * sgn, 1267 * sgn, 5001 * sgn),
                   (1000 * sgn, 1266 * sgn, 5000 * sgn), (1000 * sgn, 999 * sgn, 5001 * sgn)]
            f.noisy(1000 * sgn, 1000 * sgn, 5000 * sgn)          # the set has settled
            assert f.block(blk) == S.OK
            assert f.block(blk) == S.TRACKING, sgn
            f = Feed(sup(fast))
            f.noisy(1000 * sgn, 1000 * sgn, 5000 * sgn)
            blk[2] = (1000 * sgn, 1265 * sgn, 5000 * sgn)
            assert f.block(blk) == S.OK
            assert f.block(blk) == S.OK, sgn
        # Steps of -1 uA count +1 each in the set's movement (noise-free ADC exemption:
        # more than 4 * 5 uA of movement with unchanged readings is a stuck ADC).
        for steps, want in ((20, S.OK), (21, S.ADC_STUCK)):
            for sgn in (1, -1):
                f = Feed(sup(fast, noisy=False, dac_tol=5))
                assert f.block([(1000, 1000, 4999)]) == S.OK
                blk = [(1000 - sgn * min(k, steps), 1000, 5000) for k in range(1, 25)]
                assert f.block(blk) == want, (steps, sgn)
    each(t)


def test_state_layout():
    names = [n for n in dir(S) if n[:2] in ("T_", "S_", "W_", "P_", "L_", "X_") and n not in ("W_MAX", "W_END", "P_LO")]
    idx = sorted(getattr(S, n) for n in names)
    assert idx == list(range(S.STATE_LEN)), idx         # every slot once, none shared
    assert len(S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, FS).st) == S.STATE_LEN
    codes = [getattr(S, n) for n in ("OK", "OPEN_CIRCUIT", "SHORT", "OVERCURRENT", "TRACKING", "DAC_STUCK",
                                     "ADC_STUCK", "COMPLIANCE", "IMPEDANCE_HIGH", "CHARGE_BUDGET",
                                     "DURATION_BUDGET", "HOST_LOST", "MEMORY", "UNDERRUN")]
    assert codes == list(range(14))
    assert [S.name(c) for c in codes] == list(S.NAMES) and len(S.NAMES) == 14


def _fast_constants():
    """NAME -> value of every `_NAME = const(N)` in tes/supervisor_fast.py (its source:
    the viper module does not import under CPython)."""
    try:
        import os
        here = os.path.dirname(__file__)
    except (ImportError, AttributeError):
        here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    out = {}
    with open(here + "/../../firmware/tes/supervisor_fast.py") as fh:
        for line in fh:
            line = line.split("#")[0].strip()
            if line.startswith("_") and "= const(" in line:
                name, val = line.split("=", 1)
                out[name.strip()[1:]] = int(val.strip()[len("const("):-1])
    return out


def test_viper_twin_shares_the_layout_and_thresholds():
    fast = _fast_constants()
    shared = [n for n in fast if hasattr(S, n)]
    assert len(shared) >= 40, shared
    for n in shared:
        assert fast[n] == getattr(S, n), (n, fast[n], getattr(S, n))


def test_impedance_window_lengths():
    for fs, n in ((1, 1), (9, 1), (10, 1), (20, 2), (1000, 100), (5000, 500), (20000, 2000), (50000, 5000),
                  (99999, 9999)):
        assert S.z_window(fs) == n, (fs, S.z_window(fs))
        assert S.z_window(fs, 0) == n and S.z_window(fs, -5) == n
    # Whole periods up to a period of Z_WIN_MAX_MS (10 s) inclusive; slower is steady.
    assert S.z_window(1000, 10000) == 10000
    assert S.z_window(1000, 9999) == 9999
    assert S.z_window(5000, 50000) == 50000 and S.z_window(5000, 50001) == 500
    assert S.z_window(20000, 2000) == 2000 and S.z_window(20000, 2001) == 2001
    assert S.z_window(20000, 999) == 2997 and S.z_window(20000, 1000) == 2000
    assert S.z_window(1000, 1) == 100 and S.z_window(1000, 3) == 102


def test_impedance_arithmetic_at_the_2_to_20_boundary():
    # The window sums are scaled until zi is under 2**20 (both halved each time), then
    # z = 1000 * zv // zi. Windows whose sum of mean |i| is exactly 2**20 and 2**20 - 1,
    # with a zv where one halving more or less moves the result by an ohm.
    def t(fast):
        for last_i, extra, want in ((2048, 197, 4882), (2047, 188, 4882)):
            f = Feed(sup(fast, fs=5120, z_max=20000))     # 512-sample windows
            zv = zi = 0
            for k in range(512):
                i = last_i if k == 511 else 2048
                v = 10000 + (k + 1) * extra // 512 - k * extra // 512
                zv += v
                zi += i
                assert f.block([(i, i, v)]) == S.OK, k
            assert zi == 1048576 - (2048 - last_i) and zv == 5120000 + extra
            z = zv
            while zi >= 1 << 20:
                zi >>= 1
                z >>= 1
            assert 1000 * z // zi == want
            assert f.s.impedance_ohm() == want, (last_i, f.s.impedance_ohm())
    each(t)


def test_sign_hold_counts_from_the_first_sample_of_a_sign_even_1_uA():
    # The short rule's sign hold (SIGN_HOLD_MS = 1000 samples at 1 kS/s) starts at the
    # first sample that has the sign: a +1 uA sample counts like any other.
    def t(fast):
        # (a sample before the run, one inside it) -> the two short blocks' codes
        for first, inner, want in ((1, 1000, [S.OK, S.SHORT]), (0, 1000, [S.OK, S.OK]),
                                   (1000, 1, [S.OK, S.SHORT])):
            for sgn in (1, -1):
                f = Feed(sup(fast))
                assert f.block([(first * sgn, first * sgn, 5 * first * sgn)]) == S.OK
                assert f.block([(inner * sgn, inner * sgn, 5 * inner * sgn)]) == S.OK
                assert f.run(997, 1000 * sgn, 1000 * sgn, 5000 * sgn) == S.OK
                got = [f.block([(1000 * sgn, 1000 * sgn, 99 * sgn)]) for _ in range(2)]
                assert got == want, (first, inner, sgn, got)
    each(t)


def test_two_word_sums_carry_at_exactly_2_to_24():
    # Every low word of the whole-period sums stays in [0, 2**24): a sum that lands on
    # exactly 2**24 carries into its high word (value kept, low word 0).
    pairs = ((S.P_SL, S.P_SH), (S.P_IL, S.P_IH), (S.P_VL, S.P_VH), (S.P_PL, S.P_PH), (S.P_QL, S.P_QH),
             (S.P_DL, S.P_DH))
    blk = [(100 * k, 100 * k + 3, 700 * k + 1) for k in range(1, 11)]     # rising: every sum grows

    def t(fast):
        probe = Feed(sup(fast, period=1000))
        assert probe.block(blk) == S.OK
        grow = [probe.s.st[lo] for lo, hi in pairs]
        assert all(0 < g < S.P_LO for g in grow), grow
        f = Feed(sup(fast, period=1000))
        for (lo, hi), g in zip(pairs, grow):
            f.s.st[lo] = S.P_LO - g          # this block brings it to exactly 2**24
            f.s.st[hi] = 5
        assert f.block(blk) == S.OK
        assert [(f.s.st[lo], f.s.st[hi]) for lo, hi in pairs] == [(0, 6)] * len(pairs)
        f = Feed(sup(fast, period=1000))
        for (lo, _hi), g in zip(pairs, grow):
            f.s.st[lo] = S.P_LO - g - 1      # one short of it: no carry
        assert f.block(blk) == S.OK
        assert [(f.s.st[lo], f.s.st[hi]) for lo, hi in pairs] == [(S.P_LO - 1, 0)] * len(pairs)
        # The cross sums (V x I, V x dI) fall with a falling current into a voltage of the
        # other sign: a low word that lands on exactly -1 borrows from its high word.
        down = [(-100 * k, -100 * k - 3, 700 * k + 1) for k in range(1, 11)]
        cross = ((S.P_PL, S.P_PH), (S.P_QL, S.P_QH))
        probe = Feed(sup(fast, period=1000))
        assert probe.block(down) == S.OK
        fall = [probe.s.st[lo] + probe.s.st[hi] * S.P_LO for lo, hi in cross]     # (borrowed from 0)
        assert all(-S.P_LO < g < 0 for g in fall), fall
        for extra, want in ((1, (S.P_LO - 1, 4)), (0, (0, 5))):
            f = Feed(sup(fast, period=1000))
            for (lo, hi), g in zip(cross, fall):
                f.s.st[lo] = -g - extra      # this block brings it to exactly -1 (or 0)
                f.s.st[hi] = 5
            assert f.block(down) == S.OK
            assert [(f.s.st[lo], f.s.st[hi]) for lo, hi in cross] == [want] * 2, extra
    each(t)


def test_duration_budget_is_exact_in_samples_for_any_ms():
    # stim_budget_ms -> samples of non-zero set current: ms * fs // 1000, whole seconds and
    # their remainder alike; the budget stops on the sample that reaches it.
    def t(fast):
        for fs, ms in ((5000, 1000), (5000, 1500), (1000, 2999), (2000, 1001)):
            want = ms * fs // 1000
            f = Feed(sup(fast, fs=fs, stim_budget_ms=ms))
            codes = [f.noisy(100, 100, 500) for _ in range(want)]
            assert codes[-1] == S.DURATION_BUDGET, (fs, ms, codes[-3:])
            assert S.DURATION_BUDGET not in codes[:-1], (fs, ms, codes.index(S.DURATION_BUDGET))
    each(t)


def test_lock_in_phase_only_for_a_sine_like_crest_factor_and_enough_current():
    # The phase is reported when i_rms >= Z_MIN_uA and 1.35 <= peak / RMS <= 1.48 (a sine's
    # 1.414, with room for rounding): sines clipped flat or with one spike per half cycle,
    # each bound met exactly and missed by the least step the figures allow.
    cases = (  # amplitude, clip, spike, (relation the figures must meet), phase reported
        (1000, 0, 1046, lambda r, p: 147 * r < 100 * p <= 148 * r, True),
        (918, 0, 961, lambda r, p: 100 * p == 148 * r, True),
        (1000, 0, 1047, lambda r, p: 148 * r < 100 * p <= 149 * r, False),
        (923, 863, 0, lambda r, p: 100 * p == 135 * r, True),
        (900, 841, 0, lambda r, p: 135 * r < 100 * p < 136 * r, True),
        (900, 829, 0, lambda r, p: 134 * r <= 100 * p < 135 * r, False),
        (142, 0, 0, lambda r, p: r == S.Z_MIN_uA, True),
        (141, 0, 0, lambda r, p: r == S.Z_MIN_uA - 1, False),
    )

    def t(fast):
        from math import pi, sin
        for amp, clip, spike, figures, phase in cases:
            s = sup(fast, period=100, z_max=20000)
            f = Feed(s)
            for k in range(250):
                a = int(round(amp * sin(2 * pi * k / 100)))
                if clip:
                    a = max(-clip, min(clip, a))
                if spike and k % 50 == 25:
                    a = spike if a > 0 else -spike
                assert f.block([(a, a + (k % 3) - 1, 3 * a + (k % 3))]) == S.OK, k
            n, set_rms, i_rms, i_pk, v_rms, v_pk, z, ph = s.period()
            assert figures(i_rms, i_pk), (amp, clip, spike, i_rms, i_pk)
            assert (ph is not None) == phase, (amp, clip, spike, ph)
            assert (z is not None) == (i_rms >= S.Z_MIN_uA), (i_rms, z)     # 100 uA RMS: an impedance
    each(t)


def test_open_circuit_at_compliance_is_exactly_over_one_megaohm():
    # At compliance, V/I > 1 MOhm is open-circuit and V/I = 1 MOhm (current flows) is
    # compliance: |v| against 1000 |i| at the tie and one step past it, both polarities.
    def t(fast):
        for sgn in (1, -1):
            for v, i, want in ((30000, 30, S.COMPLIANCE), (30030, 30, S.OPEN_CIRCUIT), (30001, 30, S.OPEN_CIRCUIT),
                               (30029, 30, S.OPEN_CIRCUIT), (30000, 31, S.COMPLIANCE)):
                f = Feed(sup(fast))
                got = f.block([(30 * sgn, i * sgn, v * sgn)])
                assert got == want, (v, i, sgn, got)
    each(t)


def test_impedance_high_needs_two_windows_in_a_row():
    # A window under the limit between two over it starts the count again: no soft stop.
    def t(fast):
        f = Feed(sup(fast, z_max=20000))          # 100 ms windows at 1 kS/s
        codes = [f.noisy(1000, 1000, 20001) for _ in range(100)]
        codes += [f.noisy(1000, 1000, 19000) for _ in range(100)]
        codes += [f.noisy(1000, 1000, 20001) for _ in range(100)]
        assert codes == [S.OK] * 300, codes.index(S.IMPEDANCE_HIGH)
        assert [f.noisy(1000, 1000, 20001) for _ in range(100)][-1] == S.IMPEDANCE_HIGH
    each(t)


def test_stim_ms_is_exact_for_any_sample_count():
    # Stimulation time in ms, floored: samples of non-zero set * 1000 // fs, without
    # leaving small ints (whole seconds and their remainder apart).
    def t(fast):
        for fs, n in ((5000, 9999), (5000, 7501), (1000, 1234), (20000, 19999)):
            s = sup(fast, fs=fs)
            f = Feed(s)
            k = 0
            while k < n:
                m = min(20, n - k)
                f.block([(100, 100 + (j & 1), 500 - (j & 1)) for j in range(m)])
                k += m
            assert s.stim_ms == n * 1000 // fs, (fs, n, s.stim_ms)
    each(t)
