"""Link codec tests: run under the unix port (tools/mptest.py test_link) and CPython (pytest).
Plain asserts only; no pytest import."""
import json

from tes import link as L


def _vectors_path():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    for p in (here + "/../vectors/wire.json", "tests/vectors/wire.json", "../vectors/wire.json",
              "../../tests/vectors/wire.json"):
        try:
            open(p).close()
            return p
        except OSError:
            pass
    raise OSError("tests/vectors/wire.json not found from " + here)


_CACHE = []


def vectors():
    if not _CACHE:
        with open(_vectors_path()) as f:
            _CACHE.append(json.load(f))
    return _CACHE[0]


def h(s):
    return bytes.fromhex(s)


def feed_all(dec, data, step=0):
    items = []
    if step <= 0:
        return dec.feed(data)
    for i in range(0, len(data), step):
        items.extend(dec.feed(data[i:i + step]))
    return items


# --- vectors ---------------------------------------------------------------------------------

def test_vectors_encode_decode():
    data = vectors()
    assert data["max_payload"] == L.MAX_PAYLOAD
    assert data["max_encoded"] == L.MAX_ENCODED
    assert data["link_version"] == L.LINK_VERSION
    enc = L.Encoder()
    for v in data["vectors"]:
        payload = h(v["payload_hex"])
        frame = h(v["frame_hex"])
        assert L.encode(v["type"], v["seq"], payload) == frame, v["name"]
        assert bytes(enc.frame(v["type"], v["seq"], payload)) == frame, v["name"]
        assert L.decode(frame) == (v["type"], v["seq"], payload), v["name"]
        assert L.Decoder().feed(frame) == [(v["type"], v["seq"], payload)], v["name"]
        assert L.NAMES[v["type"]] == v["type_name"]


def test_vectors_payloads():
    buf = bytearray(L.MAX_PAYLOAD)
    for v in vectors()["vectors"]:
        payload = h(v["payload_hex"])
        if "json" in v:
            obj, code, _ = L.decode_json(payload)
            assert code is None and obj == v["json"], v["name"]
            if v["json"]:   # canonical bytes are identical on both implementations
                assert L.dumps(v["json"]).encode() == payload, v["name"]
            if v["type"] in L.COMMANDS:
                obj, code, detail = L.parse_command(v["type"], payload)
                assert code is None, (v["name"], code, detail)
        if "telem" in v:
            t = v["telem"]
            want = tuple(t[k] for k in L.TELEM_FIELDS)
            assert L.unpack_telem(payload) == want, v["name"]
            stats = tuple(t[k] for k in L.TELEM_STATS)
            assert L.unpack_telem_stats(payload) == stats, v["name"]
            n = L.pack_telem(buf, *(want + stats))
            assert bytes(buf[:n]) == payload, v["name"]
        if "raw" in v:
            r = v["raw"]
            assert L.unpack_raw(payload) == (r["first"], r["chan"], r["samples"])
            n = L.pack_raw(buf, r["first"], r["samples"], chan=r["chan"])
            assert bytes(buf[:n]) == payload


def test_bad_vectors():
    for b in vectors()["bad"]:
        frame = h(b["frame_hex"])
        assert L.Decoder().feed(frame) == [(L.BAD, b["error"], len(frame))], b["name"]
        try:
            L.decode(frame)
            raise AssertionError("decoded a bad frame: " + b["name"])
        except ValueError as e:
            assert e.args[0] == b["error"]


def test_vectors_split_byte_by_byte():
    data = vectors()
    stream = b"\x00"
    want = []
    for v in data["vectors"]:
        stream += h(v["frame_hex"])
        want.append((v["type"], v["seq"], h(v["payload_hex"])))
    for b in data["bad"]:
        stream += h(b["frame_hex"])
        want.append((L.BAD, b["error"], len(h(b["frame_hex"]))))
    for v in data["vectors"]:     # good frames after the bad ones are still found
        stream += h(v["frame_hex"])
        want.append((v["type"], v["seq"], h(v["payload_hex"])))
    for step in (0, 1, 2, 3, 7, 64, 1000):
        dec = L.Decoder()
        assert feed_all(dec, stream, step) == want, step
    dec = L.Decoder()
    got = []
    for i in range(len(stream)):
        got.extend(dec.feed(bytearray(stream[i:i + 1])))
    assert got == want
    got = L.Decoder().feed(memoryview(stream))
    assert got == want


