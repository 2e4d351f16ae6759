"""`tesctl hil` errors: one sentence, exit 2 for bad input, 3 for a missing tool."""
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tesctl import cli, hil

TESCTL = str(Path(sys.executable).parent / "tesctl")


def run(args):
    return subprocess.run([TESCTL] + args, capture_output=True, text=True, timeout=120)


def one_line(p, code, text):
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tesctl: ") and text in lines[0], p.stderr


def test_missing_image_is_bad_input(tmp_path):
    one_line(run(["hil", "--uf2", str(tmp_path / "none.uf2")]), 2, "no firmware image")


def test_bad_board_and_model_are_bad_input(tmp_path):
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(hil.empty_uf2())
    one_line(run(["hil", "--uf2", str(uf2), "--board", "no-such-board"]), 2, "known boards")
    one_line(run(["hil", "--uf2", str(uf2), "--model", "series_ohm"]), 2, "KEY=NUMBER")


def test_no_node_is_a_tool_error(tmp_path, monkeypatch):
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(hil.empty_uf2())
    monkeypatch.setattr(hil, "_node_dirs", lambda: [])
    r = CliRunner().invoke(cli.main, ["hil", "--uf2", str(uf2), "--flash", str(tmp_path / "f.bin")])
    assert r.exit_code == 3
    assert "Node.js 18 or newer" in r.output


def test_a_file_that_is_not_uf2_is_refused_by_the_harness(tmp_path):
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(b"not an image")
    one_line(run(["hil", "--uf2", str(uf2), "--flash", str(tmp_path / "f.bin")]), 2, "not a UF2 image")


def test_help_lists_the_options():
    p = run(["hil", "--help"])
    assert p.returncode == 0
    for opt in ("--uf2", "--board", "--dac-log", "--cpu-mhz", "--flash", "--erase", "--stats", "--load"):
        assert opt in p.stdout
    assert subprocess.run([TESCTL, "dac-compare", "--help"], capture_output=True).returncode == 0
