"""Viper twin of tes.link.cobs_encode_into: the same bytes, one pass over machine bytes.
On an RP2040 the plain code's find() and slice copies cost ~1.5 ms a TELEM frame; this
costs tens of us (tests/firmware/test_link_fast.py checks it byte for byte against the
plain code). Imported only where the viper emitter exists."""
import micropython


@micropython.viper
def cobs_encode_into(src, n: int, out, pos: int) -> int:
    s = ptr8(src)
    o = ptr8(out)
    at = pos            # where the current block's code byte goes
    w = pos + 1
    code = 1
    i = 0
    while i < n:
        b = s[i]
        if b == 0:
            o[at] = code
            at = w
            w += 1
            code = 1
        else:
            o[w] = b
            w += 1
            code += 1
            if code == 0xFF:
                o[at] = code
                at = w
                w += 1
                code = 1
        i += 1
    o[at] = code
    return w