def test_vectors_in_docs():
    here = _vectors_path().rsplit("/", 1)[0]
    with open(here + "/../../docs/wire.md") as f:
        doc = "".join(f.read().split()).lower()
    data = vectors()
    for v in data["vectors"] + data["bad"]:
        assert v["frame_hex"] in doc, v["name"]


# --- COBS --------------------------------------------------------------------------------------

COBS_CASES = (
    ("", "01"),
    ("00", "0101"),
    ("0000", "010101"),
    ("001100", "01021101"),
    ("11220033", "0311220233"),
    ("11223344", "0511223344"),
    ("11000000", "0211010101"),
)


def test_cobs_known():
    for raw, enc in COBS_CASES:
        assert L.cobs_encode(h(raw)) == h(enc), raw
        assert L.cobs_decode(h(enc)) == h(raw), raw


def test_cobs_long_runs():
    r254 = bytes(range(1, 255))             # 254 non-zero bytes: one full 0xFF block
    assert L.cobs_encode(r254) == b"\xff" + r254 + b"\x01"
    assert L.cobs_decode(b"\xff" + r254) == r254           # the short form decodes too
    assert L.cobs_decode(b"\xff" + r254 + b"\x01") == r254
    r255 = r254 + b"\xff"
    assert L.cobs_encode(r255) == b"\xff" + r254 + b"\x02\xff"
    assert L.cobs_encode(b"\x00" + r254) == b"\x01\xff" + r254 + b"\x01"
    assert L.cobs_encode(r254 + b"\x00") == b"\xff" + r254 + b"\x01\x01"
    r253 = bytes(range(1, 254))
    assert L.cobs_encode(r253) == b"\xfe" + r253
    cases = [r253, r254, r255, r254 + b"\x00", b"\x00" + r254, r254 * 3, r254 + r254 + b"\x00",
             bytes(1031), b"\xff" * 1031, bytes(range(256)) * 4, b"\x01" * 508 + b"\x00" * 3]
    for data in cases:
        e = L.cobs_encode(data)
        assert b"\x00" not in e
        assert len(e) <= len(data) + 1 + len(data) // 254
        assert L.cobs_decode(e) == data


def test_cobs_decode_rejects():
    for bad in ("05112233", "ff11", "021100", "0211002201", "00"):
        try:
            L.cobs_decode(h(bad))
            raise AssertionError("accepted " + bad)
        except ValueError:
            pass
    out = bytearray(2)
    assert L.cobs_decode_into(h("0411223344"[:8]), 4, out) == -1      # does not fit
    assert L.cobs_decode_into(h("03112202"), 4, bytearray(3)) == -1    # zero does not fit


# --- frames --------------------------------------------------------------------------------------

def test_encode_limits():
    big = bytes(L.MAX_PAYLOAD)
    f = L.encode(L.RAW, 3, big)
    assert len(f) <= L.MAX_ENCODED + 1
    assert L.decode(f) == (L.RAW, 3, big)
    ff = b"\xff" * L.MAX_PAYLOAD
    f = L.encode(L.RAW, 0xFFFF, ff)
    assert L.Decoder().feed(f) == [(L.RAW, 0xFFFF, ff)]
    for bad in ((L.RAW, 0, bytes(L.MAX_PAYLOAD + 1)), (256, 0, b""), (-1, 0, b"")):
        try:
            L.encode(*bad)
            raise AssertionError("encoded " + repr(bad[:2]))
        except ValueError:
            pass
    assert L.decode(L.encode(L.TELEM, 0x10000 + 5, b"x")) == (L.TELEM, 5, b"x")


def _raw_frame(typ, seq, payload):
    raw = bytes([typ, seq & 0xFF, seq >> 8]) + payload
    crc = L.crc32(raw) & 0xFFFFFFFF
    raw += bytes([crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24])
    return L.cobs_encode(raw) + b"\x00"


