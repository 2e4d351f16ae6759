"""hal.put_thumb.put, the two-source driver's DAC words as the board runs them (mpy-cross
-march=armv6m), executed on rp2040js's Cortex-M0+ core over a frame hal.blocks_multi.
put_frame filled, and held to hal.blocks_multi.put_words_multi (the plain reference, itself
held to hal.calib.ua_to_code and to its viper twin in tests/firmware/test_blocks_multi.py)
with one block per source: every word of the output ring and every value of the set ring,
bit for bit, over every test calibration (limits on a code, past the DAC's ends, ties).
rp2040js's SIO divider answers at once; the runner (host/tesctl/hil/lib/thumbcall.mjs) gives it
the chip's latency, a result readable from the 9th cycle after the write, so the kernel's wait
is tested too: no early read, and a kernel one branch short of the wait reads too early. Needs
Node.js and the harness's rp2040js (the test command installs both)."""
import random
import struct
import sys
from array import array
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware")]

from hal import blocks_multi as M  # noqa: E402
from test_blocks import CONVS  # noqa: E402
from test_blocks_multi import put_of  # noqa: E402

from thumbcode import run_thumb, runnable_code  # noqa: E402  (tests/hil)

FRAME_AT = 0x20001000
RING_AT = 0x20002000
SRING_AT = 0x20003000
BUF_AT = 0x20004000
STRIDE = 72                     # values from a source's block to the next's (n <= 64 here)
MW, MS = 255, 127


def random_case(rng):
    nc = rng.choice((1, 2, 2, 2, 3))
    convs = [rng.choice(CONVS) for _ in range(nc)]
    n = rng.randint(1, 64)
    k0 = rng.randrange(1 << 22)
    if rng.random() < 0.2:
        k0 = (1 << 22) - 1 - n // 2                     # the sample counter's last values
    kind = rng.choice(("mA", "extreme", "small"))
    lim = {"mA": 6500, "extreme": 46000, "small": 40}[kind]
    buf = [rng.randint(-lim, lim) for _ in range(STRIDE * nc)]
    ring = [rng.randrange(1 << 16) for _ in range(MW + 1)]
    sring = [rng.randint(-9, 9) for _ in range(MS + 1)]
    return put_of(convs, MW, MS), n, k0, buf, ring, sring


def put_call(cfg, n, k0, buf, ring, sring):
    """thumbcall's job for one call of put over a case's frame, rings and block."""
    fr = array("i", [0] * (M.PF_LEN + M.PF_REC * cfg[M.M_C]))
    M.put_frame(fr, cfg, RING_AT, SRING_AT, BUF_AT, STRIDE)
    return {"mem": [[FRAME_AT, list(fr)], [RING_AT, list(array("i", array("H", ring).tobytes()))],
                    [SRING_AT, sring], [BUF_AT, buf]],
            "regs": [FRAME_AT, n, k0],
            "read": [[RING_AT, (MW + 1) // 2], [SRING_AT, MS + 1]]}


def test_the_thumb_put_is_put_words_multi_on_a_cortex_m0plus(tmp_path):
    code = runnable_code(tmp_path, "hal/put_thumb.py")
    rng = random.Random(11)
    cases = [random_case(rng) for _ in range(400)]
    calls, wants = [], []
    for cfg, n, k0, buf, ring, sring in cases:
        calls.append(put_call(cfg, n, k0, buf, ring, sring))
        want_ring, want_sring = array("H", ring), array("i", sring)
        M.put_words_multi(want_ring, want_sring, array("i", buf), n, k0, cfg, STRIDE, 1)
        wants.append((list(want_ring), list(want_sring)))
    results = run_thumb(code, calls)
    samples = cycles = 0
    for (cfg, n, *_), (want_ring, want_sring), res in zip(cases, wants, results):
        assert res["r0"] == 0
        assert res["early_div_reads"] == 0
        got_ring = list(array("H", struct.pack("<%di" % ((MW + 1) // 2), *res["read"][0])))
        assert got_ring == want_ring, [(k, got_ring[k], want_ring[k]) for k in range(MW + 1)
                                       if got_ring[k] != want_ring[k]][:8]
        assert res["read"][1] == want_sring
        samples += n * cfg[M.M_C]
        cycles += res["cycles"]
    # a figure, not a bound (benchmarks measure): Cortex-M0+ cycles a sample and source here
    print("put_thumb.put: %.0f cycles a sample and source on rp2040js over %d" % (cycles / samples, samples))


def _halfwords(*hs):
    return b"".join(struct.pack("<H", h) for h in hs)


def divide_after(branches, result=0x70):
    """push {lr}; r2 = SIO; DIV_UDIVIDEND = r0; DIV_UDIVISOR = r1; `branches` taken branches
    (2 cycles each); r0 = the result register; pop {pc}: the pico-sdk's sequence at 4."""
    return _halfwords(0xB500, 0x22D0, 0x0612, 0x6000 | 24 << 6 | 2 << 3 | 0, 0x6000 | 25 << 6 | 2 << 3 | 1,
                      *[0xE7FF] * branches, 0x6800 | (result // 4) << 6 | 2 << 3 | 0, 0xBD00)


def test_the_runner_s_divider_answers_from_the_ninth_cycle(tmp_path):
    runnable_code(tmp_path, "hal/put_thumb.py")                  # fails, never skips, without Node.js
    call = {"regs": [1000003, 7]}
    sdk = run_thumb(divide_after(4), [call, call])
    assert [r["r0"] for r in sdk] == [1000003 // 7] * 2 and [r["early_div_reads"] for r in sdk] == [0, 0]
    assert run_thumb(divide_after(4, 0x74), [call])[0]["r0"] == 1000003 % 7
    assert run_thumb(divide_after(4, 0x78), [call])[0]["r0"] & 1 == 1       # DIV_CSR READY
    short = run_thumb(divide_after(3), [call])[0]
    assert short["early_div_reads"] == 1 and short["r0"] == 0x5A5A5A5A
    assert run_thumb(divide_after(3, 0x78), [call])[0]["r0"] & 1 == 0


def test_a_put_kernel_one_branch_short_of_the_wait_is_caught(tmp_path):
    source = (ROOT / "firmware" / "hal" / "put_thumb.py").read_text()
    rng = random.Random(5)
    cases = [random_case(rng) for _ in range(40)]
    for wait in ("W3", "W6"):                  # the positive and the negative product's waits
        cut = "    b(%s)\n    label(%s)\n" % (wait, wait)
        assert source.count(cut) == 1
        short = tmp_path / ("put_%s.py" % wait)
        short.write_text(source.replace(cut, ""))
        code = runnable_code(tmp_path, short)
        results = run_thumb(code, [put_call(*case) for case in cases])
        assert sum(r["early_div_reads"] for r in results) > 0, wait
