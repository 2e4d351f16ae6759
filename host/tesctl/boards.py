"""Board files as the host sees them: by name (boards/NAME.json) or by path."""
import json
from pathlib import Path

from tes.limits import CEILING, board_limits

from tesctl.paths import BOARDS


class BoardError(Exception):
    pass


def board_path(name_or_path):
    path = Path(name_or_path)
    if not path.exists() and not path.suffix:
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
    try:
        board = json.loads(path.read_text())
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
