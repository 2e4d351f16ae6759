"""Per-sample kernels of the engine: plain Python that runs unchanged under CPython, the
unix port and a board, allocates nothing, and keeps every int within +/-2**30.

Oscillators write a unit waveform in Q15 (32768 = full amplitude) into out[start:start+n];
envelopes then turn it into microamps in place. All state lives in one array('i') `st`
(indices below) so that a call allocates nothing and a viper twin can share the layout.
"""
try:
    import micropython  # the native emitter: same semantics as bytecode, about 1.3x faster here
    from micropython import const
except ImportError:  # CPython
    from tes import compat as micropython
    from tes.compat import const

from tes.noise import N_A, N_B, N_J, N_SHIFT, N_GAIN, N_HI, N_LO, LCG_A, LCG_C, filter_step

# Oscillator (phase accumulator): phase in 2**20 per cycle, advanced by IQ + IR/MOD.
PH = const(0)
FR = const(1)
IQ = const(2)
IR = const(3)
MOD = const(4)
W1 = const(5)     # pulse: phase below W1 is the positive pulse
W2 = const(6)     # pulse: phase below W2 (and >= W1) is the negative pulse
# Envelope (ramp): position EP advanced by EQ + ER/EN per sample.
EP = const(7)
EF = const(8)
EQ = const(9)
ER = const(10)
EN = const(11)
EDOWN = const(12)
AMP = const(13)
OFF = const(14)
ECOS = const(15)  # 1: raised-cosine ramp (table position in Q8), 0: linear
ETOP = const(16)  # level a down-ramp starts from, Q15 (FULL, or the envelope at a soft stop)
NOISE_BASE = const(18)

PHASE_MASK = const(0xFFFFF)
FULL = const(32768)
# A board's sine plateau in one call (hal.sine_thumb.sine_flat(out, st, f, n): osc_sine then
# env_flat): its frame f, array('i') of SF_LEN: the table's address, amp, off, start, scratch
SF_LEN = const(8)


@micropython.native
def osc_const(out, start, n, value):
    for i in range(start, start + n):
        out[i] = value


@micropython.native
def osc_sine(out, start, n, st, tab):
    ph = st[PH]
    fr = st[FR]
    q = st[IQ]
    r = st[IR]
    m = st[MOD]
    for i in range(start, start + n):
        k = ph >> 10
        a = tab[k]
        out[i] = a + (((tab[k + 1] - a) * (ph & 1023)) >> 10)
        fr += r
        ph += q
        if fr >= m:
            fr -= m
            ph += 1
        ph &= PHASE_MASK
    st[PH] = ph
    st[FR] = fr


@micropython.native
def osc_pulse(out, start, n, st):
    ph = st[PH]
    fr = st[FR]
    q = st[IQ]
    r = st[IR]
    m = st[MOD]
    w1 = st[W1]
    w2 = st[W2]
    for i in range(start, start + n):
        if ph < w1:
            out[i] = FULL
        elif ph < w2:
            out[i] = -FULL
        else:
            out[i] = 0
        fr += r
        ph += q
        if fr >= m:
            fr -= m
            ph += 1
        ph &= PHASE_MASK
    st[PH] = ph
    st[FR] = fr


def noise_next(st):
    """Next base-rate noise value in Q15 of the peak, clipped to +/-32767."""
    b = NOISE_BASE
    hi = st[b + N_HI]
    lo = st[b + N_LO]
    x = -2046
    for _ in range(4):
        p = LCG_A * lo + LCG_C
        lo = p & 0x7FFF
        hi = (LCG_A * hi + (p >> 15)) & 0x7FFF
        x += hi >> 5
    st[b + N_HI] = hi
    st[b + N_LO] = lo
    y = (filter_step(st, x, b) * st[b + N_GAIN]) >> 12
    return 32767 if y > 32767 else (-32767 if y < -32767 else y)


def osc_noise(out, start, n, st):
    b = NOISE_BASE
    a = st[b + N_A]
    v = st[b + N_B]
    j = st[b + N_J]
    shift = st[b + N_SHIFT]
    mask = (1 << shift) - 1
    for i in range(start, start + n):
        if j == 0:
            a = v
            v = noise_next(st)
        out[i] = a + (((v - a) * j) >> shift)
        j = (j + 1) & mask
    st[b + N_A] = a
    st[b + N_B] = v
    st[b + N_J] = j


@micropython.native
def env_flat(out, start, n, amp, off):
    for i in range(start, start + n):
        out[i] = off + ((amp * out[i] + 16384) >> 15)


@micropython.native
def env_ramp(out, start, n, st, rcos):
    """Ramp from 0 to full (EDOWN=0) or from ETOP down to 0 (EDOWN=1); linear, or raised
    cosine when ECOS is set (table position in Q8). Monotonic, never past the plateau."""
    pos = st[EP]
    fr = st[EF]
    q = st[EQ]
    r = st[ER]
    m = st[EN]
    down = st[EDOWN]
    top = st[ETOP]
    cos = st[ECOS]
    amp = st[AMP]
    off = st[OFF]
    for i in range(start, start + n):
        if cos:
            k = pos >> 8
            e = rcos[k]
            if k < 256:
                e += ((rcos[k + 1] - e) * (pos & 255)) >> 8
        else:
            e = pos
        if down:
            e = top - e
        out[i] = ((off * e) >> 15) + ((((amp * e) >> 15) * out[i] + 16384) >> 15)
        fr += r
        pos += q
        if fr >= m:
            fr -= m
            pos += 1
    st[EP] = pos
    st[EF] = fr
