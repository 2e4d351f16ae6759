"""Byte transports to a device, one interface (pyserial's model): a serial port or any
pyserial URL (`/dev/ttyACM0`, `socket://host:port`, `loop://`), or `sim`, which spawns the
simulated board (the firmware under the MicroPython unix port) on pipes."""
import os
import subprocess
import time

from tesctl import paths


class TransportError(Exception):
    pass


class SerialTransport:
    def __init__(self, url, baudrate=115200):
        import serial
        try:
            self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TransportError("cannot open %s: %s" % (url, e)) from None
        self.name = url

    def read(self, timeout=0.05):
        self.ser.timeout = timeout
        n = max(1, self.ser.in_waiting)
        try:
            return self.ser.read(n)
        except Exception as e:  # pyserial raises SerialException or OSError on unplug
            raise TransportError("read from %s failed: %s" % (self.name, e)) from None

    def write(self, data):
        try:
            self.ser.write(data)
        except Exception as e:
            raise TransportError("write to %s failed: %s" % (self.name, e)) from None

    def close(self):
        self.ser.close()


class SimTransport:
    """The simulated board as a child process; its stdin/stdout are the link."""

    def __init__(self, board="sim", faults=(), realtime=False, storage=None):
        from tesctl.boards import board_path
        argv = [paths.micropython(), "-X", "heapsize=%s" % SIM_HEAP, str(paths.FIRMWARE / "simmain.py"),
                "--board", str(board_path(board)), "--root", str(paths.FIRMWARE),
                "--storage", str(storage or sim_storage())]
        if realtime:
            argv.append("--realtime")
        for f in faults:
            argv += ["--fault", f]
        env = dict(os.environ, MICROPYPATH=paths.micropypath())
        # Its own session: Ctrl-C at the terminal goes to the host (stop with ramp-down),
        # not straight to the board, which a real board would never receive either.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, bufsize=0, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.name = "sim"

    def read(self, timeout=0.05):
        import select
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            if self.proc.poll() is not None:
                raise TransportError("simulated board exited: %s" % self.stderr_text())
            return b""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return b""
        if not data:
            raise TransportError("simulated board exited: %s" % self.stderr_text())
        return data

    def stderr_text(self):
        try:
            self.proc.wait(timeout=2)
            return (self.proc.stderr.read() or b"").decode(errors="replace").strip() or \
                "exit code %s" % self.proc.returncode
        except Exception:  # still running or stderr closed: say what we know
            return "exit code %s" % self.proc.returncode

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            raise TransportError("simulated board is gone") from None

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + 3
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


SIM_HEAP = "512K"


def sim_storage():
    """Where simulated boards keep their journal between runs (like a board's flash)."""
    base = os.environ.get("TESCTL_SIM_STORAGE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tesctl", "sim")
    os.makedirs(base, exist_ok=True)
    return base


def open_port(port, board="sim", faults=(), realtime=False):
    if port == "sim":
        return SimTransport(board=board, faults=faults, realtime=realtime)
    if faults:
        raise TransportError("--fault works only with a simulated board (--port sim)")
    return SerialTransport(port)
