"""Link codec bounds: command fields at the edges of what a 32-bit board holds as a small
int, canonical JSON ordering, frame size limits, sequence arithmetic, TELEM/RAW packing at
their extremes. Plain asserts: runs under the unix port and CPython."""
from tes import link as L


def cmd(typ, obj):
    return L.parse_command(typ, L.dumps(obj).encode())


def test_command_ints_stay_board_small_ints():
    top = (1 << 30) - 1
    for v in (top, -top, 0, 1, -1):
        obj, code, _ = cmd(L.JOURNAL, {"start": v})
        assert code is None and obj["start"] == v, v
    for v in (top + 1, -top - 1, 1 << 40, -(1 << 40)):
        obj, code, detail = cmd(L.JOURNAL, {"start": v})
        assert (obj, code, detail) == (None, L.E_BAD_FIELD, "start must be int"), v


def test_command_field_kinds():
    assert cmd(L.RAWREQ, {"on": True})[1] is None
    for bad in (1, 0, "true", None):
        assert cmd(L.RAWREQ, {"on": bad}) == (None, L.E_BAD_FIELD, "on must be bool"), bad
    for bad in (True, False, 1.5, "5", None):
        assert cmd(L.JOURNAL, {"count": bad}) == (None, L.E_BAD_FIELD, "count must be int"), bad
    assert cmd(L.ABORT, {"reason": "x" * L.STR_MAX})[1] is None
    assert cmd(L.ABORT, {"reason": "x" * (L.STR_MAX + 1)}) == (None, L.E_BAD_FIELD, "reason must be str")
    assert cmd(L.ABORT, {"reason": 5}) == (None, L.E_BAD_FIELD, "reason must be str")
    assert cmd(L.START, {}) == (None, L.E_BAD_FIELD, "missing sha256")
    assert cmd(L.HELLO, {"link": 1})[1] is None                       # host is optional
    assert cmd(L.STOP, {"x": 1}) == (None, L.E_BAD_FIELD, "unknown field x")
    assert L.parse_command(L.STOP, b"") == ({}, None, "")
    assert L.parse_command(L.STOP, b"[1]") == (None, L.E_BAD_JSON, "not an object")
    assert L.parse_command(L.STOP, b"{") == (None, L.E_BAD_JSON, "not JSON")
    assert L.parse_command(0x7E, b"{}") == (None, L.E_UNKNOWN_TYPE, "type 0x7e")
    assert L.parse_command(L.REPLY, b"{}")[1] == L.E_UNKNOWN_TYPE


def test_dumps_sorts_keys_at_every_level():
    assert L.dumps({"b": 1, "a": {"d": [3, {"z": None, "y": True}], "c": "x"}}) == \
        '{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}'
    assert L.dumps([]) == "[]" and L.dumps({}) == "{}" and L.dumps((1, 2)) == "[1,2]"
    assert L.dumps(-7) == "-7" and L.dumps(False) == "false"
    try:
        L.dumps({1: 2})
        raise AssertionError("a non-string key was accepted")
    except TypeError:
        pass


def test_sequence_arithmetic_wraps_at_16_bits():
    assert L.seq_next(0xFFFF) == 0 and L.seq_next(5) == 6
    assert L.seq_delta(0xFFFF, 0) == 1
    assert L.seq_delta(0, 0xFFFF) == -1
    assert L.seq_delta(10, 10) == 0
    assert L.seq_delta(0, 0x7FFF) == 0x7FFF
    assert L.seq_delta(0, 0x8000) == -0x8000
    assert L.seq_delta(100, 99 + 0x8000) == 0x7FFF


def test_frame_size_limits():
    big = bytes(L.MAX_PAYLOAD)
    frame = L.encode(L.TELEM, 1, big)
    assert len(frame) <= L.MAX_ENCODED + 1 and frame[-1] == 0
    assert L.decode(frame) == (L.TELEM, 1, big)
    try:
        L.encode(L.TELEM, 1, bytes(L.MAX_PAYLOAD + 1))
        raise AssertionError("oversize payload encoded")
    except ValueError:
        pass
    assert L.MAX_RAW == 1031 and L.MAX_ENCODED == 1036 and L.MIN_RAW == 7
    items = L.Decoder().feed(L.encode(L.STOP, 65535, b"") + L.encode(L.STOP, 0, b"{}"))
    assert items == [(L.STOP, 65535, b""), (L.STOP, 0, b"{}")]


def test_telem_extremes():
    buf = bytearray(L.TELEM_SIZE)
    assert L.TELEM_SIZE == 45 and L.TELEM_FRAME == 54
    n = L.pack_telem(buf, (1 << 32) + 5, 10, -4000, 4000, -30000, 0, 7200000, 0xFFFF, 4000, 4500, 4600, 30000,
                     -18000)
    assert n == 45
    assert L.unpack_telem(buf) == (5, 10, -4000, 4000, -30000, 0, 7200000, 0xFFFF)
    assert L.unpack_telem_stats(buf) == (4000, 4500, 4600, 30000, -18000)
    for z in (None, -1, L.Z_UNKNOWN + 1):
        L.pack_telem(buf, 0, 0, 0, 0, 0, z, 0, 0)
        assert L.unpack_telem(buf)[5] is None, z
    L.pack_telem(buf, 0, 0, 0, 0, 0, L.Z_UNKNOWN - 1, 0, 0)
    assert L.unpack_telem(buf)[5] == L.Z_UNKNOWN - 1
    try:
        L.unpack_telem(bytes(44))
        raise AssertionError("short TELEM accepted")
    except ValueError:
        pass


