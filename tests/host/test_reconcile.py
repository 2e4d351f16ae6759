"""tesctl.reconcile on synthetic session directories: a record the host did not see end is
completed from the device's journal record as wholly as one it saw end, and the summary
says what it is and where each figure came from."""
import json
from datetime import datetime

import pytest

from tesctl import reconcile
from tesctl.report import outcome_text, summarize, summary_text

SHA = "cd" * 32
T0_AT = "2024-05-01T10:00:00.000+00:00"
T0_MS = 50000           # the device's clock at session time 0


def session(path, rows_s=6.0, reason=None, with_anchor=True):
    """A session as a killed host leaves it: telemetry (50 rows/s) from idle through a 2 s
    ramp-up into the plateau, the ramp-up's event row, no end. 1000 uA on the plateau."""
    lines = ["t_s,state,set_uA,meas_uA,v_mV,z_ohm,charge_uC"]
    q = 0
    for k in range(int(rows_s * 50) + 1):
        t = k / 50
        state = "ready" if t < 0.5 else "ramp-up" if t < 2.5 else "plateau"
        i = 0 if state == "ready" else min(1000, int(1000 * (t - 0.5) / 2))
        q += i // 50
        lines.append("%.3f,%s,%d,%d,%d,5000,%d" % (t, state, i, i, i * 5, q))
    (path / "telemetry.csv").write_text("\n".join(lines) + "\n")
    (path / "events.tsv").write_text("onset\tduration\ttrial_type\n0.500\t2.000\tramp-up\n")
    meta = {"outcome": None, "reason": reason, "complete": False, "started_at": "2024-05-01T09:59:59.000+00:00",
            "ended_at": None, "delivered_charge_uC": q, "stim_duration_s": 0.0, "telemetry_rows": 10,
            "lost_frames": 0, "protocol_sha256": SHA, "protocol": {"name": "synthetic"}, "device_session_id": 4}
    if with_anchor:
        meta.update({"device_t0_ms": T0_MS, "t0_at": T0_AT})
    (path / "session.json").write_text(json.dumps(meta))
    return q


def events(path):
    return [ln.split("\t") for ln in (path / "events.tsv").read_text().splitlines()[1:]]


def test_a_record_the_device_closed_gets_its_figures(tmp_path):
    """Killed host: the board went on, stopped on host-lost and wrote the whole ending."""
    q = session(tmp_path)
    rec = {"id": 4, "protocol_sha256": SHA, "start_ms": T0_MS + 500, "end_ms": T0_MS + 10500,
           "outcome": "fault", "reason": "host-lost", "delivered_charge_uC": q + 4000, "stim_ms": 9990}
    meta = reconcile.complete_from_journal(tmp_path, rec)
    assert (meta["outcome"], meta["reason"], meta["complete"]) == ("fault", "host-lost", True)
    assert meta["stim_duration_s"] == 9.99 and meta["stim_duration_source"] == "device"
    assert meta["delivered_charge_uC"] == q + 4000
    # Ended 10.5 s of session time after time 0, on the wall clock session time 0 came at.
    assert datetime.fromisoformat(meta["ended_at"]) == datetime.fromisoformat("2024-05-01T10:00:10.500+00:00")
    assert meta["reconciled_from_journal"] is True and meta["journal_record"] == rec
    assert meta["telemetry_rows"] == 301
    assert json.loads((tmp_path / "session.json").read_text()) == meta
    # events.tsv: the plateau the host never closed, the fault and the end, in onset order.
    assert events(tmp_path) == [["0.500", "2.000", "ramp-up"], ["2.500", "8.000", "plateau"],
                                ["10.500", "0.000", "fault:host-lost"], ["10.500", "0.000", "end:fault"]]
    text = summary_text(summarize(tmp_path))
    assert "outcome    fault (host-lost)\n" in text and "INCOMPLETE" not in text
    assert "record     completed from the device journal at " in text
    assert "stim time  10.0 s\n" in text
    assert "faults     fault:host-lost at 10.50 s" in text
    assert "-> 2024-05-01T10:00:10.500+00:00" in text


def test_without_the_clock_anchor_the_end_counts_from_the_first_current(tmp_path):
    session(tmp_path, with_anchor=False)
    rec = {"id": 4, "protocol_sha256": SHA, "start_ms": 7000, "end_ms": 12000, "outcome": "stopped",
           "reason": "operator-stop", "delivered_charge_uC": 1, "stim_ms": 4900}
    meta = reconcile.complete_from_journal(tmp_path, rec)
    # The first row of the ramp-up is at 0.5 s: the device's 5 s session ends at 5.5 s.
    assert events(tmp_path)[-1] == ["5.500", "0.000", "end:stopped"]
    # Without the wall time of session time 0, the host's start stands in for it.
    assert datetime.fromisoformat(meta["ended_at"]) == datetime.fromisoformat("2024-05-01T10:00:04.500+00:00")
    assert "fault:" not in (tmp_path / "events.tsv").read_text()
    assert meta["delivered_charge_uC"] > 1          # telemetry saw more than the journal's figure


