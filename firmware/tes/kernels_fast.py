"""Viper twins of the engine's kernels (tes.kernels): every oscillator and envelope, for
the RP2040, where a bytecode or native loop over a block costs more than the sample
period allows (a plain Python call alone is ~1,300 cycles). Bit-exact to the plain
kernels, because every value stays within +/-2**30 and so never wraps, whether viper ints
are 32 or 64 bits; the engine's golden vectors (tests/vectors/engine.json, computed by the
plain code under CPython) are checked against these under the unix port.

viper's ptr32 loads zero-extend on a 64-bit build, so signed words are read as
(w ^ 2**31) - 2**31 (the identity on a 32-bit board); the int16 sine table likewise.
"""
from array import array

import micropython
from micropython import const

AVAILABLE = True

_PH = const(0)
_FR = const(1)
_IQ = const(2)
_IR = const(3)
_MOD = const(4)
_W1 = const(5)
_W2 = const(6)
_EP = const(7)
_EF = const(8)
_EQ = const(9)
_ER = const(10)
_EN = const(11)
_EDOWN = const(12)
_AMP = const(13)
_OFF = const(14)
_ECOS = const(15)
_ETOP = const(16)
_FULL = const(32768)


@micropython.viper
def osc_const(out, start: int, n: int, value: int):
    o = ptr32(out)
    i = start
    end = start + n
    while i < end:
        o[i] = value
        i += 1


@micropython.viper
def osc_sine(out, start: int, n: int, st, tab):
    o = ptr32(out)
    s = ptr32(st)
    t = ptr16(tab)
    ph = int(s[_PH])
    fr = int(s[_FR])
    q = int(s[_IQ])
    r = int(s[_IR])
    m = int(s[_MOD])
    i = start
    end = start + n
    while i < end:
        k = ph >> 10
        a = (int(t[k]) ^ 0x8000) - 0x8000
        b = (int(t[k + 1]) ^ 0x8000) - 0x8000
        o[i] = a + (((b - a) * (ph & 1023)) >> 10)
        fr += r
        ph += q
        if fr >= m:
            fr -= m
            ph += 1
        ph &= 0xFFFFF
        i += 1
    s[_PH] = ph
    s[_FR] = fr


@micropython.viper
def osc_pulse(out, start: int, n: int, st):
    o = ptr32(out)
    s = ptr32(st)
    ph = int(s[_PH])
    fr = int(s[_FR])
    q = int(s[_IQ])
    r = int(s[_IR])
    m = int(s[_MOD])
    w1 = int(s[_W1])
    w2 = int(s[_W2])
    i = start
    end = start + n
    while i < end:
        if ph < w1:
            o[i] = _FULL
        elif ph < w2:
            o[i] = 0 - _FULL
        else:
            o[i] = 0
        fr += r
        ph += q
        if fr >= m:
            fr -= m
            ph += 1
        ph &= 0xFFFFF
        i += 1
    s[_PH] = ph
    s[_FR] = fr


@micropython.viper
def env_flat(out, start: int, n: int, amp: int, off: int):
    o = ptr32(out)
    sg = int(1) << 31
    i = start
    end = start + n
    while i < end:
        o[i] = off + ((amp * ((o[i] ^ sg) - sg) + 16384) >> 15)
        i += 1


@micropython.viper
def env_ramp(out, start: int, n: int, st, rcos):
    o = ptr32(out)
    s = ptr32(st)
    c = ptr32(rcos)
    sg = int(1) << 31
    pos = int(s[_EP])
    fr = int(s[_EF])
    q = int(s[_EQ])
    r = int(s[_ER])
    m = int(s[_EN])
    down = int(s[_EDOWN])
    top = int(s[_ETOP])
    cos = int(s[_ECOS])
    amp = (s[_AMP] ^ sg) - sg   # both signed: a word read through ptr32 is unsigned
    off = (s[_OFF] ^ sg) - sg
    i = start
    end = start + n
    while i < end:
        if cos:
            k = pos >> 8
            e = int(c[k])
            if k < 256:
                e += ((int(c[k + 1]) - e) * (pos & 255)) >> 8
        else:
            e = pos
        if down:
            e = top - e
        o[i] = ((off * e) >> 15) + ((((amp * e) >> 15) * ((o[i] ^ sg) - sg) + 16384) >> 15)
        fr += r
        pos += q
        if fr >= m:
            fr -= m
            pos += 1
        i += 1
    s[_EP] = pos
    s[_EF] = fr

_B = const(18)          # tes.kernels.NOISE_BASE
_HI = const(18 + 0)     # tes.noise N_* offsets from the noise base
_LO = const(18 + 1)
_A = const(18 + 2)
_V = const(18 + 3)
_J = const(18 + 4)
_SHIFT = const(18 + 5)
_GAIN = const(18 + 6)
_NSEC = const(18 + 7)
_DCK = const(18 + 8)
_DCX = const(18 + 9)
_DCY = const(18 + 10)
_SEC = const(18 + 11)
_XLIM = const(4095)
_LCG_A = const(27949)   # tes.noise.LCG_A
_LCG_C = const(12345)   # tes.noise.LCG_C


