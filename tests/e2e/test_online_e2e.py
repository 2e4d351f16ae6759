"""Closed loop on the simulated board (issue 15): remote control over TCP, changes from
an LSL stream, and the alpha-gated controller driven by a synthetic EEG outlet whose alpha
bursts are known: the stimulation bursts must land where the alpha was."""
import json
import math
import random
import socket
import threading
import time
import uuid

import pylsl
import pytest

from tesctl.alphagate import AlphaGate, AlphaPower
from tesctl.api import Session
from tesctl.remote import RemoteControl

PROTO = """schema = 1
name = "alpha-gated"
sample_rate_hz = 1000
[montage]
anode = "O2"
cathode = "Cz"
[stimulation]
waveform = "sine"
amplitude_uA = 1000
frequency_hz = 10
duration_s = %d
ramp_up_s = 0.5
ramp_down_s = 0.5
[online]
ramp_s = 0.1
burst = { interval_s = 0.3, start = "off" }
amplitude_uA = { min = 500, max = 1500, step = 500 }
"""


@pytest.fixture
def proto(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "sim"))

    def make(duration_s):
        p = tmp_path / ("p%d.toml" % duration_s)
        p.write_text(PROTO % duration_s)
        return p
    return make


def _changes(record_dir):
    return json.loads((record_dir / "session.json").read_text()).get("changes", [])


def test_remote_control_over_tcp_changes_marks_and_stops(proto, tmp_path):
    out = tmp_path / "rec"
    with Session(proto(20), port="sim", out_dir=str(out)) as s:
        s.start()
        rc = RemoteControl(s._run).start()
        try:
            conn = socket.create_connection(rc.address, timeout=10)
            f = conn.makefile("rw")

            def ask(obj):
                f.write(json.dumps(obj) + "\n")
                f.flush()
                while True:
                    line = json.loads(f.readline())
                    if "telemetry" not in line:
                        return line
            assert ask({"cmd": "status"})["running"] is True
            assert ask({"cmd": "change", "param": "burst", "value": 1, "at_ms": 1500}) == \
                {"ok": True, "at_ms": 1500, "at_sample": 1500}
            assert ask({"cmd": "change", "param": "amplitude_uA", "value": 2000, "at_ms": 3000}) == \
                {"ok": False, "error": "refused", "reason": "out-of-bounds"}
            assert ask({"cmd": "change", "param": "amplitude_uA", "value": 1500, "at_ms": 3000})["ok"]
            assert ask({"cmd": "mark", "text": "trial 1"}) == {"ok": True}
            assert ask({"cmd": "nope"})["error"] == "unknown-cmd"
            f.write("not json\n")
            f.flush()
            assert json.loads(f.readline())["error"] == "bad-json"
            assert ask({"cmd": "subscribe"}) == {"ok": True}
            row = json.loads(f.readline())["telemetry"]
            assert set(row) >= {"t_s", "state", "set_uA", "meas_uA", "z_ohm"}
            while row["t_s"] < 3.3:
                row = json.loads(f.readline())["telemetry"]
            assert ask({"cmd": "stop"}) == {"ok": True}
            conn.close()
            result = s.wait(timeout=60)
        finally:
            rc.close()
    assert result.outcome == "stopped"
    assert [(c["at_ms"], c["param"], c["value"]) for c in _changes(out)] == [(1500, "burst", 1),
                                                                            (3000, "amplitude_uA", 1500)]
    rows = (out / "events.tsv").read_text()
    assert "mark:trial 1" in rows and "change:amplitude_uA=1500" in rows


def _marker_outlet(name):
    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, uuid.uuid4().hex)
    return pylsl.StreamOutlet(info)


