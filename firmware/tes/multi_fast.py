"""Viper twins of tes.multi (the return electrode's kernels, the interleave and split of a
multi-electrode session's block path: native code indexes an array through a call per
element, and those helpers were ~12 % of the busy CPU in a profile of a two-source session on
the virtual RP2040), for the RP2040. Imported only
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


@micropython.viper
def interleave(out, outs, n: int, C: int):
    po = ptr32(out)  # noqa: F821
    c = 0
    while c < C:
        o = ptr32(outs[c])  # noqa: F821
        w = c
        k = 0
        while k < n:
            po[w] = o[k]
            w += C
            k += 1
        c += 1


@micropython.viper
def split(rsb, rib, rvb, rdb, sbs, ibs, vbs, dbs, m: int, C: int):
    qs = ptr32(rsb)  # noqa: F821
    qi = ptr32(rib)  # noqa: F821
    qv = ptr32(rvb)  # noqa: F821
    qd = ptr32(rdb)  # noqa: F821
    rs = ptr32(sbs[C])  # noqa: F821
    ri = ptr32(ibs[C])  # noqa: F821
    rd = ptr32(dbs[C])  # noqa: F821
    c = 0
    while c < C:
        s = ptr32(sbs[c])  # noqa: F821
        i = ptr32(ibs[c])  # noqa: F821
        v = ptr32(vbs[c])  # noqa: F821
        d = ptr32(dbs[c])  # noqa: F821
        w = c
        k = 0
        while k < m:
            x = qs[w]
            s[k] = x
            y = qi[w]
            i[k] = y
            v[k] = qv[w]
            z = qd[w]
            d[k] = z
            if c == 0:
                rs[k] = 0 - x
                ri[k] = 0 - y
                rd[k] = 0 - z
            else:
                rs[k] = rs[k] - x
                ri[k] = ri[k] - y
                rd[k] = rd[k] - z
            w += C
            k += 1
        c += 1
    rv = ptr32(vbs[C])  # noqa: F821
    k = 0
    while k < m:
        rv[k] = ri[k]
        k += 1
