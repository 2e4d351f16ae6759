"""The simulated board on a pseudo-terminal (tesctl.simpty): a serial tool opens the
printed path and speaks the link; closing the port does not end the board."""
import os
import subprocess
import sys
import time

import serial

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


def test_repl_mode_answers(tmp_path):
    fs = tmp_path / "fs"
    with open_sim_pty(repl=True, fs_dir=fs) as (path, server):
        with serial.Serial(path, timeout=0.2) as s:
            s.write(b"\r\nprint(6*7)\r\n")
            out = b""
            deadline = time.monotonic() + 5
            while b"42" not in out and time.monotonic() < deadline:
                out += s.read(256)
        assert b"42" in out
        assert server.proc.poll() is None