def test_changes_from_an_lsl_marker_stream(proto, tmp_path):
    from tesctl.lslcontrol import LslControl, parse_marker
    assert parse_marker("burst=on") == ("burst", 1)
    assert parse_marker("amplitude_uA = 1500") == ("amplitude_uA", 1500)
    assert parse_marker("volume=3") is None and parse_marker("burst") is None
    name = "tesctl-test-control-%s" % uuid.uuid4().hex[:8]
    outlet = _marker_outlet(name)
    out = tmp_path / "rec"
    with Session(proto(8), port="sim", out_dir=str(out)) as s:
        s.start()
        lc = LslControl(s._run, name, delay_ms=None).start()
        try:
            assert outlet.wait_for_consumers(5.0)
            time.sleep(0.5)                  # the inlet's connection settles
            for text in ("burst=on", "amplitude_uA=1500", "amplitude_uA=3000", "burst=off"):
                outlet.push_sample([text])
                time.sleep(0.6)
            result = s.wait(timeout=60)
        finally:
            lc.close()
    assert result.outcome == "completed"
    assert [(c["param"], c["value"]) for c in _changes(out)] == [("burst", 1), ("amplitude_uA", 1500), ("burst", 0)]
    rows = (out / "events.tsv").read_text()
    assert "change-refused:amplitude_uA=3000:out-of-bounds" in rows


def test_alpha_power_estimate_follows_a_known_alpha_burst():
    fs = 250
    ap = AlphaPower(fs, window_s=0.5)
    t = [k / fs for k in range(10 * fs)]
    x = [10.0 * math.sin(2 * math.pi * 10 * tk) if 3 <= tk < 6 else 0.0 for tk in t]
    p = []
    for k in range(0, len(x), 7):                   # chunks of any size give the same
        p.extend(ap.push(x[k:k + 7]))
    assert max(p[:3 * fs]) < 1e-9
    assert abs(p[5 * fs] - 50.0) < 2.0              # a 10 uV sine: 50 uV^2
    # the band-pass's group delay and the window: the power falls within 0.8 s of the end
    assert p[int(6.5 * fs)] > 10.0 and max(p[int(6.8 * fs):]) < 1.0


class SyntheticEeg:
    """A 250 Hz one-channel EEG outlet in real time: 1 uV noise, a 10 uV 10 Hz alpha
    during the given spans (seconds after start()), with LSL timestamps."""

    def __init__(self, name, spans, fs=250):
        self.fs = fs
        self.spans = spans
        info = pylsl.StreamInfo(name, "EEG", 1, fs, pylsl.cf_float32, uuid.uuid4().hex)
        self.outlet = pylsl.StreamOutlet(info, chunk_size=10)
        self.t0 = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = pylsl.local_clock()
        self.thread.start()

    def _run(self):
        rng = random.Random(7)
        k = 0
        while not self._stop.is_set():
            now = pylsl.local_clock()
            due = int((now - self.t0) * self.fs)
            while k < due:
                tk = k / self.fs
                alpha = any(a <= tk < b for a, b in self.spans)
                v = rng.gauss(0, 1.0) + (10.0 * math.sin(2 * math.pi * 10 * tk) if alpha else 0.0)
                self.outlet.push_sample([v], self.t0 + tk)
                k += 1
            time.sleep(0.01)

    def close(self):
        self._stop.set()
        self.thread.join(2)


LATENCY_S = 0.9      # the window (0.5 s) + chunking, link and the device's lead, with room


def test_alpha_gated_bursts_land_where_the_alpha_was(proto, tmp_path):
    name = "tesctl-test-eeg-%s" % uuid.uuid4().hex[:8]
    spans = [(2.0, 4.0), (6.0, 8.0)]
    eeg = SyntheticEeg(name, spans)
    out = tmp_path / "rec"
    with Session(proto(10), port="sim", out_dir=str(out)) as s:
        s.start()
        gate = AlphaGate(s, name, threshold_uV2=10.0, when="high")
        eeg.start()
        gate.start()
        try:
            result = s.wait(timeout=60)
        finally:
            gate.close()
            eeg.close()
        run = s._run
        # the EEG's start on the session's clock: LSL time -> session ms (the clock mapping)
        eeg_t0_ms = run.session_ms_for_lsl(eeg.t0)
    assert result.outcome == "completed"
    changes = _changes(out)
    on = [c["at_ms"] for c in changes if c["param"] == "burst" and c["value"] == 1]
    off = [c["at_ms"] for c in changes if c["param"] == "burst" and c["value"] == 0]
    assert len(on) == 2 and len(off) == 2, changes
    for (a, _b), t_on in zip(spans, on):
        start = eeg_t0_ms + a * 1000
        assert start <= t_on <= start + LATENCY_S * 1000, (changes, eeg_t0_ms)
    for (_a, b), t_off in zip(spans, off):
        end = eeg_t0_ms + b * 1000
        assert end <= t_off <= end + LATENCY_S * 1000, (changes, eeg_t0_ms)


