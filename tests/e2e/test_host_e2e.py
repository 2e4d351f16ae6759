"""The host side of a session: killed mid-session, slow but healthy, raw streaming, and the
link commands that need no protocol."""
import json
import os
import signal
import subprocess
import time

from conftest import ROOT, TESCTL, tesctl
from session_checks import common, dc_protocol, load

from tes import link as L
from tesctl import protofile
from tesctl.device import Device
from tesctl.transport import SimTransport



def test_killed_host_leaves_valid_session_reconciled_from_journal(tmp_path, cli_env):
    proto = tmp_path / "p.toml"
    proto.write_text(dc_protocol(1000, 600, 10, 10, 1000))
    out = tmp_path / "session"
    # Real time: the session is long enough to be killed in the middle of it.
    p = subprocess.Popen([TESCTL, "run", str(proto), "--port", "sim", "--plain", "--out", str(out)],
                         env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = (out / "telemetry.csv").read_text().count("\n") if (out / "telemetry.csv").exists() else 0
            if rows > 150:      # three seconds of telemetry on disk
                break
            time.sleep(0.2)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    meta, rows, _ = load(out)
    assert meta["complete"] is False and meta["outcome"] is None
    assert meta["device_session_id"] == 1
    assert len(rows) >= 100                    # telemetry up to the last second survived
    assert rows[-1]["state"] in ("ramp-up", "plateau")
    # The orphaned simulated board hears nothing: host-lost after 3 s, ramp-down, journal.
    time.sleep(6)
    tesctl(["check", "--port", "sim"], cli_env)
    meta = json.loads((out / "session.json").read_text())
    assert meta["complete"] is True and meta["reconciled_from_journal"] is True
    assert (meta["outcome"], meta["reason"]) == ("fault", "host-lost")
    assert meta["delivered_charge_uC"] > 0


def test_slow_healthy_host_is_not_taken_for_lost(tmp_path, cli_env):
    """On the fast virtual clock, a host that pauses for 2 s of real time (far more than
    3 s of virtual time at 100x) must not be declared lost: the sim waits for it."""
    os.environ.update({k: cli_env[k] for k in ("TESCTL_STATE", "TESCTL_SIM_STORAGE")})
    loaded = protofile.check_data(dc_protocol(1000, 60, 10, 10, 1000).encode())
    dev = Device(SimTransport(realtime=False, storage=cli_env["TESCTL_SIM_STORAGE"]))
    try:
        dev.hello()
        dev.load(loaded.canonical_bytes())
        assert dev.check()["pass"]
        dev.start(loaded.sha256())
        t0 = time.monotonic()
        paused = False
        while not any(e.get("ev") == "end" for e in dev.events):
            assert time.monotonic() - t0 < 120
            dev.pump(0.02)
            dev.heartbeat()
            if not paused and any(e.get("state") == "plateau" for e in dev.events):
                time.sleep(2.0)     # the host stalls (a GC pause, a slow disk...)
                paused = True
        end = [e for e in dev.events if e.get("ev") == "end"][0]
        assert (end["outcome"], end["reason"]) == ("completed", "completed")
        assert dev.lost == 0
    finally:
        dev.close()


def test_raw_stream_has_every_sample(tmp_path, cli_env):
    proto = tmp_path / "raw.toml"
    proto.write_text(dc_protocol(1000, 20, 10, 10, 10000).replace('waveform = "dc"',
                                                                    'waveform = "sine"\nfrequency_hz = 10.0'))
    out = tmp_path / "session"
    tesctl(["run", proto, "--port", "sim", "--fast", "--plain", "--raw", "--out", out], cli_env, check=0)
    meta, rows, _ = common(out)
    raw = [int(v) for v in (out / "raw_set_uA.txt").read_text().split()]
    from tesctl.enginerun import samples_cpython
    assert raw == list(samples_cpython(meta["protocol"]))    # every sample, bit-exact
    # Charge against the integral of |commanded| (the sim tracks within a few uA).
    integral = sum(abs(v) for v in raw) / 10000.0
    assert abs(meta["delivered_charge_uC"] - integral) <= 0.01 * integral


def test_stream_and_check_without_protocol(cli_env):
    p = tesctl(["check", "--port", "sim"], cli_env, check=0)
    assert "PASS" in p.stdout and "ohm" in p.stdout
    p = tesctl(["stream", "--port", "sim", "--seconds", "1.5"], cli_env, check=0)
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "t_ms,state,meas_uA,v_mV,z_ohm"
    assert any(",streaming," in ln for ln in lines[1:])


def test_bad_frames_change_nothing_on_a_live_device(cli_env):
    os.environ.update({k: cli_env[k] for k in ("TESCTL_STATE", "TESCTL_SIM_STORAGE")})
    dev = Device(SimTransport(realtime=False, storage=cli_env["TESCTL_SIM_STORAGE"]))
    try:
        dev.hello()
        dev.t.write(b"\x01\x02\x03garbage\x00" + b"\xff" * 2000 + b"\x00")
        with_crc_broken = bytearray(L.encode(L.STATUS, dev.seq, b"{}"))
        with_crc_broken[3] ^= 0x55
        dev.t.write(bytes(with_crc_broken))
        try:
            dev.request(L.START, {"sha256": "0" * 64})
            raise AssertionError("START before LOAD was accepted")
        except Exception as e:  # DeviceError: bad-state
            assert "bad-state" in str(e)
        assert dev.status()["state"] == "idle"
    finally:
        dev.close()


def test_device_lost_mid_session_is_exit_3_with_an_incomplete_record(tmp_path, cli_env):
    proto = tmp_path / "p.toml"
    proto.write_text(dc_protocol(1000, 600, 10, 10, 1000))
    out = tmp_path / "session"
    p = subprocess.Popen([TESCTL, "run", str(proto), "--port", "sim", "--plain", "--out", str(out)],
                         env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / "telemetry.csv").exists() and (out / "telemetry.csv").read_text().count("\n") > 100:
                break
            time.sleep(0.2)
        child = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        assert child, "no simulated board process"
        for pid in child:
            os.kill(int(pid), signal.SIGKILL)     # the board vanishes (unplugged)
        stdout, stderr = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 3, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    meta, rows, _ = load(out)
    assert meta["complete"] is False and meta["reason"].startswith("link-lost")
    assert len(rows) > 100
