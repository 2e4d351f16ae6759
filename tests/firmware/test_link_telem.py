"""tes.link.Encoder.telem: the in-place TELEM frame is the general encoder's frame, byte for
byte, for extreme and ordinary values, decodes to what was packed, and allocates nothing.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
import sys

from tes import link as L

try:
    import micropython
except ImportError:  # CPython
    micropython = None


def cases():
    x = 12345
    ext = (0, 1, -1, 0x3FFFFFFF, -0x40000000, 5000, -5000)
    for v in ext:
        yield (0, 0, 0, v, v, v, None, 0, 0, v, v, v, v, None)
    yield (0xFFFF, 0x3FFFFFFF, 255, 4000, -4000, 30000, L.Z_UNKNOWN, 0x3FFFFFFF, 0xFFFF, 4000, 4500, 4600,
           30000, 18000)
    yield (7, 1000, 2, 1000, 990, 5000, -1, 12, 3, 1000, 990, 1010, 5000, -18000)   # z < 0: unknown
    yield (8, 1000, 2, 1000, 990, 5000, L.Z_UNKNOWN + 1, 12, 3, 707, 706, 1004, 4245, 0)
    for _ in range(200):
        vals = []
        for _k in range(14):
            x = (x * 1103515245 + 12345) & 0x3FFFFFFF
            vals.append(x)
        seq, t, st, s, m, v, z, q, f, a, b, c, d, ph = vals
        yield (seq & 0xFFFF, t, st & 0xFF, (s & 0x1FFF) - 4096, (m & 0x1FFF) - 4096,
               (v & 0xFFFF) - 32768, z & 0xFFFFF, q & 0xFFFFFF, f & 0xFFFF, a & 0x1FFF, b & 0x1FFF,
               c & 0x1FFF, d & 0xFFFF, (ph % 36001) - 18000 if ph & 7 else None)


def test_the_in_place_telem_frame_is_the_general_frame():
    enc = L.Encoder()
    buf = bytearray(L.TELEM_SIZE)
    for case in cases():
        seq, t, st, s, m, v, z, q, f, a, b, c, d, ph = case
        got = bytes(enc.telem(seq, t, st, s, m, v, z, q, f, a, b, c, d, ph))
        n = L.pack_telem(buf, t, st, s, m, v, z, q, f, a, b, c, d, ph)
        want = L.encode(L.TELEM, seq, bytes(buf[:n]))
        assert got == want, case
        assert len(got) == L.TELEM_FRAME
        typ, seq2, payload = L.decode(got)
        assert (typ, seq2) == (L.TELEM, seq)
        zz = None if z is None or z < 0 or z > L.Z_UNKNOWN else z
        if zz == L.Z_UNKNOWN:
            zz = None
        assert L.unpack_telem(payload) == (t, st, s, m, v, zz, q, f)
        assert L.unpack_telem_stats(payload) == (a, b, c, d, ph), case
    # The link-1 call (no figures) still makes a whole frame: figures 0, phase unknown.
    got = bytes(enc.telem(3, 1000, 2, 1000, 990, 5000, 5000, 12, 3))
    assert L.unpack_telem_stats(L.decode(got)[2]) == (0, 0, 0, 0, None)


def test_the_telem_frame_allocates_nothing():
    # Where small ints hold 32 bits unsigned (a 64-bit unix port). On a board and the
    # 32-bit port the crc32 value is itself a big int: that one allocation stays (the tick
    # may allocate; the block path never calls this).
    if micropython is None or not hasattr(micropython, "heap_lock") or sys.maxsize < 2 ** 32:
        return
    enc = L.Encoder()
    enc.telem(1, 1000, 2, 1000, 990, 5000, 5000, 12, 3, 707, 706, 1004, 4245)
    micropython.heap_lock()
    try:
        for k in range(50):
            enc.telem(k, 1000 + k, 2, 1000, 990 - k, 5000, 5000, 12 + k, 3, 707 + k, 706, 1004, 4245)
            enc.telem(k, 1000 + k, 2, 1000, 990 - k, 5000, None, 12 + k, 3)
    finally:
        micropython.heap_unlock()
