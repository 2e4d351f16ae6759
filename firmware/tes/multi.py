"""Kernels of the multi-electrode engine (issue 12): the return electrode's current is
minus the sum of the driven channels' currents, sample by sample, in integers.

Plain code for every interpreter (CPython, the unix port, the 32-bit WebAssembly port, a
board): allocates nothing; |value| stays within the sum of the channels' peaks (<= 4 mA by
the validator), far inside +/-2**30. The kernels of tes.kernels are not touched here.
And telem_rows: a TELEM frame's rows per electrode, from the supervisors' states.
"""
try:
    import micropython  # the native emitter: same semantics as bytecode
    from micropython import const
except ImportError:  # CPython
    from tes import compat as micropython
    from tes.compat import const


@micropython.native
def neg_into(dst, src, start, n):
    """dst[i] = -src[i] over [start, start + n)."""
    for i in range(start, start + n):
        dst[i] = -src[i]


@micropython.native
def sub_into(dst, src, start, n):
    """dst[i] -= src[i] over [start, start + n)."""
    for i in range(start, start + n):
        dst[i] -= src[i]


@micropython.native
def interleave(out, outs, n, C):
    """out[k*C + c] = outs[c][k] for the n samples of the C driven electrodes."""
    for c in range(C):
        o = outs[c]
        w = c
        for k in range(n):
            out[w] = o[k]
            w += C


@micropython.native
def split(rsb, rib, rvb, rdb, sbs, ibs, vbs, dbs, m, C):
    """The m interleaved samples of each array into electrode c's sbs[c]... (c < C), and the
    return's (sbs[C]...): minus the sums of set, measured current and readback, and its
    'voltage' = its current (tes.multicontrol's text)."""
    rs = sbs[C]
    ri = ibs[C]
    rd = dbs[C]
    for c in range(C):
        s = sbs[c]
        i = ibs[c]
        v = vbs[c]
        d = dbs[c]
        w = c
        if c == 0:
            for k in range(m):
                x = rsb[w]
                s[k] = x
                rs[k] = -x
                x = rib[w]
                i[k] = x
                ri[k] = -x
                v[k] = rvb[w]
                x = rdb[w]
                d[k] = x
                rd[k] = -x
                w += C
        else:
            for k in range(m):
                x = rsb[w]
                s[k] = x
                rs[k] -= x
                x = rib[w]
                i[k] = x
                ri[k] -= x
                v[k] = rvb[w]
                x = rdb[w]
                d[k] = x
                rd[k] -= x
                w += C
    rv = vbs[C]
    for k in range(m):
        rv[k] = ri[k]


# A TELEM frame's per-electrode extension (tes.link: a count byte, then 7 little-endian int32
# a row: set, meas, v means; z; set, meas, v RMS), written straight from the supervisors'
# states: the tick of a two-source session spent most of its ~2.4 ms on the RP2040 building
# tuples and struct-packing them. The window fields and offsets are tes.supervisor's.
TR_LEN = const(5)       # prow per electrode: z (-1: unknown), set, meas and v RMS, meas peak
_W_N = const(31)        # tes.supervisor W_N .. W_VPK, W_END
_W_END = const(38)



@micropython.native
def telem_rows(buf, at, sts, order, prow, fig, C):
    """The extension at buf[at:] for driven electrodes 0..C-1 and the return (C), rows in
    montage order (order[k]: the electrode of row k) -> its length. Each driven electrode's
    row: Supervisor.window()'s means of its state (that window then cleared, as window()
    does; an empty one gives zeros), z and RMS from prow (its latest period()); the
    return's: minus the driven means' sums, no voltage, unknown z, its RMS (its window is
    cleared: the caller saw it non-empty). fig (>= 4 + 3 (C + 1) + 7 words) gets the main
    fields: [0] the total set, [1] the total measured, [2] the voltage of the driven
    electrode of largest |mean v| (the first such), [3] that electrode's v RMS; the rest is
    scratch."""
    tset = 0
    tmeas = 0
    top = 0
    for c in range(C):
        st = sts[c]
        n = st[_W_N]
        o = 4 + 3 * c
        for k in range(3):          # the means toward zero, as Supervisor.window
            if n == 0:
                fig[o + k] = 0
            else:
                a = st[_W_N + 1 + k]
                fig[o + k] = a // n if a >= 0 else -((-a) // n)
        if n != 0:
            for k in range(_W_N, _W_END):
                st[k] = 0
        tset += fig[o]
        tmeas += fig[o + 1]
        v = fig[o + 2]
        t = fig[4 + 3 * top + 2]
        if (v if v >= 0 else -v) > (t if t >= 0 else -t):
            top = c
    st = sts[C]
    for k in range(_W_N, _W_END):
        st[k] = 0
    fig[0] = tset
    fig[1] = tmeas
    fig[2] = fig[4 + 3 * top + 2]
    fig[3] = prow[TR_LEN * top + 3]
    buf[at] = C + 1
    r = 4 + 3 * (C + 1)             # the row's 7 words, then its bytes
    o = at + 1
    for k in range(C + 1):
        c = order[k]
        p = TR_LEN * c
        if c == C:
            fig[r] = -tset
            fig[r + 1] = -tmeas
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
        for j in range(7):
            x = fig[r + j]
            buf[o] = x & 0xFF
            buf[o + 1] = (x >> 8) & 0xFF
            buf[o + 2] = (x >> 16) & 0xFF
            buf[o + 3] = (x >> 24) & 0xFF
            o += 4
    return o - at
