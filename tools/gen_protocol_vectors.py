"""Write tests/vectors/protocols.json: the canonical bytes' SHA-256 of every ready protocol.

    python tools/gen_protocol_vectors.py

Run it only when a protocol file or the canonical form changes on purpose: the SHA-256 names
a protocol in every session record, so a change here changes what old records refer to.
tests/host/test_protofile_golden.py checks the file against the code.
"""
import json
from pathlib import Path

from tesctl import protofile

ROOT = Path(__file__).resolve().parents[1]


def vectors():
    out = {}
    for path in sorted((ROOT / "protocols").glob("*.toml")):
        loaded = protofile.load(path)
        assert loaded.ok, (path, loaded.problems)
        out[path.name] = {"sha256": loaded.sha256(), "bytes": len(loaded.canonical_bytes())}
    return out


if __name__ == "__main__":
    (ROOT / "tests" / "vectors" / "protocols.json").write_text(json.dumps(vectors(), indent=1, sort_keys=True) + "\n")
