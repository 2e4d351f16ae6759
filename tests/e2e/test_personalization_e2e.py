"""Personalization end to end on the simulated board (fast clock), through the real CLI:
a protocol `tesctl iaf` wrote runs and its session record carries the provenance;
`tesctl titrate` runs real bouts with scripted yes/no answers on stdin and writes a
protocol at a share of the threshold."""
import hashlib
import json
import subprocess

import pytest

from conftest import ROOT, TESCTL, tesctl
from session_checks import common

SHORT_TACS = ('schema = 1\nname = "short tACS base"\nsample_rate_hz = 1000\n[montage]\nanode = "F3"\ncathode = "F4"\n'
              'electrode_area_cm2 = 25\n[stimulation]\nwaveform = "sine"\namplitude_uA = 1000\nfrequency_hz = 10.0\n'
              'duration_s = 20\nramp_up_s = 2\nramp_down_s = 2\nramp_shape = "cosine"\n')


def titrate(args, env, answers, timeout=600):
    p = subprocess.run([TESCTL, "titrate", *map(str, args)], env=env, input=answers, capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_iaf_protocol_runs_and_its_record_carries_the_provenance(tmp_path, cli_env):
    import mne
    import numpy as np
    rng = np.random.default_rng(3)
    fs, n = 256, 256 * 60
    f = np.fft.rfftfreq(n, 1 / fs)
    rows = []
    for _ in range(3):
        bg = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(f, f[1])), n)
        a = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.exp(-0.5 * ((f - 10.9) / 0.7) ** 2), n)
        rows.append((bg / bg.std() + 0.7 * a / a.std()) * 15e-6)
    eeg = tmp_path / "rest_raw.fif"
    mne.io.RawArray(np.array(rows), mne.create_info(["O1", "O2", "Pz"], fs, "eeg"), verbose="error").save(
        eeg, verbose="error")
    base = tmp_path / "base.toml"
    base.write_text(SHORT_TACS)
    proto = tmp_path / "iaf.toml"
    tesctl(["iaf", eeg, "--protocol", base, "--out", proto], cli_env, check=0)
    out = tmp_path / "session"
    tesctl(["run", proto, "--port", "sim", "--fast", "--plain", "--out", out], cli_env, check=0)
    meta, rows, events = common(out)
    assert meta["outcome"] == "completed"
    prov = meta["protocol_provenance"]
    assert prov["kind"] == "iaf" and prov["source_sha256"] == hashlib.sha256(eeg.read_bytes()).hexdigest()
    assert prov["channels"] == ["O1", "O2", "Pz"] and abs(prov["estimate_hz"] - 10.9) <= 0.25
    assert meta["protocol"]["segments"][0]["frequency_mHz"] == round(prov["estimate_hz"] * 1000)


def test_titrate_staircase_with_scripted_answers(tmp_path, cli_env):
    out = tmp_path / "ngvs-mine.toml"
    bouts = tmp_path / "bouts"
    # 100 no, 150 no, 200 yes (reversal), 150 no (reversal), 200 yes (reversal), 150 no (reversal)
    p = titrate(["ngvs-200ua", "--port", "sim", "--fast", "--out", out, "--sessions", bouts, "--percent", 80,
                 "--subject", "S07"], cli_env, "n\nno\nY\nn\nmaybe\ny\nn\n")
    assert p.returncode == 0, p.stderr
    assert "threshold: 175 uA" in p.stdout and "140 uA = 80 % of the threshold" in p.stdout
    summary = json.loads((bouts / "titration.json").read_text())
    assert [t["level_uA"] for t in summary["trials"]] == [100, 150, 200, 150, 200, 150]
    assert [t["felt"] for t in summary["trials"]] == [False, False, True, False, True, False]
    assert summary["reversal_levels_uA"] == [200, 150, 200, 150]
    # every bout was a real session on the simulated board at its level
    for b in summary["bouts"]:
        meta, rows, events = common(b["session"])
        assert meta["outcome"] == "completed" and meta["subject"] == "S07"
        seg = meta["protocol"]["segments"][0]
        assert seg["waveform"] == "noise" and seg["band_mHz"] == [0, 30000]
        assert seg["amplitude_uA"] == b["level_uA"] and seg["duration_ms"] == 10000
        plateau = [float(e["duration"]) for e in events if e["trial_type"] == "plateau"]
        assert len(plateau) == 1 and plateau[0] == pytest.approx(10.0, abs=0.05)     # the 10 s bout
        assert 11.0 <= meta["stim_duration_s"] <= 12.0                               # + 1 s ramps
        assert meta["delivered_charge_uC"] > 0
        assert max(abs(int(r["set_uA"])) for r in rows) <= b["level_uA"]
        assert meta["protocol_provenance"]["kind"] == "titration-bout"
    from tesctl import protofile
    loaded = protofile.load(out)
    assert loaded.ok, loaded.problems
    seg = loaded.canonical["segments"][0]
    assert seg["amplitude_uA"] == 140 and seg["noise_sd_uA"] == round(66 * 140 / 200)
    assert seg["duration_ms"] == 1200000 and seg["band_mHz"] == [0, 30000]          # the base's session
    prov = loaded.provenance
    assert prov["kind"] == "titration" and prov["threshold_uA"] == 175 and prov["percent_of_threshold"] == 80
    assert prov["trials"] == ["100 uA: no", "150 uA: no", "200 uA: yes", "150 uA: no", "200 uA: yes", "150 uA: no"]
    assert prov["subject"] == "S07"
    # and it runs, with the titration in its record
    session = tmp_path / "session"
    short = tmp_path / "short.toml"
    short.write_text(out.read_text().replace("duration_s = 1200", "duration_s = 20"))
    tesctl(["run", short, "--port", "sim", "--fast", "--plain", "--out", session], cli_env, check=0)
    assert json.loads((session / "session.json").read_text())["protocol_provenance"]["threshold_uA"] == 175


def test_titrate_ends_without_a_protocol(tmp_path, cli_env):
    out = tmp_path / "p.toml"
    # the answers run out after two bouts
    p = titrate(["ngvs-200ua", "--port", "sim", "--fast", "--out", out, "--sessions", tmp_path / "a"], cli_env,
                "n\nn\n")
    assert p.returncode == 1 and "no answer after bout 3" in p.stderr and not out.exists()
    # nothing felt up to --max-uA
    p = titrate(["ngvs-200ua", "--port", "sim", "--fast", "--out", out, "--sessions", tmp_path / "b",
                 "--start-uA", 100, "--max-uA", 200], cli_env, "n\nn\nn\n")
    assert p.returncode == 1 and "no sensation reported up to 200 uA" in p.stderr and not out.exists()


def test_titrate_bad_options_exit_2_before_any_bout(tmp_path, cli_env):
    for args, text in [
        (["--port", "sim", "--start-uA", 300, "--max-uA", 200], "above --max-uA"),
        (["--port", "sim", "--start-uA", 20], "at least one step"),
        (["--port", "/dev/null", "--fast"], "only with a simulated board"),
        (["--port", "sim", "--out", tmp_path / "x.txt"], "ends in .toml"),
    ]:
        if "--out" not in args:
            args = args + ["--out", tmp_path / "x.toml"]
        p = titrate(["ngvs-200ua", *args, "--sessions", tmp_path / "bouts"], cli_env, "")
        assert p.returncode == 2 and text in p.stderr, (args, p.stderr)
        assert not (tmp_path / "bouts").exists() and not (tmp_path / "x.toml").exists()
