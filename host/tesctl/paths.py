"""Where the project's files are: firmware, boards, protocols, and the unix-port binary."""
import os
import shutil
import sys
from pathlib import Path

import tes

ROOT = Path(tes.__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
PROTOCOLS = ROOT / "protocols"


def micropython():
    """The MicroPython unix port: $MICROPYTHON, beside this interpreter, or on PATH."""
    env = os.environ.get("MICROPYTHON")
    if env:
        # Relative to where it was set, not to a test's or subprocess's working directory.
        return os.path.abspath(env) if os.sep in env else (shutil.which(env) or env)
    found = tool("micropython")
    if found:
        return found
    raise FileNotFoundError("no MicroPython unix port found: set MICROPYTHON=/path/to/micropython")


def tool(name):
    """A command installed beside this interpreter (the venv), else on PATH, else None."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def micropypath():
    """MICROPYPATH replaces sys.path entirely: keep .frozen or asyncio will not import."""
    return "%s:.frozen" % FIRMWARE
