"""The firmware a board runs: which files it gets, and their content hash.

One rule for deploy and for the HELLO check: a board of a given kind holds exactly the
files `files_for(board)` lists, and the device reports tes.fwhash.tree_sha256 over what it
holds. So the host's expected hash for a device is the hash of that board's set, staged
the way deploy copies it; a freshly deployed board matches with no flag.
"""
import json
import shutil
import tempfile
from pathlib import Path

from tes.fwhash import tree_sha256

from tesctl import paths

# Drivers only one kind of board needs; every other hal module goes to every board.
_ONLY_FOR = {"sim.py": "sim"}


def files_for(board):
    """Relative paths of the firmware files a board of this kind gets."""
    fw = paths.FIRMWARE
    mcu = (board or {}).get("mcu")
    files = ["main.py"]
    files += ["tes/" + p.name for p in sorted((fw / "tes").glob("*.py"))]
    files += ["hal/" + p.name for p in sorted((fw / "hal").glob("*.py"))
              if _ONLY_FOR.get(p.name, mcu) == mcu]
    return files


def stage(board, dest):
    """Copy the board's file set into dest; return the list of relative paths."""
    files = files_for(board)
    for rel in files:
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.FIRMWARE / rel, target)
    return files


def expected_sha256(board):
    """The hash a device of this kind reports when it holds this tesctl's firmware."""
    if (board or {}).get("mcu") == "sim":
        # The simulated board runs the whole tree in place (firmware/, hal/sim.py included).
        return tree_sha256(str(paths.FIRMWARE))
    with tempfile.TemporaryDirectory(prefix="tesctl-fw-") as tmp:
        stage(board, tmp)
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
