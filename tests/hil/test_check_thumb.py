"""hal.check_thumb.samples, the machine code the board runs (mpy-cross -march=armv6m, as the
frozen build and `tesctl deploy` compile it), executed on rp2040js's Cortex-M0+ core and held
to its plain reference (tests/firmware/check_samples_ref.py) on random and extreme blocks:
every state slot the kernel carries and every flag and sum it leaves. The glue that calls it
(tes.supervisor_fast.check_run) is held to the plain supervisor with that reference in its
place (tests/firmware/test_check_samples.py). Needs Node.js and the harness's rp2040js (the
test command installs both); the board's own run is the virtual RP2040's (docs/hardware.md)."""
import random
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware")]

from check_samples_ref import X_RESULTS, samples_ref  # noqa: E402
from tes import supervisor as S  # noqa: E402

from thumbcode import run_thumb, runnable_code  # noqa: E402  (tests/hil)

ST_AT = 0x20001000
BUF_AT = 0x20002000
CARRIED = [S.S_PI, S.S_PV, S.S_PSET, S.S_HOLD, S.S_DAC, S.S_STILL, S.S_STIM]


def random_case(rng):
    cap = rng.choice((1, 5, 20, 64))
    n = rng.randint(1, cap)
    j = rng.randint(0, cap - n)
    kind = rng.choice(("extreme", "still", "dc", "zero", "sign"))
    st = [0] * S.STATE_LEN
    for k in CARRIED:
        st[k] = rng.randint(-5000, 5000) if k in (S.S_PI, S.S_PV, S.S_PSET) else rng.randint(0, 9)
    st[S.T_DACTOL] = rng.choice((0, 5, 50, -1))
    for k in X_RESULTS:
        st[k] = rng.randint(-9, 9)                  # the kernel clears them itself
    lim = (-46000, 46000) if kind == "extreme" else (-5000, 5000)
    base = rng.randint(*lim)
    bufs = [[0] * cap for _ in range(4)]
    for x in range(cap):
        if kind == "extreme":
            vals = [rng.randint(*lim) for _ in range(4)]
        elif kind == "still":
            vals = [base, st[S.S_PI], st[S.S_PV], base + rng.randint(-60, 60)]
        elif kind == "zero":
            vals = [0, rng.randint(-25, 25), rng.randint(-3, 3), rng.randint(-2, 2)]
        elif kind == "sign":
            s = rng.choice((-1, 0, 1)) * rng.randint(0, 3000)
            vals = [s, s + rng.randint(-30, 30), rng.randint(-30000, 30000), s + rng.randint(-80, 80)]
        else:
            vals = [base, base + rng.randint(-30, 30), base * 3 + rng.randint(-5, 5), base + rng.randint(-3, 3)]
        for k in range(4):
            bufs[k][x] = vals[k]
    return st, bufs, cap, j, n


def test_the_thumb_kernel_is_its_reference_on_a_cortex_m0plus(tmp_path):
    code = runnable_code(tmp_path, "hal/check_thumb.py")
    rng = random.Random(12)
    cases = [random_case(rng) for _ in range(600)]
    calls = []
    for st, bufs, cap, j, n in cases:
        st[S.X_STRIDE] = 4 * cap                   # check_run writes it before the call
        calls.append({"mem": [[ST_AT, st], [BUF_AT, sum(bufs, [])]],
                      "regs": [ST_AT, BUF_AT + 4 * j, n],
                      "read": [[ST_AT, S.STATE_LEN]]})
    results = run_thumb(code, calls)
    samples = cycles = 0
    for (st, bufs, cap, j, n), res in zip(cases, results):
        want = list(st)
        samples_ref(want, sum(bufs, []), 0, cap, j, n)
        got = res["read"][0]
        assert res["r0"] == 0
        keep = [k for k in range(S.STATE_LEN) if k != S.X_END]
        assert [got[k] for k in keep] == [want[k] for k in keep], \
            [(k, got[k], want[k]) for k in keep if got[k] != want[k]]
        assert got[S.X_END] == BUF_AT + 4 * (j + n)
        samples += n
        cycles += res["cycles"]
    # a figure, not a bound (benchmarks measure): the Cortex-M0+ cycles a sample here
    print("check_thumb.samples: %.0f cycles a sample on rp2040js over %d samples" % (cycles / samples, samples))
