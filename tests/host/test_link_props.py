"""Property tests of the link codec (CPython, hypothesis). The decoder is checked against an
independent reference (a byte-by-byte COBS decoder and zlib.crc32)."""
import json
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tes import link as L

SLOW_OK = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                   deadline=None)


# --- reference model ---------------------------------------------------------------------------

def ref_cobs_decode(seg):
    out = bytearray()
    i = 0
    while i < len(seg):
        code = seg[i]
        if code == 0 or i + code > len(seg):
            return None
        out += seg[i + 1:i + code]
        i += code
        if code != 0xFF and i < len(seg):
            out.append(0)
    return bytes(out)


def ref_items(stream):
    """What the decoder must report for a complete stream, by a different algorithm:
    split on 0x00 first, then judge each segment."""
    items = []
    segs = stream.split(b"\x00")
    tail = segs.pop()                       # not terminated
    for seg in segs:
        if not seg:
            continue
        if len(seg) > L.MAX_ENCODED:
            items.append((L.BAD, L.E_OVERSIZE, L.MAX_ENCODED + 1))
            continue
        raw = ref_cobs_decode(seg)
        if raw is None or 0 in seg:
            items.append((L.BAD, L.E_BAD_COBS, len(seg) + 1))
        elif len(raw) < 7:
            items.append((L.BAD, L.E_SHORT, len(seg) + 1))
        elif len(raw) > L.MAX_RAW:
            items.append((L.BAD, L.E_OVERSIZE, len(seg) + 1))
        elif zlib.crc32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            items.append((L.BAD, L.E_BAD_CRC, len(seg) + 1))
        else:
            items.append((raw[0], raw[1] | raw[2] << 8, raw[3:-4]))
    if len(tail) > L.MAX_ENCODED:
        items.append((L.BAD, L.E_OVERSIZE, L.MAX_ENCODED + 1))
    return items


def feed_split(stream, cuts):
    dec = L.Decoder()
    items = []
    prev = 0
    for c in sorted(set(cuts)) + [len(stream)]:
        items.extend(dec.feed(stream[prev:c]))
        prev = c
    return items


# --- strategies ---------------------------------------------------------------------------------

types = st.integers(0, 255)
seqs = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=L.MAX_PAYLOAD)
small_payloads = st.one_of(st.binary(max_size=48),
                           st.lists(st.sampled_from([0, 1, 0xFF]), max_size=600).map(bytes))


@st.composite
def frame_units(draw):
    """One unit of a stream: (bytes, kind) with kind valid/corrupt/truncated/oversize/noise."""
    kind = draw(st.sampled_from(["valid"] * 6 + ["corrupt", "truncated", "truncated-nodelim",
                                                 "oversize", "noise"]))
    if kind == "oversize":
        n = draw(st.integers(L.MAX_ENCODED + 1, L.MAX_ENCODED + 600))
        return b"\x5a" * n + b"\x00", kind, None
    if kind == "noise":
        return draw(st.binary(min_size=1, max_size=40)), kind, None
    typ, seq, payload = draw(types), draw(seqs), draw(small_payloads)
    f = L.encode(typ, seq, payload)
    if kind == "valid":
        return f, kind, (typ, seq, payload)
    if kind == "corrupt":
        i = draw(st.integers(0, len(f) - 2))
        mask = draw(st.integers(1, 255))
        b = bytearray(f)
        b[i] ^= mask
        return bytes(b), kind, None
    cut = draw(st.integers(1, len(f) - 2))
    if kind == "truncated":
        return f[:cut] + b"\x00", kind, None
    return f[:cut], kind, None


# --- properties -----------------------------------------------------------------------------------

@given(types, seqs, payloads)
@SLOW_OK
def test_roundtrip(typ, seq, payload):
    f = L.encode(typ, seq, payload)
    assert f[-1] == 0 and 0 not in f[:-1]
    assert len(f) <= L.MAX_ENCODED + 1
    assert L.decode(f) == (typ, seq, payload)
    assert L.Decoder().feed(f) == [(typ, seq, payload)]
    assert bytes(L.Encoder().frame(typ, seq, payload)) == f
    raw = ref_cobs_decode(f[:-1])
    assert raw[:3] == bytes([typ, seq & 0xFF, seq >> 8]) and raw[3:-4] == payload
    assert zlib.crc32(raw[:-4]) == int.from_bytes(raw[-4:], "little")


@given(st.binary(max_size=3000))
@SLOW_OK
def test_cobs_roundtrip(data):
    e = L.cobs_encode(data)
    assert 0 not in e and len(e) <= len(data) + 1 + len(data) // 254
    assert L.cobs_decode(e) == data
    assert ref_cobs_decode(e) == data


