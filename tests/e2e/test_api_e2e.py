"""tesctl.api.Session: a session driven from a script, on the simulated board (issue 15's
Python API: callbacks, marks at the device time asked, stop, and a script that fails)."""
import json

import pytest

from tesctl.api import Session
from tesctl.errors import InputError, TesctlError

PROTO = """schema = 1
name = "api"
[montage]
anode = "F3"
cathode = "Fp2"
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = %s
ramp_up_s = 0.5
ramp_down_s = 0.5
"""


@pytest.fixture
def proto(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "sim"))

    def make(duration_s=2):
        p = tmp_path / ("p%s.toml" % duration_s)
        p.write_text(PROTO % duration_s)
        return p
    return make


def _events(record_dir):
    rows = (record_dir / "events.tsv").read_text().splitlines()[1:]
    return [(float(r.split("\t")[0]), r.split("\t")[2]) for r in rows]


def test_a_script_session_calls_back_marks_and_records(proto, tmp_path):
    rows, events, warned = [], [], []
    asked = []

    def on_row(row):
        rows.append(row)
        # A mark asked from the callback when session time passes 1.5 s: the device time
        # of the ask is the frame's, through the clock mapping.
        if row["t_s"] >= 1.5 and not asked:
            asked.append(row["t_s"])
            s.mark("cue A")

    out = tmp_path / "rec"
    with Session(proto(2), port="sim", out_dir=str(out), warn=warned.append) as s:
        s.on_telemetry(on_row)
        s.on_event(events.append)
        s.start()
        assert s.running()
        result = s.wait(timeout=60)
    assert result is not None and result.outcome == "completed", result
    assert result.record_dir == str(out)
    meta = json.loads((out / "session.json").read_text())
    assert len(rows) == meta["telemetry_rows"] > 100
    assert [r["t_ms"] for r in rows] == sorted(r["t_ms"] for r in rows)
    assert max(r["set_uA"] for r in rows) == 1000
    assert max(r["charge_uC"] for r in rows) == meta["delivered_charge_uC"]
    assert any(e.get("ev") == "end" and e.get("outcome") == "completed" for e in events)
    marks = [(t, name) for t, name in _events(out) if name.startswith("mark:")]
    assert [name for _, name in marks] == ["mark:cue A"]
    # Where the mark landed: at the frame it was asked from, within the clock mapping's
    # error (the frames' read jitter on this host: tens of ms at most).
    assert abs(marks[0][0] - asked[0]) < 0.1, (marks, asked)
    assert not warned


def test_stop_from_a_script_ramps_down_and_records_stopped(proto, tmp_path):
    out = tmp_path / "rec"
    seen = []
    with Session(proto(30), port="sim", out_dir=str(out)) as s:
        s.on_telemetry(seen.append)
        s.start()
        while not seen or seen[-1]["t_s"] < 1.0:
            assert s.wait(timeout=0.05) is None
        s.stop()
        result = s.wait(timeout=60)
    assert result.outcome == "stopped"
    assert seen[-1]["set_uA"] == 0
    assert seen[-1]["t_s"] < 10


def test_leaving_the_block_early_ramps_down(proto, tmp_path):
    out = tmp_path / "rec"
    with Session(proto(30), port="sim", out_dir=str(out)) as s:
        s.start()
    assert not s.running()
    assert s.wait(timeout=0).outcome == "stopped"
    assert json.loads((out / "session.json").read_text())["outcome"] == "stopped"


def test_a_failing_callback_is_dropped_and_the_session_goes_on(proto, tmp_path):
    calls, warned = [], []

    def bad(row):
        calls.append(row)
        raise ValueError("script bug")

    with Session(proto(1), port="sim", out_dir=str(tmp_path / "rec"), warn=warned.append) as s:
        s.on_telemetry(bad)
        s.start()
        result = s.wait(timeout=60)
    assert result.outcome == "completed"
    assert len(calls) == 1
    assert len(warned) == 1 and "ValueError: script bug" in warned[0]


