"""Band-limited Gaussian noise for tRNS, in integers only.

A 30-bit linear congruential generator (kept as two 15-bit halves so no value reaches
2**30 on a 32-bit board) feeds an Irwin-Hall sum of four 10-bit uniforms (half the
clamp range, so resonant sections keep headroom), which is close to
Gaussian and exactly zero-mean. The noise is made at a base rate fs / 2**shift (about
four times the band's upper edge), filtered there by an eighth-order Butterworth low-pass and a
fourth-order high-pass (integer RBJ biquads whose coefficients come from the integer sine
table, so every platform designs the same filter), then linearly interpolated up to fs.
The per-sample code lives in tes.kernels; this module designs and seeds it.
"""
from tes.tables import SINE

LCG_A = 27949      # multiplier < 2**15 so a*half fits in 30 bits; a % 4 == 1 for full period
LCG_C = 12345      # odd increment
X_LIMIT = 4095     # filter signals are clamped to +/-X_LIMIT: products stay below 2**28
Q_BUTTER4 = (8867, 21407)  # Q of the two sections of a 4th-order Butterworth, in Q14
# 8th-order Butterworth, low Q first so the resonant section sees a damped signal.
Q_BUTTER8 = (8352, 9852, 14746, 41991)
GAIN_MAX = (1 << 18) - 1   # keeps |y * gain| < 2**30
PHASE_BITS = 20

# Layout of the noise part of the engine state (indices from NOISE_BASE in tes.kernels):
# [hi, lo, a, b, j, shift, gain, nsec, dcb_k, dcb_x1, dcb_y1, then per section
#  b0 b1 b2 a1 a2 x1 x2 y1 y2 e]; e is the rounding remainder fed back (error feedback)
# so the low-frequency sections have no dead band and no limit cycle.
N_HI, N_LO, N_A, N_B, N_J, N_SHIFT, N_GAIN, N_NSEC, N_DCK, N_DCX, N_DCY = range(11)
N_SEC = 11
SEC_LEN = 10
MAX_SECTIONS = 6
NOISE_LEN = N_SEC + SEC_LEN * MAX_SECTIONS


def _sin_q15(phase):
    """sin(2 pi phase / 2**20) in Q15 from the table, linear interpolation."""
    phase &= (1 << PHASE_BITS) - 1
    i = phase >> 10
    a = SINE[i]
    return a + (((SINE[i + 1] - a) * (phase & 1023)) >> 10)


