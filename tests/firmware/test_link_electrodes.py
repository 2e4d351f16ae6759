"""tes.link's TELEM extension for a multi-electrode session (issue 12): pack_telem_electrodes
after the TELEM_SIZE bytes, unpack_telem_electrodes back, montage order kept, z unknown as
Z_UNKNOWN's bytes, an old reader (unpack_telem, unpack_telem_stats) still reading the main
fields of an extended frame, and a frame without the extension giving []. Random rows drawn
by hypothesis under CPython and from a seeded sequence on every port.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
from tes import link as L

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:     # MicroPython: the seeded sequence stands in
    given = None

MAIN = (61250, 5, -2000, -1987, 9935, None, 98500, 1, 2000, 1987, 2003, 9880, None)


def frame(rows, main=MAIN):
    """A whole TELEM frame with the extension, through the general encoder, and its payload."""
    buf = bytearray(L.TELEM_SIZE + 1 + len(rows) * L.TELEM_EL_SIZE)
    n = L.pack_telem(buf, *main)
    k = L.pack_telem_electrodes(buf, n, rows)
    assert k == 1 + len(rows) * L.TELEM_EL_SIZE
    assert n + k == len(buf)
    typ, seq, payload = L.decode(L.encode(L.TELEM, 77, bytes(buf)))
    assert (typ, seq) == (L.TELEM, 77)
    return payload


def expect(rows):
    return [(r[0], r[1], r[2], None if r[3] is None or not 0 <= r[3] <= 0x7FFFFFFF else r[3], r[4], r[5], r[6])
            for r in rows]


def test_round_trip_in_montage_order():
    # 4x1 HD-tDCS, the return (Cz) listed third: the rows come back in the order packed.
    rows = [(500, 498, 2410, 4830, 500, 498, 2412),
            (500, 503, 2602, 5170, 500, 503, 2604),
            (-2000, -2001, 0, None, 2000, 2001, 0),
            (500, 497, 2390, 4811, 500, 497, 2391),
            (500, 503, 2550, 5069, 500, 503, 2551)]
    p = frame(rows)
    assert len(p) == L.TELEM_SIZE + 1 + 5 * 28
    got = L.unpack_telem_electrodes(p)
    assert got == expect(rows)
    assert [r[1] for r in got] == [498, 503, -2001, 497, 503]
    assert sum(r[0] for r in got) == 0


def test_unknown_impedance_is_the_bytes_of_z_unknown():
    for z in (None, -1, -5, 0x80000000, L.Z_UNKNOWN):
        buf = bytearray(1 + L.TELEM_EL_SIZE)
        L.pack_telem_electrodes(buf, 0, [(1, 2, 3, z, 4, 5, 6)])
        assert bytes(buf[1 + 12:1 + 16]) == b"\xff\xff\xff\xff", z
    p = frame([(1, 2, 3, None, 4, 5, 6), (7, 8, 9, 0, 10, 11, 12), (1, 1, 1, 1000000, 1, 1, 1)])
    assert [r[3] for r in L.unpack_telem_electrodes(p)] == [None, 0, 1000000]


def test_old_readers_still_read_the_main_fields():
    rows = [(1000, 990, 5000, 5000, 707, 706, 3535), (-1000, -990, 0, None, 707, 706, 0)]
    p = frame(rows)
    assert L.unpack_telem(p) == (61250, 5, -2000, -1987, 9935, None, 98500, 1)
    assert L.unpack_telem_stats(p) == (2000, 1987, 2003, 9880, None)


def test_a_frame_without_the_extension_has_no_rows():
    buf = bytearray(L.TELEM_SIZE)
    L.pack_telem(buf, *MAIN)
    assert L.unpack_telem_electrodes(bytes(buf)) == []
    # The device's in-place frame of a two-electrode session: unchanged, no rows.
    enc = L.Encoder()
    got = bytes(enc.telem(3, 61250, 5, 2000, 1987, 9935, 4972, 98500, 1, 2000, 1987, 2003, 9880))
    assert len(got) == L.TELEM_FRAME
    assert L.unpack_telem_electrodes(L.decode(got)[2]) == []
    # An empty extension (E = 0) reads as no rows too.
    assert L.unpack_telem_electrodes(frame([])) == []


def test_truncated_and_oversized():
    p = frame([(1, 2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13, 14)])
    for cut in (1, 5, 28):
        try:
            L.unpack_telem_electrodes(p[:-cut])
        except ValueError:
            pass
        else:
            raise AssertionError("a truncated extension was read")
    try:
        L.unpack_telem_electrodes(p[:L.TELEM_SIZE - 1])
    except ValueError:
        pass
    else:
        raise AssertionError("a short TELEM was read")
    try:
        L.pack_telem_electrodes(bytearray(400), 0, [(0,) * 7] * (L.TELEM_EL_MAX + 1))
    except ValueError:
        pass
    else:
        raise AssertionError("10 electrodes packed")
    # Nine electrodes (8 sources and the return) fit a frame with room to spare.
    rows = [(k, -k, 3 * k, k * 1000, k, k, k) for k in range(L.TELEM_EL_MAX)]
    p = frame(rows)
    assert len(p) <= L.MAX_PAYLOAD
    assert L.unpack_telem_electrodes(p) == expect(rows)


def check_rows(rows):
    p = frame(rows)
    assert L.unpack_telem_electrodes(p) == expect(rows)
    assert L.unpack_telem(p)[:5] == MAIN[:5]


def _lcg_rows(seed):
    x = seed * 7919 + 1
    out = []
    for _ in range(1 + seed % L.TELEM_EL_MAX):
        row = []
        for _k in range(7):
            x = (x * 1103515245 + 12345) & 0x3FFFFFFF
            row.append(x - 0x20000000)
        if x & 3 == 0:
            row[3] = None
        elif x & 3 == 1:
            row[3] = x & 0xFFFFF
        out.append(tuple(row))
    return out


def test_seeded_random_rows():
    for seed in range(60):
        check_rows(_lcg_rows(seed))


if given is not None:
    VAL = st.integers(-2 ** 30, 2 ** 30 - 1)
    ROW = st.tuples(VAL, VAL, VAL, st.one_of(st.none(), st.integers(-2 ** 31, 2 ** 32)), VAL, VAL, VAL)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(ROW, min_size=0, max_size=L.TELEM_EL_MAX))
    def test_hypothesis_random_rows(rows):
        # z > 2**31 - 1 does not fit the i32: unknown, like a negative one.
        check_rows(rows)