def test_oversize_payload_rejected():
    ok = L.encode(L.HELLO, 1, b"{}")
    assert _raw_frame(L.HELLO, 1, b"{}") == ok
    # decoded length 1032 but encoded (all non-zero) 1037 > MAX_ENCODED: overflow path
    f = _raw_frame(L.RAW, 1, b"\x01" * (L.MAX_PAYLOAD + 1))
    items = L.Decoder().feed(f + ok)
    assert items[0][:2] == (L.BAD, L.E_OVERSIZE) and items[1:] == [(L.HELLO, 1, b"{}")], items
    # mostly zeros: encoded <= MAX_ENCODED, decoded > MAX_RAW: the post-decode check
    f = _raw_frame(L.RAW, 1, bytes(L.MAX_PAYLOAD + 3))
    assert len(f) - 1 <= L.MAX_ENCODED
    assert L.Decoder().feed(f + ok) == [(L.BAD, L.E_OVERSIZE, len(f)), (L.HELLO, 1, b"{}")]


def test_decoder_oversize_garbage_reported_once():
    ok = L.encode(L.HEARTBEAT, 2)
    dec = L.Decoder()
    items = []
    for _ in range(10):
        items.extend(dec.feed(b"\x55" * 700))
    assert items == [(L.BAD, L.E_OVERSIZE, L.MAX_ENCODED + 1)], items
    assert dec._n == 0 and len(dec._buf) == L.MAX_ENCODED
    assert dec.feed(b"\x55\x00" + ok) == [(L.HEARTBEAT, 2, b"")]
    # exactly MAX_ENCODED bytes without a delimiter is not yet oversize
    dec = L.Decoder()
    assert dec.feed(b"\x01" * L.MAX_ENCODED) == []
    assert dec.feed(b"\x01") == [(L.BAD, L.E_OVERSIZE, L.MAX_ENCODED + 1)]
    assert dec.feed(b"\x00" + ok) == [(L.HEARTBEAT, 2, b"")]


def test_decoder_resync_after_garbage():
    ok1 = L.encode(L.STATUS, 10)
    ok2 = L.encode_json(L.START, 11, {"sha256": "ab" * 32})
    garbage = bytes((i * 37 + 11) & 0xFF for i in range(300))     # includes some zeros
    items = L.Decoder().feed(garbage + b"\x00" + ok1 + garbage[:50] + b"\x00" + ok2)
    frames = [it for it in items if it[0] != L.BAD]
    assert frames == [(L.STATUS, 10, b""), (L.START, 11, L.dumps({"sha256": "ab" * 32}).encode())]
    assert len(items) > 2
    # a truncated frame followed by a good one: the bad part is one error, then the frame
    dec = L.Decoder()
    items = dec.feed(ok2[:20] + b"\x00" + ok1)
    assert len(items) == 2 and items[0][0] == L.BAD and items[1] == (L.STATUS, 10, b"")
    assert dec.frames == 1 and dec.errors == 1
    # empty frames (runs of delimiters) are ignored
    assert L.Decoder().feed(b"\x00\x00\x00" + ok1 + b"\x00\x00") == [(L.STATUS, 10, b"")]


def test_bad_crc_every_byte():
    f = L.encode_json(L.REPLY, 77, {"ok": True, "re": 5})
    good = L.decode(f)
    for i in range(len(f) - 1):
        for mask in (0x01, 0x80, 0xFF):
            b = bytearray(f)
            b[i] ^= mask
            if b[i] == 0:
                continue
            for it in L.Decoder().feed(bytes(b)):
                assert it[0] == L.BAD, (i, mask, it)
                assert it[1] in (L.E_BAD_CRC, L.E_BAD_COBS, L.E_SHORT), it
    assert good == (L.REPLY, 77, b'{"ok":true,"re":5}')
    hb = bytearray(L.encode(L.HEARTBEAT, 3))
    assert hb[0] == 3 and hb[3] == 5         # code 3, type, seq lo; code 5, seq hi = 0
    hb[-2] ^= 0x10                           # the last CRC byte
    assert L.Decoder().feed(hb) == [(L.BAD, L.E_BAD_CRC, len(hb))]


