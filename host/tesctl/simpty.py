"""A simulated board behind a pseudo-terminal, so any serial tool can open it.

`serve()` makes a pty pair with os.openpty(), puts the slave in raw mode (tty.setraw: no
echo, no canonical mode, no LF->CRLF, no signal characters), keeps the slave fd open for
as long as it serves (so the /dev/pts/N path survives a client closing it and can be
reopened), starts the device process and bridges bytes between the pty master and the
device in a select() loop. `serve()` prints the slave path (or hands it to `ready`).

Two kinds of device:

- repl=False, the link firmware: `micropython -X heapsize=512K firmware/simmain.py --board B
  --root firmware --storage DIR [--realtime] [--fault K@S]...` with
  MICROPYPATH=<repo>/firmware:.frozen, on pipes (as SimTransport runs it). Verified:
  pyserial opens the path and tesctl.device.Device does HELLO over SerialTransport (board
  "sim"); a client can close the port and open it again and still talk to the same board.
- repl=True, a MicroPython unix-port REPL that mpremote can drive: plain `micropython
  -X heapsize=512K` (no script) whose stdin/stdout/stderr are the slave of a *second* pty,
  so it sees a tty and runs its interactive REPL (it sets that tty to raw itself); we bridge
  master<->master. Its working directory is a "device filesystem" folder (default
  build/sim-fs) and MICROPYPATH=.frozen:lib, so sys.path is ['', '.frozen', 'lib'] like a
  board's. Verified with mpremote 1.29 against micropython 1.29-preview: `mpremote connect
  /dev/pts/N resume fs mkdir :tes`, `resume fs cp A B :tes/`, `resume exec "..."`,
  `resume fs ls :`, `resume fs sha256sum :F` all work; the files land in the folder.
  Every command must start with `resume`: without it mpremote soft-resets (Ctrl-D), which
  ends the unix process, and mpremote then waits forever for a raw-REPL prompt (kill it).
  If the REPL process exits (that soft reset, `sys.exit()`), the server starts a fresh one
  on the same pty, like a board rebooting, and `resume` commands work again (verified).

Output toward a client that is not reading (or not connected) is never allowed to block
the bridge: when the pty's input queue is full, the stale bytes in it are discarded
(TCIFLUSH) and the bridge goes on, like a USB CDC port with no host drops data.
"""
import contextlib
import errno
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty

from tesctl import paths

SIM_HEAP = "512K"
MAX_PENDING = 1 << 20      # bytes queued toward the device before we stop reading the client


def sim_fs_dir():
    return paths.ROOT / "build" / "sim-fs"


class SimPtyError(Exception):
    pass


