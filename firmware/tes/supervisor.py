"""Per-block safety supervisor: compares, sample by sample, what the engine asked for with
what the sense chain measured for that same sample, and returns a fault code.

Input per block (from hal.sense, aligned): set current (uA), measured current (uA),
electrode voltage (mV), DAC readback (uA). All state lives in one array('i') (layout
below) so the per-block pass (check) allocates nothing, runs with the heap locked, keeps
every int within +/-2**30, and has a viper twin (tes.supervisor_fast) that gives the same
codes and the same state, bit for bit (tested).

Rules (first match wins, in this order). HARD = hal.zero() at once (output zero, enable
off); SOFT = ramp down over SOFT_RAMP_MS, then zero. Blocks are at most 1 ms.
  overcurrent      HARD  any |i| > max_current_uA + OVER_MARGIN_uA
  open-circuit     HARD  |v| >= COMPLIANCE_PCT of compliance with V/I > OPEN_OHM
  compliance       HARD  |v| >= COMPLIANCE_PCT of compliance, current still flowing
  dac-stuck        HARD  |readback - set| > dac_tol_uA on DAC_SAMPLES samples running
  open-circuit     HARD  mean |set| >= 50 uA and mean|V| / mean|I| > OPEN_OHM, or the
                         current collapsed (mean |i| < 1/8 of a mean |set| >= 200 uA)
  short            HARD  mean|V| / mean|I| < SHORT_OHM with mean |i| >= 300 uA: over the
                         block when the set current has kept its sign for SIGN_HOLD_MS
                         (the skin capacitance then charges the same way as the current),
                         else over a SHORT_WIN_MS window (an AC current through the skin
                         capacitance passes voltage zero crossings: V/I over a short time
                         is not an impedance)
  tracking-error   HARD  mean |i - set| > TRACK_MIN_uA + mean |step of set| + 10 % of mean
                         |set|, for TRACK_BLOCKS blocks running (the step term allows for
                         up to one sample of skew between the DAC and the sense ADC)
  adc-stuck        HARD  current and voltage readings unchanged for ADC_STUCK_SAMPLES
                         samples running (a real ADC is noisy; a still set current with a
                         noise-free ADC is exempt)
  impedance-high   SOFT  mean|V| / mean|I| over a window of whole periods of the slowest
                         periodic waveform (>= 100 ms) above the protocol's lockout, two
                         windows running; or |v| >= HEADROOM_PCT of compliance
  charge-budget    SOFT  delivered charge >= budget: the integral of |measured current| over
                         every sample with a nonzero set, and over a zero-set sample only
                         where |i| > Q_FLOOR_uA (the sense chain's noise with no current
                         asked for is not charge: ~1.6 % of a 20 % duty tPCS session)
  duration-budget  SOFT  stimulation time (samples with a nonzero set) >= budget
  host-lost        SOFT  heartbeat age passed by the app > HOST_LOST_MS
The ratio of mean absolute values equals the RMS ratio (the impedance magnitude) for DC,
a sine and Gaussian noise through a linear load.

Telemetry figures, read in the app's tick (never in the control path): window() gives the
means (and 20 ms RMS/peaks) since its last call; period() gives the RMS, peaks and
v_rms / i_rms of the last completed impedance window, which spans whole periods of the
slowest periodic waveform, so they hold still on AC (a 20 ms window is a fifth of a 10 Hz
cycle: its RMS and V/I swing with the phase). check() only adds each block's sums of
squares (and the lock-in products v[k-1]*i[k-1], v[k-1]*(i[k]-i[k-2]), (i[k]-i[k-2])**2)
into two-word accumulators and latches them when the window completes.
"""
try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from tes import compat as micropython
    from tes.compat import const

OK = const(0)
OPEN_CIRCUIT = const(1)
SHORT = const(2)
OVERCURRENT = const(3)
TRACKING = const(4)
DAC_STUCK = const(5)
ADC_STUCK = const(6)
COMPLIANCE = const(7)
IMPEDANCE_HIGH = const(8)
CHARGE_BUDGET = const(9)
DURATION_BUDGET = const(10)
HOST_LOST = const(11)
MEMORY = const(12)          # the block path ran out of memory (the heap is locked there)
UNDERRUN = const(13)        # the output ran dry (it put out zero current): the CPU fell behind
NAMES = ("ok", "open-circuit", "short", "overcurrent", "tracking-error", "dac-stuck",
         "adc-stuck", "compliance", "impedance-high", "charge-budget", "duration-budget",
         "host-lost", "memory", "underrun")