def test_short_frames():
    for raw in (b"", b"\x01", b"\x01\x00\x00", b"\x01\x00\x00\x00\x00\x00"):
        f = L.cobs_encode(raw) + b"\x00"
        assert L.Decoder().feed(f) == [(L.BAD, L.E_SHORT, len(f))], raw


def test_seq():
    assert L.seq_next(0xFFFF) == 0
    assert L.seq_delta(0xFFFF, 0) == 1
    assert L.seq_delta(5, 5) == 0
    assert L.seq_delta(5, 4) == -1
    assert L.seq_delta(0xFFF0, 0x0010) == 0x20
    assert L.seq_delta(0, 0x8000) == -0x8000
    assert L.seq_delta(0, 0x7FFF) == 0x7FFF


# --- payloads ------------------------------------------------------------------------------------

def test_dumps_canonical():
    assert L.dumps({"b": 1, "a": [True, None, -3, "x"], "c": {}}) == '{"a":[true,null,-3,"x"],"b":1,"c":{}}'
    assert L.dumps({"s": 'q"\\\n'}) == '{"s":"q\\"\\\\\\n"}'
    assert L.dumps({"u": "\u00b5A"}).encode() == b'{"u":"\xc2\xb5A"}'
    assert json.loads(L.dumps({"z": [{"y": 1, "x": 2}]})) == {"z": [{"x": 2, "y": 1}]}


def test_error_payload():
    p = L.error_payload(None, L.E_BAD_CRC)
    assert p == b'{"detail":"","error":"bad-crc","re":null}'
    assert L.error_payload(12, L.E_BAD_FIELD, "missing link") == \
        b'{"detail":"missing link","error":"bad-field","re":12}'


def test_parse_command():
    P = L.parse_command
    assert P(L.HELLO, b'{"link":1}') == ({"link": 1}, None, "")
    assert P(L.HEARTBEAT, b"") == ({}, None, "")
    assert P(L.HEARTBEAT, b"{}") == ({}, None, "")
    assert P(L.RAWREQ, b'{"on":false,"decim":4}')[1] is None
    assert P(L.STREAM, b'{"on":true}')[1] is None
    cases = (
        (L.HELLO, b"{}", L.E_BAD_FIELD),                    # missing required
        (L.HELLO, b'{"link":true}', L.E_BAD_FIELD),         # bool is not an int
        (L.HELLO, b'{"link":"1"}', L.E_BAD_FIELD),
        (L.HELLO, b'{"link":1.5}', L.E_BAD_FIELD),
        (L.HELLO, b'{"link":1,"x":2}', L.E_BAD_FIELD),      # unknown key
        (L.HELLO, b'{"link":1073741824}', L.E_BAD_FIELD),   # not a small int
        (L.RAWREQ, b'{"on":1}', L.E_BAD_FIELD),             # int is not a bool
        (L.START, b'{"sha256":null}', L.E_BAD_FIELD),
        (L.ABORT, ('{"reason":"' + "x" * 200 + '"}').encode(), L.E_BAD_FIELD),
        (L.STATUS, b"[]", L.E_BAD_JSON),
        (L.STATUS, b"{", L.E_BAD_JSON),
        (L.STATUS, b"\xff\xfe", L.E_BAD_JSON),
        (L.STATUS, b"null", L.E_BAD_JSON),
        (L.LOAD, b"", L.E_UNKNOWN_TYPE),                    # binary: not a JSON command
        (L.REPLY, b"{}", L.E_UNKNOWN_TYPE),                 # wrong direction
        (0x7F, b"{}", L.E_UNKNOWN_TYPE),
    )
    for typ, payload, code in cases:
        obj, got, detail = P(typ, payload)
        assert obj is None and got == code, (typ, payload, got, detail)
        assert isinstance(detail, str) and detail


def test_type_table():
    seen = {}
    for t in L.HOST_TYPES + L.DEVICE_TYPES:
        assert t not in seen and 0 < t < 256
        seen[t] = 1
        assert t in L.NAMES
    for t in L.HOST_TYPES:
        assert not t & L.DEVICE_BIT
    for t in L.DEVICE_TYPES:
        assert t & L.DEVICE_BIT
    for t in L.COMMANDS:
        assert t in L.HOST_TYPES
    assert len(L.STATE_NAMES) == L.STREAMING + 1


