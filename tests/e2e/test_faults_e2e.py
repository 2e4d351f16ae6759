"""Every simulated fault kind through the real CLI: the session ends at zero current with
the right outcome and reason, recorded on the host and in the device journal."""
import pytest

from tes import journal

from conftest import tesctl
from session_checks import common, dc_protocol

SHORT_DC = dc_protocol(2000, 60)   # the default sample rate

# The protocol runs at the default sample rate (5 kS/s), where every hard fault has a 2 ms bound.
# fault -> (outcome, reason); faults start 30 s after START, in the plateau.
EXPECTED = {
    "liftoff": ("fault", "open-circuit"),
    "short": ("fault", "short"),
    "adc-stuck": ("fault", "adc-stuck"),
    "drift": ("fault", "impedance-high"),
    "host-lost": ("fault", "host-lost"),
    "stall": ("fault", "watchdog"),
    "reset": ("fault", "reset"),
    # A DAC frozen on a constant plateau is harmless and invisible until the set current
    # moves: the ramp-down at 70 s reveals it.
    "dac-stuck": ("fault", "dac-stuck"),
}


@pytest.fixture
def protocol(tmp_path):
    p = tmp_path / "short.toml"
    p.write_text(SHORT_DC)
    return p


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_fault_ends_session(kind, protocol, tmp_path, cli_env):
    out = tmp_path / "session"
    p = tesctl(["run", protocol, "--port", "sim", "--fast", "--plain", "--out", out, "--fault", kind + "@30"],
               cli_env, check=1)
    meta, rows, events = common(out)
    assert (meta["outcome"], meta["reason"]) == EXPECTED[kind], p.stdout
    # The last telemetry shows the output at zero.
    assert int(rows[-1]["set_uA"]) == 0 and abs(int(rows[-1]["meas_uA"])) < 20
    # The device journal holds the same ending (read back by `tesctl check`'s connection).
    assert any(e["trial_type"].startswith("fault:") for e in events), events
    assert 29.0 <= float(rows[-1]["t_s"]) <= 75.0
    # The device's own journal (the simulated board's flash, real files) has the record;
    # a reset closes the open record at boot as fault/reset, whatever reset the board.
    last = journal.sessions(cli_env["TESCTL_SIM_STORAGE"])[-1]
    want = ("fault", "reset") if kind in ("stall", "reset") else EXPECTED[kind]
    assert (last["outcome"], last["reason"]) == want, last
    # The delivered charge is at least what the last telemetry of the session showed
    # (after a reboot the board's idle frames must not overwrite it).
    assert meta["delivered_charge_uC"] >= max(int(r["charge_uC"]) for r in rows)
    assert last["protocol_sha256"] == meta["protocol_sha256"]


def test_unknown_fault_is_bad_input(protocol, tmp_path, cli_env):
    p = tesctl(["run", protocol, "--port", "sim", "--fast", "--fault", "meltdown@3"], cli_env, check=2)
    assert "unknown fault" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_fault_needs_sim(protocol, cli_env):
    p = tesctl(["run", protocol, "--port", "/dev/null", "--fault", "short@3"], cli_env, check=2)
    assert "simulated board" in p.stderr
