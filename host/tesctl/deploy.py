"""`tesctl deploy`: copy the firmware and a board file to a board with mpremote, then verify
by hash what the board now holds.

mpremote runs as a subprocess (the one beside sys.executable, else on PATH), exactly as a
hardware developer would type it:

    mpremote connect PORT resume exec "<mkdir tes, hal; delete stale modules there>"
    mpremote connect PORT resume fs cp STAGE/tes/*.mpy :tes/       (.py on the simulated board)
    mpremote connect PORT resume fs cp STAGE/hal/*.mpy :hal/
    mpremote connect PORT resume fs cp STAGE/main.py :main.py
    mpremote connect PORT [resume] fs cp boards/BOARD.json :board.json
    mpremote connect PORT [resume] exec "<tes.fwhash.tree_sha256(ROOT); sha256 of board.json>"

The file set is staged into a temporary folder first by tesctl.firmware.stage (main.py
as source; every tes/ and hal/ module the board needs, compiled by mpy-cross for its
architecture: a board compiles nothing at boot), the host hash is tes.fwhash.tree_sha256
over that folder, and the files are copied from it: what is hashed is what is copied.
Stale modules (.py or .mpy) in the board's tes/ and hal/ are removed, since the device
hash covers every module there.

Targets. A device may be running the link app, which ignores Ctrl-C: deploy first sends
HELLO + EXIT over the link (best effort). A board then reboots once straight into its REPL
(main.py skips the app that one time, so a watchdog a session started cannot cut the
deploy short); the simulated board (`tesctl sim`) drops to its REPL in the same process.
Then mpremote takes over, every command with `resume` (no soft reset: it would end a
unix-port REPL, and a board needs none). Simulated board or real one is decided from the
sys.platform the device reports (linux/darwin: the unix port, hash root '.'; rp2/esp32: a
board, hash root ''), never from the port's path. At the end the device is reset
(`mpremote reset`: machine.reset(); the simulated board's process ends and tesctl sim
boots it again from its flash), and deploy waits for the app to answer HELLO with the
firmware hash it just verified. Every mpremote call has a timeout sized for a slow device
(the virtual RP2040 runs at about 0.1x real time), which becomes a DeployError.
"""
import hashlib
import json
import os
import subprocess
import tempfile
import time

from tes.fwhash import tree_sha256

from tesctl import firmware, paths

MARK = "TESDEPLOY"
UNIX_PLATFORMS = ("linux", "darwin")
# Timeouts (s) sized for a slow device: the virtual RP2040 runs at ~0.1x real time.
HELLO_S = 5.0
REQUEST_S = 10.0
PROBE_S = 60
REBOOT_S = 90
COPY_S = 600


class DeployError(Exception):
    """Deploy or verification failed; one sentence."""


def mpremote_path():
    found = paths.tool("mpremote")
    if found:
        return found
    raise DeployError("mpremote is not installed: pip install mpremote")


def firmware_files(board):
    """Relative paths of the firmware files a board gets (tesctl.firmware.files_for)."""
    return firmware.files_for(board)


def stage(board, dest):
    return firmware.stage(board, dest)


def _stage_or_fail(board, dest, frozen=False):
    try:
        return firmware.stage(board, dest, frozen)
    except firmware.FirmwareError as e:
        raise DeployError(str(e)) from None


def load_board(board):
    from tesctl.boards import board_path
    path = board_path(board)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in paths.BOARDS.glob("*.json")))
        raise DeployError("no board %r (known boards: %s)" % (str(board), known))
    raw = path.read_bytes()
    try:
        return path, raw, json.loads(raw)
    except ValueError as e:
        raise DeployError("board file %s is not valid JSON: %s" % (path, e)) from None


def check_port(port):
    if port.startswith("/") and not os.path.exists(port):
        raise DeployError("no serial port %s (is the board plugged in? see `tesctl ports`)" % port)


# ---- mpremote -------------------------------------------------------------------------
def mpremote(port, args, resume, timeout=60):
    """Run one mpremote command line; return its stdout. Raises DeployError on failure."""
    argv = [mpremote_path(), "connect", port] + (["resume"] if resume else []) + list(args)
    what = " ".join(args[:2]) if args[0] == "fs" else args[0]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DeployError("mpremote %s on %s timed out after %d s: is a MicroPython REPL answering there?"
                          % (what, port, timeout)) from None
    if r.returncode != 0:
        raise DeployError("mpremote %s on %s failed: %s" % (what, port, _summary(r.stderr or r.stdout)))
    return r.stdout


