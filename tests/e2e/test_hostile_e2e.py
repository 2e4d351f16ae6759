"""Host file faults during real sessions, two runs at once, and a stray client on the
link during stimulation (issue 10, causes 1, 2, 3 and 6).

The record is separate from the stimulation: whatever happens to the session directory,
the device delivers what it would have (no ABORT, no STOP the operator did not ask for),
the record ends complete, in its directory or in a fallback place that is named, and the
exit code says which. File faults are real ones, made mid-session from inside the
recorder (after a number of telemetry rows, not after a time): the directory removed, the
directory replaced by a file, the telemetry file on a full device (/dev/full: ENOSPC)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, TESCTL

from tes import journal
from tesctl import cli, reconcile
from tesctl.recorder import Recorder

PROTO = """schema = 1
name = "hostile"
[montage]
anode = "F3"
cathode = "Fp2"
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 4
ramp_up_s = 0.5
ramp_down_s = 0.5
"""
ROWS = 250          # 5 s of session at 50 rows a second: all of it


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "sim"))
    monkeypatch.setenv("TESCTL_FALLBACK", str(tmp_path / "fallback"))
    p = tmp_path / "p.toml"
    p.write_text(PROTO)
    return p


def fault_after(monkeypatch, rows, fault):
    """Make `fault(recorder)` happen once, when the recorder has `rows` telemetry rows."""
    real = Recorder.telemetry
    done = []

    def telemetry(self, *a):
        real(self, *a)
        if not done and self.meta["telemetry_rows"] == rows:
            done.append(1)
            fault(self)
    monkeypatch.setattr(Recorder, "telemetry", telemetry)
    return done


def run(proto, out, *extra):
    r = CliRunner().invoke(cli.main, ["run", str(proto), "--port", "sim", "--fast", "--plain", "--out", str(out)]
                           + list(extra))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


def last_journal(tmp_path):
    recs = journal.sessions(str(tmp_path / "sim"))
    return recs[-1]


def whole(d):
    meta = json.loads((d / "session.json").read_text())
    rows = (d / "telemetry.csv").read_text().splitlines()
    events = (d / "events.tsv").read_text()
    assert meta["complete"] is True and meta["outcome"] == "completed", meta
    assert len(rows) - 1 == meta["telemetry_rows"] >= ROWS - 5, (len(rows), meta["telemetry_rows"])
    assert rows[0].startswith("t_s,state,set_uA,meas_uA,v_mV,z_ohm,charge_uC")
    assert "end:completed" in events and "plateau" in events
    return meta


def test_directory_removed_mid_session_changes_nothing_on_the_device(tmp_path, env, monkeypatch):
    out = tmp_path / "s"
    done = fault_after(monkeypatch, 60, lambda rec: shutil.rmtree(rec.dir))
    r = run(env, out)
    assert done
    assert r.exit_code == 0, r.output
    assert "cannot write the session record" in r.output
    j = last_journal(tmp_path)
    assert (j["outcome"], j["reason"]) == ("completed", "completed"), j      # no ABORT, no STOP
    meta = whole(out)                       # written again, whole, from memory
    assert meta["recording_failure"]
    assert not reconcile._load(), "a completed session stays pending"


def test_directory_replaced_by_a_file_falls_back_named_and_exit_4(tmp_path, env, monkeypatch):
    out = tmp_path / "s"

    def replace(rec):
        shutil.rmtree(rec.dir)
        with open(rec.dir, "w") as f:       # a pulled stick, something else in its place
            f.write("not yours")
    fault_after(monkeypatch, 60, replace)
    r = run(env, out)
    assert r.exit_code == 4, r.output
    j = last_journal(tmp_path)
    assert (j["outcome"], j["reason"]) == ("completed", "completed"), j
    fallbacks = list((tmp_path / "fallback").iterdir())
    assert len(fallbacks) == 1
    assert str(fallbacks[0]) in r.output and "could not be written to" in r.output
    meta = whole(fallbacks[0])
    assert meta["recording_fallback"]["asked"] == str(out)
    assert (out.read_text()) == "not yours"   # never written over


def test_disk_full_mid_session(tmp_path, env, monkeypatch):
    out = tmp_path / "s"

    def full(rec):
        rec._tel_file.close()
        rec._tel_file = open("/dev/full", "w")     # every flush now fails: ENOSPC
    fault_after(monkeypatch, 30, full)
    r = run(env, out)
    assert r.exit_code == 0, r.output
    assert "No space left on device" in r.output
    j = last_journal(tmp_path)
    assert (j["outcome"], j["reason"]) == ("completed", "completed"), j
    whole(out)
    # The next connection works whatever --out is.
    r2 = run(env, tmp_path / "s2")
    assert r2.exit_code == 0, r2.output


def test_nothing_writable_anywhere_still_leaves_the_device_alone(tmp_path, env, monkeypatch):
    out = tmp_path / "s"

    def nowhere(rec):
        shutil.rmtree(rec.dir)
        with open(rec.dir, "w") as f:
            f.write("x")
        for base in ("fallback", "state"):
            p = tmp_path / base
            shutil.rmtree(p, ignore_errors=True)
            p.write_text("x")
        monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "state"))
    fault_after(monkeypatch, 60, nowhere)
    r = run(env, out)
    assert r.exit_code == 3, r.output
    assert "could not be written anywhere" in r.output
    j = last_journal(tmp_path)
    assert (j["outcome"], j["reason"]) == ("completed", "completed"), j


def test_reconcile_never_writes_where_the_last_session_failed(tmp_path, env, monkeypatch):
    """A pending session whose directory is now unwritable (a file in its place): the next
    run warns and goes on, exit 0; the entry waits."""
    bad = tmp_path / "gone"
    bad.write_text("x")
    reconcile.add(bad, None, 1, "h")
    r = run(env, tmp_path / "s")                          # learn the sim's unit
    unit = json.loads((tmp_path / "s" / "session.json").read_text())["unit"]
    sid = last_journal(tmp_path)["id"]
    sha = last_journal(tmp_path)["protocol_sha256"]
    reconcile.add(bad, unit, sid, sha)
    r = run(env, tmp_path / "s3")
    assert r.exit_code == 0, r.output
    assert "cannot complete %s" % bad in r.output


def test_reconcile_keeps_the_larger_figures(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "session.json").write_text(json.dumps({"delivered_charge_uC": 5879, "stim_duration_s": 0.0,
                                                "complete": False, "started_at": "2026-01-01T00:00:00+00:00"}))
    meta = reconcile.complete_from_journal(d, {"id": 1, "outcome": "fault", "reason": "reset",
                                               "delivered_charge_uC": 0, "stim_ms": 0, "boot_ms": 5})
    assert meta["delivered_charge_uC"] == 5879


def test_raw_gaps_and_interruptions_are_saved(tmp_path):
    rec = Recorder(tmp_path / "s", {})
    rec.open_raw()
    rec.raw(0, [1, 2, 3])
    rec.raw(3, [4])
    rec.raw(10, [5, 6])
    rec.raw_note("no raw samples from 1.000 s of session time")
    rec.finish("completed", "completed", 1, 1000)
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["raw"]["samples"] == 6 and meta["raw"]["gaps"] == [{"at_sample": 4, "missing": 6}]
    assert meta["raw"]["interruptions"] == ["no raw samples from 1.000 s of session time"]
    assert (tmp_path / "s" / "raw_set_uA.txt").read_text().split() == ["1", "2", "3", "4", "5", "6"]


def test_raw_stream_stopping_mid_session_is_an_interruption(tmp_path):
    from tes import link as L
    from tesctl.device import Frame
    from tesctl.runner import Run
    r = Run(loaded=None, port="sim", out_dir=str(tmp_path / "s"), raw=True)
    r.rec = Recorder(tmp_path / "s", {})
    r.rec.open_raw()
    said = []
    r.warn = said.append
    buf = bytearray(L.TELEM_SIZE)
    for t in range(0, 3000, 20):
        L.pack_telem(buf, 1000 + t, L.STATE_NAMES.index("plateau"), 1000, 1000, 100, 1000, t, 0)
        r.on_frame(Frame(L.TELEM, 0, bytes(buf)))
    assert r.rec.meta["raw"]["interruptions"] and len(said) == 1


def test_two_runs_at_once_keep_both_records_and_both_journals(tmp_path):
    """Two `tesctl run` at once, default session names, one shared sim storage setting:
    each gets its own directory (the same second), each simulated board its own journal."""
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "sim"))
    (tmp_path / "p.toml").write_text(PROTO)
    procs = [subprocess.Popen([TESCTL, "run", "p.toml", "--port", "sim", "--fast", "--plain"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in e, (o, e)
    dirs = sorted((tmp_path / "sessions").iterdir())
    assert len(dirs) == 2
    for d in dirs:
        whole(d)
    recs = journal.sessions(str(tmp_path / "sim"))
    assert all(r["outcome"] == "completed" for r in recs) and 1 <= len(recs) <= 2


def test_a_stray_client_cannot_stop_a_session(tmp_path, env, monkeypatch):
    """During stimulation, frames of another client (far-ahead sequence numbers, a HELLO
    that turns raw streaming off, floods of STATUS) reach the device on the same link:
    the session completes, and the raw stream's interruption is in session.json."""
    from tes import link as L
    from tesctl.device import Device
    injected = []

    def stray(rec):
        dev = stray.dev
        for k in range(400):
            dev.t.write(L.encode(L.STATUS, (dev.seq + 30000 + k) & L.SEQ_MASK, b"{}"))
        dev.t.write(L.encode(L.HELLO, 7, json.dumps({"link": L.LINK_VERSION, "host": "other"}).encode()))
        injected.append(1)
    real_start = Device.start

    def start(self, sha):
        stray.dev = self
        return real_start(self, sha)
    monkeypatch.setattr(Device, "start", start)
    fault_after(monkeypatch, 60, stray)
    r = run(env, tmp_path / "s", "--raw")
    assert injected and r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert (meta["outcome"], meta["reason"]) == ("completed", "completed")
    assert meta["raw"]["complete"] is False and meta["raw"]["interruptions"], meta["raw"]
    # asked for again: the stream resumed, and the record says from when
    notes = meta["raw"]["interruptions"]
    assert len(notes) == 2 and notes[1].startswith("raw samples again from"), notes
    n = len((tmp_path / "s" / "raw_set_uA.txt").read_text().split())
    assert n == meta["raw"]["samples"] > 0