@pytest.mark.parametrize("host_reason, source, note", [
    ("link-lost: the board vanished", "telemetry", " (host telemetry: the device lost its count in a reset)"),
    (None, "telemetry-lower-bound", " or more (host telemetry, which stopped before the device did)")])
def test_a_record_closed_at_boot_takes_the_time_from_telemetry(tmp_path, host_reason, source, note):
    """Killed board or board reset: the journal was closed at the next boot, with the charge
    the board retained but no stimulation time and no end on the session's clock."""
    q = session(tmp_path, reason=host_reason)
    rec = {"id": 4, "protocol_sha256": SHA, "start_ms": T0_MS + 500, "end_ms": None, "outcome": "fault",
           "reason": "reset", "delivered_charge_uC": q // 2, "stim_ms": None, "boot_ms": 3}
    meta = reconcile.complete_from_journal(tmp_path, rec)
    # 0.5 s to 6.0 s with current set, in 20 ms rows.
    assert meta["stim_duration_s"] == pytest.approx(5.5, abs=0.021)
    assert meta["stim_duration_source"] == source
    assert meta["delivered_charge_uC"] == q          # the telemetry's figure is the larger
    assert datetime.fromisoformat(meta["ended_at"]) == datetime.fromisoformat("2024-05-01T10:00:06.000+00:00")
    assert events(tmp_path)[-3:] == [["2.500", "3.500", "plateau"], ["6.000", "0.000", "fault:reset"],
                                     ["6.000", "0.000", "end:fault"]]
    text = summary_text(summarize(tmp_path))
    assert "stim time  5.5 s" + note + "\n" in text, text
    assert "outcome    fault (reset)" in text


def test_a_host_that_saw_the_reboot_knows_its_reason_and_its_telemetry_is_whole(tmp_path):
    session(tmp_path)
    rec = {"id": 4, "protocol_sha256": SHA, "start_ms": 1, "end_ms": None, "outcome": "fault", "reason": "reset",
           "delivered_charge_uC": 0, "stim_ms": None, "boot_ms": 3}
    meta = reconcile.complete_from_journal(tmp_path, rec, host_saw_end=True, reason="watchdog")
    assert (meta["reason"], meta["stim_duration_source"]) == ("watchdog", "telemetry")
    assert ["6.000", "0.000", "fault:watchdog"] in events(tmp_path)


def test_a_half_written_event_line_is_dropped_not_glued(tmp_path):
    session(tmp_path)
    with open(tmp_path / "events.tsv", "a") as f:
        f.write("3.2")                           # the host was killed mid-write
    rec = {"id": 4, "protocol_sha256": SHA, "start_ms": T0_MS, "end_ms": T0_MS + 7000, "outcome": "completed",
           "reason": "completed", "delivered_charge_uC": 5, "stim_ms": 7000}
    reconcile.complete_from_journal(tmp_path, rec)
    assert [e[2] for e in events(tmp_path)] == ["ramp-up", "plateau", "end:completed"]


class FakeDevice:
    def __init__(self, unit, records):
        self.info = {"unit": unit}
        self.records = records

    def journal(self):
        return self.records


def test_reconcile_closes_only_this_units_finished_sessions(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    dirs = []
    for k in range(4):
        d = tmp_path / ("s%d" % k)
        d.mkdir()
        session(d)
        dirs.append(d)
    reconcile.add(dirs[0], "unit-a", 1, SHA)          # closed in the journal: completed now
    reconcile.add(dirs[1], "unit-a", 2, SHA)          # still open on the device: stays pending
    reconcile.add(dirs[2], "unit-b", 1, SHA)          # another board with the same ids
    reconcile.add(dirs[3], "unit-a", 3, "ef" * 32)    # the id was reused for another protocol
    closed = {"id": 1, "protocol_sha256": SHA, "start_ms": T0_MS, "end_ms": T0_MS + 9000, "outcome": "completed",
              "reason": "completed", "delivered_charge_uC": 9, "stim_ms": 8000}
    dev = FakeDevice("unit-a", [closed, dict(closed, id=2, outcome="open"), dict(closed, id=3)])
    logs = []
    assert reconcile.reconcile(dev, log=logs.append) == [str(dirs[0])]
    assert logs == ["reconciled %s from the device journal: completed" % dirs[0]]
    assert json.loads((dirs[0] / "session.json").read_text())["stim_duration_s"] == 8.0
    for d in dirs[1:]:
        assert json.loads((d / "session.json").read_text())["complete"] is False
    pending = json.loads((tmp_path / "state" / "pending.json").read_text())
    assert sorted(p["dir"] for p in pending) == sorted(str(d) for d in dirs[1:])


def test_outcome_named_once_reason_only_when_it_adds_something():
    assert outcome_text("completed", "completed") == "completed"
    assert outcome_text("completed", "") == "completed"
    assert outcome_text("stopped", "operator-stop") == "stopped (operator-stop)"
    assert outcome_text("fault", "host-lost") == "fault (host-lost)"
    assert outcome_text(None, None) == "none"
