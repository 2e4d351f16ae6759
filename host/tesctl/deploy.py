"""`tesctl deploy`: copy the firmware and a board file to a board with mpremote, then verify
by hash what the board now holds.

mpremote runs as a subprocess (the one beside sys.executable, else on PATH), exactly as a
hardware developer would type it:

    mpremote connect PORT [resume] exec "<mkdir tes, hal; delete stale .py files there>"
    mpremote connect PORT [resume] fs cp STAGE/tes/*.py :tes/
    mpremote connect PORT [resume] fs cp STAGE/hal/*.py :hal/
    mpremote connect PORT [resume] fs cp STAGE/main.py :main.py
    mpremote connect PORT [resume] fs cp boards/BOARD.json :board.json
    mpremote connect PORT [resume] exec "<tes.fwhash.tree_sha256(ROOT); sha256 of board.json>"

The file set is staged into a temporary folder first (main.py, all of tes/*.py, all of
hal/*.py except hal/sim.py unless the board's mcu is "sim"), the host hash is
tes.fwhash.tree_sha256 over that folder, and the files are copied from it: what is hashed
is what is copied. Stale .py files in the board's tes/ and hal/ are removed, since the
device hash covers every .py there.

Targets. A real board (rp2/esp32) is probably running the link app, which ignores Ctrl-C:
deploy first sends HELLO + EXIT over the link (best effort) so main.py returns to the REPL,
then runs mpremote without `resume` (a soft reset in the raw REPL does not run main.py).
The hash root there is '' (paths '/main.py', '/tes', as main.py itself hashes).
The simulated board REPL (tesctl.simpty repl=True, the unix port on a pty) must never be
soft-reset (that ends the process): every command gets `resume`, and the hash root is
'.' (its filesystem is its working directory). `sim=None` picks the simulated board when
PORT is a pseudo-terminal (/dev/pts/N), and the device's sys.platform ("linux") confirms
the root. mpremote pointed at something that is not a REPL (e.g. the link firmware on a
pty) waits forever: every mpremote call has a timeout (20 s for the first probe) and
that becomes a DeployError. Verified against the unix-port REPL on a pty (tests/host/test_deploy.py); not
run against real hardware here.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tes.fwhash import tree_sha256

from tesctl import paths

MARK = "TESDEPLOY"


class DeployError(Exception):
    """Deploy or verification failed; one sentence."""


def mpremote_path():
    found = paths.tool("mpremote")
    if found:
        return found
    raise DeployError("mpremote is not installed: pip install mpremote")


def firmware_files(board):
    """Relative paths of the firmware files a board gets (hal/sim.py only for the sim)."""
    fw = paths.FIRMWARE
    files = ["main.py"]
    files += ["tes/" + p.name for p in sorted((fw / "tes").glob("*.py"))]
    files += ["hal/" + p.name for p in sorted((fw / "hal").glob("*.py"))
              if p.name != "sim.py" or board.get("mcu") == "sim"]
    return files


def stage(board, dest):
    """Copy the board's firmware file set into dest; return the list of relative paths."""
    files = firmware_files(board)
    for rel in files:
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.FIRMWARE / rel, target)
    return files


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


def is_pty(port):
    real = os.path.realpath(port)
    return real.startswith("/dev/pts/") or real.startswith("/dev/ttys")


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


def probe(port, resume):
    """-> the device's sys.platform ('linux' for the unix port, 'rp2', 'esp32', ...)."""
    values = device_exec(port, "import sys\nprint(%r, 'platform', sys.platform)" % MARK, resume, timeout=20)
    if "platform" not in values:
        raise DeployError("the device on %s did not answer like a MicroPython REPL" % port)
    return values["platform"]


def leave_app(port, log):
    """Ask a board running the link app to return to its REPL (best effort)."""
    from tes import link as L

    from tesctl.device import Device, DeviceError
    from tesctl.transport import SerialTransport, TransportError
    try:
        dev = Device(SerialTransport(port))
    except TransportError as e:
        raise DeployError(str(e)) from None
    try:
        dev.hello(timeout=1.5)
        dev.request(L.EXIT, {}, timeout=2.0)
        log("left the tesctl app on %s: the board is at its REPL" % port)
    except DeviceError as e:
        if e.code == L.E_BUSY:
            raise DeployError("the board on %s is stimulating: stop the session before deploying" % port) from None
        # no app answering: the board is at its REPL already (or has no firmware yet)
    except TransportError as e:
        raise DeployError(str(e)) from None
    finally:
        dev.close()


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
            "        if n.endswith('.py') and d + '/' + n not in keep:\n"
            "            os.remove(d + '/' + n)\n"
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


def _target(port, sim, root):
    """-> (resume, root): how to talk to this device and where its filesystem root is."""
    if sim is None:
        sim = is_pty(port)
    if root is None:
        root = "." if sim else ""
    return sim, root


def verify(port, board, sim=None, root=None, log=print):
    """Compare the firmware and board file on the device with the host's. Returns the hashes;
    raises DeployError on any mismatch."""
    check_port(port)
    sim, root = _target(port, sim, root)
    _, raw, board_obj = load_board(board)
    with tempfile.TemporaryDirectory(prefix="tesctl-deploy-") as tmp:
        stage(board_obj, tmp)
        want_fw = tree_sha256(tmp)
    want_board = hashlib.sha256(raw).hexdigest()
    got = device_exec(port, _verify_code(root), resume=sim)
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


def deploy(port, board, log=print, sim=None, root=None):
    """Copy firmware + board file to the board on PORT with mpremote and verify by hash.

    sim: True for the simulated REPL board (every command with `resume`, never a soft reset),
    False for a real board, None to decide from the port (a pty means the simulated board).
    root: the device's filesystem root for the hash ('' on a board, '.' on the unix port).
    Returns {port, board, sim, root, files, fw_sha256, board_sha256, device_*}."""
    check_port(port)
    board_file, raw, board_obj = load_board(board)
    sim, root = _target(port, sim, root)
    if not sim:
        leave_app(port, log)
    platform = probe(port, resume=sim)
    if sim and platform not in ("linux", "darwin"):
        raise DeployError("%s looks like a simulated board but runs MicroPython on %s; pass sim=False"
                          % (port, platform))
    log("deploying to %s (MicroPython on %s, board %s)" % (port, platform, board_obj.get("id", board)))
    with tempfile.TemporaryDirectory(prefix="tesctl-deploy-") as tmp:
        files = stage(board_obj, tmp)
        device_exec(port, _prepare_code(files), resume=sim)
        for pkg in ("tes", "hal"):
            srcs = [os.path.join(tmp, f) for f in files if f.startswith(pkg + "/")]
            log("copying %d files to :%s/" % (len(srcs), pkg))
            mpremote(port, ["fs", "cp"] + srcs + [":%s/" % pkg], resume=sim, timeout=180)
        log("copying main.py and %s as board.json" % board_file.name)
        mpremote(port, ["fs", "cp", os.path.join(tmp, "main.py"), ":main.py"], resume=sim)
        mpremote(port, ["fs", "cp", str(board_file), ":board.json"], resume=sim)
    result = verify(port, board, sim=sim, root=root, log=log)
    result.update(port=port, board=board_obj.get("id", str(board)), sim=sim, root=root, files=files + ["board.json"],
                  platform=platform)
    return result
