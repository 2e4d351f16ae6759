"""hal.put_thumb.put, the two-source driver's DAC words as the board runs them (mpy-cross
-march=armv6m), executed on rp2040js's Cortex-M0+ core over a frame hal.blocks_multi.
put_frame filled, and held to hal.blocks_multi.put_words_multi (the plain reference, itself
held to hal.calib.ua_to_code and to its viper twin in tests/firmware/test_blocks_multi.py)
with one block per source: every word of the output ring and every value of the set ring,
bit for bit, over every test calibration (limits on a code, past the DAC's ends, ties).
rp2040js's SIO divider answers at once: the kernel's 8-cycle wait for it is the datasheet's
and untested here. Needs Node.js and the harness's rp2040js (the test command installs both)."""
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


def test_the_thumb_put_is_put_words_multi_on_a_cortex_m0plus(tmp_path):
    code = runnable_code(tmp_path, "hal/put_thumb.py")
    rng = random.Random(11)
    cases = [random_case(rng) for _ in range(400)]
    calls, wants = [], []
    for cfg, n, k0, buf, ring, sring in cases:
        fr = array("i", [0] * (M.PF_LEN + M.PF_REC * cfg[M.M_C]))
        M.put_frame(fr, cfg, RING_AT, SRING_AT, BUF_AT, STRIDE)
        calls.append({"mem": [[FRAME_AT, list(fr)], [RING_AT, list(array("i", array("H", ring).tobytes()))],
                              [SRING_AT, sring], [BUF_AT, buf]],
                      "regs": [FRAME_AT, n, k0],
                      "read": [[RING_AT, (MW + 1) // 2], [SRING_AT, MS + 1]]})
        want_ring, want_sring = array("H", ring), array("i", sring)
        M.put_words_multi(want_ring, want_sring, array("i", buf), n, k0, cfg, STRIDE, 1)
        wants.append((list(want_ring), list(want_sring)))
    results = run_thumb(code, calls)
    samples = cycles = 0
    for (cfg, n, *_), (want_ring, want_sring), res in zip(cases, wants, results):
        assert res["r0"] == 0
        got_ring = list(array("H", struct.pack("<%di" % ((MW + 1) // 2), *res["read"][0])))
        assert got_ring == want_ring, [(k, got_ring[k], want_ring[k]) for k in range(MW + 1)
                                       if got_ring[k] != want_ring[k]][:8]
        assert res["read"][1] == want_sring
        samples += n * cfg[M.M_C]
        cycles += res["cycles"]
    # a figure, not a bound (benchmarks measure): Cortex-M0+ cycles a sample and source here
    print("put_thumb.put: %.0f cycles a sample and source on rp2040js over %d" % (cycles / samples, samples))