def _summary(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return "no output"
    last = lines[-1]
    return last[len("mpremote: "):] if last.startswith("mpremote: ") else last


def device_exec(port, code, resume, timeout=60):
    """Run code on the device; return the values it printed on lines starting with MARK."""
    out = mpremote(port, ["exec", code], resume, timeout)
    values = {}
    for line in out.splitlines():
        parts = line.strip().split(" ")
        if len(parts) == 3 and parts[0] == MARK:
            values[parts[1]] = parts[2]
    return values


def probe(port):
    """-> the device's sys.platform ('linux' for the unix port, 'rp2', 'esp32', ...).
    With `resume`: a soft reset would end a unix-port REPL, and a board needs none."""
    values = device_exec(port, "import sys\nprint(%r, 'platform', sys.platform)" % MARK, True, timeout=PROBE_S)
    if "platform" not in values:
        raise DeployError("the device on %s did not answer like a MicroPython REPL" % port)
    return values["platform"]


def leave_app(port, log):
    """Ask a device running the link app to return to its REPL (best effort). Returns the
    HELLO reply, or None when no app answered (the device is at its REPL already).

    Safe to send to a REPL: the HELLO frame (seq 0, fixed payload) holds no Ctrl-C, Ctrl-D,
    Ctrl-E or CR byte, so a REPL neither runs nor resets on it (tests/host/test_deploy.py)."""
    from tes import link as L

    from tesctl.device import Device, DeviceError
    from tesctl.transport import SerialTransport, TransportError
    try:
        dev = Device(SerialTransport(port))
    except TransportError as e:
        raise DeployError(str(e)) from None
    try:
        try:
            info = dev.hello(timeout=HELLO_S)
        except DeviceError as e:
            if e.code is None:
                return None      # no app answering: the device is at its REPL already (or has no firmware yet)
            # An app answered but refused the HELLO: it speaks another link version (firmware
            # older or newer than this host, the usual case for a deploy). EXIT needs no HELLO.
            info = {"board": "?", "refused": str(e)}
        dev.request(L.EXIT, {}, timeout=REQUEST_S)
        log("left the tesctl app on %s (board %s): it returns to its REPL" % (port, info.get("board")))
        return info
    except DeviceError as e:
        if e.code == L.E_BUSY:
            raise DeployError("the board on %s is stimulating: stop the session before deploying" % port) from None
        return None      # the app went quiet after HELLO: treat as at its REPL
    except TransportError as e:
        raise DeployError(str(e)) from None
    finally:
        dev.close()


def wait_for_app(port, timeout):
    """After a reset: HELLO until the app answers (a board's USB port may vanish for a
    moment while it reboots). -> the HELLO reply, or None if nothing answered in time."""
    from tesctl.device import Device, DeviceError
    from tesctl.transport import SerialTransport, TransportError
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            dev = Device(SerialTransport(port))
        except TransportError:
            time.sleep(0.5)
            continue
        try:
            return dev.hello(timeout=min(HELLO_S, max(0.5, deadline - time.monotonic())))
        except (DeviceError, TransportError):
            pass
        finally:
            dev.close()
    return None


def wait_for_repl(port, timeout):
    """Probe until a REPL answers (a board leaving the app reboots, and its USB port may
    vanish for a moment). -> the device's sys.platform."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not port.startswith("/") or os.path.exists(port):
                return probe(port)
        except DeployError:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise DeployError("no serial port %s after the board rebooted" % port)
        time.sleep(1.0)


# ---- deploy and verify ------------------------------------------------------------------
def _prepare_code(files):
    keep = sorted(f for f in files if "/" in f)
    return ("import os\n"
            "keep = %r\n"
            "for d in ('tes', 'hal'):\n"
            "    try:\n"
            "        os.mkdir(d)\n"
            "    except OSError:\n"
            "        pass\n"
            "    for n in os.listdir(d):\n"
            "        if (n.endswith('.py') or n.endswith('.mpy')) and d + '/' + n not in keep:\n"
            "            os.remove(d + '/' + n)\n"
            # A folder of that name, even empty, shadows a frozen package: none when nothing is kept.
            "    if not [k for k in keep if k.startswith(d + '/')]:\n"
            "        os.rmdir(d)\n"
            "print(%r, 'ready', 1)\n") % (keep, MARK)


def _verify_code(root):
    prefix = root + "/" if root else "/"
    return ("import sys, hashlib\n"
            "sys.modules.pop('tes.fwhash', None)\n"
            "import tes.fwhash\n"
            "print(%r, 'fw', tes.fwhash.tree_sha256(%r))\n"
            "h = hashlib.sha256()\n"
            "f = open(%r, 'rb')\n"
            "h.update(f.read())\n"
            "f.close()\n"
            "print(%r, 'board', ''.join('%%02x' %% b for b in h.digest()))\n") % (
        MARK, root, prefix + "board.json", MARK)


def _target(platform, sim, root):
    """-> (sim, root) from what the device reports: the unix port (the simulated board's
    REPL, sys.platform linux/darwin) has its filesystem in its working directory ('.');
    a board's root is ''. Never from the port's name: a real board may sit behind a pty."""
    if sim is None:
        sim = platform in UNIX_PLATFORMS
    if root is None:
        root = "." if sim else ""
    return sim, root


def verify(port, board, sim=None, root=None, log=print, frozen=False):
    """Compare the firmware and board file on the device with the host's (frozen: main.py
    alone, the modules frozen in its image). Returns the hashes; raises DeployError on any
    mismatch."""
    check_port(port)
    if sim is None or root is None:
        sim, root = _target(probe(port), sim, root)
    _, raw, board_obj = load_board(board)
    with tempfile.TemporaryDirectory(prefix="tesctl-deploy-") as tmp:
        _stage_or_fail(board_obj, tmp, frozen)
        want_fw = tree_sha256(tmp)
    want_board = hashlib.sha256(raw).hexdigest()
    got = device_exec(port, _verify_code(root), resume=True)
    result = {"fw_sha256": want_fw, "board_sha256": want_board,
              "device_fw_sha256": got.get("fw"), "device_board_sha256": got.get("board")}
    if got.get("fw") != want_fw:
        raise DeployError("firmware on %s does not match the host: device hash %s, expected %s"
                          % (port, (got.get("fw") or "none")[:12], want_fw[:12]))
    if got.get("board") != want_board:
        raise DeployError("board.json on %s does not match %s: device hash %s, expected %s"
                          % (port, board, (got.get("board") or "none")[:12], want_board[:12]))
    log("verified: firmware %s, board.json %s" % (want_fw[:12], want_board[:12]))
    return result


def deploy(port, board, log=print, sim=None, root=None, reset=True, frozen=False):
    """Copy firmware + board file to the board on PORT with mpremote and verify by hash.

    A device running the link app is first asked to leave it (HELLO + EXIT: a board reboots
    into its REPL once). Simulated board or real one is decided from what the device
    reports (sys.platform), unless sim is given; root is the device's filesystem root for
    the hash ('' on a board, '.' on the unix port). Every mpremote command uses `resume`.
    reset: the device is reset at the end, so it boots into the deployed firmware, and
    deploy waits for its app to answer HELLO with the deployed hash.
    frozen: the board's image holds tes/ and hal/ frozen (a build with
    firmware/manifest_rp2.py): main.py and board.json only, and every module in the board's
    tes/ and hal/ is removed (a module there would shadow the frozen one).
    Returns {port, board, sim, root, files, fw_sha256, board_sha256, device_*,
    booted_fw_sha256 (what the app reported after the reset; None if it did not answer)}."""
    check_port(port)
    board_file, raw, board_obj = load_board(board)
    left = leave_app(port, log)
    platform = wait_for_repl(port, REBOOT_S if left else PROBE_S)
    sim, root = _target(platform, sim, root)
    if frozen and sim:
        raise DeployError("--frozen is for a board whose image holds the firmware; the simulated board runs sources")
    log("deploying to %s (MicroPython on %s, board %s%s)" % (port, platform, board_obj.get("id", board),
                                                           "; firmware frozen in its image" if frozen else ""))
    with tempfile.TemporaryDirectory(prefix="tesctl-deploy-") as tmp:
        files = _stage_or_fail(board_obj, tmp, frozen)
        device_exec(port, _prepare_code(files), resume=True)
        for pkg in ("tes", "hal"):
            srcs = [os.path.join(tmp, f) for f in files if f.startswith(pkg + "/")]
            if not srcs:
                continue
            log("copying %d files to :%s/" % (len(srcs), pkg))
            mpremote(port, ["fs", "cp"] + srcs + [":%s/" % pkg], resume=True, timeout=COPY_S)
        log("copying main.py and %s as board.json" % board_file.name)
        mpremote(port, ["fs", "cp", os.path.join(tmp, "main.py"), ":main.py"], resume=True)
        mpremote(port, ["fs", "cp", str(board_file), ":board.json"], resume=True)
    result = verify(port, board, sim=sim, root=root, log=log, frozen=frozen)
    if reset:
        # machine.reset() ends the raw REPL session mid-command: mpremote may report that.
        try:
            mpremote(port, ["reset"], resume=True, timeout=PROBE_S)
        except DeployError:
            pass
        info = wait_for_app(port, REBOOT_S)
        result["booted_fw_sha256"] = info.get("fw_sha256") if info else None
        if info is None:
            log("reset the board; its app did not answer within %d s (is main.py running?)" % REBOOT_S)
        elif info.get("fw_sha256") != result["fw_sha256"]:
            raise DeployError("after the reset the board on %s runs firmware %s, not the deployed %s"
                              % (port, str(info.get("fw_sha256"))[:12], result["fw_sha256"][:12]))
        else:
            log("reset the board: it runs the deployed firmware (%s)" % result["fw_sha256"][:12])
    result.update(port=port, board=board_obj.get("id", str(board)), sim=sim, root=root, files=files + ["board.json"],
                  platform=platform)
    return result
