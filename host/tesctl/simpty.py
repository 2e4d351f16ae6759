"""A simulated board behind a pseudo-terminal, booting like a board: `tesctl sim`.

`serve()` makes a pty pair with os.openpty(), puts the slave in raw mode (tty.setraw: no
echo, no canonical mode, no LF->CRLF, no signal characters), keeps the slave fd open for
as long as it serves (so the /dev/pts/N path survives a client closing it and can be
reopened), boots the board and bridges bytes between the pty master and the board in a
select() loop. `serve()` prints the slave path (or hands it to `ready`).

The board is one MicroPython unix-port process whose stdin/stdout/stderr are the slave of
a *second* pty (so its REPL sees a tty), run as

    micropython -X heapsize=512K -i firmware/simmain.py --root . --storage DIR --boot REASON
                [--realtime] [--fault K@S]...

with its working directory as its flash (a folder: `flash`, default a fresh temporary one)
and MICROPYPATH=.frozen:lib, so sys.path is ['', '.frozen', 'lib'] like a board's. The
flash starts with what a board ships with when it lacks it: this tesctl's firmware for
the simulated board (tesctl.firmware.stage) and the board file as board.json.

- At boot simmain runs the app from the flash (tes/, hal/, board.json): the link answers.
- EXIT (deploy sends HELLO + EXIT) ends the app; `-i` then serves the REPL in the same
  process, where mpremote works. Every mpremote command must start with `resume`: without
  it mpremote soft-resets (Ctrl-D), which ends a unix-port REPL.
- When the process ends (machine.reset() there, Ctrl-D at the REPL, a crash, a kill), the
  server boots it again on the same pty, like a board rebooting: so after `tesctl deploy`
  resets it, the board runs the firmware just deployed. The boot reason is "reset" after
  an exit, "power-on" after a kill; the journal lives in `storage` (default
  tesctl.transport.sim_storage(), shared with `--port sim` but held by one simulated
  board at a time: while another holds it, this one gets a fresh storage of its own),
  outside the flash.

Output toward a client that is not reading (or not connected) is never allowed to block
the bridge: when the pty's input queue is full, the stale bytes in it are discarded
(TCIFLUSH) and the bridge goes on, like a USB CDC port with no host drops data.
"""
import contextlib
import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

from tesctl import paths

SIM_HEAP = "512K"
MAX_PENDING = 1 << 20      # bytes queued toward the device before we stop reading the client
QUICK_EXIT_S = 1.0         # a board that ends this soon after booting, ...
QUICK_EXITS = 5            # ... this many times in a row, is failing at boot: stop


def seed_flash(flash, board="sim"):
    """Give an empty simulated board what it ships with: this tesctl's firmware (main.py,
    tes/, hal/) and the board file as board.json. What is there already is kept."""
    from tesctl import firmware
    from tesctl.boards import board_path
    os.makedirs(flash, exist_ok=True)
    if not os.path.exists(os.path.join(flash, "main.py")):
        firmware.stage({"mcu": "sim"}, flash)
    if not os.path.exists(os.path.join(flash, "board.json")):
        shutil.copyfile(str(board_path(board)), os.path.join(flash, "board.json"))


class SimPty:
    """One simulated board on one pty. start() -> slave path; serve_forever(); stop()."""

    def __init__(self, board="sim", faults=(), realtime=False, flash=None, storage=None):
        self.board = board
        self.faults = list(faults)
        self.realtime = realtime
        self._own_flash = flash is None
        self.flash = str(flash) if flash is not None else None
        self.storage = storage
        self._lock = self._own_storage = None
        self.path = None
        self.proc = None
        self.restarts = 0
        self.error = None             # why serving ended, if not stop()
        self._master = self._slave = None
        self._dev_master = None       # our end of the board's own pty
        self._spawned_at = 0.0
        self._quick_exits = 0
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread = None

    # ---- set-up -----------------------------------------------------------------
    def start(self):
        if self.flash is None:
            self.flash = tempfile.mkdtemp(prefix="tesctl-sim-flash-")
        seed_flash(self.flash, self.board)
        if self.storage is None:
            # The shared journal storage, unless another simulated board holds it: then
            # one of its own (two boards never write one journal).
            from tesctl.transport import claim_storage, sim_storage
            self.storage, self._lock = claim_storage(sim_storage())
            if self._lock is None:
                self._own_storage = self.storage
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[1] &= ~termios.OPOST                     # no output processing (no LF->CRLF)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._spawn("power-on")
        return self.path

    def _spawn(self, boot):
        from tesctl.transport import sim_storage
        if self._dev_master is not None:
            os.close(self._dev_master)
            self._dev_master = None
        argv = [paths.micropython(), "-X", "heapsize=%s" % SIM_HEAP, "-i", str(paths.FIRMWARE / "simmain.py"),
                "--root", ".", "--storage", str(self.storage or sim_storage()), "--boot", boot]
        if self.realtime:
            argv.append("--realtime")
        for f in self.faults:
            argv += ["--fault", f]
        master, slave = os.openpty()
        tty.setraw(slave)
        env = dict(os.environ, MICROPYPATH=".frozen:lib")
        try:
            # Its own session: a Ctrl-C at the terminal of `tesctl sim` stops the server,
            # which then ends the board; the board never gets a signal of its own.
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.flash, env=env,
                                         start_new_session=True)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._dev_master = master
        self._dev_in = self._dev_out = master
        self._spawned_at = time.monotonic()

    # ---- the bridge ---------------------------------------------------------------
    def serve_forever(self):
        """Bridge until stop() (or the board keeps failing at boot). Returns the board
        process's last exit code."""
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
        """The board's process is gone: boot it again (True: keep serving), or end (False)."""
        if self._stopping.is_set():
            return False
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        quick = time.monotonic() - self._spawned_at < QUICK_EXIT_S
        self._quick_exits = self._quick_exits + 1 if quick else 0
        if self._quick_exits >= QUICK_EXITS:
            self.error = "simulated board keeps ending at boot (exit code %s)" % code
            return False
        self.restarts += 1
        self._spawn("power-on" if code < 0 else "reset")      # killed by a signal: power lost
        return True

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
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fd in (self._dev_master, self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._dev_master = self._master = self._slave = None
        if self._own_flash and self.flash:
            shutil.rmtree(self.flash, ignore_errors=True)
        from tesctl.transport import release_storage
        release_storage(self._lock, self._own_storage)
        self._lock = self._own_storage = None
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


def serve(board="sim", faults=(), realtime=False, ready=None, flash=None, storage=None):
    """Run a simulated board on a pty until SIGINT/SIGTERM (or the board fails at boot).

    Prints the pty path (or calls ready(path, server) if given). Returns the exit code for
    the CLI: 0 after a signal or stop(), 3 if the simulated board could not be kept running."""
    server = SimPty(board=board, faults=faults, realtime=realtime, flash=flash, storage=storage)
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
def open_sim_pty(board="sim", faults=(), realtime=False, flash=None, storage=None):
    """For tests: a simulated board on a pty served by a thread -> (path, server)."""
    server = SimPty(board=board, faults=faults, realtime=realtime, flash=flash, storage=storage)
    path = server.start_thread()
    try:
        yield path, server
    finally:
        server.stop()
        if not server._done.wait(10) and server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