OVER_MARGIN_uA = const(100)
TRACK_MIN_uA = const(100)
TRACK_BLOCKS = const(2)
DAC_SAMPLES = const(2)
COMPLIANCE_PCT = const(97)
HEADROOM_PCT = const(85)
OPEN_OHM = const(1000000)
SHORT_OHM = const(100)
Z_MIN_uA = const(100)         # below this mean current an impedance figure is mostly noise
SHORT_MIN_uA = const(300)     # 100 ohm x 300 uA = 30 mV: what the voltage channel resolves
OPEN_MIN_uA = const(50)
COLLAPSE_MIN_uA = const(200)
Q_FLOOR_uA = const(20)        # charge: |i| at or under this with a zero set is sense noise
ADC_STUCK_SAMPLES = const(8)
HOST_LOST_MS = const(3000)
SOFT_RAMP_MS = const(1000)
SIGN_HOLD_MS = const(1000)
SHORT_WIN_MS = const(20)
Z_WIN_MS = const(100)
Z_WIN_MAX_MS = const(10000)

# ---- the state array ------------------------------------------------------------------------
# thresholds, set once
T_IOVER = const(0)      # overcurrent above (uA)
T_VCOMP = const(1)      # compliance at or above (mV)
T_VHEAD = const(2)      # headroom at or above (mV)
T_DACTOL = const(3)     # readback error above (uA)
T_NOISY = const(4)      # 1: the ADC is noisy, equal readings are suspicious even on a still set
T_ZMAX = const(5)       # impedance lockout (ohm)
T_ZWIN = const(6)       # impedance window (samples)
T_QMAX = const(7)       # charge budget (uC)
T_TMAX = const(8)       # stimulation budget (samples)
T_FS = const(9)         # sample rate
T_HOLD = const(10)      # SIGN_HOLD_MS in samples
T_SWIN = const(11)      # SHORT_WIN_MS in samples
# running state
S_CODE = const(12)      # first fault code seen (latched)
S_QUC = const(13)       # delivered charge (uC)
S_QREM = const(14)      # uA x samples not yet a whole uC
S_STIM = const(15)      # samples with a nonzero set
S_TRACK = const(16)     # blocks in a row with a tracking error
S_DAC = const(17)       # samples in a row with a readback error
S_STILL = const(18)     # samples in a row with unchanged readings
S_PI = const(19)        # previous sample: measured current
S_PV = const(20)        #   voltage
S_PSET = const(21)      #   set current
S_HOLD = const(22)      # samples since the set current last changed sign or was zero
S_SV = const(23)        # short window: sum |v|
S_SI = const(24)        #   sum |i|
S_SN = const(25)        #   samples
S_ZV = const(26)        # impedance window: sum of per-block mean |v|
S_ZI = const(27)        #   sum of per-block mean |i| (blocks with enough current)
S_ZN = const(28)        #   samples
S_ZHIGH = const(29)     #   windows in a row above the lockout
S_ZLAST = const(30)     #   last window's impedance (ohm), -1 before the first
# telemetry window, read and cleared by the app (window())
W_N = const(31)         # samples
W_SET = const(32)       # sum of set
W_I = const(33)         # sum of i
W_V = const(34)         # sum of v
W_SPK = const(35)       # largest |set|
W_IPK = const(36)       # largest |i|
W_VPK = const(37)       # largest |v|
# whole-period figures (period()): the impedance window's samples (S_ZN, T_ZWIN), every
# block, squares in the window's scales as two words (lo < 2**24, hi counts 2**24)
P_SL = const(38)        # sum of set*set >> 6: low word
P_SH = const(39)        #   high word
P_IL = const(40)        # sum of i*i >> 6
P_IH = const(41)
P_VL = const(42)        # sum of v*v >> 10
P_VH = const(43)
P_IPK = const(44)       # largest |i|
P_VPK = const(45)       # largest |v|
# ...latched when the impedance window completes (P_* then restart)
L_SL = const(46)        # (L_x = P_x + 8)
L_SH = const(47)
L_IL = const(48)
L_IH = const(49)
L_VL = const(50)
L_VH = const(51)
L_IPK = const(52)
L_VPK = const(53)
L_N = const(54)         # samples
L_CNT = const(55)       # windows latched so far (mod 2**30): period() recomputes on a change
# lock-in terms over the same window (two words, signed high word): with v and i one sample
# back and i two back, v[k-1]*i[k-1] >> 4, v[k-1]*(i[k] - i[k-2]) >> 4, (i[k] - i[k-2])**2 >> 4
P_PL = const(56)
P_PH = const(57)
P_QL = const(58)
P_QH = const(59)
P_DL = const(60)
P_DH = const(61)
L_PL = const(62)        # (L_x = P_x + 6)
L_PH = const(63)
L_QL = const(64)
L_QH = const(65)
L_DL = const(66)
L_DH = const(67)
S_PPI = const(68)       # measured current two samples back
T_LOCKIN = const(69)    # 1: the lock-in sums (P_P*, P_Q*, P_D*) and period()'s phase; 0: none
# check_run's per-sample results where a Thumb kernel computes them (hal.check_thumb; the
# plain and viper loops keep them in locals): the buffers' distance, one block's flags, sums
# of |s|, |s - s_prev|, |i|, the charge's |i|, |v|, |i - s|, peaks of |i|, |v|, |s|, sums
# of s, i, v, s*s >> 6, i*i >> 6, v*v >> 10, and the kernel's end address
X_STRIDE = const(70)
X_DACBAD = const(71)
X_STILLBAD = const(72)
X_SABS = const(73)
X_SDIF = const(74)
X_IABS = const(75)
X_QABS = const(76)
X_VABS = const(77)
X_EABS = const(78)
X_IPK = const(79)
X_VPK = const(80)
X_SPK = const(81)
X_WSET = const(82)
X_WI = const(83)
X_WV = const(84)
X_WSSQ = const(85)
X_WISQ = const(86)
X_WVSQ = const(87)
X_END = const(88)
STATE_LEN = const(89)
W_END = const(38)       # window() clears W_N .. W_END - 1
# A telemetry window holds at most about this many samples (its sums stay small ints).
W_MAX = const(1000)
P_LO = const(16777216)  # 2**24: a P_ low word carries into its high word from here


