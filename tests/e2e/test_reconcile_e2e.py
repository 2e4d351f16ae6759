"""Sessions the host did not see end, completed from the device journal on the next
connection: a killed host, a killed board, a board reset (seen by the host, and while the
host was gone). Each record ends as whole as one the host saw end: outcome, reason, stim
time, end time, the fault in events.tsv, marked as reconciled, and `tesctl report` shows it."""
import os
import signal
import subprocess
import time
from datetime import datetime

from conftest import ROOT, TESCTL, tesctl
from session_checks import dc_protocol, load

from tes import journal
from tes import link as L
from tesctl import protofile, reconcile
from tesctl.device import Device
from tesctl.recorder import Recorder
from tesctl.transport import SimTransport

STIM = ("ramp-up", "plateau", "ramp-down")


def stim_rows(rows):
    return [float(r["t_s"]) for r in rows if r["state"] in STIM]


def start_long_session(tmp_path, cli_env):
    """`tesctl run` of a 10-minute DC session on a real-time simulated board, until three
    seconds of telemetry are on disk. -> (process, session dir)."""
    proto = tmp_path / "p.toml"
    proto.write_text(dc_protocol(1000, 600, 10, 10, 1000))
    out = tmp_path / "session"
    p = subprocess.Popen([TESCTL, "run", str(proto), "--port", "sim", "--plain", "--out", str(out)],
                         env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        csv = out / "telemetry.csv"
        if csv.exists() and len(stim_rows(load_rows(csv))) > 150:
            return p, out
        time.sleep(0.2)
    p.kill()
    raise AssertionError("no telemetry from the session")


def load_rows(csv):
    import csv as csvmod
    with open(csv) as f:
        return [r for r in csvmod.DictReader(f) if r.get("state")]


def wait_journal_closed(storage, sid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = [r for r in journal.sessions(storage) if r.get("id") == sid]
        if recs and recs[-1]["outcome"] != "open":
            return recs[-1]
        time.sleep(0.2)
    raise AssertionError("the board did not close session %s" % sid)


def whole(out, env, outcome, reason, source):
    """The record is as whole as one the host saw end, and the report says so."""
    rep = tesctl(["report", out], env, check=0)
    meta, rows, events = load(out)
    assert meta["complete"] is True and (meta["outcome"], meta["reason"]) == (outcome, reason), meta
    assert meta["reconciled_from_journal"] is True and meta["journal_record"]["outcome"] == outcome
    assert meta["stim_duration_source"] == source and meta["stim_duration_s"] > 0
    started, ended = datetime.fromisoformat(meta["started_at"]), datetime.fromisoformat(meta["ended_at"])
    assert started < ended <= datetime.fromisoformat(meta["reconciled_at"])
    kinds = [e["trial_type"] for e in events]
    assert "fault:%s" % reason in kinds and "end:%s" % outcome in kinds, kinds
    onsets = [float(e["onset"]) for e in events]
    assert onsets == sorted(onsets)
    assert "outcome    %s (%s)\n" % (outcome, reason) in rep.stdout, rep.stdout
    assert "stim time  %.1f s" % meta["stim_duration_s"] in rep.stdout
    assert "faults     fault:%s at " % reason in rep.stdout
    assert "record     completed from the device journal at " in rep.stdout
    assert (out / "report.png").stat().st_size > 10000
    return meta, rows


def test_killed_host_is_completed_with_the_devices_own_figures(tmp_path, cli_env):
    p, out = start_long_session(tmp_path, cli_env)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    meta, rows, _ = load(out)
    assert meta["complete"] is False and meta["outcome"] is None and meta["device_session_id"] == 1
    seen = stim_rows(rows)
    assert len(seen) >= 100 and rows[-1]["state"] in ("ramp-up", "plateau")
    # The orphaned board hears nothing: host-lost 3 s after the last heartbeat, a 1 s
    # ramp-down, the closing record in its journal. The next connection completes the record.
    rec = wait_journal_closed(cli_env["TESCTL_SIM_STORAGE"], 1)
    chk = tesctl(["check", "--port", "sim"], cli_env, check=0)
    assert "reconciled %s from the device journal: fault (host-lost)" % out in chk.stderr, chk.stderr
    meta, rows = whole(out, cli_env, "fault", "host-lost", "device")
    assert meta["stim_duration_s"] == rec["stim_ms"] / 1000.0
    assert meta["delivered_charge_uC"] == rec["delivered_charge_uC"] > 0
    # The board stimulated on past what the host saw: the 3 s host-lost rule and the ramp.
    span = seen[-1] - seen[0]
    assert span + 2.0 < meta["stim_duration_s"] < span + 4.0 + 4.0


def test_killed_board_is_completed_from_the_journal_closed_at_its_next_boot(tmp_path, cli_env):
    p, out = start_long_session(tmp_path, cli_env)
    try:
        child = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        assert child, "no simulated board process"
        for pid in child:
            os.kill(int(pid), signal.SIGKILL)     # the board vanishes (unplugged)
        _, stderr = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 3, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    meta, rows, _ = load(out)
    assert meta["complete"] is False and meta["reason"].startswith("link-lost")
    assert journal.sessions(cli_env["TESCTL_SIM_STORAGE"])[-1]["outcome"] == "open"
    # The next connection boots the board, which closes the open record (fault, reset):
    # the charge and the time are the host's telemetry's, up to the moment the board died.
    tesctl(["check", "--port", "sim"], cli_env, check=0)
    meta, rows = whole(out, cli_env, "fault", "reset", "telemetry")
    seen = stim_rows(rows)
    assert abs(meta["stim_duration_s"] - (seen[-1] - seen[0])) <= 0.1 and meta["stim_duration_s"] > 2.5
    assert meta["delivered_charge_uC"] == max(int(r["charge_uC"]) for r in rows) > 0


def test_board_reset_seen_by_the_host_is_completed_from_the_journal(tmp_path, cli_env):
    proto = tmp_path / "p.toml"
    proto.write_text(dc_protocol(2000, 60))
    out = tmp_path / "session"
    p = tesctl(["run", proto, "--port", "sim", "--fast", "--plain", "--out", out, "--fault", "reset@20"],
               cli_env, check=1)
    assert "outcome    fault (reset)\n" in p.stdout, p.stdout
    assert "stim time  20.0 s" in p.stdout or "stim time  19.9 s" in p.stdout, p.stdout   # retained every 0.1 s
    meta, rows = whole(out, cli_env, "fault", "reset", "device")
    # 10 s of ramp-up and 10 s of plateau before the reset: the board retained its stim time
    # through the reset (hal.retain, every 100 ms).
    assert 19.8 <= meta["stim_duration_s"] <= 20.0
    assert meta["delivered_charge_uC"] >= max(int(r["charge_uC"]) for r in rows) > 0


def test_board_reset_while_the_host_is_gone(tmp_path, cli_env, monkeypatch):
    """The host records one second and dies; the board resets at 2 s, before it could tell
    the host was lost (3 s): its journal has the retained charge, not the stim time. The
    record says so: the telemetry's figure is a lower bound."""
    for k in ("TESCTL_STATE", "TESCTL_SIM_STORAGE"):
        monkeypatch.setenv(k, cli_env[k])
    loaded = protofile.check_data(dc_protocol(1000, 60, 1, 1, 1000).encode())
    out = tmp_path / "session"
    dev = Device(SimTransport(realtime=True, faults=["reset@2"], storage=cli_env["TESCTL_SIM_STORAGE"]))
    rec = None

    def on_frame(f):
        if rec is not None and f.type == L.TELEM:
            t_ms, state, set_uA, meas_uA, v_mV, z, q, _ = L.unpack_telem(f.payload)
            rec.telemetry(t_ms, L.STATE_NAMES[state], set_uA, meas_uA, v_mV, z, q)
    dev.on_frame = on_frame
    try:
        info = dev.hello()
        dev.load(loaded.canonical_bytes())
        assert dev.check()["pass"]
        rec = Recorder(out, {"protocol_sha256": loaded.sha256(), "protocol": loaded.canonical,
                             "board": info["board"], "unit": info["unit"]})
        sid = dev.start(loaded.sha256())["sid"]
        rec.meta["device_session_id"] = sid
        rec.save()
        reconcile.add(out, info["unit"], sid, loaded.sha256())
        while rec.meta["telemetry_rows"] < 50:          # about a second, heartbeats going
            dev.pump(0.02)
            dev.heartbeat()
        rec.flush()
        rec.save()
        rec = None                                       # the host dies here
        boot = dev.wait_event("boot", timeout=30, since=len(dev.events))    # the board resets at 2 s
        assert boot["reason"] == "reset"
        assert not any(e.get("ev") == "end" for e in dev.events)
    finally:
        dev.close()
    tesctl(["check", "--port", "sim"], cli_env, check=0)
    meta, rows = whole(out, cli_env, "fault", "reset", "device")
    jrec = meta["journal_record"]
    assert jrec["boot_ms"] is not None
    # The board retained its stim time through the reset: about 2 s, more than the host saw.
    seen = stim_rows(rows)
    assert 1.8 <= meta["stim_duration_s"] <= 2.0 and meta["stim_duration_s"] > seen[-1] - seen[0]
    # The charge the board retained through the reset covers 2 s: more than the host saw.
    assert meta["delivered_charge_uC"] == jrec["delivered_charge_uC"] > max(int(r["charge_uC"]) for r in rows)
    rep = tesctl(["report", out], cli_env, check=0)
    assert "host telemetry" not in rep.stdout and "completed from the device journal" in rep.stdout
