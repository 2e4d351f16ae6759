"""Kernels of the multi-electrode engine (issue 12): the return electrode's current is
minus the sum of the driven channels' currents, sample by sample, in integers.

Plain code for every interpreter (CPython, the unix port, the 32-bit WebAssembly port, a
board): allocates nothing; |value| stays within the sum of the channels' peaks (<= 4 mA by
the validator), far inside +/-2**30. The kernels of tes.kernels are not touched here.
"""
try:
    import micropython  # the native emitter: same semantics as bytecode
except ImportError:  # CPython
    from tes import compat as micropython


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
