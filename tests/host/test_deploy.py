"""`tesctl deploy` against a plain simulated board (tesctl.simpty, as `tesctl sim` serves
it): it boots into the app, deploy leaves it with HELLO + EXIT, mpremote copies the
firmware at its REPL, the hash check passes, and after the reset the board runs what was
deployed. Verify catches a file changed on the "device" afterwards. Errors are one line."""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from tes import link as L
from tes.fwhash import tree_sha256

from tesctl import firmware, paths
from tesctl.deploy import DeployError, deploy, firmware_files, verify
from tesctl.device import Device
from tesctl.simpty import open_sim_pty, seed_flash
from tesctl.transport import SerialTransport

# mpremote is a dependency of tesctl: its absence is a broken install, not a reason to skip.
assert (Path(sys.executable).parent / "mpremote").exists() or shutil.which("mpremote"), "mpremote not installed"


@pytest.fixture
def sim_board(tmp_path):
    """A simulated board whose flash holds an older build (one module changed, one module
    more): it boots into the app from that flash, as a board does."""
    fs = tmp_path / "flash"
    seed_flash(str(fs))
    engine = fs / "tes" / "engine.py"
    engine.write_bytes(engine.read_bytes() + b"\n# an older build\n")
    (fs / "tes" / "stale.py").write_text("X = 1\n")
    with open_sim_pty(flash=fs, storage=str(tmp_path / "storage")) as (path, server):
        yield path, fs, server


def hello(path):
    dev = Device(SerialTransport(path))
    try:
        return dev.hello(timeout=10)
    finally:
        dev.close()


def test_deploy_leaves_the_app_copies_verifies_and_boots_the_new_firmware(sim_board):
    path, fs, server = sim_board
    before = hello(path)
    assert before["fw_sha256"] == tree_sha256(str(fs)) != firmware.expected_for_id("sim")
    pid = server.proc.pid
    lines = []
    result = deploy(path, "sim", log=lines.append)
    assert any(line.startswith("left the tesctl app") for line in lines), lines
    assert result["sim"] is True and result["root"] == "."
    assert result["fw_sha256"] == result["device_fw_sha256"] == firmware.expected_for_id("sim")
    assert result["board_sha256"] == result["device_board_sha256"]
    for rel in firmware_files({"mcu": "sim"}):
        assert (fs / rel).read_bytes() == (paths.FIRMWARE / rel).read_bytes(), rel
    assert not (fs / "tes" / "stale.py").exists()
    board_bytes = (paths.BOARDS / "sim.json").read_bytes()
    assert (fs / "board.json").read_bytes() == board_bytes
    assert result["board_sha256"] == hashlib.sha256(board_bytes).hexdigest()
    assert any(line.startswith("verified:") for line in lines)
    # The copy ran at the REPL of the same process (no soft reset); deploy's reset then
    # booted the board once, and it runs the deployed firmware.
    assert server.restarts == 1 and server.proc.pid != pid
    assert result["booted_fw_sha256"] == result["fw_sha256"]
    after = hello(path)
    assert after["fw_sha256"] == result["fw_sha256"] and after["boot"] == "reset"


def test_real_board_file_set_and_redeploy(sim_board):
    """A real board's set has no hal/sim.py; a redeploy removes the stale one and still
    verifies (no reset: the unix port cannot run a build for the RP2040)."""
    path, fs, _ = sim_board
    deploy(path, "sim", log=lambda m: None)
    assert (fs / "hal" / "sim.py").exists()
    result = deploy(path, "pico-mcp4922", log=lambda m: None, reset=False)
    assert not (fs / "hal" / "sim.py").exists()
    assert "hal/sim.mpy" not in result["files"] and "hal/rp2.mpy" in result["files"] and "main.py" in result["files"]
    # A board gets compiled modules only (nothing to compile at boot), main.py as source.
    assert not list((fs / "tes").glob("*.py")) and not list((fs / "hal").glob("*.py"))
    assert (fs / "tes" / "app.mpy").read_bytes()[:1] == b"M" and (fs / "main.py").exists()
    assert result["fw_sha256"] == result["device_fw_sha256"]
    # What a HELLO from such a board is checked against: the same hash, no flag needed.
    assert result["fw_sha256"] == firmware.expected_for_id("pico-mcp4922")
    assert result["fw_sha256"] != firmware.expected_for_id("sim")


