"""Write tests/vectors/engine.json: the SHA-256 of every sample (int32, little-endian) the
engine makes for the cases in tests/firmware/engine_cases.py.

    python tools/gen_engine_vectors.py

Run it only when the engine's output changes on purpose, and say why in the commit: these
vectors pin every sample, so a change here changes what every protocol delivers.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware")]

import engine_cases  # noqa: E402

if __name__ == "__main__":
    vectors = {}
    for name, p, stop in engine_cases.CASES:
        sha, n = engine_cases.digest(p, stop)
        vectors[name] = {"sha256": sha, "samples": n}
    (ROOT / "tests" / "vectors" / "engine.json").write_text(json.dumps(vectors, indent=1, sort_keys=True) + "\n")
