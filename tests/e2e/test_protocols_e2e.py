"""Every ready protocol, run on the simulated board through the real CLI (`--fast`)."""
import glob
import os

import pytest

from conftest import ROOT, tesctl
from session_checks import common, measured_integral_uC

from tesctl import protofile

# Montages of three or more electrodes run shortened in test_multi_e2e.py; the two-electrode
# multi form (tdcs-bilateral) runs here as any two-electrode protocol.
PROTOCOLS = sorted(p for p in glob.glob(str(ROOT / "protocols" / "*.toml"))
                   if not protofile.session_electrodes(protofile.load(p).canonical))


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=[os.path.basename(p)[:-5] for p in PROTOCOLS])
def test_protocol_runs_to_completion(protocol, tmp_path, cli_env):
    out = tmp_path / "session"
    p = tesctl(["run", protocol, "--port", "sim", "--fast", "--plain", "--out", out], cli_env, check=0)
    assert "report:" in p.stdout and "session:" in p.stdout
    meta, rows, events = common(out)
    assert meta["outcome"] == "completed" and meta["reason"] == "completed"
    # Charge from the device (integral of |measured| per 1 ms block) against the integral of the
    # measured current the host recorded. Telemetry means over 20 ms windows cancel the
    # swings of an AC waveform, so the comparison holds for currents that keep their sign.
    stim = [c for s in meta["protocol"]["segments"] if s["kind"] == "stim" for c in s.get("currents", [s])]
    if all(s["waveform"] == "dc" or s["offset_uA"] > s["amplitude_uA"] for s in stim) and not meta["protocol"]["sham"]:
        integral = measured_integral_uC(rows)
        assert abs(meta["delivered_charge_uC"] - integral) <= 0.01 * meta["delivered_charge_uC"]
    assert {"ramp-up", "ramp-down"} <= {e["trial_type"] for e in events}