def test_telem():
    buf = bytearray(50)
    assert L.pack_telem(buf, 0x1FFFFFFFF, L.PLATEAU, -4000, 4000, -35000, 0, -1, 0xFFFF) == L.TELEM_SIZE
    assert L.TELEM_SIZE == 45
    t = L.unpack_telem(buf[:L.TELEM_SIZE])
    assert t == (0xFFFFFFFF, L.PLATEAU, -4000, 4000, -35000, 0, -1, 0xFFFF)
    assert L.unpack_telem_stats(buf[:L.TELEM_SIZE]) == (0, 0, 0, 0, None)   # defaults: no figures, no phase
    for z in (None, -1, 1 << 33):
        L.pack_telem(buf, 0, 0, 0, 0, 0, z, 0, 0)
        assert L.unpack_telem(buf)[5] is None           # longer payloads are accepted
    # The figures after the link-1 fields; the phase clamps to +/-180 degrees.
    for ph, want in ((None, None), (0, 0), (-4180, -4180), (18000, 18000), (18001, 18000), (-40000, -18000)):
        L.pack_telem(buf, 1, 2, 3, 4, 5, 6, 7, 8, 707, 706, 1004, 4245, ph)
        assert L.unpack_telem(buf) == (1, 2, 3, 4, 5, 6, 7, 8)
        assert L.unpack_telem_stats(buf) == (707, 706, 1004, 4245, want), ph
    for short in (26, 27, 44):
        try:
            L.unpack_telem_stats(buf[:short])
            raise AssertionError("short TELEM accepted")
        except ValueError:
            pass
    try:
        L.unpack_telem(buf[:44])
        raise AssertionError("short TELEM accepted")
    except ValueError:
        pass


def test_raw():
    buf = bytearray(L.MAX_PAYLOAD)
    samples = [0, 1, -1, 4000, -4000, 32767, -32767, 40000, -40000]
    n = L.pack_raw(buf, 7, samples, chan=L.CH_SET)
    assert n == L.RAW_HEADER + 2 * len(samples)
    assert L.unpack_raw(buf[:n]) == (7, L.CH_SET, samples[:7] + [32767, -32767])
    from array import array
    a = array("h", range(-254, 254))
    assert len(a) == L.RAW_MAX
    n = L.pack_raw(buf, 0xFFFFFFFF, a)
    assert n == L.MAX_PAYLOAD - 1
    assert L.unpack_raw(buf[:n]) == (0xFFFFFFFF, L.CH_MEAS, list(a))
    f = L.encode(L.RAW, 1, buf[:n])
    assert L.decode(f)[2] == bytes(buf[:n])
    n = L.pack_raw(buf, 5, a, count=3)
    assert L.unpack_raw(buf[:n])[2] == [-254, -253, -252]
    for bad in (buf[:n - 1], buf[:3]):
        try:
            L.unpack_raw(bad)
            raise AssertionError("bad RAW accepted")
        except ValueError:
            pass
    try:
        L.pack_raw(buf, 0, [0] * (L.RAW_MAX + 1))
        raise AssertionError("too many samples accepted")
    except ValueError:
        pass


def test_load_chunks():
    proto = L.dumps({"schema": 1, "name": "x" * 2500, "segments": [1, 2, 3]}).encode()
    payloads = L.load_payloads(proto)
    assert len(payloads) == 3
    got = b""
    for p in payloads:
        assert len(p) <= L.MAX_PAYLOAD
        off, total, chunk = L.unpack_load(p)
        assert off == len(got) and total == len(proto)
        got += chunk
        L.encode(L.LOAD, 0, p)
    assert got == proto
    assert L.load_payloads(b"{}") == [b"\x00\x00\x00\x00\x02\x00\x00\x00{}"]
    assert L.unpack_load(b"\x00" * 7) is None
    assert L.unpack_load(b"\x00\x00\x00\x00\x01\x00\x00\x00ab") is None     # past total