def test_sim_boards_get_their_own_storage_when_one_is_in_use(tmp_path, monkeypatch):
    from tesctl.transport import SimTransport
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "sim"))
    a = SimTransport()
    b = SimTransport()
    try:
        sa = a.proc.args[a.proc.args.index("--storage") + 1]
        sb = b.proc.args[b.proc.args.index("--storage") + 1]
        assert sa == str(tmp_path / "sim") and sb != sa and os.path.isdir(sb)
    finally:
        a.close()
        b.close()
    assert not os.path.exists(sb)
    c = SimTransport()                   # the shared one is free again
    try:
        assert c.proc.args[c.proc.args.index("--storage") + 1] == str(tmp_path / "sim")
    finally:
        c.close()
    assert sys.executable
    assert ROOT


def test_link_flood_through_the_pty_during_stimulation(tmp_path):
    """`tesctl sim` on a pty, `tesctl run` on it, and a second writer on the same pty once
    the plateau is reached: 6000 STATUS frames numbered far ahead, garbage, a bad CRC and a
    HELLO. The session completes, its telemetry whole (no stall)."""
    from tes import link as L
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "sim"))
    (tmp_path / "p.toml").write_text(PROTO)
    sim = subprocess.Popen([TESCTL, "sim"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        path = sim.stdout.readline().strip()
        run = subprocess.Popen([TESCTL, "run", "p.toml", "--port", path, "--plain", "--out", "s"], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in run.stdout:
            lines.append(line)
            if "-> plateau" in line:
                break
        assert lines and "-> plateau" in lines[-1], "".join(lines)
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        try:
            junk = bytearray(L.encode(L.STATUS, 3, b"{}"))
            junk[4] ^= 0x55
            for k in range(6000):
                os.write(fd, L.encode(L.STATUS, (40000 + k) & L.SEQ_MASK, b"{}"))
                if k % 1000 == 0:
                    os.write(fd, b"\x01\x02garbage\x00" + bytes(junk))
            os.write(fd, L.encode(L.HELLO, 9, json.dumps({"link": L.LINK_VERSION, "host": "x"}).encode()))
        finally:
            os.close(fd)
        out = "".join(lines) + run.communicate(timeout=120)[0]
        assert run.returncode == 0 and "Traceback" not in out, out
    finally:
        sim.terminate()
        sim.wait(timeout=20)
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert (meta["outcome"], meta["reason"]) == ("completed", "completed")
    assert meta["telemetry_rows"] >= 5 * 50 - 10 and meta["lost_frames"] <= 5, meta
