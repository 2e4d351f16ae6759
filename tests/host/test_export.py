"""`tesctl export bids|edf` on sessions that the real CLI recorded with the simulated board,
checked by the tools people use: the official BIDS validator and MNE's EDF reader."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tesctl.cli import TesctlGroup
from tesctl.export import export_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VALIDATOR = BIN / "bids-validator-deno"
NIBS_DRAFT_COLUMNS = ("tes_stim_mode", "waveform", "waveform_frequency", "noise_type", "stimulation_duration",
                      "ramp_up_duration", "ramp_down_duration", "current_intensity", "current_density",
                      "impedance", "measured_current_intensity", "channel_name", "channel_type", "stim_id")

RAMPS = "ramp_up_s = 1\nramp_down_s = 1\n"
PROTOCOLS = {
    "dc": 'waveform = "dc"\namplitude_uA = 1000\nduration_s = 2\n' + RAMPS,
    "sine": 'waveform = "sine"\namplitude_uA = 800\nfrequency_hz = 10\nduration_s = 3\n' + RAMPS,
    "sham": 'waveform = "dc"\namplitude_uA = 1000\nduration_s = 2\n' + RAMPS
            + '[sham]\nramp_up_s = 0.5\nplateau_s = 0.2\nramp_down_s = 0.5\ndouble = true\n',
    "noise": 'waveform = "noise"\namplitude_uA = 1000\nband_hz = [101, 640]\nduration_s = 2\n' + RAMPS,
}


def cli(args):
    """The export group under the CLI's own entry group, as `tesctl export ...` runs it."""
    root = TesctlGroup()
    root.add_command(export_group)
    return CliRunner().invoke(root, ["export"] + [str(a) for a in args])


def record(tmp, name, waveform, subject, faults=()):
    """A session recorded by `tesctl run --port sim --fast` (the real CLI, the simulated board)."""
    proto = tmp / ("%s.toml" % name)
    proto.write_text('schema = 1\nname = "export test %s"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n'
                     'electrode_area_cm2 = 35\n[stimulation]\n%s' % (waveform, PROTOCOLS[waveform]))
    env = dict(os.environ, TESCTL_STATE=str(tmp / "state"), TESCTL_SIM_STORAGE=str(tmp / "flash"))
    out = tmp / name
    args = [str(BIN / "tesctl"), "run", str(proto), "--port", "sim", "--fast", "--plain", "--out", str(out)]
    args += ["--subject", subject] if subject else []
    for f in faults:
        args += ["--fault", f]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode in (0, 1), p.stderr
    assert (out / "session.json").is_file(), p.stderr
    return out


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sessions")
    return {"dc": record(tmp, "dc", "dc", "P01"),
            "sine": record(tmp, "sine", "sine", "P02", faults=["liftoff@3"]),
            "noise": record(tmp, "noise", "noise", "P01"),
            "nosubject": record(tmp, "nosubject", "dc", None),
            "sham": record(tmp, "sham", "sham", "P03")}


