"""Per-block safety supervisor: compares what the engine asked for with what the sense
chain measured, and returns a fault code. It allocates nothing (check() runs with the
heap locked) and keeps every int within +/-2**30.

Timing assumption: the app calls check() after every hal.write()/hal.sense() of a block
of at most 1 ms (fs // 1000 samples, at least 1) and calls hal.zero() at once on a hard
code. A fault then shows in the first block it touches, so a hard fault zeroes the output
within 1 block (2 blocks for short and tracking, which need confirmation), i.e. <= 2 ms
at 1-10 kS/s, counted from the first sample at which the fault is observable (see below).

Conditions (first match wins, in this order). Response: HARD = hal.zero() at once
(output zero and enable off); SOFT = ramp down (SOFT_RAMP_MS) then zero.
  overcurrent      HARD  |measured| peak > max_current_uA + OVER_MARGIN_uA
  open-circuit     HARD  V peak >= COMPLIANCE_PCT of compliance with V/I > OPEN_OHM
  compliance       HARD  V peak >= COMPLIANCE_PCT of compliance, current still flowing
  dac-stuck        HARD  DAC readback differs from the block's last set sample by more
                         than dac_tol_uA (a frozen DAC is only visible once set moves)
  open-circuit     HARD  |set| >= 50 uA and V/I > OPEN_OHM, or the current collapsed
                         (< 1/8 of a set peak >= 200 uA)
  short            HARD  V/I < SHORT_OHM with |I| >= 100 uA, in 2 blocks running (2 ms)
  tracking-error   HARD  |mean measured - mean set| > max(100 uA, 10 %) for 2 blocks
  adc-stuck        HARD  no current code change and every I and V reading alike for
                         ADC_STUCK_SAMPLES samples (needs ADC noise, or set moving)
  impedance-high   SOFT  window impedance (mean |V| peak / mean |I| peak over 100 ms)
                         above safety.impedance_max_ohm for 2 windows, or V peak >=
                         HEADROOM_PCT of compliance (stop before compliance is reached)
  charge-budget    SOFT  delivered charge (integral of |measured current|) >= budget
  duration-budget  SOFT  stimulation time (blocks with a nonzero set) >= budget
  host-lost        SOFT  heartbeat age passed by the app > HOST_LOST_MS
"""
try:
    import micropython  # the native emitter: same semantics as bytecode, about 1.3x faster here
    from micropython import const
except ImportError:  # CPython
    from tes import compat as micropython
    from tes.compat import const

from hal.base import I_MEAN, I_MIN, I_MAX, V_PEAK, V_MEAN, ADC_MOVES, DAC_BACK

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
NAMES = ("ok", "open-circuit", "short", "overcurrent", "tracking-error", "dac-stuck",
         "adc-stuck", "compliance", "impedance-high", "charge-budget", "duration-budget",
         "host-lost")

OVER_MARGIN_uA = const(100)
TRACK_MIN_uA = const(100)
TRACK_BLOCKS = const(2)
COMPLIANCE_PCT = const(97)
HEADROOM_PCT = const(85)
OPEN_OHM = const(1000000)
SHORT_OHM = const(100)
Z_MIN_uA = const(100)         # below this current an impedance figure is mostly noise
ADC_STUCK_SAMPLES = const(6)
HOST_LOST_MS = const(3000)
SOFT_RAMP_MS = const(1000)


def is_hard(code):
    return OPEN_CIRCUIT <= code <= COMPLIANCE


def name(code):
    return NAMES[code]