def test_marks_and_controls_refused_in_one_line(proto, tmp_path):
    s = Session(proto(1), port="sim", out_dir=str(tmp_path / "rec"))
    with pytest.raises(TesctlError, match="no session is running"):
        s.mark("early")
    with pytest.raises(TesctlError, match="not started"):
        s.wait()
    for bad in ("", "a\tb", "line\nbreak", "x" * 201):
        with pytest.raises(InputError, match="printable"):
            s.mark(bad)
    with pytest.raises(InputError, match="faults and fast"):
        Session(proto(1), port="/dev/ttyACM0", fast=True)


def test_a_protocol_outside_the_board_is_refused_before_the_device(proto, tmp_path):
    p = tmp_path / "big.toml"
    p.write_text((PROTO % 2).replace("amplitude_uA = 1000", "amplitude_uA = 9000"))
    with pytest.raises(InputError, match="amplitude"):
        Session(p, port="sim")
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


ONLINE = """schema = 1
name = "online"
sample_rate_hz = 2000
[montage]
anode = "O2"
cathode = "Cz"
[stimulation]
waveform = "sine"
amplitude_uA = 1000
frequency_hz = 10
duration_s = 4
ramp_up_s = 0.5
ramp_down_s = 0.5
[online]
ramp_s = 0.1
burst = { interval_s = 0.2, start = "off" }
frequency_hz = { min = 8, max = 12, step = 2 }
"""


def test_online_changes_from_a_script_are_applied_recorded_and_replayed_exactly(proto, tmp_path):
    """The device applies the changes at the session times asked (or as soon as it can);
    events.tsv and session.json record them; `tesctl preview --changes session.json` then
    gives exactly the samples the device commanded (raw_set_uA.txt), at 2000 S/s too, where
    a change's ms is rounded and its sample is what counts."""
    from click.testing import CliRunner
    from tesctl import cli
    from tesctl.device import DeviceError
    p = tmp_path / "online.toml"
    p.write_text(ONLINE)
    out = tmp_path / "rec"
    with Session(p, port="sim", out_dir=str(out), raw=True) as s:
        s.start()
        reply = s.change("burst", 1, at_ms=1000)
        assert (reply["at_ms"], reply["at_sample"]) == (1000, 2000)
        s.change("frequency_mHz", 12000, at_ms=1500)
        with pytest.raises(DeviceError, match="out-of-bounds"):
            s.change("frequency_mHz", 12500, at_ms=2500)
        with pytest.raises(DeviceError, match="step"):
            s.change("frequency_mHz", 8000, at_ms=2500)
        with pytest.raises(DeviceError, match="not-online"):
            s.change("amplitude_uA", 900)
        with pytest.raises(InputError, match="whole number"):
            s.change("frequency_mHz", "1.5e3")
        seen = []
        s.on_telemetry(seen.append)
        while not seen or seen[-1]["t_s"] < 2.0:
            assert s.wait(timeout=0.02) is None
        asap = s.change("frequency_mHz", 10000)      # as soon as possible: any sample, odd ones too
        assert 2.0 <= asap["at_ms"] / 1000 < 2.9
        s.change("burst", 0, at_ms=3000)
        result = s.wait(timeout=60)
    assert result.outcome == "completed"
    meta = json.loads((out / "session.json").read_text())
    assert [(c["at_ms"], c["param"], c["value"]) for c in meta["changes"]] == [
        (1000, "burst", 1), (1500, "frequency_mHz", 12000), (asap["at_ms"], "frequency_mHz", 10000),
        (3000, "burst", 0)]
    assert [c["at_sample"] for c in meta["changes"]] == [2000, 3000, asap["at_sample"], 6000]
    rows = [name for _, name in _events(out)]
    assert [r for r in rows if r.startswith("change:")] == ["change:burst=1", "change:frequency_mHz=12000",
                                                           "change:frequency_mHz=10000", "change:burst=0"]
    raw = [int(v) for v in (out / "raw_set_uA.txt").read_text().split()]
    assert max(abs(v) for v in raw[:2000]) == 0 and max(abs(v) for v in raw[2400:5800]) > 990
    csv_path = tmp_path / "p.csv"
    r = CliRunner().invoke(cli.main, ["preview", str(p), "--changes", str(out / "session.json"),
                                      "--csv", str(csv_path)])
    assert r.exit_code == 0, r.output
    preview = [int(line.split(",")[1]) for line in csv_path.read_text().splitlines()[1:]]
    assert raw == preview
