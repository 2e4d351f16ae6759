"""Link codec contracts the other tests leave open: the state numbers on the wire (docs/wire.md
table), COBS buffers that fit exactly (and by one byte too few), frames of the worst-case
encoded length, the views the device's own encoder hands out, decoder reset in the middle of
an oversize run, and the bitwise CRC a port without binascii.crc32 falls back to.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import binascii

from tes import link as L

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def _doc_states():
    """(value, name) rows of the "Device states" table in docs/wire.md."""
    rows = []
    inside = False
    with open(_HERE + "/../../docs/wire.md") as f:
        for line in f:
            if line.startswith("## "):
                inside = line.strip() == "## Device states"
                continue
            if inside and line.startswith("| ") and "`" in line:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                rows.append((int(cells[0]), cells[1].strip("`")))
    return rows


def test_state_numbers_are_the_documented_ones():
    rows = _doc_states()
    assert len(rows) == 11, rows
    assert [name for _, name in rows] == list(L.STATE_NAMES)
    consts = (L.IDLE, L.LOADED, L.CHECKING, L.READY, L.RAMP_UP, L.PLATEAU, L.RAMP_DOWN, L.PAUSE,
              L.SHAM_OFF, L.FAULT, L.STREAMING)
    assert list(consts) == [v for v, _ in rows]
    assert L.STIM_STATES == (4, 5, 6, 7, 8)      # "States 4-8 are stimulating"


def _nonzero(n, salt=0):
    """n bytes, none of them 0x00 (COBS worst case: no zero to shorten a block)."""
    return bytes([1 + (i * 7 + salt) % 255 for i in range(n)])


def _frame_has_no_zero(typ, seq, payload):
    raw = bytes([typ, seq & 0xFF, seq >> 8]) + payload
    crc = binascii.crc32(raw) & 0xFFFFFFFF
    return 0 not in raw and all((crc >> s) & 0xFF for s in (0, 8, 16, 24))


def test_worst_case_frames_encode_and_decode_at_every_length():
    # Raw frames without a single zero byte take the most COBS bytes: every payload length,
    # through both encoders and back, a frame of the documented maximum included.
    enc = L.Encoder()
    longest = 0
    for lp in range(L.MAX_PAYLOAD + 1):
        for salt in range(40):
            payload = _nonzero(lp, salt)
            if _frame_has_no_zero(0x84, 0x0101, payload):
                break
        else:
            continue
        raw_n = L.HEADER + lp + L.TRAILER
        frame = L.encode(0x84, 0x0101, payload)
        assert len(frame) == raw_n + 1 + raw_n // 254 + 1, lp      # every byte of the worst case, then 0x00
        assert L.decode(frame) == (0x84, 0x0101, payload), lp
        view = enc.frame(0x84, 0x0101, payload)
        assert bytes(view) == frame, lp
        assert L.decode(view) == (0x84, 0x0101, payload), lp      # the device's own memoryview
        longest = max(longest, len(frame) - 1)
    assert longest == L.MAX_ENCODED


def test_cobs_takes_any_buffer_and_decodes_into_an_exact_fit():
    for n in (0, 1, 253, 254, 255, 508, 600):
        for data in (_nonzero(n), bytes(n), _nonzero(n)[: n // 2] + b"\x00" + _nonzero(n)[n // 2 + 1:]):
            data = data[:n]
            enc = L.cobs_encode(memoryview(data))
            assert enc == L.cobs_encode(bytearray(data)) == L.cobs_encode(data)
            assert L.cobs_decode(memoryview(enc)) == data
            assert L.cobs_decode(bytearray(enc)) == data
            out = bytearray(len(data))                       # exactly the decoded length
            assert L.cobs_decode_into(enc, len(enc), out) == len(data), n
            assert bytes(out) == data
            if n:
                assert L.cobs_decode_into(enc, len(enc), bytearray(n - 1)) == -1, n


def test_cobs_decode_into_reports_every_malformation_as_minus_one():
    out = bytearray(16)
    assert L.cobs_decode_into(b"\x03\x11\x00\x22", 4, out) == -1          # a zero inside
    assert L.cobs_decode_into(b"\x05\x11\x22", 3, out) == -1              # block past the end
    assert L.cobs_decode_into(b"\x03\x11\x22\x02\x33", 5, bytearray(3)) == -1   # its zero does not fit
    assert L.cobs_decode_into(b"\x03\x11\x22\x02\x33", 5, bytearray(4)) == 4
    assert L.cobs_decode_into(b"\x03\x11\x22\x02\x33", 5, bytearray(2)) == -1   # the data does not fit


def test_empty_and_delimiter_only_frames_are_short():
    for frame in (b"", b"\x00", bytearray(b"\x00"), memoryview(b"")):
        try:
            L.decode(frame)
            raise AssertionError("decoded %r" % (bytes(frame),))
        except ValueError as e:
            assert e.args[0] == L.E_SHORT, (frame, e.args)


def test_frame_type_outside_a_byte_is_refused_as_such():
    for typ in (-1, -200, 0x100, 0x1FF):
        for fn in (lambda typ=typ: L.encode(typ, 1, b""), lambda typ=typ: L.Encoder().frame(typ, 1, b"")):
            try:
                fn()
                raise AssertionError("type %d encoded" % typ)
            except ValueError as e:
                assert "type" in str(e), (typ, e)    # not a byte conversion failing by chance
    for typ in (0, 0xFF):
        assert L.decode(L.encode(typ, 2, b"x")) == (typ, 2, b"x")


def test_decoder_reset_ends_an_oversize_run():
    dec = L.Decoder()
    frame = L.encode(L.STOP, 9, b"{}")
    assert dec.feed(b"\x07" * (L.MAX_ENCODED + 3)) == [(L.BAD, L.E_OVERSIZE, L.MAX_ENCODED + 1)]
    dec.reset()                                   # e.g. the port was reopened: start afresh
    assert dec.feed(frame) == [(L.STOP, 9, b"{}")]
    assert (dec.frames, dec.errors) == (1, 1)
    # Errors are counted one by one, whatever their kind.
    bad_crc = bytearray(frame)
    bad_crc[2] ^= 0x40
    items = dec.feed(b"\x05\x01\x02\x00" + bytes(bad_crc) + b"\x01\x00" + frame)
    assert [it[0] for it in items] == [L.BAD, L.BAD, L.BAD, L.STOP], items
    assert (dec.frames, dec.errors) == (2, 4)


def _fallback_crc32():
    """tes.link's crc32 as built on a port whose binascii has none."""
    import sys
    real = binascii
    had = "binascii" in sys.modules

    class NoCrc:
        pass

    fake = NoCrc()
    for name in dir(real):
        if name != "crc32" and not name.startswith("__"):
            setattr(fake, name, getattr(real, name))
    with open(_HERE + "/../../firmware/tes/link.py") as f:
        src = f.read()
    sys.modules["binascii"] = fake
    try:
        ns = {"__name__": "link_nocrc"}
        exec(compile(src, "link_nocrc.py", "exec"), ns)
    finally:
        if had:
            sys.modules["binascii"] = real
        else:
            del sys.modules["binascii"]
    return ns["crc32"]


def test_fallback_crc_is_the_standard_crc32():
    crc = _fallback_crc32()
    assert crc is not binascii.crc32
    assert crc(b"123456789") == 0xCBF43926            # the CRC-32 check value
    assert crc(b"") == 0
    for data in (b"\x00", b"\xff" * 7, bytes(range(256)), b"tesctl"):
        assert crc(data) == binascii.crc32(data) & 0xFFFFFFFF, data
        assert crc(data[3:], crc(data[:3])) == crc(data)         # running CRC, as binascii


def test_the_ports_own_crc_is_used_when_it_has_one():
    # The bitwise fallback takes ms per frame on a board: the C one must be the one in use.
    assert L.crc32 is binascii.crc32