class SimPty:
    """One simulated board on one pty. start() -> slave path; serve_forever(); stop()."""

    def __init__(self, board="sim", faults=(), realtime=False, repl=False, fs_dir=None, storage=None,
                 stderr=None):
        self.board = board
        self.faults = list(faults)
        self.realtime = realtime
        self.repl = repl
        self.fs_dir = str(fs_dir or sim_fs_dir())
        self.storage = storage
        self.stderr = stderr          # where the device's stderr goes (link mode); None: ours
        self.path = None
        self.proc = None
        self.restarts = 0
        self.error = None             # why serving ended, if not stop()
        self._master = self._slave = None
        self._dev_master = None       # repl mode: our end of the device's own pty
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread = None

    # ---- set-up -----------------------------------------------------------------
    def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[1] &= ~termios.OPOST                     # no output processing (no LF->CRLF)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._spawn()
        return self.path

    def _spawn(self):
        if self.repl:
            self._spawn_repl()
        else:
            self._spawn_link()

    def _spawn_link(self):
        from tesctl.boards import board_path
        from tesctl.transport import sim_storage
        argv = [paths.micropython(), "-X", "heapsize=%s" % SIM_HEAP, str(paths.FIRMWARE / "simmain.py"),
                "--board", str(board_path(self.board)), "--root", str(paths.FIRMWARE),
                "--storage", str(self.storage or sim_storage())]
        if self.realtime:
            argv.append("--realtime")
        for f in self.faults:
            argv += ["--fault", f]
        env = dict(os.environ, MICROPYPATH=paths.micropypath())
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env, bufsize=0, start_new_session=True)
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._dev_in = self.proc.stdin.fileno()
        self._dev_out = self.proc.stdout.fileno()

    def _spawn_repl(self):
        os.makedirs(self.fs_dir, exist_ok=True)
        if self._dev_master is not None:
            os.close(self._dev_master)
        master, slave = os.openpty()
        tty.setraw(slave)
        env = dict(os.environ, MICROPYPATH=".frozen:lib")
        try:
            self.proc = subprocess.Popen([paths.micropython(), "-X", "heapsize=%s" % SIM_HEAP], stdin=slave,
                                         stdout=slave, stderr=slave, cwd=self.fs_dir, env=env,
                                         start_new_session=True)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._dev_master = master
        self._dev_in = self._dev_out = master

    # ---- the bridge ---------------------------------------------------------------
    def serve_forever(self):
        """Bridge until stop() or the device dies (link mode). Returns the device's exit code."""
        to_dev = bytearray()
        try:
            while not self._stopping.is_set():
                rlist = [self._wake_r, self._dev_out]
                if len(to_dev) < MAX_PENDING:
                    rlist.append(self._master)
                wlist = [self._dev_in] if to_dev else []
                try:
                    r, _w, _ = select.select(rlist, wlist, [], 0.2)
                except InterruptedError:
                    continue
                if self._wake_r in r:
                    os.read(self._wake_r, 64)
                if self._master in r:
                    data = _read(self._master)
                    if data:
                        to_dev += data
                if self._dev_out in r:
                    data = _read(self._dev_out)
                    if data:
                        self._to_client(data)
                    elif data is None:          # end of file / hang-up: the device is gone
                        if not self._device_ended():
                            break
                        to_dev.clear()
                        continue
                if to_dev:
                    try:
                        n = os.write(self._dev_in, to_dev)
                        del to_dev[:n]
                    except BlockingIOError:
                        pass
                    except OSError:     # the device's end is gone: the read side notices
                        to_dev.clear()
                if self.proc.poll() is not None:
                    if not self._drain_and_check():
                        break
                    to_dev.clear()
        finally:
            self._shutdown()
        return self.proc.returncode if self.proc else None

    def _drain_and_check(self):
        while True:
            try:
                data = _read(self._dev_out)
            except OSError:
                break
            if not data:
                break
            self._to_client(data)
        return self._device_ended()

    def _device_ended(self):
        """The device process is gone: restart a REPL (True: keep serving), or end (False)."""
        if self._stopping.is_set():
            return False
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.repl:
            self.restarts += 1
            self._spawn()
            return True
        self.error = "simulated board exited with code %s" % code
        return False

    def _to_client(self, data):
        try:
            os.write(self._master, data)
        except BlockingIOError:        # nobody reads: drop what is stale, keep the new bytes
            termios.tcflush(self._slave, termios.TCIFLUSH)
            try:
                os.write(self._master, data)
            except OSError:
                pass
        except OSError:
            pass

    # ---- ending -------------------------------------------------------------------
    def stop(self):
        """Ask the bridge to end (thread- and signal-safe); wait for it if it runs in a thread."""
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def _shutdown(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            if not self.repl:
                try:
                    proc.stdin.close()            # the link app ends when its host hangs up
                except OSError:
                    pass
            else:
                proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and not self.repl:
            for f in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    f.close()
        for fd in (self._dev_master, self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._dev_master = self._master = self._slave = None
        self._done.set()

    def start_thread(self):
        """start() and serve in a daemon thread; returns the slave path."""
        path = self.start()
        self._thread = threading.Thread(target=self.serve_forever, name="simpty", daemon=True)
        self._thread.start()
        return path


def _read(fd):
    """Bytes, b"" when nothing is there now, None at end of file / hang-up."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return b""
    except OSError as e:
        if e.errno == errno.EIO:       # a pty whose other side is gone
            return None
        raise
    return data if data else None


def serve(board="sim", faults=(), realtime=False, repl=False, ready=None, fs_dir=None, storage=None):
    """Run a simulated board on a pty until SIGINT/SIGTERM (or the board dies).

    Prints the pty path (or calls ready(path, server) if given). Returns the exit code for
    the CLI: 0 after a signal or stop(), 3 if the simulated board died."""
    server = SimPty(board=board, faults=faults, realtime=realtime, repl=repl, fs_dir=fs_dir, storage=storage)
    server.start()
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda *_: server.stop())
    try:
        if ready is not None:
            ready(server.path, server)
        else:
            print(server.path, flush=True)
        server.serve_forever()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if server.error:
            sys.stderr.write("%s\n" % server.error)
    return 3 if server.error else 0


@contextlib.contextmanager
def open_sim_pty(board="sim", faults=(), realtime=False, repl=False, fs_dir=None, storage=None, stderr=None):
    """For tests: a simulated board on a pty served by a thread -> (path, server)."""
    server = SimPty(board=board, faults=faults, realtime=realtime, repl=repl, fs_dir=fs_dir, storage=storage,
                    stderr=stderr)
    path = server.start_thread()
    try:
        if repl:
            _wait_for_prompt(server)
        yield path, server
    finally:
        server.stop()
        if not server._done.wait(10) and server.proc is not None and server.proc.poll() is None:
            server.proc.kill()


def _wait_for_prompt(server, timeout=5.0):
    """Give the REPL process a moment to start (it prints its banner into the pty)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is None:
            time.sleep(0.2)
            return
        time.sleep(0.02)
    raise SimPtyError("the MicroPython REPL did not start")
