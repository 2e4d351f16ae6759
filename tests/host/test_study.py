"""Blinded studies (docs/study.md): allocation, sealing, and a two-arm study of 8 participants
on the simulated board whose clear record and operator's view do not tell the arms apart."""
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from tesctl import blindrec, study as ST
from tesctl import seal as S
from tesctl.display import Display

ROOT = Path(__file__).resolve().parents[2]
TESCTL = str(Path(sys.executable).parent / "tesctl")

REAL = """schema = 1
name = "study test, real"
sample_rate_hz = 1000
[montage]
anode = "F3"
cathode = "Fp2"
electrode_area_cm2 = 35
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 2
ramp_up_s = 1
ramp_down_s = 1
[safety]
impedance_max_ohm = 20000
"""
SHAM = REAL.replace("study test, real", "study test, sham") + "[sham]\nramp_up_s = 1\nplateau_s = 0\nramp_down_s = 1\n"


def _spec(tmp, extra="", arms=None):
    (tmp / "real.toml").write_text(REAL)
    (tmp / "sham.toml").write_text(SHAM)
    arms = arms or 'active = "real.toml"\nsham = "sham.toml"\n'
    text = 'name = "pilot"\n[arms]\n%s[participants]\ncount = 8\n%s' % (arms, extra)
    (tmp / "study.toml").write_text(text)
    return tmp / "study.toml"


def _init(tmp, extra="[allocation]\nblock_size = 4\nseed = 11\n", arms=None):
    return ST.init(_spec(tmp, extra, arms), tmp / "study", tmp / "manager.key", ST_LIMITS, "sim")


ST_LIMITS = __import__("tesctl.boards", fromlist=["resolve"]).resolve("sim")[1]


# ---- allocation -------------------------------------------------------------------------
def test_blocked_allocation_is_balanced_in_every_block_and_follows_its_seed():
    people = [("P%02d" % i, None) for i in range(12)]
    t1 = ST.blocked(people, ["a", "b"], 4, 5, False)
    assert t1 == ST.blocked(people, ["a", "b"], 4, 5, False)
    assert t1 != ST.blocked(people, ["a", "b"], 4, 6, False)
    arms = [t1[c] for c, _ in people]
    for i in range(0, 12, 4):
        assert Counter(arms[i:i + 4]) == {"a": 2, "b": 2}


def test_stratified_allocation_balances_each_stratum():
    people = [("P%02d" % i, "f" if i % 3 else "m") for i in range(12)]     # 8 f, 4 m
    t = ST.blocked(people, ["a", "b"], 4, 9, True)
    for stratum in ("f", "m"):
        got = Counter(t[c] for c, s in people if s == stratum)
        assert got["a"] == got["b"]
    with pytest.raises(ST.StudyError, match="stratum"):
        ST.blocked([("P1", None), ("P2", "f")], ["a", "b"], 2, 1, True)


def test_imported_allocation_must_cover_every_participant_with_known_arms(tmp_path):
    csv = tmp_path / "alloc.csv"
    csv.write_text("participant,arm\nP1,a\nP2,b\n")
    assert ST.imported(csv, [("P1", None), ("P2", None)], ["a", "b"]) == {"P1": "a", "P2": "b"}
    with pytest.raises(ST.StudyError, match="no arm for P3"):
        ST.imported(csv, [("P1", None), ("P2", None), ("P3", None)], ["a", "b"])
    csv.write_text("participant,arm\nP1,a\nP2,c\n")
    with pytest.raises(ST.StudyError, match="unknown arms: c"):
        ST.imported(csv, [("P1", None), ("P2", None)], ["a", "b"])


def test_arms_of_different_length_are_refused(tmp_path):
    (tmp_path / "long.toml").write_text(REAL.replace("duration_s = 2", "duration_s = 3"))
    with pytest.raises(ST.StudyError, match="exactly as long"):
        _init(tmp_path, arms='active = "long.toml"\nsham = "sham.toml"\n')
    assert not (tmp_path / "manager.key").exists()


