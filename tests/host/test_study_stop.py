"""An operator stop in a blinded run (docs/study.md, "Operator stop"): the real arm ramps down,
a sham at zero ends at once, yet the screen, the summary, events.tsv and session.json show the
same end in both arms; the device's own end is in the sealed record. And `tesctl report` on a
blinded folder says, in one line, that it is blinded."""
import json
import os
import re
import signal
from datetime import datetime

import pytest
from click.testing import CliRunner

from tes import link as L
from tesctl import blindrec, cli, runner
from tesctl import study as ST

from test_study import REAL, SHAM, ST_LIMITS

STOP_AT_MS = 2200          # real arm: plateau (1-7 s); sham: sham-off (2-8 s), at zero
PER_SESSION = {"device_session_id", "participant", "subject", "started_at", "ended_at", "t0_at"}


def invoke(args):
    r = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=True)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "flash"))
    # test_study's arms with a 6 s plateau: a --fast sim runs ahead of the host's Ctrl-C by
    # up to a second on a busy machine, and the stop must still find the arms as planned.
    (tmp_path / "real.toml").write_text(REAL.replace("duration_s = 2", "duration_s = 6"))
    (tmp_path / "sham.toml").write_text(SHAM.replace("duration_s = 2", "duration_s = 6"))
    (tmp_path / "study.toml").write_text('name = "pilot"\n[arms]\nactive = "real.toml"\nsham = "sham.toml"\n'
                                         '[participants]\ncount = 4\n[allocation]\nblock_size = 4\nseed = 11\n')
    st = ST.init(tmp_path / "study.toml", tmp_path / "study", tmp_path / "manager.key", ST_LIMITS, "sim")
    table = ST.allocation(st, ST.read_key(tmp_path / "manager.key"))["table"]
    return tmp_path / "study", table


def ctrl_c_at(monkeypatch, ms, twice_after_ms=None):
    """The operator's Ctrl-C (SIGINT to this process, as a terminal sends it) when the device
    clock reaches `ms` of session time, through the real signal handler of `tesctl run`."""
    real, real_clock = runner.Run.on_frame, runner.Run._read_clock

    def on_frame(self, f):
        real(self, f)
        if f.type == L.TELEM and self.rec is not None and self.rec.t0_ms is not None and self.interrupts == 0 \
                and self.last_tel_t - self.rec.t0_ms >= ms:
            os.kill(os.getpid(), signal.SIGINT)

    def read_clock(self, dev):
        # The second Ctrl-C on the clock a held stop reads in every arm (the real arm is still
        # ramping, the sham's session has ended).
        real_clock(self, dev)
        if twice_after_ms is not None and self.interrupts == 1 and self.stop_req_t is not None \
                and self.dev_now >= self.stop_req_t + twice_after_ms:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(runner.Run, "on_frame", on_frame)
    monkeypatch.setattr(runner.Run, "_read_clock", read_clock)


def masked(text):
    """Ids and times out: what is left must be the same in every arm. (The plain display's
    progress line is printed on wall time, 5 s apart, and a --fast sim's clock runs at the
    host's speed, so a slow or busy host prints more of them: those lines go too.)"""
    text = "\n".join(ln for ln in text.split("\n") if not re.match(r"\d+:\d\d:\d\d / ", ln))
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)?", "TIME", text)
    return re.sub(r"\d+\.\d{3}", "N.NNN", text)


def run_pair(study_dir, table, tmp_path, tag):
    """Run one participant of each arm, stopped alike; -> {arm: (code, out dir, output)}."""
    got = {}
    for arm in ("active", "sham"):
        code = next(c for c in sorted(table) if table[c] == arm)
        out = tmp_path / ("%s-%s" % (tag, code))
        r = invoke(["run", "--study", study_dir, "--participant", code, "--port", "sim", "--fast", "--plain",
                    "--out", out])
        got[arm] = (code, out, r)
    return got


def opened(tmp_path, out, name):
    private = ST.read_key(tmp_path / "manager.key")
    dest = tmp_path / "open" / name
    meta = blindrec.open_sealed(out, private, dest)
    return meta, (dest / "events.tsv").read_text()


def span_s(meta):
    return (datetime.fromisoformat(meta["ended_at"]) - datetime.fromisoformat(meta["t0_at"])).total_seconds()


