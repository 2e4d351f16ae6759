"""`tesctl deploy --frozen`: a board whose MicroPython image holds tes/ and hal/ frozen
(firmware/manifest_rp2.py; a two-source board's modules do not fit a stock image's RAM) gets
main.py and its board file only; every module a copy left in its tes/ and hal/ goes (it
would shadow the frozen one); a HELLO carrying the hash of that file set is let through with
a note that the image's modules are not covered. The image itself cannot be built here: what
runs on it was measured on the virtual RP2040 (docs/hardware.md)."""
import subprocess

import pytest

from tes.fwhash import tree_sha256

from tesctl import deploy as D
from tesctl import firmware, paths, runner


def test_a_frozen_board_gets_main_py_alone(tmp_path):
    for board in ({"mcu": "rp2"}, {"mcu": "rp2", "current_sources": 2}):
        assert firmware.files_for(board, frozen=True) == ["main.py"]
    assert "hal/rp2_multi.mpy" in firmware.stage({"mcu": "rp2"}, tmp_path / "full")
    assert firmware.stage({"mcu": "rp2"}, tmp_path / "frozen", frozen=True) == ["main.py"]
    assert firmware.frozen_sha256() == tree_sha256(str(tmp_path / "frozen"))
    assert firmware.frozen_sha256() != firmware.expected_for_id("pico2-mcp4922")


def test_the_manifest_freezes_every_module_a_board_would_get():
    # What a copy gives an rp2 board (but main.py) is what manifest.py + manifest_rp2.py freeze.
    text = (paths.FIRMWARE / "manifest.py").read_text() + (paths.FIRMWARE / "manifest_rp2.py").read_text()
    for rel in firmware.files_for({"mcu": "rp2"}):
        if rel.startswith("hal/"):
            assert '"%s"' % rel[4:] in text, rel
    assert 'package("tes", base_path=".")' in text


def _prepare(folder, files):
    # The board's side of deploy, run by the unix port in a folder standing for its flash.
    code = D._prepare_code(files)
    return subprocess.run([paths.micropython(), "-c", code], cwd=folder, capture_output=True, text=True, timeout=60)


def test_prepare_removes_every_module_and_folder_when_frozen(tmp_path):
    for rel in ("tes/app.mpy", "tes/old.py", "hal/rp2.mpy", "main.py"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("x")
    r = _prepare(tmp_path, firmware.files_for({"mcu": "rp2"}, frozen=True))
    assert r.returncode == 0 and D.MARK in r.stdout, r.stderr
    # no tes/ or hal/ folder at all: even an empty one would shadow the frozen package
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["main.py"]
    # A copy's deploy makes them again and keeps what it copies.
    r = _prepare(tmp_path, firmware.files_for({"mcu": "rp2"}))
    assert r.returncode == 0 and (tmp_path / "tes").is_dir() and (tmp_path / "hal").is_dir(), r.stderr
    # A folder holding something else is not emptied behind the user's back: deploy fails.
    (tmp_path / "hal" / "notes.txt").write_text("mine")
    r = _prepare(tmp_path, ["main.py"])
    assert r.returncode != 0 and (tmp_path / "hal" / "notes.txt").exists()


def test_frozen_deploy_to_the_simulated_board_is_refused(monkeypatch):
    monkeypatch.setattr(D, "check_port", lambda port: None)
    monkeypatch.setattr(D, "leave_app", lambda port, log: False)
    monkeypatch.setattr(D, "wait_for_repl", lambda port, t: "linux")
    with pytest.raises(D.DeployError, match="--frozen") as e:
        D.deploy("/dev/null", "pico2-mcp4922", log=lambda m: None, frozen=True)
    assert "\n" not in str(e.value)


def test_hello_with_the_frozen_hash_is_let_through_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "storage"))
    sim_hash = firmware.expected_for_id("sim")
    # The simulated board reports its tree's hash; make that the frozen set's and expect another.
    monkeypatch.setattr(runner, "firmware_hash", lambda board_id="sim": "0" * 64)
    monkeypatch.setattr(firmware, "frozen_sha256", lambda: sim_hash)
    notes = []
    dev = runner.connect("sim", fast=True, log=notes.append)
    dev.close()
    assert any("frozen" in n and "not the image's modules" in n for n in notes), notes
    # Any other hash is still refused.
    monkeypatch.setattr(firmware, "frozen_sha256", lambda: "1" * 64)
    with pytest.raises(runner.SessionError, match="differs"):
        runner.connect("sim", fast=True, log=lambda m: None)
