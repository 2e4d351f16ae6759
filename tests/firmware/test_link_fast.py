"""tes.link_fast: the viper COBS encoder gives the plain encoder's bytes, byte for byte,
and the frames decode. Runs under the unix port (tools/mptest.py) and CPython (pytest),
where the twin does not exist and link uses the plain code."""
import sys

from tes import link as L

try:
    from tes import link_fast as F
except (ImportError, SyntaxError, NameError):     # CPython or a port without viper
    F = None


def cases():
    x = 7
    yield b""
    yield b"\x00"
    yield b"\x00" * 300
    yield bytes(range(1, 256)) * 2                 # runs of 254 non-zero bytes and more
    yield bytes(253) + b"\x01" * 254 + b"\x00"
    for n in range(0, 600, 7):
        buf = bytearray(n)
        for j in range(n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            buf[j] = 0 if (x >> 9) % 5 == 0 else (x >> 16) & 0xFF
        yield bytes(buf)


def test_the_viper_encoder_gives_the_plain_bytes():
    if sys.implementation.name != "micropython":
        assert F is None and L.cobs_encode_into is L._cobs_plain
        return
    if F is None:
        return      # a MicroPython port without viper (the WebAssembly one): the plain code runs
    assert L.cobs_encode_into is F.cobs_encode_into
    for data in cases():
        n = len(data)
        a = bytearray(n + 2 + n // 254)
        b = bytearray(n + 2 + n // 254)
        wa = L._cobs_plain(data, n, a, 1)
        wb = F.cobs_encode_into(data, n, b, 1)
        assert wa == wb and a == b, n
        assert L.cobs_decode(bytes(a[1:wa])) == data, n


def test_frames_made_with_whichever_encoder_decode():
    enc = L.Encoder()
    for data in cases():
        payload = data[:L.MAX_PAYLOAD]
        frame = bytes(enc.frame(L.TELEM, 513, payload))
        assert frame[-1] == 0 and 0 not in frame[:-1]
        assert L.decode(frame) == (L.TELEM, 513, payload)


def decode_cases():
    """(block, n, out size): every encoding of cases() and its truncations, the same with
    a code byte changed, random blocks (with and without 0x00), outs one byte too small."""
    x = 11
    for data in cases():
        enc = L.cobs_encode(data)
        yield enc, len(enc), len(data)                 # exact fit
        yield enc, len(enc), len(data) - 1 if data else 0   # one byte short of room
        yield enc, len(enc) - 1, len(data)             # a block running past the end
        yield enc + b"\x05\x01", len(enc), len(data) + 4   # bytes after n are not read
        if enc:
            bad = bytearray(enc)
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            bad[(x >> 8) % len(bad)] = (x >> 16) & 0xFF
            yield bytes(bad), len(bad), len(data) + 2
    for n in range(0, 300, 3):
        buf = bytearray(n)
        for j in range(n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            buf[j] = (x >> 16) & 0xFF if n % 2 else 1 + (x >> 16) % 255
        yield bytes(buf), n, n


def test_the_viper_decoder_gives_the_plain_result():
    if sys.implementation.name != "micropython":
        assert F is None and L.cobs_decode_into is L._cobs_decode_plain
        return
    if F is None:
        return
    assert L.cobs_decode_into is F.cobs_decode_into
    bad = good = 0
    for src, n, size in decode_cases():
        a = bytearray(b"\xaa" * size)
        b = bytearray(b"\xaa" * size)
        ra = L._cobs_decode_plain(src, n, a)
        rb = F.cobs_decode_into(src, n, b)
        assert ra == rb and a == b, (n, size, ra, rb)
        if ra < 0:
            bad += 1
        else:
            good += 1
    assert bad > 50 and good > 100, (bad, good)       # both outcomes covered
