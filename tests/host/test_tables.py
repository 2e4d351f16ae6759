"""The engine's integer tables are what tools/gen_tables.py makes, and they are right."""
import math
import subprocess
import sys
from pathlib import Path

from tes import tables

ROOT = Path(__file__).resolve().parents[2]


def test_tables_file_is_generated():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_tables.py")], capture_output=True, text=True,
                         check=True).stdout
    assert out == (ROOT / "firmware" / "tes" / "tables.py").read_text()


def test_sine_and_raised_cosine_values():
    assert len(tables.SINE) == 1025 and len(tables.RCOS) == 257
    for i, v in enumerate(tables.SINE):
        assert v == round(32767 * math.sin(2 * math.pi * i / 1024))
    for i, v in enumerate(tables.RCOS):
        assert v == round(32768 * (1 - math.cos(math.pi * i / 256)) / 2)
    assert all(a <= b for a, b in zip(tables.RCOS, tables.RCOS[1:]))
    assert tables.RCOS[0] == 0 and tables.RCOS[-1] == 32768
