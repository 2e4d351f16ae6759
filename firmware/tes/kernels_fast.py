"""Viper twins of the engine's kernels (tes.kernels): every oscillator and envelope, for
the RP2040, where a bytecode or native loop over a block costs more than the sample
period allows (a plain Python call alone is ~1,300 cycles). Bit-exact to the plain
kernels, because every value stays within +/-2**30 and so never wraps, whether viper ints
are 32 or 64 bits; the engine's golden vectors (tests/vectors/engine.json, computed by the
plain code under CPython) are checked against these under the unix port.

viper's ptr32 loads zero-extend on a 64-bit build, so signed words are read as
(w ^ 2**31) - 2**31 (the identity on a 32-bit board); the int16 sine table likewise.
"""
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
    amp = int(s[_AMP])
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


@micropython.viper
def osc_noise(out, start: int, n: int, st):
    o = ptr32(out)
    s = ptr32(st)
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
        if j == 0:
            a = v
            x = -2046
            r = 0
            while r < 4:
                p = _LCG_A * lo + _LCG_C
                lo = p & 0x7FFF
                hi = (_LCG_A * hi + (p >> 15)) & 0x7FFF
                x += hi >> 5
                r += 1
            if dck:
                acc = ((s[_DCY] ^ sign) - sign) + ((x - ((s[_DCX] ^ sign) - sign)) << dck)
                acc -= acc >> dck
                lim = _XLIM << dck
                if acc > lim:
                    acc = lim
                elif acc < -lim:
                    acc = -lim
                s[_DCX] = x
                s[_DCY] = acc
                x = acc >> dck
            sec = 0
            while sec < nsec:
                q = _SEC + sec * 10
                acc = (((s[q] ^ sign) - sign) * x
                       + ((s[q + 1] ^ sign) - sign) * ((s[q + 5] ^ sign) - sign)
                       + ((s[q + 2] ^ sign) - sign) * ((s[q + 6] ^ sign) - sign)
                       - ((s[q + 3] ^ sign) - sign) * ((s[q + 7] ^ sign) - sign)
                       - ((s[q + 4] ^ sign) - sign) * ((s[q + 8] ^ sign) - sign)
                       + int(s[q + 9]))
                y = acc >> 14
                s[q + 9] = acc - (y << 14)
                if y > _XLIM:
                    y = _XLIM
                elif y < -_XLIM:
                    y = -_XLIM
                s[q + 6] = s[q + 5]
                s[q + 5] = x
                s[q + 8] = s[q + 7]
                s[q + 7] = y
                x = y
                sec += 1
            v = (x * gain) >> 12
            if v > 32767:
                v = 32767
            elif v < -32767:
                v = -32767
        o[i] = a + (((v - a) * j) >> shift)
        j = (j + 1) & mask
        i += 1
    s[_A] = a
    s[_V] = v
    s[_J] = j
    s[_HI] = hi
    s[_LO] = lo
