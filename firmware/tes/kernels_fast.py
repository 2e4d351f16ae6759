"""Viper twin of the noise kernel, the one waveform whose plain code falls short of 100x
real time under MicroPython. Bit-exact to tes.kernels.osc_noise (tested), because every
value stays within +/-2**30 and so never wraps, whether viper ints are 32 or 64 bits.

viper's ptr32 loads zero-extend on a 64-bit build, so signed words are read through
sx(): (w ^ 2**31) - 2**31 restores the sign there and is the identity on a 32-bit board.
The other kernels are plain code already well above 100x real time (see make bench).
"""
import micropython
from micropython import const

from tes.kernels import osc_sine, osc_pulse, env_flat, env_ramp  # noqa: F401  plain is fast enough

AVAILABLE = True

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