stream_parts = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda t, s, p: L.encode(t, s, p), types, seqs, small_payloads),
    st.builds(lambda n: b"\x01" * n, st.integers(L.MAX_ENCODED - 2, L.MAX_ENCODED + 3)),
    st.just(b"\x00"),
)


@given(st.lists(stream_parts, max_size=30), st.lists(st.integers(0, 40000), max_size=40))
@SLOW_OK
def test_decoder_matches_reference_on_any_stream(parts, cuts):
    stream = b"".join(parts)
    want = ref_items(stream)
    got = feed_split(stream, [c for c in cuts if c <= len(stream)])
    assert got == want
    for it in got:      # every frame the decoder hands out has a checking CRC
        if it[0] != L.BAD:
            typ, seq, payload = it
            raw = bytes([typ, seq & 0xFF, seq >> 8]) + payload
            assert raw in b"".join(ref_cobs_decode(s) or b"" for s in stream.split(b"\x00"))


@given(st.binary(max_size=5000), st.lists(st.integers(0, 5000), max_size=20))
@SLOW_OK
def test_decoder_never_raises_on_noise(data, cuts):
    got = feed_split(data, [c for c in cuts if c <= len(data)])
    assert got == ref_items(data)
    assert got == L.Decoder().feed(data)


FED = [0]


@given(st.lists(frame_units(), min_size=40, max_size=80), st.lists(st.integers(0, 100000),
                                                                   max_size=30))
@settings(max_examples=260, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large], deadline=None)
def _mixed_frames(units, cuts):
    FED[0] += len(units)
    stream = b"".join(u[0] for u in units)
    got = feed_split(stream, [c for c in cuts if c <= len(stream)])
    assert got == ref_items(stream)
    # every valid frame comes out, in order, unless the unit before it did not end in 0x00
    # (a frame cut off without its delimiter, or noise): then both merge into one bad
    # frame, which is unavoidable with COBS
    expect = []
    for i, (_, kind, frame) in enumerate(units):
        if kind == "valid" and (i == 0 or units[i - 1][0].endswith(b"\x00")):
            expect.append(frame)
    frames = [it for it in got if it[0] != L.BAD]
    assert frames == expect
    assert sum(1 for it in got if it[1] == L.E_OVERSIZE) >= sum(1 for u in units if u[1] == "oversize")


def test_mixed_frames_at_least_10000():
    FED[0] = 0
    _mixed_frames()
    assert FED[0] >= 10000, FED[0]


# --- JSON ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_dumps_is_canonical_json(obj):
    s = L.dumps(obj)
    assert s == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert L.decode_json(s.encode("utf-8", "surrogatepass"))[0] == obj or any(
        0xD800 <= ord(c) <= 0xDFFF for c in s)


@given(st.sampled_from(sorted(L.COMMANDS) + [L.LOAD, L.REPLY, 0, 0xFF]),
       st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["link", "host", "on", "decim", "sha256", "x",
                                                  "current_uA", "reason", "count", "start"]),
                                 json_values, max_size=4).map(lambda d: L.dumps(d).encode(
                                     "utf-8", "surrogatepass"))))
def test_parse_command_total(typ, payload):
    obj, code, detail = L.parse_command(typ, payload)
    assert (obj is None) == (code is not None)
    if code is None:
        spec = L.COMMANDS[typ]
        assert set(obj) <= set(spec)
        for k, (_kind, req) in spec.items():
            assert k in obj or not req
    else:
        assert code in L.ERROR_CODES and detail


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 10), st.integers(-(1 << 31), (1 << 31) - 1),
       st.integers(-(1 << 31), (1 << 31) - 1), st.integers(-(1 << 31), (1 << 31) - 1),
       st.one_of(st.none(), st.integers(0, 0xFFFFFFFE)), st.integers(-(1 << 31), (1 << 31) - 1),
       st.integers(0, 0xFFFF))
def test_telem_roundtrip(t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags):
    fields = (t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags)
    buf = bytearray(L.TELEM_SIZE)
    L.pack_telem(buf, *fields)
    assert L.unpack_telem(bytes(buf)) == fields
    assert L.decode(L.encode(L.TELEM, 1, buf))[2] == bytes(buf)


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 1),
       st.lists(st.integers(-32767, 32767), max_size=L.RAW_MAX))
def test_raw_roundtrip(first, chan, samples):
    buf = bytearray(L.MAX_PAYLOAD)
    n = L.pack_raw(buf, first, samples, chan=chan)
    assert L.unpack_raw(bytes(buf[:n])) == (first, chan, samples)


def test_vectors_and_doc_up_to_date():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "gen_wire_vectors.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
