"""The CLI commands around a session: sim on a pty, deploy with mpremote, firmware
mismatch, ports, report, and one-line errors."""
import subprocess

import pytest

from conftest import ROOT, TESCTL, tesctl

from tesctl import firmware, runner
from tesctl.device import Device
from tesctl.simpty import seed_flash
from tesctl.transport import SerialTransport


def test_sim_prints_a_pty_that_speaks_the_link(cli_env):
    p = subprocess.Popen([TESCTL, "sim", "--fast"], env=cli_env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        path = p.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), path
        dev = Device(SerialTransport(path))
        try:
            info = dev.hello()
            assert info["board"] == "sim" and info["fw_sha256"] == runner.firmware_hash()
            assert dev.status()["state"] == "idle"
        finally:
            dev.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_deploy_to_a_plain_sim_verifies_and_the_board_runs_it(tmp_path, cli_env):
    """The hardware developer's flow: `tesctl sim` (a board whose flash holds an older
    build, booted into its app), `tesctl deploy` to its pty, then the board runs what was
    deployed: `tesctl check` on the same pty accepts its firmware without a flag."""
    flash = tmp_path / "flash"
    seed_flash(str(flash))
    engine = flash / "tes" / "engine.py"
    engine.write_bytes(engine.read_bytes() + b"\n# an older build\n")
    p = subprocess.Popen([TESCTL, "sim", "--flash", str(flash)], env=cli_env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        path = p.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), path
        old = tesctl(["check", "--port", path], cli_env, timeout=60, check=3)
        assert "differs" in old.stderr                  # the older build is refused...
        d = tesctl(["deploy", "--port", path, "--board", "sim"], cli_env, timeout=300, check=0)
        assert "left the tesctl app" in d.stdout and "verified" in d.stdout, d.stdout
        assert "it runs the deployed firmware" in d.stdout, d.stdout
        ok = tesctl(["check", "--port", path], cli_env, timeout=60, check=0)    # ...the deployed one runs
        assert "PASS" in ok.stdout
        dev = Device(SerialTransport(path))
        try:
            assert dev.hello(timeout=10)["fw_sha256"] == firmware.expected_for_id("sim")
        finally:
            dev.close()
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=20)
    assert engine.read_bytes() == (ROOT / "firmware/tes/engine.py").read_bytes()
    assert (flash / "board.json").read_bytes() == (ROOT / "boards/sim.json").read_bytes()


def test_deploy_to_a_missing_port_is_one_line(cli_env):
    p = tesctl(["deploy", "--port", "/dev/does-not-exist", "--board", "pico-mcp4922"], cli_env, timeout=120)
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1


def test_mismatched_firmware_is_refused_unless_allowed(monkeypatch, cli_env):
    monkeypatch.setenv("TESCTL_STATE", cli_env["TESCTL_STATE"])
    monkeypatch.setenv("TESCTL_SIM_STORAGE", cli_env["TESCTL_SIM_STORAGE"])
    monkeypatch.setattr(runner, "firmware_hash", lambda board_id="sim": "0" * 64)
    with pytest.raises(runner.SessionError) as e:
        runner.connect("sim", fast=True, log=lambda m: None)
    assert e.value.code == 3 and "differs" in str(e.value)
    warnings = []
    dev = runner.connect("sim", fast=True, allow_mismatch=True, log=warnings.append)
    dev.close()
    assert warnings and "differs" in warnings[0]


def test_unreachable_port_is_a_device_error(tmp_path, cli_env):
    proto = ROOT / "protocols" / "tdcs-anodal-dlpfc.toml"
    p = tesctl(["run", proto, "--port", "/dev/does-not-exist", "--out", tmp_path / "s"], cli_env, check=3)
    assert len(p.stderr.strip().splitlines()) == 1 and "cannot open" in p.stderr


def test_report_of_a_non_session_is_bad_input(tmp_path, cli_env):
    p = tesctl(["report", tmp_path], cli_env, check=2)
    assert len(p.stderr.strip().splitlines()) == 1


def test_ports_runs(cli_env):
    p = tesctl(["ports", "--all"], cli_env, check=0)
    assert p.stdout.strip()


def test_check_refuses_bad_current(cli_env):
    p = tesctl(["check", "--port", "sim", "--current", "500"], cli_env, check=2)
    assert "500" in p.stderr