def test_the_key_may_not_live_in_the_study_folder(tmp_path):
    with pytest.raises(ST.StudyError, match="outside the study folder"):
        ST.init(_spec(tmp_path), tmp_path / "study", tmp_path / "study" / "k", ST_LIMITS, "sim")


# ---- sealing ------------------------------------------------------------------------------
def test_sealed_sizes_do_not_depend_on_content_and_only_the_private_key_opens():
    private, public = S.new_keypair()
    a, b = S.seal(b"x", public, 1000), S.seal(b"y" * 900, public, 1000)
    assert len(a) == len(b)
    assert S.unseal(b, private) == b"y" * 900
    other, _ = S.new_keypair()
    with pytest.raises(S.SealError):
        S.unseal(a, other)
    k = S.new_run_key()
    assert len(S.lock(b"active", k, 64)) == len(S.lock(b"sham", k, 64))
    assert S.unlock(S.lock(b"sham", k, 64), k) == b"sham"


def test_the_study_file_holds_no_allocation_in_clear(tmp_path):
    st = _init(tmp_path)
    private = ST.read_key(tmp_path / "manager.key")
    table = ST.allocation(st, private)["table"]
    assert Counter(table.values()) == {"active": 4, "sham": 4}
    assert ST.allocation(st, private)["seed"] == 11
    entries = [p["arm_locked"] for p in st["participants"]]
    assert len(set(map(len, entries))) == 1 and len(set(entries)) == 8
    text = (tmp_path / "study" / "study.json").read_text()
    for p in st["participants"]:
        assert set(p) == {"code", "stratum", "arm_locked"}
    assert '"seed"' not in text and '"table"' not in text
    assert oct(os.stat(tmp_path / "manager.key").st_mode & 0o777) == "0o600"
    # the run key opens each participant's arm, and it is the allocated one
    for code, arm in table.items():
        got, loaded = ST.arm_for(tmp_path / "study", st, code, ST_LIMITS)
        assert got == arm and loaded.sha256() == st["arms"][arm]["protocol_sha256"]


# ---- the operator's view ------------------------------------------------------------------
def test_blinded_display_shows_the_same_whatever_the_current(capsys):
    texts = []
    for row in [(1500, "plateau", 1000, 998, 8000, 8000, 900), (1500, "sham-off", 0, 0, 0, None, 300)]:
        d = Display("blinded study", 4000, plain=True, blind=True)
        d.update(*row)
        d.state_change("-> %s" % row[1])
        from rich.console import Console
        c = Console(record=True, width=100)
        c.print(d._render())
        texts.append((c.export_text(), d._line()))
    out = capsys.readouterr().out
    assert texts[0] == texts[1]
    assert "plateau" not in out and "sham" not in out and "uA" not in out


