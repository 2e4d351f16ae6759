"""Board files as the host sees them: by name (boards/NAME.json) or by path."""
import json
from pathlib import Path

from tes.limits import CEILING, board_limits

from tesctl.errors import InputError
from tesctl.paths import BOARDS


class BoardError(InputError):
    """An unknown or refused board file (exit 2)."""


def board_path(name_or_path):
    """A board name (boards/NAME.json) or a file's path: a name without a suffix is a path
    only when it is a file (a folder named `sim` in the working directory is no board)."""
    path = Path(name_or_path)
    if not path.is_file() and not path.suffix:
        path = BOARDS / (str(name_or_path) + ".json")
    return path


def resolve(name_or_path):
    """-> (board dict, its limits). Raises BoardError with one clear sentence."""
    if name_or_path is None:
        return None, dict(CEILING)
    path = board_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        raise BoardError("no board %r (known boards: %s)" % (str(name_or_path), known))
    if not path.is_file() or path.stat().st_size > 1 << 20:
        raise BoardError("board file %s: not a regular file of at most 1 MiB" % path)
    try:
        board = json.loads(path.read_text())
    except RecursionError:
        raise BoardError("board file %s is not a board (nested too deeply)" % path) from None
    except (OSError, ValueError) as e:
        raise BoardError("board file %s is not valid JSON: %s" % (path, e)) from None
    problems = []
    try:
        from tes import board as board_mod
        problems = board_mod.check(board)
    except ImportError:
        pass
    limits, more = board_limits(board)
    problems = list(problems) + [p for p in more if p not in problems]
    if problems:
        raise BoardError("board file %s refused: %s" % (path, "; ".join(problems)))
    return board, limits