def is_hard(code):
    return OPEN_CIRCUIT <= code <= COMPLIANCE or code >= MEMORY


def name(code):
    return NAMES[code]


def check(st, sb, ib, vb, db, n, host_age_ms, j0):
    """One block of aligned samples, sb[j0:j0 + n] and so on -> fault code (OK = 0).
    Allocates nothing. (j0: the control loop senses several blocks in one call and checks
    them in place; a slice would allocate.)
    The plain reference: tes.supervisor_fast.check is its viper twin, statement for
    statement."""
    iover = st[T_IOVER]
    vcomp = st[T_VCOMP]
    dtol = st[T_DACTOL]
    pi = st[S_PI]
    pv = st[S_PV]
    ps = st[S_PSET]
    hold = st[S_HOLD]
    dac = st[S_DAC]
    still = st[S_STILL]
    stim = st[S_STIM]
    dac_bad = 0
    still_bad = 0
    sabs = 0
    sdif = 0
    iabs = 0
    qabs = 0
    vabs = 0
    eabs = 0
    ipk = 0
    vpk = 0
    spk = 0
    wset = 0
    wi = 0
    wv = 0
    wssq = 0
    wisq = 0
    wvsq = 0
    ppi = st[S_PPI]
    lock = st[T_LOCKIN]
    wp = 0
    wq = 0
    wd = 0
    for j in range(j0, j0 + n):
        s = sb[j]
        i = ib[j]
        v = vb[j]
        a = s if s >= 0 else -s
        sabs += a
        if a > spk:
            spk = a
        if s != 0:
            stim += 1
        if (s > 0 and ps > 0) or (s < 0 and ps < 0):
            hold += 1
        else:
            hold = 0
        a = s - ps
        sdif += a if a >= 0 else -a
        a = i if i >= 0 else -i
        iabs += a
        if s != 0 or a > Q_FLOOR_uA:
            qabs += a
        if a > ipk:
            ipk = a
        a = v if v >= 0 else -v
        vabs += a
        if a > vpk:
            vpk = a
        a = i - s
        eabs += a if a >= 0 else -a
        a = db[j] - s
        if a > dtol or a < -dtol:
            dac += 1
            if dac >= DAC_SAMPLES:
                dac_bad = 1
        else:
            dac = 0
        if i == pi and v == pv:
            still += 1
            if still >= ADC_STUCK_SAMPLES:
                still_bad = 1
        else:
            still = 0
        wset += s
        wi += i
        wv += v
        wssq += (s * s) >> 6
        wisq += (i * i) >> 6
        wvsq += (v * v) >> 10
        if lock:
            wp += (pv * pi) >> 4
            a = i - ppi
            wq += (pv * a) >> 4
            wd += (a * a) >> 4
        ppi = pi
        pi = i
        pv = v
        ps = s
    st[S_PPI] = ppi
    st[S_PI] = pi
    st[S_PV] = pv
    st[S_PSET] = ps
    st[S_HOLD] = hold
    st[S_DAC] = dac
    st[S_STILL] = still
    st[S_STIM] = stim
    # telemetry window (bounded: nobody reading keeps the oldest half)
    if st[W_N] >= W_MAX:
        st[W_N] = st[W_N] >> 1
        st[W_SET] = st[W_SET] >> 1
        st[W_I] = st[W_I] >> 1
        st[W_V] = st[W_V] >> 1
    st[W_N] = st[W_N] + n
    st[W_SET] = st[W_SET] + wset
    st[W_I] = st[W_I] + wi
    st[W_V] = st[W_V] + wv
    if spk > st[W_SPK]:
        st[W_SPK] = spk
    if ipk > st[W_IPK]:
        st[W_IPK] = ipk
    if vpk > st[W_VPK]:
        st[W_VPK] = vpk
    # charge, from the measured current
    q = st[S_QREM] + qabs
    fs = st[T_FS]
    st[S_QUC] = st[S_QUC] + q // fs
    st[S_QREM] = q % fs
    # means over the block
    smean = sabs // n
    imean = iabs // n
    vmean = vabs // n
    code = OK
    if ipk > iover:
        code = OVERCURRENT
    elif vpk >= vcomp:
        # At compliance: an open circuit if almost no current flows (V/I > 1 MOhm).
        if vpk > 1000 * ipk:
            code = OPEN_CIRCUIT
        else:
            code = COMPLIANCE
    elif dac_bad:
        code = DAC_STUCK
    elif smean >= OPEN_MIN_uA and vabs > 1000 * iabs:
        code = OPEN_CIRCUIT
    elif smean >= COLLAPSE_MIN_uA and imean * 8 < smean:
        code = OPEN_CIRCUIT
    if code == OK:
        # short: over the block once the set current has kept its sign long enough...
        if hold >= st[T_HOLD] and imean >= SHORT_MIN_uA and vabs * 10 < iabs:
            code = SHORT
        # ...and over a window that spans voltage zero crossings in any case
        st[S_SV] = st[S_SV] + vabs
        st[S_SI] = st[S_SI] + iabs
        st[S_SN] = st[S_SN] + n
        if st[S_SN] >= st[T_SWIN]:
            if st[S_SI] >= SHORT_MIN_uA * st[S_SN] and st[S_SV] * 10 < st[S_SI]:
                code = SHORT
            st[S_SV] = 0
            st[S_SI] = 0
            st[S_SN] = 0
    if code == OK:
        lim = smean // 10
        if eabs > (TRACK_MIN_uA + lim) * n + sdif:
            st[S_TRACK] = st[S_TRACK] + 1
            if st[S_TRACK] >= TRACK_BLOCKS:
                code = TRACKING
        else:
            st[S_TRACK] = 0
    if code == OK and still_bad and (st[T_NOISY] or sdif > 4 * dtol):
        code = ADC_STUCK
    if code == OK:
        # impedance window: per-block means, blocks with enough current only
        if imean >= Z_MIN_uA:
            st[S_ZV] = st[S_ZV] + vmean
            st[S_ZI] = st[S_ZI] + imean
        # whole-period RMS and peaks: every block, whatever its current
        a = st[P_SL] + wssq
        if a >= P_LO:
            st[P_SH] = st[P_SH] + (a >> 24)
            a = a & 16777215
        st[P_SL] = a
        a = st[P_IL] + wisq
        if a >= P_LO:
            st[P_IH] = st[P_IH] + (a >> 24)
            a = a & 16777215
        st[P_IL] = a
        a = st[P_VL] + wvsq
        if a >= P_LO:
            st[P_VH] = st[P_VH] + (a >> 24)
            a = a & 16777215
        st[P_VL] = a
        if ipk > st[P_IPK]:
            st[P_IPK] = ipk
        if vpk > st[P_VPK]:
            st[P_VPK] = vpk
        if lock:            # (without it wp = wq = wd = 0: the sums stay as they are)
            a = st[P_PL] + wp
            if a < 0 or a >= P_LO:
                st[P_PH] = st[P_PH] + (a >> 24)
                a = a & 16777215
            st[P_PL] = a
            a = st[P_QL] + wq
            if a < 0 or a >= P_LO:
                st[P_QH] = st[P_QH] + (a >> 24)
                a = a & 16777215
            st[P_QL] = a
            a = st[P_DL] + wd
            if a >= P_LO:
                st[P_DH] = st[P_DH] + (a >> 24)
                a = a & 16777215
            st[P_DL] = a
        st[S_ZN] = st[S_ZN] + n
        if st[S_ZN] >= st[T_ZWIN]:
            st[L_N] = st[S_ZN]
            for k in range(P_SL, P_VPK + 1):
                st[k + 8] = st[k]
                st[k] = 0
            for k in range(P_PL, P_DH + 1):
                st[k + 6] = st[k]
                st[k] = 0
            st[L_CNT] = (st[L_CNT] + 1) & 0x3FFFFFFF
            zi = st[S_ZI]
            if zi:
                zv = st[S_ZV]
                # 1000 * zv // zi without leaving small ints: scale zi under 2**20 first.
                while zi >= 1048576:
                    zi = zi >> 1
                    zv = zv >> 1
                if zv // zi >= OPEN_OHM // 1000:
                    z = OPEN_OHM
                else:
                    z = (zv // zi) * 1000 + ((zv % zi) * 1000) // zi
                st[S_ZLAST] = z
                if z > st[T_ZMAX]:
                    st[S_ZHIGH] = st[S_ZHIGH] + 1
                else:
                    st[S_ZHIGH] = 0
            st[S_ZV] = 0
            st[S_ZI] = 0
            st[S_ZN] = 0
        if st[S_ZHIGH] >= 2 or vpk >= st[T_VHEAD]:
            code = IMPEDANCE_HIGH
        elif st[S_QUC] >= st[T_QMAX]:
            code = CHARGE_BUDGET
        elif stim >= st[T_TMAX]:
            code = DURATION_BUDGET
        elif host_age_ms > HOST_LOST_MS:
            code = HOST_LOST
    if code and not st[S_CODE]:
        st[S_CODE] = code
    return code


try:
    from tes import supervisor_fast as _fast    # viper twin on MicroPython
except (ImportError, SyntaxError):              # CPython, or a port without viper
    _fast = None


def use_samples(fn):
    """The viper check_run's per-sample loop by fn (hal.check_thumb.samples' contract, a
    driver's check_samples) where it applies, or by viper again (None). No-op without viper."""
    if _fast is not None:
        _fast.use_samples(fn)


def check_run(st, sb, ib, vb, db, m, host_age_ms, j0, b):
    """check() over samples j0..j0+m-1 in blocks of b (the last may be short), up to and
    including the first block with a fault -> (samples checked << 5) | that code (OK = 0:
    all m checked). The block path's one call for everything one sense() handed over (a
    viper call with five buffers costs ~3,000 RP2040 cycles: one per block was ~2.5 % of
    the CPU at 5 kS/s). The same blocks, in the same order, as check() one by one."""
    j = 0
    while j < m:
        n = m - j
        if b > 0 and n > b:
            n = b
        code = check(st, sb, ib, vb, db, n, host_age_ms, j0 + j)
        j += n
        if code:
            return (j << 5) | code
    return j << 5


@micropython.native     # period(): the tick's, for each electrode at each impedance window
def isqrt(x):
    """floor(sqrt(x)) for 0 <= x < 2**30, integers only."""
    if x <= 0:
        return 0
    r = x
    y = (r + 1) >> 1
    while y < r:
        r = y
        y = (r + x // r) >> 1
    return r


class Supervisor:
    """Thresholds from the limits, the protocol and the board; check() per block."""

    def __init__(self, limits, protocol_safety, fs, compliance_mV=30000, dac_tol_uA=50,
                 noisy_adc=True, charge_budget_uC=None, stim_budget_ms=None, period_samples=0,
                 fast=True, lockin=True):
        st = self.st = _new_state()
        st[T_LOCKIN] = 1 if lockin else 0      # off: no phase (a multi session sends none)
        st[T_IOVER] = limits["max_current_uA"] + OVER_MARGIN_uA
        st[T_VCOMP] = compliance_mV * COMPLIANCE_PCT // 100
        st[T_VHEAD] = compliance_mV * HEADROOM_PCT // 100
        st[T_DACTOL] = dac_tol_uA
        st[T_NOISY] = 1 if noisy_adc else 0
        st[T_ZMAX] = protocol_safety["impedance_max_ohm"]
        st[T_ZWIN] = z_window(fs, period_samples)
        st[T_QMAX] = charge_budget_uC if charge_budget_uC is not None else limits["max_charge_uC"]
        tmax = stim_budget_ms if stim_budget_ms is not None else limits["max_stim_ms"]
        st[T_TMAX] = tmax // 1000 * fs + tmax % 1000 * fs // 1000
        st[T_FS] = fs
        st[T_HOLD] = SIGN_HOLD_MS * fs // 1000
        st[T_SWIN] = SHORT_WIN_MS * fs // 1000 or 1
        st[S_ZLAST] = -1
        self._pcnt = 0          # L_CNT when period() last computed its figures
        self._p = None
        self.periodic = period_samples > 0
        self.fs = fs
        self.kernel = _fast.check if (fast and _fast is not None) else check
        self.kernel_run = _fast.check_run if (fast and _fast is not None) else check_run

    def check(self, sb, ib, vb, db, n, host_age_ms=0, j0=0):
        return self.kernel(self.st, sb, ib, vb, db, n, host_age_ms, j0)

    @property
    def code(self):
        return self.st[S_CODE]

    @property
    def charge_uC(self):
        return self.st[S_QUC]

    @property
    def stim_ms(self):
        st = self.st
        return st[S_STIM] // st[T_FS] * 1000 + st[S_STIM] % st[T_FS] * 1000 // st[T_FS]

    @micropython.native     # the tick calls it for every electrode 50 times a second
    def window(self):
        """The telemetry window since the last call, then cleared: a tuple
        (n, set_mean, set_peak, meas_mean, meas_peak, v_mean, v_peak), or None if empty.
        Means only: RMS and impedance come from period(), over whole periods (a 20 ms
        window of a slow sine holds a phase of it, not its RMS)."""
        st = self.st
        n = st[W_N]
        if n == 0:
            return None
        a = st[W_SET]
        i = st[W_I]
        v = st[W_V]
        # rounded toward zero (a mean symmetric in sign), inline: a call from native code costs a frame
        out = (n, a // n if a >= 0 else -((-a) // n), st[W_SPK], i // n if i >= 0 else -((-i) // n), st[W_IPK],
               v // n if v >= 0 else -((-v) // n), st[W_VPK])
        for k in range(W_N, W_END):
            st[k] = 0
        return out

    def period(self):
        """The figures of the last completed impedance window (whole periods of the slowest
        periodic waveform, at least Z_WIN_MS; Z_WIN_MS for DC and noise), every block of it
        counted: a tuple (n, set_rms, meas_rms, meas_peak, v_rms, v_peak, z_ohm, z_phase_cdeg)
        with z_ohm = v_rms * 1000 // meas_rms (None under Z_MIN_uA), or None before the first
        window completes. z_phase_cdeg: the lock-in phase of V relative to I (centidegrees),
        for a periodic waveform whose current has a sine's crest factor (peak / RMS within
        1.35..1.48: a sine, not DC, pulses, noise or a sine on a large offset), else None.
        Over whole periods the RMS of a sine is its amplitude / sqrt(2) and v_rms / i_rms is
        |Z| at its frequency. Computed once per window (the tick's path: it may allocate;
        the control path only sums)."""
        st = self.st
        if st[L_CNT] == self._pcnt:
            return self._p
        self._pcnt = st[L_CNT]
        n = st[L_N]
        i_rms = isqrt(_mean2(st[L_IH], st[L_IL], n) << 6)
        v_rms = isqrt(_mean2(st[L_VH], st[L_VL], n) << 10)
        ph = None
        ipk = st[L_IPK]
        if self.periodic and st[T_LOCKIN] and i_rms >= Z_MIN_uA and 135 * i_rms <= 100 * ipk <= 148 * i_rms:
            ph = _phase_cdeg(st)
        self._p = (n, isqrt(_mean2(st[L_SH], st[L_SL], n) << 6), i_rms, ipk, v_rms, st[L_VPK],
                   v_rms * 1000 // i_rms if i_rms >= Z_MIN_uA else None, ph)
        return self._p

    def impedance_ohm(self):
        """The impedance rule's last window (ohm), or -1 before one with enough current."""
        return self.st[S_ZLAST]


def _phase_cdeg(st):
    """The lock-in phase of V relative to I over the latched window, centidegrees. For
    i = I sin(wt), v = V sin(wt + phi) over whole cycles: P = mean v[k-1] i[k-1] =
    VI cos(phi) / 2, Q = mean v[k-1] (i[k] - i[k-2]) = VI sin(wdt) sin(phi), and
    D = mean (i[k] - i[k-2])**2 = 4 I**2 sin(wdt)**2 / 2 against mean i**2 = I**2 / 2, so
    2 sin(wdt) = sqrt(D / mean i**2) and tan(phi) = Q / (2 sin(wdt) P), with w measured, not
    assumed. Tick side (floats allowed; only the integer result leaves)."""
    import math
    p = st[L_PH] * 16777216.0 + st[L_PL]
    q = st[L_QH] * 16777216.0 + st[L_QL]
    d = st[L_DH] * 16777216.0 + st[L_DL]
    i2 = (st[L_IH] * 16777216.0 + st[L_IL]) * 4.0      # i*i >> 6 against the >> 4 of the rest
    if i2 <= 0 or d <= 0:
        return None
    return int(round(math.degrees(math.atan2(q, p * math.sqrt(d / i2))) * 100))


@micropython.native
def _mean2(hi, lo, n):
    """(hi * 2**24 + lo) // n, exactly, for a two-word sum (lo < 2**24) and n < 2**22,
    with ints under 2**30: long division a byte of lo at a time."""
    q = hi // n
    r = hi % n
    r = (r << 8) | (lo >> 16)
    q = (q << 8) | (r // n)
    r = r % n
    r = (r << 8) | ((lo >> 8) & 255)
    q = (q << 8) | (r // n)
    r = r % n
    r = (r << 8) | (lo & 255)
    return (q << 8) | (r // n)


def _new_state():
    from array import array
    return array("i", [0] * STATE_LEN)


def z_window(fs, period_samples=0):
    """Impedance window in samples: Z_WIN_MS, or whole periods of the slowest periodic
    waveform when one period is shorter than Z_WIN_MAX_MS (a window of whole cycles
    holds the same share of every phase, so V/I is the impedance, not a phase of it)."""
    base = Z_WIN_MS * fs // 1000 or 1
    if period_samples <= 0 or period_samples > Z_WIN_MAX_MS * fs // 1000:
        return base
    k = (base + period_samples - 1) // period_samples
    return k * period_samples