def test_an_operator_stop_ends_alike_in_both_arms(study, tmp_path, monkeypatch):
    study_dir, table = study
    ctrl_c_at(monkeypatch, STOP_AT_MS)
    got = run_pair(study_dir, table, tmp_path, "stop")
    outputs, clear = {}, {}
    for arm, (code, out, r) in got.items():
        assert r.exit_code == 0, r.output
        assert "stopping: ramping down" in r.output and "outcome    stopped (operator-stop)" in r.output
        outputs[arm] = masked(r.output.replace(code, "CODE").replace(str(out), "OUT"))
        clear[arm] = {"files": sorted((f.name, f.stat().st_size) for f in out.iterdir()),
                      "events": (out / "events.tsv").read_text(),
                      "meta": json.loads((out / "session.json").read_text())}
    # The operator's view: the same text in both arms (times masked).
    assert outputs["active"] == outputs["sham"], outputs
    # The clear files: the same names and sizes; events.tsv and session.json the same but
    # for ids and times, whose lengths do not differ either.
    assert clear["active"]["files"] == clear["sham"]["files"]
    assert [n for n, _ in clear["active"]["files"]] == ["events.tsv", "sealed.bin", "session.json"]
    assert masked(clear["active"]["events"]) == masked(clear["sham"]["events"])
    ma, ms = clear["active"]["meta"], clear["sham"]["meta"]
    assert sorted(ma) == sorted(ms)
    for key in ma:
        if key in PER_SESSION:
            assert len(json.dumps(ma[key])) == len(json.dumps(ms[key])), key
        else:
            assert ma[key] == ms[key], key
    assert (ma["outcome"], ma["reason"]) == ("stopped", "operator-stop")

    # The device ended each arm at its own time (the real arm after its 1 s ramp-down, the
    # sham at once): that is in the sealed record only. The clear end is the stop request plus
    # the study's longest stop ramp plus the margin, in both arms.
    hold_s = (1000 + runner.STOP_MARGIN_MS) / 1000.0
    device_gap, requested = {}, {}
    for arm, (code, out, _r) in got.items():
        sealed, sealed_events = opened(tmp_path, out, "stop-" + code)
        stop = sealed["blind_stop"]
        assert (sealed["outcome"], sealed["reason"]) == ("stopped", "operator-stop")
        assert stop["clear_end_t_s"] == pytest.approx(stop["stop_requested_t_s"] + hold_s, abs=1e-6)
        assert STOP_AT_MS / 1000.0 <= stop["stop_requested_t_s"] < STOP_AT_MS / 1000.0 + 3   # a fast sim runs ahead
        device_gap[arm] = stop["device_end_t_s"] - stop["stop_requested_t_s"]
        requested[arm] = stop["stop_requested_t_s"]
        # the clear end: the same offset from the stop request in every arm
        rows = [ln.split("\t") for ln in clear[arm]["events"].splitlines()[1:]]
        end = [float(o) for o, _, kind in rows if kind == "end:stopped"]
        assert end == [pytest.approx(stop["clear_end_t_s"], abs=0.0015)]
        assert span_s(clear[arm]["meta"]) == pytest.approx(stop["clear_end_t_s"], abs=0.0015)
        last = [ln.split("\t")[2] for ln in sealed_events.splitlines()[1:]][-2:]
        assert last == (["ramp-down", "end:stopped"] if arm == "active" else ["sham-off", "end:stopped"]), last
    # (a fast sim's clock runs ahead of the frames the host has read: the device takes the
    # stop a little after the request's time, by as much in both arms)
    assert device_gap["active"] - device_gap["sham"] == pytest.approx(1.0, abs=0.3)
    assert device_gap["active"] < hold_s
    # The clear times differ between the arms only by when the stop was requested on the
    # device clock (which a --fast sim, running at the host's speed, spreads by a few hundred
    # ms), not by the arm's ramp-down.
    ends = {arm: span_s(clear[arm]["meta"]) for arm in clear}
    assert ends["active"] - ends["sham"] == pytest.approx(requested["active"] - requested["sham"], abs=0.003)


def test_a_second_ctrl_c_during_the_held_stop_aborts_alike(study, tmp_path, monkeypatch):
    """Ctrl-C again 0.2 s after the stop: the real arm is still ramping (the device aborts it),
    the sham ended at once (nothing to abort): both read aborted (operator-abort), end alike."""
    study_dir, table = study
    ctrl_c_at(monkeypatch, STOP_AT_MS, twice_after_ms=200)
    got = run_pair(study_dir, table, tmp_path, "abort")
    texts, device = {}, {}
    for arm, (code, out, r) in got.items():
        assert r.exit_code == 1, r.output
        assert "stopping: ramping down" in r.output and "ABORT: output to zero now" in r.output
        assert "outcome    aborted (operator-abort)" in r.output
        texts[arm] = (masked(r.output.replace(code, "CODE").replace(str(out), "OUT")),
                      masked((out / "events.tsv").read_text()),
                      sorted((f.name, f.stat().st_size) for f in out.iterdir()))
        sealed, _ = opened(tmp_path, out, "abort-" + code)
        device[arm] = sealed["outcome"]
        stop = sealed["blind_stop"]
        # the common end: the abort plus the margin, or the stop's own end if that comes first
        margin = runner.STOP_MARGIN_MS / 1000.0
        assert stop["clear_end_t_s"] == pytest.approx(min(stop["abort_requested_t_s"] + margin,
                                                          stop["stop_requested_t_s"] + 1 + margin), abs=1e-6)
        # (times in ms on the device clock, as seconds: 2.4 >= 2.2 + 0.2 must not fail on a float)
        assert stop["abort_requested_t_s"] >= stop["stop_requested_t_s"] + 0.2 - 1e-6
    assert texts["active"] == texts["sham"]
    # The truth, sealed: the sham had ended at once; the real arm was aborted mid-ramp (or, if
    # a busy host let the fast sim finish the ramp first, had stopped).
    assert device["sham"] == "stopped" and device["active"] in ("aborted", "stopped")


def test_report_on_a_blinded_folder_says_so_in_one_line(study, tmp_path):
    study_dir, table = study
    code = sorted(table)[0]
    out = tmp_path / "s"
    r = invoke(["run", "--study", study_dir, "--participant", code, "--port", "sim", "--fast", "--plain",
                "--out", out])
    assert r.exit_code == 0, r.output
    r = invoke(["report", out])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert "blinded" in lines[0] and "pilot" in lines[0] and "tesctl study unblind" in lines[0]
    assert "n/a" not in r.output and not (out / "report.png").exists()
