"""The engine's every sample, pinned: the SHA-256 of each case in engine_cases.py equals
tests/vectors/engine.json (written by tools/gen_engine_vectors.py). A change to any sample
of any path (ramps, oscillators, noise, segments, sham, soft stops) fails here; the
closed-form and fidelity tests say whether such a change is right.
Runs under the unix port (tools/mptest.py) and CPython (pytest): the same vectors on both,
so this is also a bit-exactness test between them."""
import json

import engine_cases

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def test_every_case_matches_its_vector():
    with open(_HERE + "/../vectors/engine.json") as f:
        vectors = json.load(f)
    names = [c[0] for c in engine_cases.CASES]
    assert sorted(names) == sorted(vectors), "regenerate with tools/gen_engine_vectors.py"
    for name, p, stop in engine_cases.CASES:
        sha, n = engine_cases.digest(p, stop)
        assert n == vectors[name]["samples"], (name, n)
        assert sha == vectors[name]["sha256"], name


def test_a_soft_stop_before_the_first_sample_ends_at_once():
    out, k = engine_cases.run(engine_cases.CASES[0][1], (0, 300))
    assert k == 0
