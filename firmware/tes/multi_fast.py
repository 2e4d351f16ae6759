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



@micropython.viper
def telem_rows(buf, at: int, sts, order_obj, prow_obj, fig_obj, C: int) -> int:
    order = ptr32(order_obj)  # noqa: F821
    prow = ptr32(prow_obj)  # noqa: F821
    fig = ptr32(fig_obj)  # noqa: F821
    sg = int(1) << 31
    tset = 0
    tmeas = 0
    top = 0
    c = 0
    while c < C:
        st = ptr32(sts[c])  # noqa: F821
        n = int(st[31])                         # tes.supervisor W_N; W_SET, W_I, W_V follow
        o = 4 + 3 * c
        k = 0
        while k < 3:
            if n == 0:
                fig[o + k] = 0
            else:
                a = (st[32 + k] ^ sg) - sg
                if a >= 0:
                    fig[o + k] = a // n
                else:
                    fig[o + k] = 0 - ((0 - a) // n)
            k += 1
        if n != 0:
            k = 31
            while k < 38:                       # W_END
                st[k] = 0
                k += 1
        tset += (fig[o] ^ sg) - sg
        tmeas += (fig[o + 1] ^ sg) - sg
        v = (fig[o + 2] ^ sg) - sg
        t = (fig[4 + 3 * top + 2] ^ sg) - sg
        if v < 0:
            v = 0 - v
        if t < 0:
            t = 0 - t
        if v > t:
            top = c
        c += 1
    st = ptr32(sts[C])  # noqa: F821
    k = 31
    while k < 38:
        st[k] = 0
        k += 1
    fig[0] = tset
    fig[1] = tmeas
    fig[2] = fig[4 + 3 * top + 2]
    fig[3] = prow[5 * top + 3]
    b = ptr8(buf)  # noqa: F821
    b[at] = C + 1
    r = 4 + 3 * (C + 1)                         # the row's 7 words, then its bytes
    o = at + 1
    k = 0
    while k <= C:
        c = int(order[k])
        p = 5 * c
        if c == C:
            fig[r] = 0 - tset
            fig[r + 1] = 0 - tmeas
            fig[r + 2] = 0
            fig[r + 3] = -1
            fig[r + 6] = 0
        else:
            f = 4 + 3 * c
            fig[r] = fig[f]
            fig[r + 1] = fig[f + 1]
            fig[r + 2] = fig[f + 2]
            fig[r + 3] = prow[p]
            fig[r + 6] = prow[p + 3]
        fig[r + 4] = prow[p + 1]
        fig[r + 5] = prow[p + 2]
        j = 0
        while j < 7:
            x = int(fig[r + j])
            b[o] = x & 0xFF
            b[o + 1] = (x >> 8) & 0xFF
            b[o + 2] = (x >> 16) & 0xFF
            b[o + 3] = (x >> 24) & 0xFF
            o += 4
            j += 1
        k += 1
    return o - at
