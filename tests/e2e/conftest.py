import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESCTL = str(Path(sys.executable).parent / "tesctl")


@pytest.fixture
def cli_env(tmp_path):
    """Environment for the real CLI with its state and the sim's flash in tmp_path."""
    env = dict(os.environ)
    env["TESCTL_STATE"] = str(tmp_path / "state")
    env["TESCTL_SIM_STORAGE"] = str(tmp_path / "sim-flash")
    return env


def tesctl(args, env, timeout=600, check=None):
    p = subprocess.run([TESCTL] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    if check is not None:
        assert p.returncode == check, "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p