def biquad(kind, phase, q14):
    """RBJ-cookbook low- or high-pass at w0 = 2 pi phase / 2**20, Q = q14 / 2**14.
    Returns Q14 coefficients (b0, b1, b2, a1, a2), all |c| <= 2**15."""
    s = _sin_q15(phase)
    c = _sin_q15(phase + (1 << (PHASE_BITS - 2)))
    alpha = (s * 16384) // (2 * q14)
    a0 = 32768 + alpha
    if kind == "lp":
        b0, b1 = (32768 - c) // 2, 32768 - c
    else:
        b0, b1 = (32768 + c) // 2, -(32768 + c)
    raw = (b0, b1, b0, -2 * c, 32768 - alpha)
    return tuple((2 * v * 16384 + a0) // (2 * a0) for v in raw)


def lcg_seed(seed):
    x = (seed * 2654435761 + 0x2545F491) & ((1 << 30) - 1)
    return x >> 15, x & 0x7FFF


def design(seg, fs):
    """Plan-time setup of one noise segment: returns the list of state words
    (NOISE_LEN) for the kernel. May allocate; runs before stimulation starts."""
    low, high = seg["band_mHz"]
    shift = 0
    # Base rate at least 4x the upper edge keeps interpolation images below 1% power.
    while (fs >> (shift + 1)) * 1000 >= 4 * high and shift < 8:
        shift += 1
    st = [0] * NOISE_LEN
    st[N_HI], st[N_LO] = lcg_seed(seg["seed"])
    st[N_SHIFT] = shift
    sections = []
    # Phase of a frequency f at base rate fb = fs / 2**shift: f / fb * 2**20.
    scale = (1 << PHASE_BITS) << shift

    def phase_of(f_mhz):
        return f_mhz * scale // (fs * 1000)

    nyq = fs * 1000 // (2 << shift)
    if high < nyq * 9 // 10:
        for q in Q_BUTTER8:
            sections.append(biquad("lp", phase_of(high), q))
    hp_phase = phase_of(low)
    if hp_phase >= 1 << 11:   # f_low above ~0.2% of the base rate: a true high-pass
        for q in Q_BUTTER4:
            sections.append(biquad("hp", hp_phase, q))
    elif low > 0:             # very low edge: a first-order DC blocker, fc = fb / (2 pi 2**k)
        k = 1
        while (1 << PHASE_BITS) > 6 * hp_phase * (1 << k) and k < 14:
            k += 1
        st[N_DCK] = k
    st[N_NSEC] = len(sections)
    for n, coefs in enumerate(sections):
        base = N_SEC + n * SEC_LEN
        st[base:base + 5] = list(coefs)
    st[N_GAIN] = _gain(st, seg)
    return st


def _gain(st, seg):
    """Q12 gain that maps the filtered signal to the wanted SD, in Q15 of the peak.
    The filter's power gain comes from its integer impulse response (deterministic)."""
    probe = list(st)
    probe[N_GAIN] = 1 << 12
    energy = 0
    x = X_LIMIT
    for k in range(4096):
        y = filter_step(probe, x)
        energy += y * y
        x = 0
        if k & 15 == 15 and _settled(probe):
            break       # every later output is exactly 0: the sum is final (a board saves seconds)
    var_in = 4 * (1024 * 1024 - 1) // 12      # Irwin-Hall of four uniforms on 0..1023
    # var_out = var_in * energy / X_LIMIT**2;  want SD = sd_uA / peak * 32768 (Q15)
    var_out = var_in * energy // (X_LIMIT * X_LIMIT)
    want = seg["noise_sd_uA"] * 32768 // max(1, seg["amplitude_uA"])
    sd = isqrt(max(1, var_out))
    return max(1, min(GAIN_MAX, want * 4096 // sd))


def _settled(st):
    """True when, with no more input, the cascade can only output 0: every section's
    x1 x2 y1 y2 and the DC blocker's state are 0 (the error-feedback remainder, 0..2**14-1,
    then rounds to 0 for ever)."""
    if st[N_DCX] or st[N_DCY]:
        return False
    for n in range(st[N_NSEC]):
        p = N_SEC + n * SEC_LEN
        if st[p + 5] or st[p + 6] or st[p + 7] or st[p + 8]:
            return False
    return True


def isqrt(n):
    x = n
    y = (x + 1) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


def clamp(v, lim):
    return lim if v > lim else (-lim if v < -lim else v)


def filter_step(st, x, base=0):
    """One base-rate sample x through the DC blocker and biquad cascade of `st`."""
    k = st[base + N_DCK]
    if k:
        # DC blocker y = x - x1 + (1 - 2**-k) y1, its state kept as y * 2**k so the decay
        # term never rounds to zero (a plain integer y would hold a bias up to 2**k).
        acc = st[base + N_DCY] + ((x - st[base + N_DCX]) << k)
        acc -= acc >> k
        lim = X_LIMIT << k
        acc = lim if acc > lim else (-lim if acc < -lim else acc)
        st[base + N_DCX] = x
        st[base + N_DCY] = acc
        x = acc >> k
    for n in range(st[base + N_NSEC]):
        p = base + N_SEC + n * SEC_LEN
        acc = (st[p] * x + st[p + 1] * st[p + 5] + st[p + 2] * st[p + 6]
               - st[p + 3] * st[p + 7] - st[p + 4] * st[p + 8] + st[p + 9])
        y = acc >> 14
        st[p + 9] = acc - (y << 14)
        y = clamp(y, X_LIMIT)
        st[p + 6] = st[p + 5]
        st[p + 5] = x
        st[p + 8] = st[p + 7]
        st[p + 7] = y
        x = y
    return x