def test_blinded_run_sends_lsl_markers_and_rows_alike_in_both_arms(tmp_path):
    """The frame handler of a blinded run: LSL markers, clear events and the display get the
    same in a real and a sham arm; the sealed recorder gets everything."""
    from tes import link as L
    from tesctl.recorder import Recorder
    from tesctl.runner import Run

    class Lsl:
        def __init__(self):
            self.got = []

        def marker(self, text):
            self.got.append(("marker", text))

        def telemetry(self, values):
            self.got.append(("telemetry", values))

    def frames(states):
        for t, st in states:
            yield SimpleNamespace(type=L.EVENT, obj={"ev": "state", "state": st, "t_ms": t})
            buf = bytearray(L.TELEM_SIZE)
            code = L.STATE_NAMES.index(st) if st in L.STATE_NAMES else 0
            L.pack_telem(buf, t, code, 500 if st != "sham-off" else 0, 490, 4000, 8000, 100, 0)
            yield SimpleNamespace(type=L.TELEM, payload=bytes(buf))

    seen = []
    for arm, states in [("real", [(0, "ramp-up"), (1000, "plateau"), (3000, "ramp-down"), (4000, "loaded")]),
                        ("sham", [(0, "ramp-up"), (1000, "ramp-down"), (2000, "sham-off"), (4000, "loaded")])]:
        r = Run(None, "sim", str(tmp_path / arm), blind=SimpleNamespace())
        r.rec = Recorder(str(tmp_path / arm), {}, memory_only=True)
        os.makedirs(tmp_path / arm)
        r.brec = blindrec.BlindRecord(str(tmp_path / arm), {})
        r.lsl = Lsl()
        r.display = SimpleNamespace(update=lambda *a: None, state_change=lambda *a: seen.append(a),
                                    message=lambda *a: seen.append(a))
        for f in frames(states):
            r.on_frame(f)
        r.on_frame(SimpleNamespace(type=L.EVENT, obj={"ev": "fault", "fault": "short", "detail": "1 ohm",
                                                      "t_ms": 4000}))
        assert r.lsl.got == [("marker", "blinded"), ("marker", "fault:short")], arm
        assert r.brec.rows == [(4.0, 0.0, "fault:short")]
        assert "sham-off" in r.rec.files()["events.tsv"].decode() or arm == "real"
    assert seen == [("FAULT: short",), ("FAULT: short",)]


# ---- a two-arm study of 8 participants on the simulated board -----------------------------
PER_SESSION = {"device_session_id", "participant", "subject", "started_at", "ended_at", "t0_at"}


def operator_view(p, code):
    """run's stdout and stderr as compared between arms. Each participant's own skin gives
    their impedance (not their arm), and --plain adds a progress line every 5 s of wall time,
    so a slow or busy host prints one where a fast one does not: neither may enter the
    comparison (a CI run on a loaded machine once differed by such a line)."""
    text = (p.stdout + p.stderr).replace(code, "CODE")
    text = re.sub(r"impedance check: \d+ ohm", "impedance check: N ohm", text)
    return "\n".join(ln for ln in text.splitlines() if not re.match(r"\d+:\d\d:\d\d / ", ln))