def test_raw_clamps_and_counts():
    buf = bytearray(L.MAX_PAYLOAD)
    vals = [40000, -40000, 32767, -32767, -32768, 0, 1, -1]
    n = L.pack_raw(buf, 7, vals, chan=L.CH_SET)
    assert n == L.RAW_HEADER + 2 * len(vals)
    assert L.unpack_raw(bytes(buf[:n])) == (7, L.CH_SET, [32767, -32767, 32767, -32767, -32767, 0, 1, -1])
    assert L.RAW_MAX == 508
    n = L.pack_raw(buf, 0, list(range(L.RAW_MAX)))
    assert n == L.MAX_PAYLOAD - 1
    try:
        L.pack_raw(buf, 0, list(range(L.RAW_MAX + 1)))
        raise AssertionError("too many RAW samples packed")
    except ValueError:
        pass
    try:
        L.unpack_raw(bytes(buf[:n - 1]))
        raise AssertionError("RAW length mismatch accepted")
    except ValueError:
        pass


def test_load_chunks_at_the_edges():
    assert L.LOAD_CHUNK == L.MAX_PAYLOAD - 8
    for size in (0, 1, L.LOAD_CHUNK - 1, L.LOAD_CHUNK, L.LOAD_CHUNK + 1, 3 * L.LOAD_CHUNK):
        data = bytes(range(256)) * (size // 256 + 1)
        data = data[:size]
        parts = L.load_payloads(data)
        assert len(parts) == max(1, (size + L.LOAD_CHUNK - 1) // L.LOAD_CHUNK), size
        got = b""
        for p in parts:
            off, total, chunk = L.unpack_load(p)
            assert off == len(got) and total == size
            got += chunk
        assert got == data
    assert L.unpack_load(b"\x00" * 7) is None
    assert L.unpack_load(L.pack_load(0, 3, b"abc")[:8] + b"abcd") is None     # runs past total
    try:
        L.pack_load(2, 3, b"ab")
        raise AssertionError("chunk past total packed")
    except ValueError:
        pass


def test_wire_constants_are_the_documented_ones():
    # docs/wire.md: these numbers are on the wire; changing one breaks every other end.
    assert (L.LINK_VERSION, L.MAX_PAYLOAD, L.STR_MAX, L.SEQ_MASK) == (2, 1024, 96, 0xFFFF)
    assert (L.CH_MEAS, L.CH_SET) == (0, 1)
    assert (L.HELLO, L.LOAD, L.CHECK, L.START, L.STOP, L.ABORT, L.STATUS, L.JOURNAL, L.HEARTBEAT, L.EXIT,
            L.RAWREQ, L.STREAM) == tuple(range(1, 13))
    assert (L.REPLY, L.ERROR, L.EVENT, L.TELEM, L.RAW, L.LOG) == tuple(range(0x81, 0x87))
    assert L.Z_UNKNOWN == 0xFFFFFFFF and L.RAW_HEADER == 7 and L.LOAD_HEADER == 8


def test_optional_and_required_command_fields():
    for typ, obj in ((L.CHECK, {}), (L.ABORT, {}), (L.JOURNAL, {}), (L.HELLO, {"link": 1}),
                     (L.RAWREQ, {"on": False}), (L.STREAM, {"on": False}), (L.STOP, {}), (L.STATUS, {}),
                     (L.HEARTBEAT, {}), (L.EXIT, {})):
        assert cmd(typ, obj)[1] is None, (typ, obj)
    for typ, name in ((L.HELLO, "link"), (L.START, "sha256"), (L.RAWREQ, "on"), (L.STREAM, "on")):
        assert cmd(typ, {}) == (None, L.E_BAD_FIELD, "missing " + name), typ
    assert cmd(L.ABORT, {"reason": "x" * 96})[1] is None
    assert cmd(L.ABORT, {"reason": "x" * 97})[1] == L.E_BAD_FIELD


def test_decoder_reset_drops_a_partial_frame_and_counts_errors():
    dec = L.Decoder()
    frame = L.encode(L.STOP, 3, b"{}")
    assert dec.feed(frame[:4]) == []
    dec.reset()
    assert dec.feed(frame) == [(L.STOP, 3, b"{}")]
    assert (dec.frames, dec.errors) == (1, 0)
    dec.feed(b"\x05\x01\x02\x00")            # a bad frame
    assert dec.errors == 1
    dec.feed(b"\x07" * (L.MAX_ENCODED + 5))  # oversize, no delimiter yet
    assert dec.errors == 2
    dec.feed(b"\x07" * 100)                   # still the same oversize run
    assert dec.errors == 2
    assert dec.feed(b"\x00" + frame) == [(L.STOP, 3, b"{}")]
    assert (dec.frames, dec.errors) == (2, 2)


def test_raw_unpack_reads_the_most_negative_sample():
    payload = bytes([0, 0, 0, 0, 1, 0, 0, 0x00, 0x80])
    assert L.unpack_raw(payload) == (0, 0, [-32768])
    payload = bytes([0, 0, 0, 0, 1, 0, 0, 0xFF, 0x7F])
    assert L.unpack_raw(payload) == (0, 0, [32767])
