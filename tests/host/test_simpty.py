"""The simulated board on a pseudo-terminal (tesctl.simpty): a serial tool opens the
printed path and speaks the link; closing the port does not end the board; it boots like a
board (app at boot, REPL after EXIT, a reset or a kill boots it again from its flash)."""
import os
import subprocess
import sys
import time

import serial

from tes import link as L
from tesctl import firmware
from tesctl.device import Device
from tesctl.simpty import open_sim_pty
from tesctl.transport import SerialTransport


def test_hello_over_pyserial(tmp_path):
    with open_sim_pty(storage=str(tmp_path)) as (path, server):
        assert os.path.exists(path)
        probe = serial.Serial(path, timeout=0.2)     # a plain serial tool can open it
        probe.close()
        for _ in range(2):                           # close and reopen: the board keeps serving
            dev = Device(SerialTransport(path))
            try:
                info = dev.hello(timeout=8)
            finally:
                dev.close()
            assert info["board"] == "sim"
            assert len(info["fw_sha256"]) == 64
        assert server.proc.poll() is None
    assert server.proc.poll() is not None            # stopped cleanly: the board process is gone
    assert server._done.is_set()


def test_serve_prints_path_and_stops_on_sigterm(tmp_path):
    code = ("import sys; from tesctl.simpty import serve; "
            "sys.exit(serve(storage=%r))" % str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/")
        dev = Device(SerialTransport(path))
        try:
            assert dev.hello(timeout=8)["board"] == "sim"
        finally:
            dev.close()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _hello(path):
    dev = Device(SerialTransport(path))
    try:
        return dev.hello(timeout=10)
    finally:
        dev.close()


def _repl(path, line, want, timeout=10):
    """Type a line at the REPL; -> what came back once `want` shows (or the timeout)."""
    with serial.Serial(path, timeout=0.2) as s:
        s.write(b"\r\n" + line + b"\r\n")
        out = b""
        deadline = time.monotonic() + timeout
        while want not in out and time.monotonic() < deadline:
            out += s.read(256)
    return out


def test_boots_the_app_exit_gives_the_repl_and_a_reset_boots_again(tmp_path):
    with open_sim_pty(storage=str(tmp_path / "storage")) as (path, server):
        flash = server.flash
        info = _hello(path)               # power-on: the app from a fresh flash
        assert info["boot"] == "power-on" and info["fw_sha256"] == firmware.expected_for_id("sim")
        assert os.path.exists(os.path.join(flash, "board.json"))
        pid = server.proc.pid
        dev = Device(SerialTransport(path))
        try:
            dev.hello(timeout=10)
            assert dev.request(L.EXIT, {}, timeout=10)["state"] == "repl"
        finally:
            dev.close()
        # The same process serves its REPL, working in its flash folder.
        out = _repl(path, b"import os; print(6*7, sorted(os.listdir()))", b"42")
        assert b"42" in out and b"board.json" in out, out
        assert server.proc.pid == pid and server.restarts == 0
        with serial.Serial(path, timeout=0.2) as port:
            port.write(b"import machine; machine.reset()\r\n")
        deadline = time.monotonic() + 20
        while server.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.restarts == 1
        assert _hello(path)["boot"] == "reset"      # the app again, in a new process
        os.kill(server.proc.pid, 9)                 # pulled the plug: a power-on boot
        deadline = time.monotonic() + 20
        while server.restarts == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _hello(path)["boot"] == "power-on" and server.restarts == 2
    assert not os.path.exists(flash)                # its own temporary flash is gone