def _tesctl(args, env, cwd):
    p = subprocess.run([TESCTL] + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=300,
                       cwd=cwd)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_eight_participants_unsealed_records_do_not_tell_the_arms_apart_and_unblind(tmp_path):
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "flash"))
    spec = _spec(tmp_path, "[allocation]\nblock_size = 4\n")      # seed drawn and sealed
    p = _tesctl(["study", "init", spec, "--out", tmp_path / "study", "--key-out", tmp_path / "manager.key"],
                env, tmp_path)
    assert p.returncode == 0, p.stderr
    study_dir = tmp_path / "study"
    outs = {}
    for i in range(1, 9):
        code = "P%02d" % i
        p = _tesctl(["run", "--study", study_dir, "--participant", code, "--port", "sim", "--fast", "--plain",
                     "--out", study_dir / "sessions" / code], env, tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        outs[code] = operator_view(p, code)
    st = ST.load(study_dir)
    private = ST.read_key(tmp_path / "manager.key")
    table = ST.allocation(st, private)["table"]
    assert Counter(table.values()) == {"active": 4, "sham": 4}

    # The operator's view (stdout and stderr of run) is the same text in both arms.
    assert len(set(outs.values())) == 1, outs

    # Every unsealed file: the same names and sizes in all 8 sessions.
    sessions = {c: study_dir / "sessions" / c for c in table}
    layout = {c: sorted((f.name, f.stat().st_size) for f in d.iterdir()) for c, d in sessions.items()}
    assert len({tuple(v) for v in layout.values()}) == 1, layout
    assert [n for n, _ in layout["P01"]] == ["events.tsv", "sealed.bin", "session.json"]

    # events.tsv: byte for byte the same; session.json: the same fields, the same values but
    # for the per-session ones (ids, times), whose formats do not vary either.
    assert len({(d / "events.tsv").read_bytes() for d in sessions.values()}) == 1
    metas = {c: json.loads((d / "session.json").read_text()) for c, d in sessions.items()}
    assert len({tuple(sorted(m)) for m in metas.values()}) == 1
    for key in metas["P01"]:
        values = {json.dumps(m[key], sort_keys=True) for m in metas.values()}
        if key not in PER_SESSION:
            assert len(values) == 1, (key, values)
        else:
            assert len({len(v) for v in values}) == 1, (key, values)

    # Timing: the end is on the device's clock from t0, so ended_at - t0_at is the same in
    # every session; the host's own speed (which an arm might change) does not show in it.
    from datetime import datetime
    spans = {round((datetime.fromisoformat(m["ended_at"]) - datetime.fromisoformat(m["t0_at"])).total_seconds(), 3)
             for m in metas.values()}
    assert len(spans) == 1, spans

    # A "classifier" given every feature of the clear files gets nothing to split on: no
    # feature takes one set of values in one arm and another set in the other.
    def features(c):
        d = sessions[c]
        f = {"size:" + n: s for n, s in layout[c]}
        f.update({"json:" + k: json.dumps(v, sort_keys=True) for k, v in metas[c].items()
                  if k not in ("participant", "subject")})
        f["events"] = (d / "events.tsv").read_text()
        return f
    feats = {c: features(c) for c in table}
    for name in feats["P01"]:
        by_arm = {a: {feats[c][name] for c in table if table[c] == a} for a in ("active", "sham")}
        assert by_arm["active"] & by_arm["sham"] or name.startswith("json:") and name[5:] in PER_SESSION, name
    # Nothing of the arms in clear anywhere in a session folder.
    words = ["sham", "active", "plateau", "ramp"] + [a["protocol_sha256"][:16] for a in st["arms"].values()]
    for d in sessions.values():
        for f in ("events.tsv", "session.json"):
            text = (d / f).read_text()
            assert not any(w in text for w in words), (d, f)
    sealed_sizes = {(d / "sealed.bin").stat().st_size for d in sessions.values()}
    assert len(sealed_sizes) == 1

    # A safety fault is shown and recorded by the same name at the same time in both arms
    # (a short at 1.5 s: current flows then in the real arm's plateau and the sham's fade).
    pair = [next(c for c in table if table[c] == a) for a in ("active", "sham")]
    faulted = []
    for code in pair:
        out = tmp_path / ("fault-" + code)
        p = _tesctl(["run", "--study", study_dir, "--participant", code, "--port", "sim", "--fast", "--plain",
                     "--fault", "short@1.5", "--out", out], env, tmp_path)
        assert p.returncode == 1 and "FAULT: short" in p.stdout, p.stdout + p.stderr
        faulted.append(((out / "events.tsv").read_bytes(), sorted((f.name, f.stat().st_size) for f in out.iterdir()),
                        operator_view(p, code).replace(str(out), "OUT")))
    assert faulted[0] == faulted[1]
    assert b"fault:short" in faulted[0][0] and b"end:fault" in faulted[0][0]

    # Unblinding with a wrong key fails in one line; with the manager's key it gives normal
    # records of the allocated arms and the allocation table.
    bad = tmp_path / "wrong.key"
    bad.write_text(S.new_keypair()[0] + "\n")
    p = _tesctl(["study", "unblind", study_dir, "--key", bad, "--to", tmp_path / "nope"], env, tmp_path)
    assert p.returncode == 2 and "does not open" in p.stderr
    p = _tesctl(["study", "unblind", study_dir, "--key", tmp_path / "manager.key", "--to", study_dir / "open"],
                env, tmp_path)
    assert p.returncode == 2 and "outside the study folder" in p.stderr
    p = _tesctl(["study", "unblind", study_dir] + [tmp_path / ("fault-" + c) for c in pair] +
                ["--key", tmp_path / "manager.key", "--to", tmp_path / "open"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    rows = (tmp_path / "open" / "allocation.tsv").read_text().splitlines()
    assert rows[0] == "participant\tstratum\tarm\tsessions"
    assert {r.split("\t")[0]: r.split("\t")[2] for r in rows[1:]} == table
    for code in pair:
        opened = json.loads((tmp_path / "open" / ("fault-" + code) / "session.json").read_text())
        assert opened["reason"] == "short" and opened["study_arm"] == table[code]
    for code, arm in table.items():
        d = tmp_path / "open" / code
        meta = json.loads((d / "session.json").read_text())
        assert meta["protocol_sha256"] == st["arms"][arm]["protocol_sha256"]
        assert meta["study_arm"] == arm and meta["outcome"] == "completed"
        events = (d / "events.tsv").read_text()
        assert ("sham-off" in events) == (arm == "sham") and ("plateau" in events) == (arm == "active")
        tel = (d / "telemetry.csv").read_text().splitlines()
        assert tel[0].startswith("t_s,state,set_uA,meas_uA,v_mV,z_ohm,charge_uC") and len(tel) > 150
        peak = max(int(r.split(",")[2]) for r in tel[1:] if r.split(",")[1] == "ramp-down")
        assert peak > 900
        if arm == "sham":
            off = [int(r.split(",")[2]) for r in tel[1:] if r.split(",")[1] == "sham-off"]
            assert len(off) > 50 and set(off[1:]) == {0}      # the first window ends the fade


def test_run_study_options_are_checked_before_any_device(tmp_path):
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "flash"))
    _init(tmp_path)
    study_dir = tmp_path / "study"
    cases = [
        (["--study", study_dir], "go together"),
        (["--study", study_dir, "--participant", "P01", "--subject", "x"], "no --subject"),
        (["real.toml", "--study", study_dir, "--participant", "P01"], "no PROTOCOL"),
        ([], "give a PROTOCOL"),
        (["--study", study_dir, "--participant", "Q9"], "not in study"),
        (["--study", tmp_path, "--participant", "P01"], "no study there"),
    ]
    for args, said in cases:
        p = _tesctl(["run", "--port", "sim", "--fast"] + args, env, tmp_path)
        assert p.returncode == 2 and said in p.stderr, (args, p.stderr)
    (study_dir / "run.key").unlink()
    p = _tesctl(["run", "--port", "sim", "--study", study_dir, "--participant", "P01"], env, tmp_path)
    assert p.returncode == 2 and "run key" in p.stderr
    assert not list((study_dir / "sessions").iterdir())


def test_a_blinded_record_is_sealed_as_it_goes(tmp_path):
    """What a host killed mid-session leaves: the record so far, sealed, at the final size."""
    from tesctl import runner
    from tesctl.recorder import Recorder
    private, public = S.new_keypair()
    blind = SimpleNamespace(public_key=public, sealed_size=lambda raw: 300000)
    r = runner.Run(None, "sim", str(tmp_path), blind=blind)
    r.rec = Recorder(str(tmp_path), {"protocol_sha256": "abc"}, memory_only=True)
    r.rec.telemetry(1000, "plateau", 1000, 999, 8000, 8000, 5)
    r._seal_snapshot()
    assert not (tmp_path / "sealed.bin").exists()          # not yet: once every SEAL_EVERY_S
    r.last_seal -= runner.SEAL_EVERY_S
    r._seal_snapshot()
    assert (tmp_path / "sealed.bin").stat().st_size == len(S.seal(b"", public, 300000))
    blindrec.open_sealed(tmp_path, private, tmp_path / "open")
    assert "plateau,1000,999" in (tmp_path / "open" / "telemetry.csv").read_text()
    assert json.loads((tmp_path / "open" / "session.json").read_text())["complete"] is False
