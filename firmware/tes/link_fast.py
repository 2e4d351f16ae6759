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


@micropython.viper
def cobs_decode_into(src, n: int, out) -> int:
    """Twin of tes.link.cobs_decode_into: the same length (or -1) and bytes. The plain
    code's memoryview slices allocate per block: ~0.2 ms a received frame on an RP2040
    (issue 9: every heartbeat pays it)."""
    s = ptr8(src)
    o = ptr8(out)
    cap = int(len(out))
    i = 0
    while i < n:
        if s[i] == 0:
            return -1
        i += 1
    i = 0
    w = 0
    while i < n:
        code = s[i]
        end = i + code
        if end > n:
            return -1
        if w + code - 1 > cap:
            return -1
        i += 1
        while i < end:
            o[w] = s[i]
            w += 1
            i += 1
        if code != 0xFF and i < n:
            if w >= cap:
                return -1
            o[w] = 0
            w += 1
    return w
