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
