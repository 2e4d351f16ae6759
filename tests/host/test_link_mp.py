"""The same codec on both sides: the MicroPython unix port encodes a byte stream the CPython
decoder reads (and the other way round), through real pipes."""
import os
import random
import subprocess
import sys


from tes import link as L

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
MICROPYTHON = os.path.abspath(os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython"))

N = 3000
SEQ0 = 65000          # the sequence number wraps during the run

# Runs under MicroPython and CPython alike: argv[1] = firmware dir, argv[2] = N, argv[3] = seq0.
SENDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
def main():
    from tes import link as L
    n = int(sys.argv[2])
    seq = int(sys.argv[3])
    out = sys.stdout.buffer
    enc = L.Encoder()
    telem = bytearray(L.TELEM_SIZE)
    raw = bytearray(L.MAX_PAYLOAD)
    x = 12345
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        k = i % 5
        if k == 0:
            L.pack_telem(telem, i * 100, i % 11, (x % 8001) - 4000, (x % 7001) - 3500, x % 30000,
                         None if x % 7 == 0 else x % 50000, i * 3, x & 0xFFFF)
            out.write(enc.frame(L.TELEM, seq, telem))
        elif k == 1:
            m = x % (L.RAW_MAX + 1)
            samples = [((x >> (j % 16)) % 8001) - 4000 for j in range(m)]
            plen = L.pack_raw(raw, i * 64, samples, chan=i & 1)
            out.write(enc.frame(L.RAW, seq, memoryview(raw)[:plen]))
        elif k == 2:
            out.write(L.encode_json(L.EVENT, seq, {"ev": "state", "i": i, "t_ms": x,
                                                   "state": L.STATE_NAMES[i % 11]}))
        elif k == 3:
            m = x % (L.MAX_PAYLOAD + 1)
            out.write(enc.frame(L.LOG, seq, bytes([(x >> (j % 8)) & (0xFF if j % 3 else 0)
                                                   for j in range(m)])))
        else:
            out.write(enc.frame(L.REPLY, seq, L.error_payload(i, L.E_BAD_FIELD, "x" * (i % 40))))
        seq = L.seq_next(seq)
try:
    main()
except Exception as e:  # stdout is the binary channel: report on stderr
    sys.stderr.write("sender failed: %r\n" % (e,))
    sys.exit(3)
"""

# Device side of the host -> device direction: decode stdin, answer each item.
ECHO = r"""
import sys
sys.path.insert(0, sys.argv[1])
def main():
    from tes import link as L
    dec = L.Decoder()
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    seq = 0
    while True:
        data = inp.read(97)
        if not data:
            break
        for it in dec.feed(data):
            if it[0] == L.BAD:
                out.write(L.encode(L.ERROR, seq, L.error_payload(None, it[1])))
            else:
                typ, rseq, payload = it
                obj, code, detail = L.parse_command(typ, payload)
                if code:
                    out.write(L.encode(L.ERROR, seq, L.error_payload(rseq, code, detail)))
                else:
                    obj["re"] = rseq
                    obj["crc"] = L.crc32(payload) & 0xFFFFFFFF
                    out.write(L.encode_json(L.REPLY, seq, obj))
            seq = L.seq_next(seq)
try:
    main()
except Exception as e:
    sys.print_exception(e, sys.stderr)
    sys.exit(3)
"""


def _need_mp():
    assert os.path.exists(MICROPYTHON), "no MicroPython unix port at %s (set MICROPYTHON)" % MICROPYTHON


def _env():
    env = dict(os.environ)
    env["MICROPYPATH"] = FIRMWARE + os.pathsep + ".frozen"
    return env


def _run(exe, script, args, stdin=b""):
    r = subprocess.run([exe, "-c", script] + args, input=stdin, capture_output=True,
                       env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return r.stdout


def test_micropython_stream_decodes_on_cpython():
    _need_mp()
    args = [FIRMWARE, str(N), str(SEQ0)]
    mp = _run(MICROPYTHON, SENDER, args)
    cp = _run(sys.executable, SENDER, args)
    assert mp == cp, "MicroPython and CPython encoders differ"
    rng = random.Random(4)
    dec = L.Decoder()
    items = []
    i = 0
    while i < len(mp):
        step = rng.choice((1, 7, 64, 1000, 4096))
        items.extend(dec.feed(mp[i:i + step]))
        i += step
    assert all(it[0] != L.BAD for it in items)
    assert len(items) == N
    seq = SEQ0
    for k, (typ, s, payload) in enumerate(items):
        assert s == seq
        seq = L.seq_next(seq)
        assert typ == (L.TELEM, L.RAW, L.EVENT, L.LOG, L.REPLY)[k % 5]
        if typ == L.TELEM:
            t = L.unpack_telem(payload)
            assert t[0] == k * 100 and t[1] == k % 11
        elif typ == L.RAW:
            first, chan, samples = L.unpack_raw(payload)
            assert first == k * 64 and chan == k & 1 and all(-4000 <= v <= 4000 for v in samples)
        elif typ == L.EVENT:
            obj, code, _ = L.decode_json(payload)
            assert code is None and obj["i"] == k and obj["state"] == L.STATE_NAMES[k % 11]
        elif typ == L.REPLY:
            obj, code, _ = L.decode_json(payload)
            assert obj == {"re": k, "error": L.E_BAD_FIELD, "detail": "x" * (k % 40)}
    assert seq == (SEQ0 + N) & 0xFFFF


def test_cpython_stream_decodes_on_micropython():
    _need_mp()
    rng = random.Random(7)
    stream = bytearray(b"\x00")
    expect = []
    cmds = [(L.HELLO, {"link": 1, "host": "t"}), (L.HEARTBEAT, {}), (L.STATUS, {}),
            (L.RAWREQ, {"on": True, "decim": 2}), (L.START, {"sha256": "ab" * 32})]
    for i in range(400):
        typ, obj = cmds[i % len(cmds)]
        payload = L.dumps(obj).encode() if obj else b""
        f = L.encode(typ, i, payload)
        if i % 50 == 7:             # a corrupted frame: one ERROR bad-crc, nothing else
            b = bytearray(f)
            b[-2] ^= 0x20 if b[-2] != 0x20 else 0x40
            stream += b
            expect.append(("error", None, L.E_BAD_CRC))
            continue
        if i % 50 == 9:             # a bad field: ERROR echoing the seq
            f = L.encode(L.HELLO, i, b'{"link":"one"}')
            stream += f
            expect.append(("error", i, L.E_BAD_FIELD))
            continue
        stream += f
        want = dict(obj)
        want["re"] = i
        want["crc"] = L.crc32(payload) & 0xFFFFFFFF
        expect.append(("reply", i, want))
        if rng.random() < 0.05:
            stream += b"\x00"       # idle delimiters are ignored
    out = _run(MICROPYTHON, ECHO, [FIRMWARE], stdin=bytes(stream))
    items = L.Decoder().feed(out)
    assert len(items) == len(expect)
    for k, (it, (kind, re, what)) in enumerate(zip(items, expect, strict=True)):
        typ, seq, payload = it
        assert seq == k
        obj, code, _ = L.decode_json(payload)
        assert code is None
        if kind == "reply":
            assert typ == L.REPLY and obj == what
        else:
            assert typ == L.ERROR and obj["re"] == re and obj["error"] == what
