"""Viper twins of tes.multi (the return electrode's kernels), for the RP2040. Imported only
where viper exists (tes.engine falls back to the plain ones, as for tes.kernels_fast).

Bit-exact to the plain kernels without sign extension: negation and subtraction of the
32-bit words are exact modulo 2**32, and every true result stays within +/-2**30, so the
stored word is the plain kernel's int whether viper ints are 32 or 64 bits wide.
"""
import micropython

AVAILABLE = True


@micropython.viper
def neg_into(dst, src, start: int, n: int):
    d = ptr32(dst)  # noqa: F821 (a viper builtin)
    s = ptr32(src)  # noqa: F821
    i = start
    end = start + n
    while i < end:
        d[i] = 0 - s[i]
        i += 1


@micropython.viper
def sub_into(dst, src, start: int, n: int):
    d = ptr32(dst)  # noqa: F821 (a viper builtin)
    s = ptr32(src)  # noqa: F821
    i = start
    end = start + n
    while i < end:
        d[i] = d[i] - s[i]
        i += 1
