"""A drying contact through the real CLI: `tesctl run` shows recorder.ContactWatch's warning
on the operator's screen (and as an LSL marker, tests/host/test_lsl.py's outlet), not only in
events.tsv; a steady load gives no warning."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESCTL = [sys.executable, "-m", "tesctl.cli"]
SIM_BOARD = json.loads((ROOT / "boards" / "sim.json").read_text())
PROTO = """schema = 1
name = "contact watch"
sample_rate_hz = 1000
[montage]
anode = "F3"
cathode = "F4"
electrode_area_cm2 = 25
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 90
ramp_up_s = 1
ramp_down_s = 1
[safety]
impedance_max_ohm = 20000
"""


def run(tmp_path, drift_ohm_per_s):
    board = json.loads(json.dumps(SIM_BOARD))
    # The skin resistance climbs and does not fall: about 28 %/min of 8.5 kOhm at 40 ohm/s.
    board["model"].update(skin_ohm_floor=board["model"]["skin_ohm"], drift_ohm_per_s=drift_ohm_per_s)
    (tmp_path / "board.json").write_text(json.dumps(board))
    (tmp_path / "p.toml").write_text(PROTO)
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "flash"))
    args = ["run", tmp_path / "p.toml", "--port", "sim", "--board", tmp_path / "board.json",
            "--fast", "--plain", "--allow-mismatch", "--out", tmp_path / "s"]
    p = subprocess.run(TESCTL + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    events = (tmp_path / "s" / "events.tsv").read_text()
    return p.stdout + p.stderr, events


def test_a_drying_contact_is_shown_to_the_operator(tmp_path):
    screen, events = run(tmp_path, 40)
    shown = [ln for ln in screen.splitlines() if "warning:contact-drying" in ln]
    assert len(shown) == 1, screen
    assert "check the electrodes" in shown[0]
    at = float(shown[0].split(" at ")[1].split(" s")[0])
    logged = [ln for ln in events.splitlines() if "warning:contact-drying" in ln]
    assert len(logged) == 1 and abs(float(logged[0].split("\t")[0]) - at) < 0.1, (logged, at)


def test_a_steady_contact_shows_no_warning(tmp_path):
    screen, events = run(tmp_path, 0)
    assert "contact-drying" not in screen and "contact-drying" not in events
