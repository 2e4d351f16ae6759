"""tools/bench_blockcost_mp.py's app part (where a board's busy time goes) on the simulated
board under the unix port: its wrappers sit in the heap-locked block path, so one that
allocated would end the session with a memory fault, and the board's figures would be
those of a fault, not of a session. The shares themselves are a board's (the simulated
clock is virtual): only that every part was called and the session ran is asserted."""
import os
import re
import subprocess
from pathlib import Path

from tesctl import paths

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_part_runs_a_session_heap_locked_and_times_every_part():
    p = subprocess.run([paths.micropython(), str(ROOT / "tools" / "bench_blockcost_mp.py"), "--app"],
                       cwd=ROOT, env=dict(os.environ, MICROPYPATH=paths.micropypath()),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    busy = [ln for ln in lines if " busy " in ln]
    assert len(busy) == 1 and "outcome None" in busy[0] and "underruns 0" in busy[0], p.stdout
    assert re.match(r"app 4 sources 5000 S/s:", busy[0]), busy
    for part in ("tick", "room", "write", "fill", "sense", "check"):
        m = [re.search(r" %s [0-9.]+ %% \((\d+) calls" % part, ln) for ln in lines]
        calls = [int(x.group(1)) for x in m if x]
        assert calls and calls[0] > 0, (part, p.stdout)
