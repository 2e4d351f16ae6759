"""hal.sine_thumb.sine_flat, the engine's sine plateau as the RP2040 runs it (mpy-cross
-march=armv6m), executed on rp2040js's Cortex-M0+ core and held to the engine's plain
kernels (tes.kernels.osc_sine, then env_flat; the viper twins are held to those by the
engine's golden vectors): every sample written, nothing written outside the block, and the
phase and its fraction left in the state. Needs Node.js and the harness's rp2040js (the test
command installs both)."""
import random
import sys
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware")]

from tes import kernels as K  # noqa: E402
from tes.tables import SINE  # noqa: E402

from thumbcode import run_thumb, runnable_code  # noqa: E402  (tests/hil)

TAB_AT = 0x20001000
ST_AT = 0x20002000
F_AT = 0x20002100
OUT_AT = 0x20003000
CAP = 140


def random_case(rng):
    m = rng.choice((1, 5000, 10000, rng.randint(1, 1 << 24)))
    st = [0] * 17
    st[K.PH] = rng.randrange(1 << 20)
    st[K.FR] = rng.randrange(m)
    st[K.IQ] = rng.choice((0, 1, 1258, rng.randrange(1 << 19)))
    st[K.IR] = rng.randrange(m)
    st[K.MOD] = m
    if rng.random() < 0.1:
        st[K.PH] = (1 << 20) - 1 - rng.randrange(4)        # the table's last interval
    amp = rng.choice((0, 1000, 32768, -2000, rng.randint(-40000, 40000)))
    off = rng.randint(-20000, 20000)
    n = rng.randint(1, 128)
    start = rng.randint(0, CAP - n)
    out = [rng.randint(-9, 9) for _ in range(CAP)]
    return st, amp, off, start, n, out


def test_the_thumb_sine_plateau_is_osc_sine_then_env_flat_on_a_cortex_m0plus(tmp_path):
    code = runnable_code(tmp_path, "hal/sine_thumb.py")
    rng = random.Random(5)
    cases = [random_case(rng) for _ in range(400)]
    tab = list(array("i", SINE))
    tab_words = [(tab[k] & 0xFFFF) | ((tab[k + 1] & 0xFFFF) << 16) if k + 1 < len(tab) else tab[k] & 0xFFFF
                 for k in range(0, len(tab), 2)]
    tab_words = [w - (1 << 32) if w >= 1 << 31 else w for w in tab_words]
    calls, wants = [], []
    for st, amp, off, start, n, out in cases:
        f = [TAB_AT, amp, off, start] + [77] * (K.SF_LEN - 4)
        calls.append({"mem": [[TAB_AT, tab_words], [ST_AT, st], [F_AT, f], [OUT_AT, out]],
                      "regs": [OUT_AT, ST_AT, F_AT, n],
                      "read": [[OUT_AT, CAP], [ST_AT, len(st)]]})
        want_out, want_st = list(out), list(st)
        K.osc_sine(want_out, start, n, want_st, SINE)
        K.env_flat(want_out, start, n, amp, off)
        wants.append((want_out, want_st))
    results = run_thumb(code, calls)
    samples = cycles = 0
    for (*_, n, _out), (want_out, want_st), res in zip(cases, wants, results):
        assert res["r0"] == 0
        got_out, got_st = res["read"]
        assert got_out == want_out, [(k, got_out[k], want_out[k]) for k in range(CAP) if got_out[k] != want_out[k]][:6]
        assert got_st == want_st
        samples += n
        cycles += res["cycles"]
    # a figure, not a bound (benchmarks measure): Cortex-M0+ cycles a sample here
    print("sine_thumb.sine_flat: %.0f cycles a sample on rp2040js over %d" % (cycles / samples, samples))
