"""The virtual board's two-source network (host/tesctl/hil/lib/network.mjs) is tested
against reference numbers from firmware/hal/simnet.py (host/tesctl/hil/test/ref/
simnet_ref.json). Those numbers are committed, so a change to simnet.py's physics would
leave the JS model's test comparing against a stale simnet: regenerate them here and
require the committed file to be what simnet.py produces today."""
import subprocess
import sys
from pathlib import Path

REF = Path(__file__).resolve().parents[2] / "host" / "tesctl" / "hil" / "test" / "ref"


def test_the_committed_simnet_reference_is_what_simnet_produces_now():
    r = subprocess.run([sys.executable, str(REF / "simnet_ref.py")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (REF / "simnet_ref.json").read_text(), \
        "firmware/hal/simnet.py changed: regenerate host/tesctl/hil/test/ref/simnet_ref.json and rerun the node tests"