def test_expected_hashes_follow_each_board_file_set(tmp_path):
    sim_set = firmware.files_for({"mcu": "sim"})
    pico_set = firmware.files_for({"mcu": "rp2"})
    assert set(pico_set) - set(sim_set) == set() and "hal/sim.py" not in pico_set
    # The simulated board holds the whole source tree: a deployed one hashes as the tree.
    firmware.stage({"mcu": "sim"}, tmp_path / "sim")
    assert firmware.expected_sha256({"mcu": "sim"}) == tree_sha256(str(paths.FIRMWARE)) == \
        tree_sha256(str(tmp_path / "sim"))
    firmware.stage({"mcu": "rp2"}, tmp_path / "rp2")
    assert firmware.expected_sha256({"mcu": "rp2"}) == tree_sha256(str(tmp_path / "rp2"))
    assert firmware.expected_for_id("no-such-board") is None
    assert firmware.expected_for_id("../boards/sim") is None


def test_hello_frame_is_harmless_to_a_repl():
    """deploy sends HELLO to whatever is on the port; a REPL must neither run a line (CR),
    soft-reset (Ctrl-D), interrupt (Ctrl-C) nor enter paste mode (Ctrl-E) on it."""
    hello = b"\x00" + L.encode(L.HELLO, 0, L.dumps({"link": L.LINK_VERSION, "host": "tesctl"}).encode())
    for ctrl in (0x03, 0x04, 0x05, 0x0D):
        assert ctrl not in hello, hex(ctrl)


def test_verify_catches_a_changed_file(sim_board):
    path, fs, _ = sim_board
    deploy(path, "sim", log=lambda m: None, reset=False)      # stays at the REPL
    verify(path, "sim", log=lambda m: None)
    engine = fs / "tes" / "engine.py"
    engine.write_bytes(engine.read_bytes() + b"\n# changed on the device\n")
    with pytest.raises(DeployError, match="firmware on .* does not match") as e:
        verify(path, "sim", log=lambda m: None)
    assert "\n" not in str(e.value)
    engine.write_bytes((paths.FIRMWARE / "tes" / "engine.py").read_bytes())
    (fs / "board.json").write_bytes((paths.BOARDS / "pico-mcp4922.json").read_bytes())
    with pytest.raises(DeployError, match="board.json on .* does not match"):
        verify(path, "sim", log=lambda m: None)
    os.remove(fs / "tes" / "fwhash.py")
    with pytest.raises(DeployError, match="mpremote exec on .* failed: ImportError"):
        verify(path, "sim", log=lambda m: None)


def test_missing_port_is_one_line(tmp_path):
    with pytest.raises(DeployError) as e:
        deploy(str(tmp_path / "ttyACM9"), "pico-mcp4922", log=lambda m: None)
    msg = str(e.value)
    assert "no serial port" in msg and "\n" not in msg


def test_unknown_board_is_one_line(sim_board):
    path, _, _ = sim_board
    with pytest.raises(DeployError, match="no board 'nope'") as e:
        deploy(path, "nope", log=lambda m: None)
    assert "\n" not in str(e.value)


class _FakeDevice:
    """A link app that refuses HELLO (another link version) and records what it is sent."""

    def __init__(self, hello_error_code, sent):
        self.hello_error_code = hello_error_code
        self.sent = sent

    def hello(self, timeout):
        from tesctl.device import DeviceError
        self.sent.append("HELLO")
        raise DeviceError("device refused hello: bad-field (link version 2 not spoken)", self.hello_error_code)

    def request(self, typ, obj, timeout):
        self.sent.append(L.NAMES[typ])
        return {}

    def close(self):
        pass


@pytest.mark.parametrize("code, left", [("bad-field", True), (None, False)])
def test_an_app_of_another_link_version_is_still_asked_to_exit(monkeypatch, code, left):
    """After a link version change the board's old app refuses the new host's HELLO; it is
    still an app and must get EXIT, or mpremote finds no REPL (the deploy then timed out).
    No reply at all (code None) is a REPL: nothing more is sent."""
    import tesctl.deploy
    import tesctl.device
    import tesctl.transport
    sent = []
    monkeypatch.setattr(tesctl.transport, "SerialTransport", lambda port: None)
    monkeypatch.setattr(tesctl.device, "Device", lambda transport: _FakeDevice(code, sent))
    logs = []
    got = tesctl.deploy.leave_app("/dev/ttyACM9", logs.append)
    assert (got is not None) == left
    assert sent == (["HELLO", "exit"] if left else ["HELLO"])
    assert bool(logs) == left