class Supervisor:
    def __init__(self, limits, protocol_safety, fs, compliance_mV=30000, dac_tol_uA=10,
                 noisy_adc=True, charge_budget_uC=None, stim_budget_ms=None):
        self.fs = fs
        self.i_over = limits["max_current_uA"] + OVER_MARGIN_uA
        self.z_max = protocol_safety["impedance_max_ohm"]
        self.v_comp = compliance_mV * COMPLIANCE_PCT // 100
        self.v_head = compliance_mV * HEADROOM_PCT // 100
        self.dac_tol = dac_tol_uA
        self.noisy_adc = noisy_adc
        self.q_budget = charge_budget_uC if charge_budget_uC is not None else limits["max_charge_uC"]
        self.t_budget = stim_budget_ms if stim_budget_ms is not None else limits["max_stim_ms"]
        self.win = fs // 10 or 1          # impedance window: 100 ms of samples
        self.reset()

    def reset(self):
        self.charge_uC = 0
        self.q_rem = 0          # uA*samples not yet a whole uC
        self.stim_ms = 0
        self.t_rem = 0
        self.track_n = 0
        self.short_n = 0
        self.still_n = 0
        self.prev_im = 0
        self.prev_vm = 0
        self.prev_set = 0
        self.zw_v = 0           # impedance rule window
        self.zw_i = 0
        self.zw_n = 0
        self.zw_high = 0
        self.tz_v = 0           # telemetry window (impedance_ohm)
        self.tz_i = 0
        self.tz_n = 0
        self.z_last = -1
        self.code = OK          # first nonzero code seen (latched)

    @micropython.native
    def check(self, set_buf, n, sense, host_age_ms=0):
        """Figures of the block just written -> fault code (OK = 0). Allocates nothing."""
        smin = smax = ssum = set_buf[0]
        for j in range(1, n):
            s = set_buf[j]
            ssum += s
            if s < smin:
                smin = s
            elif s > smax:
                smax = s
        smean = ssum // n
        spk = smax if smax > -smin else -smin
        im = sense[I_MEAN]
        imin = sense[I_MIN]
        imax = sense[I_MAX]
        ipk = imax if imax > -imin else -imin
        vpk = sense[V_PEAK]
        vm = sense[V_MEAN]
        # Charge from the measured current, |I| (phase-blind), sub-uC kept in q_rem
        # (inline: this runs every block).
        q = self.q_rem + (im if im >= 0 else -im) * n
        fs = self.fs
        self.charge_uC += q // fs
        self.q_rem = q % fs
        if spk:
            t = self.t_rem + n * 1000
            self.stim_ms += t // fs
            self.t_rem = t % fs
        code = self._hard(set_buf[n - 1], smean, spk, im, imin, imax, vm, vpk, sense, n)
        if code == OK:
            code = self._soft(ipk, vpk, n, host_age_ms)
        self.prev_im = im
        self.prev_vm = vm
        self.prev_set = smean
        if code and not self.code:
            self.code = code
        return code

    @micropython.native
    def _hard(self, slast, smean, spk, im, imin, imax, vm, vpk, sense, n):
        ipk = imax if imax > -imin else -imin
        if ipk > self.i_over:
            return OVERCURRENT
        if vpk >= self.v_comp:
            # At compliance: an open circuit if almost no current flows (V/I > 1 MOhm).
            return OPEN_CIRCUIT if vpk > 1000 * ipk else COMPLIANCE
        d = sense[DAC_BACK] - slast
        if d > self.dac_tol or d < -self.dac_tol:
            return DAC_STUCK
        if spk >= 50 and vpk > 1000 * ipk:        # V/I above 1 MOhm
            return OPEN_CIRCUIT
        if spk >= 200 and ipk * 8 < spk:          # current collapsed
            return OPEN_CIRCUIT
        if ipk >= Z_MIN_uA and vpk * 1000 < SHORT_OHM * ipk:
            # Two blocks (2 ms) running: within one block an AC current through the skin
            # capacitance can pass a voltage zero crossing and look like a short.
            self.short_n += 1
            if self.short_n >= 2:
                return SHORT
        else:
            self.short_n = 0
        err = im - smean
        if err < 0:
            err = -err
        lim = smean // 10 if smean >= 0 else -smean // 10
        if err > (lim if lim > TRACK_MIN_uA else TRACK_MIN_uA):
            self.track_n += 1
            if self.track_n >= TRACK_BLOCKS:
                return TRACKING
        else:
            self.track_n = 0
        moving = self.noisy_adc or smean - self.prev_set > 4 * self.dac_tol \
            or self.prev_set - smean > 4 * self.dac_tol
        # Frozen readings: no current code change, and every sample alike (one-sample
        # blocks: alike the previous block) in current and in voltage.
        if n > 1:
            alike = imin == imax and (vm == vpk or vm == -vpk)
        else:
            alike = im == self.prev_im and vm == self.prev_vm
        if sense[ADC_MOVES] == 0 and alike and moving:
            self.still_n += n
            if self.still_n >= ADC_STUCK_SAMPLES:
                return ADC_STUCK
        else:
            self.still_n = 0
        return OK

    @micropython.native
    def _soft(self, ipk, vpk, n, host_age_ms):
        if ipk >= Z_MIN_uA:
            self.zw_v += vpk
            self.zw_i += ipk
            self.tz_v += vpk
            self.tz_i += ipk
            self.tz_n += 1
            if self.tz_n >= 16384:           # nobody reads: keep the sums small ints
                self.tz_v >>= 1
                self.tz_i >>= 1
                self.tz_n >>= 1
        self.zw_n += n
        if self.zw_n >= self.win:
            if self.zw_i:
                # mean |V| / mean |I| of the window: the counts cancel.
                if self._ratio(self.zw_v, self.zw_i) > self.z_max:
                    self.zw_high += 1
                else:
                    self.zw_high = 0
            self.zw_v = self.zw_i = self.zw_n = 0
        if self.zw_high >= 2 or vpk >= self.v_head:
            return IMPEDANCE_HIGH
        if self.charge_uC >= self.q_budget:
            return CHARGE_BUDGET
        if self.stim_ms >= self.t_budget:
            return DURATION_BUDGET
        if host_age_ms > HOST_LOST_MS:
            return HOST_LOST
        return OK

    @staticmethod
    def _ratio(v_sum, i_sum):
        """Ohms from sums of mV and uA; scaled down first so v_sum * 1000 stays small."""
        while v_sum > 1000000:
            v_sum >>= 1
            i_sum >>= 1
        return v_sum * 1000 // i_sum if i_sum else OPEN_OHM

    def impedance_ohm(self):
        """Impedance over the blocks since the last call (|V| peak / |I| peak means, so the
        same figure serves DC and AC), or the last figure when no current flowed."""
        if self.tz_n:
            self.z_last = self._ratio(self.tz_v, self.tz_i)
            self.tz_v = self.tz_i = self.tz_n = 0
        return self.z_last