def test_tesctl_run_serves_remote_control_and_refuses_bad_control_options(proto, tmp_path):
    import os
    import subprocess
    import sys
    tesctl = os.path.join(os.path.dirname(sys.executable), "tesctl")
    p = proto(5)
    out = tmp_path / "cli-rec"
    proc = subprocess.Popen([tesctl, "run", str(p), "--port", "sim", "--plain", "--out", str(out),
                             "--control-tcp", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = ""
        while "remote control:" not in line:
            line = proc.stderr.readline()
            assert line, "tesctl run ended before serving"
        host, port = line.split()[2].split(":")
        conn = socket.create_connection((host, int(port)), timeout=10)
        f = conn.makefile("rw")

        def ask(obj):
            f.write(json.dumps(obj) + "\n")
            f.flush()
            return json.loads(f.readline())
        deadline = time.monotonic() + 30
        while not ask({"cmd": "status"})["running"]:      # serving before START: not running yet
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ask({"cmd": "change", "param": "burst", "value": 1, "at_ms": 1000})["at_ms"] == 1000
        assert ask({"cmd": "mark", "text": "from the CLI test"}) == {"ok": True}
        conn.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [(c["at_ms"], c["at_sample"], c["param"], c["value"]) for c in _changes(out)] == [
        (1000, 1000, "burst", 1)]
    plain = tmp_path / "plain.toml"
    plain.write_text((PROTO % 5).split("[online]")[0])
    for args, says in (([str(plain), "--control-lsl", "X"], "no [online] section"),
                       ([str(p), "--control-delay-ms", "10"], "goes with --control-lsl"),
                       ([str(p), "--control-tcp", "10.1.2.3:7531"], "only this machine"),
                       ([str(p), "--control-tcp", "127.0.0.1:http"], "[HOST:]PORT")):
        r = subprocess.run([tesctl, "run"] + args + ["--port", "sim", "--out", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_validate_says_what_may_change_and_the_peak_it_allows(proto):
    from click.testing import CliRunner
    from tesctl import cli
    r = CliRunner().invoke(cli.main, ["validate", str(proto(20))])
    assert r.exit_code == 0, r.output
    assert "peak 1000 uA" in r.output
    assert "online changes: amplitude_uA, bursts; at their largest, peak 1500 uA, charge <= 0.031 C" in r.output


def test_read_changes_takes_the_devices_sample_over_the_rounded_ms(tmp_path):
    """At 2000 S/s a change at sample 1665 is recorded at 832 ms: a replay from the ms
    would put it at 1664; session.json's at_sample keeps it exact."""
    from tesctl import protofile
    from tesctl.enginerun import read_changes
    from tes import online as O
    p = tmp_path / "p.toml"
    p.write_text((PROTO % 20).replace("sample_rate_hz = 1000", "sample_rate_hz = 2000"))
    canon = protofile.load(p).canonical
    rec = tmp_path / "session.json"
    rec.write_text(json.dumps({"changes": [{"at_ms": 832, "at_sample": 1665, "param": "amplitude_uA",
                                            "value": 1500}]}))
    assert read_changes(str(rec), canon) == [(1665, O.AMP, 1500)]
    csv = tmp_path / "c.csv"
    csv.write_text("at_ms,param,value\n832,amplitude_uA,1500\n")
    assert read_changes(str(csv), canon) == [(1664, O.AMP, 1500)]
    csv.write_text("at_ms,param,value\n832,phase_deg,90\n900,volume,1\n")
    with pytest.raises(ValueError, match="line 3: 'volume' is not a parameter"):
        read_changes(str(csv), canon)
