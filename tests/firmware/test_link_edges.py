"""The link's edges that a round trip of ordinary values does not reach: TELEM times that
wrap at 2**32 (a host's or a test's clock may be negative or past 2**32), RAW samples
clamped at +/-32767 (32768 would read back as -32768), and a TELEM frame built in the
buffer a longer frame used before it (its 0x00 delimiter must be written again).
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import struct

from tes import link as L


def test_telem_time_wraps_at_2_32_whatever_the_clock_gives():
    buf = bytearray(L.TELEM_SIZE)
    for t, want in ((-1, 0xFFFFFFFF), (-2, 0xFFFFFFFE), ((1 << 32) + 5, 5), (0, 0), (0x3FFFFFFF, 0x3FFFFFFF),
                    (0x40000000, 0x40000000), ((1 << 32) - 1, 0xFFFFFFFF)):
        assert L.pack_telem(buf, t, 2, 0, 0, 0, None, 0, 0) == L.TELEM_SIZE
        assert L.unpack_telem(buf)[0] == want, (t, L.unpack_telem(buf)[0])


def test_raw_samples_past_int16_are_clamped_not_wrapped():
    buf = bytearray(L.MAX_PAYLOAD)
    vals = [32766, 32767, 32768, 40000, -32767, -32768, -40000]
    n = L.pack_raw(buf, 7, vals)
    first, count, chan = struct.unpack_from(L.RAW_FMT, buf, 0)
    got = [struct.unpack_from("<h", buf, L.RAW_HEADER + 2 * k)[0] for k in range(count)]
    assert (first, count, n) == (7, 7, L.RAW_HEADER + 14)
    assert got == [32766, 32767, 32767, 32767, -32767, -32767, -32767], got


def test_a_telem_frame_after_a_longer_one_still_ends_in_its_delimiter():
    enc = L.Encoder()
    long = bytes(range(1, 200))                     # no zero byte: COBS copies it whole
    f = bytes(enc.frame(L.STATUS, 3, long))
    assert len(f) > L.TELEM_FRAME and f[L.TELEM_FRAME - 1] != 0   # that slot now holds data
    t = bytes(enc.telem(4, 1234, 2, 1000, 990, 5000, 5050, 12, 0))
    assert len(t) == L.TELEM_FRAME and t[-1] == 0 and 0 not in t[:-1]
    typ, seq, payload = L.decode(t)
    assert (typ, seq) == (L.TELEM, 4) and L.unpack_telem(payload)[:6] == (1234, 2, 1000, 990, 5000, 5050)
