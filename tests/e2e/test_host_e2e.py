"""The host side of a session: slow but healthy, raw streaming, and the link commands that
need no protocol. A host or board killed mid-session: test_reconcile_e2e.py."""
import os
import time

from conftest import tesctl
from session_checks import common, dc_protocol

from tes import link as L
from tesctl import protofile
from tesctl.device import Device
from tesctl.transport import SimTransport


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
