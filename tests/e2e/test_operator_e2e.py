"""What an operator does during a run: Ctrl-C (stop with ramp-down), Ctrl-C twice (abort),
and LSL streams received by a pylsl inlet while the session runs."""
import os
import signal
import subprocess
import time

import pylsl

from conftest import ROOT, TESCTL
from session_checks import common, dc_protocol



def start_run(tmp_path, env, text, *extra):
    proto = tmp_path / "p.toml"
    proto.write_text(text)
    out = tmp_path / "session"
    # Its own process group, so Ctrl-C can be sent as a terminal sends it: to the whole group.
    p = subprocess.Popen([TESCTL, "run", str(proto), "--port", "sim", "--plain", "--out", str(out)] + list(extra),
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    return p, out


def ctrl_c(p):
    """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
    os.killpg(p.pid, signal.SIGINT)


def wait_for_state(out, state, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "telemetry.csv"
        if path.exists() and (",%s," % state) in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError("never reached %s" % state)


def test_ctrl_c_stops_with_ramp_down(tmp_path, cli_env):
    p, out = start_run(tmp_path, cli_env, dc_protocol(1000, 600, 1, 2, 1000))
    try:
        wait_for_state(out, "plateau")
        ctrl_c(p)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, stderr
    meta, rows, events = common(out)
    assert (meta["outcome"], meta["reason"]) == ("stopped", "operator-stop")
    states = [r["state"] for r in rows]
    assert "ramp-down" in states[states.index("plateau"):]           # it ramped, not dropped
    down = [int(r["set_uA"]) for r in rows if r["state"] == "ramp-down"]
    assert all(a >= b for a, b in zip(down, down[1:])) and down[0] > 500


def test_second_ctrl_c_aborts(tmp_path, cli_env):
    p, out = start_run(tmp_path, cli_env, dc_protocol(1000, 600, 1, 60, 1000))
    try:
        wait_for_state(out, "plateau")
        ctrl_c(p)
        wait_for_state(out, "ramp-down")
        ctrl_c(p)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 1, stderr
    meta, rows, events = common(out)
    assert (meta["outcome"], meta["reason"]) == ("aborted", "operator-abort")
    assert int(rows[-1]["set_uA"]) == 0


def test_lsl_markers_and_telemetry_reach_an_inlet(tmp_path, cli_env):
    p, out = start_run(tmp_path, cli_env, dc_protocol(1000, 3, 1, 2, 1000), "--lsl")
    try:
        markers = pylsl.resolve_byprop("type", "Markers", minimum=1, timeout=20)
        assert markers, "no LSL marker stream"
        tel = pylsl.resolve_byprop("type", "tES", minimum=1, timeout=20)
        m_in = pylsl.StreamInlet(markers[0])
        t_in = pylsl.StreamInlet(tel[0])
        got, samples = [], []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any(g.startswith("end:") for g in got):
            s, _ = m_in.pull_sample(timeout=0.2)
            if s:
                got.append(s[0])
            chunk, _ = t_in.pull_chunk(timeout=0.0)
            samples += chunk
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0
    assert "plateau" in got and "ramp-down" in got and "end:completed" in got, got
    assert samples and len(samples[0]) == 10         # tesctl.lsl.CHANNELS (link 2: RMS, peak, phase)
    assert max(s[1] for s in samples) > 900          # measured current reached the plateau
    assert max(s[6] for s in samples) > 900          # meas_rms_uA: run passes the device's figures
