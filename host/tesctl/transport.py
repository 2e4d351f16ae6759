"""Byte transports to a device, one interface (pyserial's model): a serial port or any
pyserial URL (`/dev/ttyACM0`, `socket://host:port`, `loop://`), or `sim`, which spawns the
simulated board (the firmware under the MicroPython unix port) on pipes."""
import os
import subprocess
import time

from tesctl import paths
from tesctl.errors import LinkError


class TransportError(LinkError):
    """The port cannot be opened, read or written (exit 3)."""


class SerialTransport:
    def __init__(self, url, baudrate=115200):
        import serial
        try:
            self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TransportError("cannot open %s: %s" % (url, e)) from None
        self.name = url

    def read(self, timeout=0.05):
        try:
            self.ser.timeout = timeout
            return self.ser.read(max(1, self.ser.in_waiting))
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
        self._lock = None
        self._own_storage = None
        if storage is None:
            # The shared storage is this board's flash across runs (a later run reconciles
            # from its journal) but one board's at a time: a second simulated board running
            # at once gets its own, so two never write one journal.
            storage, self._lock = claim_storage(sim_storage())
            if self._lock is None:
                self._own_storage = storage
        argv = [paths.micropython(), "-X", "heapsize=%s" % SIM_HEAP, str(paths.FIRMWARE / "simmain.py"),
                "--board", str(board_path(board)), "--root", str(paths.FIRMWARE),
                "--storage", str(storage)]
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
        release_storage(self._lock, self._own_storage)
        self._lock = self._own_storage = None


SIM_HEAP = "512K"


def sim_storage():
    """Where simulated boards keep their journal between runs (like a board's flash)."""
    base = os.environ.get("TESCTL_SIM_STORAGE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tesctl", "sim")
    os.makedirs(base, exist_ok=True)
    return base


def claim_storage(shared):
    """(storage dir, lock fd): the shared dir if no other simulated board holds it, else
    (a fresh temporary dir, None)."""
    import fcntl
    import tempfile
    fd = os.open(os.path.join(shared, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return shared, fd
    except OSError:
        os.close(fd)
        return tempfile.mkdtemp(prefix="tesctl-sim-storage-"), None


def release_storage(lock, own):
    if lock is not None:
        try:
            os.close(lock)          # closing the descriptor drops the flock
        except OSError:
            pass
    if own:
        import shutil
        shutil.rmtree(own, ignore_errors=True)


def open_port(port, board="sim", faults=(), realtime=False):
    if port == "sim":
        return SimTransport(board=board, faults=faults, realtime=realtime)
    if faults:
        raise TransportError("--fault works only with a simulated board (--port sim)")
    return SerialTransport(port)