# Base-rate values of one piece of a block (osc_noise): the filter runs section by section
# over a piece, its coefficients and state in locals, rather than sample by sample through
# every section with each word loaded and stored again (7x fewer cycles on an RP2040).
# The cascade is causal section by section, so the order changes nothing: bit-exact.
_PIECE = const(64)
_base = array("i", [0] * _PIECE)


@micropython.viper
def _cascade(y: int, k: int, x: int, st, buf, c: int, nsec: int):
    """osc_noise's biquad sections over its c base-rate values in b, in place, with the
    state words s (ptr32 of the engine state). A viper function keeps its first three
    locals (its first three arguments) in registers and the rest on the stack: here they
    are the inner loop's busiest, y, k and x (their values in are ignored). As one loop
    inside osc_noise (whose first three are out, start, n) this cost ~10 % more: the
    valgrind proxy, 1263 -> 1140 x86-64 instructions a sample for 101-640 Hz at 5 kS/s.
    e = acc & (2**14 - 1) is acc - ((acc >> 14) << 14), the remainder of the plain code.
    st and buf are the arrays (a pointer passed as an argument would be boxed: allocation)."""
    s = ptr32(st)
    b = ptr32(buf)
    sign = int(1) << 31
    sec = 0
    while sec < nsec:
        q = _SEC + sec * 10
        b0 = (s[q] ^ sign) - sign
        b1 = (s[q + 1] ^ sign) - sign
        b2 = (s[q + 2] ^ sign) - sign
        a1 = (s[q + 3] ^ sign) - sign
        a2 = (s[q + 4] ^ sign) - sign
        x1 = (s[q + 5] ^ sign) - sign
        x2 = (s[q + 6] ^ sign) - sign
        y1 = (s[q + 7] ^ sign) - sign
        y2 = (s[q + 8] ^ sign) - sign
        e = int(s[q + 9])
        k = 0
        while k < c:
            x = (b[k] ^ sign) - sign
            y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2 + e
            e = y & 0x3FFF
            y = y >> 14
            if y > _XLIM:
                y = _XLIM
            elif y < -_XLIM:
                y = -_XLIM
            x2 = x1
            x1 = x
            y2 = y1
            y1 = y
            b[k] = y
            k += 1
        s[q + 5] = x1
        s[q + 6] = x2
        s[q + 7] = y1
        s[q + 8] = y2
        s[q + 9] = e
        sec += 1


@micropython.viper
def osc_noise(out, start: int, n: int, st):
    o = ptr32(out)
    s = ptr32(st)
    b = ptr32(_base)
    sign = int(1) << 31
    a = (s[_A] ^ sign) - sign
    v = (s[_V] ^ sign) - sign
    j = int(s[_J])
    shift = int(s[_SHIFT])
    mask = (int(1) << shift) - 1
    gain = int(s[_GAIN])
    nsec = int(s[_NSEC])
    dck = int(s[_DCK])
    hi = int(s[_HI])
    lo = int(s[_LO])
    i = start
    end = start + n
    while i < end:
        pn = end - i
        if pn > _PIECE:
            pn = _PIECE
        # 1. The Irwin-Hall input of every base-rate sample due in this piece.
        c = 0
        jj = j
        t = 0
        while t < pn:
            if jj == 0:
                p = _LCG_A * lo + _LCG_C        # four draws, unrolled
                lo = p & 0x7FFF
                hi = (_LCG_A * hi + (p >> 15)) & 0x7FFF
                x = (hi >> 5) - 2046
                p = _LCG_A * lo + _LCG_C
                lo = p & 0x7FFF
                hi = (_LCG_A * hi + (p >> 15)) & 0x7FFF
                x += hi >> 5
                p = _LCG_A * lo + _LCG_C
                lo = p & 0x7FFF
                hi = (_LCG_A * hi + (p >> 15)) & 0x7FFF
                x += hi >> 5
                p = _LCG_A * lo + _LCG_C
                lo = p & 0x7FFF
                hi = (_LCG_A * hi + (p >> 15)) & 0x7FFF
                b[c] = x + (hi >> 5)
                c += 1
            jj = (jj + 1) & mask
            t += 1
        # 2. The DC blocker, then each biquad section, over the piece.
        if dck and c:
            dx = (s[_DCX] ^ sign) - sign
            dy = (s[_DCY] ^ sign) - sign
            lim = _XLIM << dck
            k = 0
            while k < c:
                x = (b[k] ^ sign) - sign
                dy = dy + ((x - dx) << dck)
                dy -= dy >> dck
                if dy > lim:
                    dy = lim
                elif dy < -lim:
                    dy = -lim
                dx = x
                b[k] = dy >> dck
                k += 1
            s[_DCX] = dx
            s[_DCY] = dy
        if c:
            _cascade(0, 0, 0, st, _base, c, nsec)
        # 3. Gain, then linear interpolation up to fs.
        k = 0
        t = 0
        while t < pn:
            if j == 0:
                a = v
                v = (((b[k] ^ sign) - sign) * gain) >> 12
                if v > 32767:
                    v = 32767
                elif v < -32767:
                    v = -32767
                k += 1
            o[i] = a + (((v - a) * j) >> shift)
            j = (j + 1) & mask
            i += 1
            t += 1
    s[_A] = a
    s[_V] = v
    s[_J] = j
    s[_HI] = hi
    s[_LO] = lo