def validate(dataset):
    """The BIDS validator's issues: ([(code, location)] errors, summary)."""
    p = subprocess.run([str(VALIDATOR), str(dataset), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(p.stdout)
    errors = [(i["code"], i.get("location")) for i in report["issues"]["issues"] if i["severity"] == "error"]
    return errors, report["summary"]


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_record(folder):
    meta = json.loads((folder / "session.json").read_text())
    with open(folder / "telemetry.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return meta, rows, read_tsv(folder / "events.tsv")


def one(dataset, pattern):
    found = sorted(Path(dataset).glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def dataset(sessions, tmp_path_factory):
    ds = tmp_path_factory.mktemp("bids") / "ds"
    r = cli(["bids", sessions["dc"], sessions["sine"], sessions["noise"], "--to", ds])
    assert r.exit_code == 0, r.output
    return ds, r.output


needs_validator = pytest.mark.skipif(not VALIDATOR.exists(), reason="bids-validator-deno is not installed")


@needs_validator
def test_dataset_passes_the_bids_validator(dataset):
    ds, output = dataset
    errors, summary = validate(ds)
    assert errors == []
    assert sorted(summary["subjects"]) == ["P01", "P02"]
    # Three session folders; the validator's summary counts distinct ses labels, and two
    # subjects' sessions recorded within one second share theirs (ses- is the start second).
    assert len(list(ds.glob("sub-*/ses-*"))) == 3
    assert 2 <= len(summary["sessions"]) <= 3
    assert [r["participant_id"] for r in read_tsv(ds / "participants.tsv")] == ["sub-P01", "sub-P02"]
    description = json.loads((ds / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["GeneratedBy"][0]["Name"] == "tesctl"
    lines = output.strip().splitlines()
    assert len(lines) == 4 and all("EDF+" in ln for ln in lines[:3]) and lines[3].startswith("3 sessions")


@needs_validator
def test_validator_sees_a_broken_events_file(dataset, tmp_path):
    # The check above means something only if the validator reads our events files.
    ds = tmp_path / "ds"
    shutil.copytree(dataset[0], ds)
    events = next(ds.glob("sub-P02/*/beh/*_events.tsv"))
    events.write_text(events.read_text().replace("onset\t", "start\t", 1))
    errors, _ = validate(ds)
    assert any(loc and loc.endswith(events.name) for _, loc in errors), errors


def test_events_copy_the_session(dataset, sessions):
    ds, _ = dataset
    _, _, events = load_record(sessions["sine"])
    exported = read_tsv(one(ds, "sub-P02/*/beh/*_events.tsv"))
    assert [(float(e["onset"]), float(e["duration"]), e["trial_type"]) for e in exported] == \
        [(float(e["onset"]), float(e["duration"]), e["trial_type"]) for e in events]
    assert any(e["trial_type"].startswith("fault:") for e in exported)
    side = json.loads(one(ds, "sub-P02/*/beh/*_events.json").read_text())
    assert set(side["trial_type"]["Levels"]) == {e["trial_type"] for e in exported}


def test_nibs_rows_use_the_draft_names_and_the_protocol(dataset):
    ds, _ = dataset
    by_mode = {}
    for path in ds.glob("sub-*/*/nibs/*_stimsys-tes_nibs.tsv"):
        rows = read_tsv(path)
        assert set(NIBS_DRAFT_COLUMNS) <= set(rows[0])
        side = json.loads(path.with_suffix(".json").read_text())
        assert all(c in side for c in rows[0]) and side["current_density"]["Units"] == "mA/cm^2"
        assert [(r["channel_name"], r["channel_type"]) for r in rows] == [("F3", "anode"), ("Fp2", "cathode")]
        by_mode[rows[0]["tes_stim_mode"]] = rows[0]
    assert set(by_mode) == {"tDCS", "tACS", "tRNS"}
    dc, ac, rn = by_mode["tDCS"], by_mode["tACS"], by_mode["tRNS"]
    assert float(dc["current_intensity"]) == 1.0 and float(dc["current_density"]) == pytest.approx(1 / 35, rel=1e-4)
    assert dc["waveform_frequency"] == "n/a" and float(ac["waveform_frequency"]) == 10
    assert float(ac["current_intensity"]) == 0.8 and rn["noise_type"] == "band-limited"
    assert float(dc["stimulation_duration"]) == 4 and float(dc["ramp_up_duration"]) == 1
    # measured over the plateau by the simulated board: near the commanded DC level
    assert float(dc["measured_current_intensity"]) == pytest.approx(1.0, abs=0.02)
    assert 1 < float(dc["impedance"]) < 20
    assert dc["system_status"] == "ok" and ac["system_status"] == "unstable_contact"


def edf_path(ds, subject, waveform):
    for path in ds.glob("sub-%s/*/nibs/*_telemetry.edf" % subject):
        if read_tsv(str(path).replace("_telemetry.edf", "_nibs.tsv"))[0]["waveform"] == waveform:
            return path
    raise AssertionError("no EDF of %s %s" % (subject, waveform))


@pytest.mark.parametrize("waveform,subject", [("dc", "P01"), ("sine", "P02"), ("noise", "P01")])
def test_edf_reads_back_in_mne(dataset, sessions, waveform, subject):
    mne = pytest.importorskip("mne")
    meta, rows, events = load_record(sessions[waveform])
    raw = mne.io.read_raw_edf(edf_path(dataset[0], subject, waveform), preload=True, verbose="error")
    assert raw.ch_names == ["I_set", "I_meas", "V", "Z", "Q"]
    fs = raw.info["sfreq"]
    assert fs == 50
    assert raw.n_times == round(float(rows[-1]["t_s"]) * fs) + 1
    data = raw.get_data()
    columns = ("set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC")
    scale = (1, 1, 1e-3, 1, 1)      # MNE reads mV as volts; other units as written
    for ch, (key, k) in enumerate(zip(columns, scale)):
        values = [float(r[key]) if r[key] != "" else -1.0 for r in rows]
        step = (max(values) - min(values) or 2) / 65535     # the EDF's quantization
        for r, v in zip(rows, values):
            got = data[ch, round(float(r["t_s"]) * fs)] / k
            assert abs(got - v) <= step, (key, r["t_s"], got, v)
    # MNE orders annotations by onset only: compare both sorted by (onset, text)
    ann = sorted(((a["onset"], a["duration"], a["description"]) for a in raw.annotations), key=lambda a: (a[0], a[2]))
    events = sorted(events, key=lambda e: (float(e["onset"]), e["trial_type"]))
    assert [a[2] for a in ann] == [e["trial_type"] for e in events]
    for (onset, duration, _), e in zip(ann, events):
        assert abs(onset - float(e["onset"])) <= 1 / fs and abs(duration - float(e["duration"])) <= 1 / fs
    assert raw.info["meas_date"].strftime("%Y-%m-%d %H:%M:%S") == meta["t0_at"][:19].replace("T", " ")


def test_sham_rows_describe_the_fade(sessions, tmp_path):
    r = cli(["bids", sessions["sham"], "--to", tmp_path / "ds"])
    assert r.exit_code == 0, r.output
    nibs = one(tmp_path / "ds", "sub-P03/*/nibs/*_nibs.tsv")
    row = read_tsv(nibs)[0]
    assert float(row["stimulation_duration"]) == pytest.approx(2 * 1.2)
    assert float(row["ramp_up_duration"]) == 0.5 and float(row["current_intensity"]) == 1.0
    assert json.loads(nibs.with_suffix(".json").read_text())["TesctlSham"]["double"] is True


def test_export_edf_alone(sessions, tmp_path):
    mne = pytest.importorskip("mne")
    s = tmp_path / "dc"
    shutil.copytree(sessions["dc"], s)
    r = cli(["edf", s])
    assert r.exit_code == 0 and (s / "telemetry.edf").is_file() and "telemetry.edf" in r.output
    assert mne.io.read_raw_edf(s / "telemetry.edf", verbose="error").ch_names[1] == "I_meas"
    edfio = pytest.importorskip("edfio")
    t0 = json.loads((s / "session.json").read_text())["t0_at"]       # e.g. 2026-11-26T03:31:21.140+00:00
    assert edfio.read_edf(s / "telemetry.edf").starttime.isoformat(timespec="milliseconds") == t0[11:23]
    again = cli(["edf", s])
    assert again.exit_code == 2 and "already exists" in again.output
    out = tmp_path / "out"
    out.mkdir()
    assert cli(["edf", s, "--to", out]).exit_code == 0 and (out / "dc.edf").is_file()
    assert cli(["edf", s, "--to", tmp_path / "x.edf"]).exit_code == 0 and (tmp_path / "x.edf").is_file()
    bad = cli(["edf", s, "--to", tmp_path / "x.txt"])
    assert bad.exit_code == 2 and ".edf" in bad.output


def test_lost_frames_and_a_cut_last_row(sessions, tmp_path):
    mne = pytest.importorskip("mne")
    s = tmp_path / "gappy"
    shutil.copytree(sessions["dc"], s)
    lines = (s / "telemetry.csv").read_text().splitlines()
    kept = lines[:51] + lines[56:]          # frames 50..54 (1.00-1.08 s) lost
    (s / "telemetry.csv").write_text("\n".join(kept) + "\n" + lines[-1][:5])   # and a truncated last row
    r = cli(["edf", s])
    assert r.exit_code == 0, r.output
    raw = mne.io.read_raw_edf(s / "telemetry.edf", preload=True, verbose="error")
    assert raw.n_times == len(lines) - 1
    gaps = [a for a in raw.annotations if a["description"].startswith("telemetry-gap")]
    assert [(round(a["onset"], 3), a["description"]) for a in gaps] == [(1.0, "telemetry-gap:5")]
    held = float(lines[50].split(",")[2])
    assert raw.get_data(picks=["I_set"])[0, 50:55] == pytest.approx([held] * 5, abs=0.1)


@needs_validator
def test_sealed_session_exports_what_it_has(sessions, tmp_path):
    # The clear part of a blinded session as docs/study.md describes it: no protocol, no
    # telemetry.csv, a participant code, one `blinded` phase, the rest in sealed.bin.
    s = tmp_path / "sealed"
    shutil.copytree(sessions["dc"], s)
    (s / "telemetry.csv").unlink()
    meta = json.loads((s / "session.json").read_text())
    for key in ("protocol", "subject", "delivered_charge_uC", "stim_duration_s", "protocol_sha256"):
        del meta[key]
    meta.update(blinded=True, participant="P07")
    (s / "session.json").write_text(json.dumps(meta).ljust(4096))
    (s / "events.tsv").write_text("onset\tduration\ttrial_type\n0.000\t4.000\tblinded\n4.000\t0.000\tend:completed\n")
    (s / "sealed.bin").write_bytes(b"\0" * 64)
    r = cli(["bids", s, "--to", tmp_path / "ds"])
    assert r.exit_code == 0, r.output
    assert "no telemetry" in r.output and "no protocol" in r.output and "blinded" in r.output
    assert not list((tmp_path / "ds").glob("**/*.edf"))
    row, = read_tsv(one(tmp_path / "ds", "sub-P07/*/nibs/*_nibs.tsv"))
    assert [e["trial_type"] for e in read_tsv(one(tmp_path / "ds", "sub-P07/*/beh/*_events.tsv"))] == \
        ["blinded", "end:completed"]
    assert row["tes_stim_mode"] == "n/a" and row["current_intensity"] == "n/a"
    assert row["measured_current_intensity"] == "n/a" and float(row["impedance"]) > 1   # the pre-check's
    assert validate(tmp_path / "ds")[0] == []
    r = cli(["edf", s])
    assert r.exit_code == 2 and "no telemetry" in r.output


def test_adding_to_a_dataset_and_conflicts(sessions, tmp_path):
    ds = tmp_path / "ds"
    assert cli(["bids", sessions["dc"], "--to", ds]).exit_code == 0
    before = sorted(p for p in ds.rglob("*"))
    r = cli(["bids", sessions["noise"], sessions["dc"], "--to", ds])      # dc is there already
    assert r.exit_code == 2 and "already holds" in r.output and len(r.output.strip().splitlines()) == 1
    assert sorted(p for p in ds.rglob("*")) == before                    # nothing written
    r = cli(["bids", sessions["noise"], sessions["sine"], "--to", ds])
    assert r.exit_code == 0, r.output
    assert [p["participant_id"] for p in read_tsv(ds / "participants.tsv")] == ["sub-P01", "sub-P02"]
    assert len(list(ds.glob("sub-P01/ses-*"))) == 2
    dup = cli(["bids", sessions["sine"], sessions["sine"], "--to", tmp_path / "ds2"])
    assert dup.exit_code == 2 and "both" in dup.output


def test_subject_label(sessions, tmp_path):
    r = cli(["bids", sessions["nosubject"], "--to", tmp_path / "a"])
    assert r.exit_code == 2 and "--subject" in r.output
    r = cli(["bids", sessions["nosubject"], "--to", tmp_path / "b", "--subject", "X-07"])
    assert r.exit_code == 0 and (tmp_path / "b" / "sub-X07").is_dir()


@pytest.mark.parametrize("make,message", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "no session.json"),
    (lambda d: (d.mkdir(), (d / "session.json").write_text("{oops")), "cannot be read as JSON"),
    (lambda d: (d.mkdir(), (d / "session.json").write_text("[1]")), "not a JSON object"),
])
def test_not_a_session(tmp_path, make, message):
    d = tmp_path / "s"
    make(d)
    for args in (["bids", d, "--to", tmp_path / "ds"], ["edf", d]):
        r = cli(args)
        assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("name,edit,message", [
    ("events.tsv", lambda t: t.replace("onset", "start", 1), "header must start with onset"),
    ("events.tsv", lambda t: t + "x\t1\tplateau\n", "malformed line"),
    ("telemetry.csv", lambda t: t.replace("t_s,", "time,", 1), "header must start with t_s"),
    ("telemetry.csv", lambda t: t.replace("\n0.020,", "\nabc,", 1), "malformed row 3"),
])
def test_malformed_files(sessions, tmp_path, name, edit, message):
    s = tmp_path / "s"
    shutil.copytree(sessions["dc"], s)
    (s / name).write_text(edit((s / name).read_text()))
    r = cli(["bids", s, "--to", tmp_path / "ds"])
    assert r.exit_code == 2 and message in r.output and name in r.output, r.output


def test_dataset_folder_problems(sessions, tmp_path):
    (tmp_path / "file").write_text("x")
    r = cli(["bids", sessions["dc"], "--to", tmp_path / "file"])
    assert r.exit_code == 2 and "not a folder" in r.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    r = cli(["bids", sessions["dc"], "--to", other])
    assert r.exit_code == 2 and "not a BIDS dataset" in r.output
    assert sorted(os.listdir(other)) == ["notes.txt"]


@needs_validator
def test_a_blinded_study_exports_blinded_then_unblinded(tmp_path):
    """Sessions of a real two-arm study (tesctl study, docs/study.md): exported as they are,
    blinded, nothing in the export tells the arms apart; after unblinding, the real record."""
    real = ('schema = 1\nname = "export study, real"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n'
            'electrode_area_cm2 = 35\n[stimulation]\n' + PROTOCOLS["dc"])
    (tmp_path / "real.toml").write_text(real)
    (tmp_path / "sham.toml").write_text(real.replace("real", "sham") + "[sham]\nramp_up_s = 1\nramp_down_s = 1\n")
    (tmp_path / "study.toml").write_text('name = "export"\n[arms]\nactive = "real.toml"\nsham = "sham.toml"\n'
                                         "[participants]\ncount = 2\n[allocation]\nblock_size = 2\nseed = 3\n")
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"), TESCTL_SIM_STORAGE=str(tmp_path / "flash"))

    def tesctl(*args):
        p = subprocess.run([str(BIN / "tesctl")] + [str(a) for a in args], env=env, capture_output=True,
                           text=True, timeout=300, cwd=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
    study = tmp_path / "study"
    tesctl("study", "init", tmp_path / "study.toml", "--out", study, "--key-out", tmp_path / "manager.key")
    codes = sorted(p["code"] for p in json.loads((study / "study.json").read_text())["participants"])
    for code in codes:
        tesctl("run", "--study", study, "--participant", code, "--port", "sim", "--fast", "--plain",
               "--out", study / "sessions" / code)

    r = cli(["bids"] + [study / "sessions" / c for c in codes] + ["--to", tmp_path / "blind"])
    assert r.exit_code == 0, r.output
    assert r.output.count("blinded: sealed.bin left sealed") == 2 and not list((tmp_path / "blind").glob("**/*.edf"))
    assert validate(tmp_path / "blind")[0] == []
    exported = {}
    for code in codes:
        label = "sub-" + re.sub("[^A-Za-z0-9]", "", code)
        files = sorted(p for p in (tmp_path / "blind" / label).rglob("*") if p.is_file())
        row, = read_tsv(next(p for p in files if p.name.endswith("_nibs.tsv")))
        events = read_tsv(next(p for p in files if p.name.endswith("_events.tsv")))
        exported[code] = ([p.name.split("_task-")[1] for p in files],
                          {k: v for k, v in row.items() if k not in ("timestamp", "impedance")},
                          [(e["onset"], e["duration"], e["trial_type"]) for e in events])
    assert exported[codes[0]] == exported[codes[1]]        # the same files, values and events in both arms
    assert exported[codes[0]][1]["tes_stim_mode"] == "n/a"

    tesctl("study", "unblind", study, "--key", tmp_path / "manager.key", "--to", tmp_path / "open")
    r = cli(["bids"] + [tmp_path / "open" / c for c in codes] + ["--to", tmp_path / "unblinded"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "unblinded").glob("sub-*/*/nibs/*_telemetry.edf"))) == 2
    assert validate(tmp_path / "unblinded")[0] == []
    durations = sorted(float(read_tsv(p)[0]["stimulation_duration"])
                       for p in (tmp_path / "unblinded").glob("sub-*/*/nibs/*_nibs.tsv"))
    assert durations == [2.0, 4.0]       # the sham's fade, the real block
