"""tesctl iaf: the individual alpha frequency of EEG files on disk (real EEG that spkit
ships, and synthetic EEG with a known peak), through the real command; the protocol it
writes and its [provenance]."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from tesctl import protofile

TESCTL = str(Path(sys.executable).parent / "tesctl")
ROOT = Path(__file__).resolve().parents[2]


def tesctl(*args, **kw):
    p = subprocess.run([TESCTL, *map(str, args)], capture_output=True, text=True, cwd=kw.get("cwd"))
    assert "Traceback" not in p.stderr, p.stderr
    return p


def iaf_json(path, *extra):
    p = tesctl("iaf", path, "--json", *extra)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def spkit_files(tmp_path_factory):
    """spkit's 16 s of 14-channel EEG (128 Hz, uV) as a FIF and an EDF file."""
    import spkit
    X, fs, names = spkit.data.eeg_sample_14ch()
    assert X.shape == (2048, 14) and fs == 128
    raw = mne.io.RawArray(X.T * 1e-6, mne.create_info(list(names), fs, "eeg"), verbose="error")
    d = tmp_path_factory.mktemp("spkit")
    fif, edf = d / "spkit_raw.fif", d / "spkit.edf"
    raw.save(fif, verbose="error")
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    return fif, edf


def synthetic(peak_hz, seconds=90, fs=256, channels=("O1", "O2", "Pz", "Oz"), alpha=0.7, seed=0):
    """1/f background plus a Gaussian-shaped alpha band around peak_hz, in volts."""
    rng = np.random.default_rng(seed)
    n = seconds * fs
    f = np.fft.rfftfreq(n, 1 / fs)
    out = []
    for _ in channels:
        spec = np.fft.rfft(rng.standard_normal(n))
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        x = np.fft.irfft(spec, n)
        a = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.exp(-0.5 * ((f - peak_hz) / 0.7) ** 2), n)
        out.append((x / x.std() + alpha * a / a.std()) * 15e-6)
    return mne.io.RawArray(np.array(out), mne.create_info(list(channels), fs, "eeg"), verbose="error")


def test_real_eeg_from_spkit_gives_a_physiological_alpha_peak(spkit_files):
    fif, edf = spkit_files
    for path in (fif, edf):
        r = iaf_json(path, "--channels", "all")
        assert len(r["channels"]) == 14
        assert 8.0 <= r["paf_hz"] <= 12.5, r["paf_hz"]
        assert 8.0 <= r["cog_hz"] <= 12.5, r["cog_hz"]
        assert r["channels_with_peak"] >= 3
        # 16 s of EEG: never more than moderate
        assert r["certainty"] == "moderate"
        assert r["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # EDF stores 16-bit samples: the same estimate as the FIF within a bin
    assert abs(iaf_json(fif, "--channels", "all")["paf_hz"] - iaf_json(edf, "--channels", "all")["paf_hz"]) < 0.05
    p = tesctl("iaf", fif, "--channels", "all")
    assert "peak alpha frequency (PAF): 10." in p.stdout or "peak alpha frequency (PAF): 9." in p.stdout
    assert "certainty: moderate: 8 of 14 channels show an alpha peak" in p.stdout
    assert "only 16 s of EEG" in p.stdout


def test_real_eeg_default_posterior_channels_are_uncertain(spkit_files):
    fif, _ = spkit_files
    r = iaf_json(fif)
    assert r["channels"] == ["O1", "O2", "P7", "P8"]        # the posterior channels the file has
    assert r["channels_with_peak"] < 3 and r["paf_hz"] is None and r["certainty"] == "low"
    assert 9.0 <= r["cog_hz"] <= 12.5


@pytest.mark.parametrize("peak", [8.4, 9.65, 10.8, 12.1])
def test_synthetic_eeg_known_peak_within_a_quarter_hz(peak, tmp_path):
    raw = synthetic(peak, seed=int(peak * 100))
    edf = tmp_path / "synthetic.edf"
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    r = iaf_json(edf)
    assert abs(r["paf_hz"] - peak) <= 0.25, r["paf_hz"]
    assert abs(r["cog_hz"] - peak) <= 0.25, r["cog_hz"]
    assert r["channels_with_peak"] == 4 and r["certainty"] == "high"
    fif = tmp_path / "synthetic_raw.fif"
    raw.save(fif, verbose="error")
    assert abs(iaf_json(fif, "--channels", "O1,o2")["paf_hz"] - peak) <= 0.25


@pytest.mark.parametrize("fmt,name", [("edf", "rest.edf"), ("bdf", "rest.bdf"), ("brainvision", "rest.vhdr")])
def test_every_format_mne_writes_reads_back_to_the_known_peak(fmt, name, tmp_path):
    path = tmp_path / name
    mne.export.export_raw(path, synthetic(10.3, seconds=30, seed=7), fmt=fmt, verbose="error")
    r = iaf_json(path)
    assert abs(r["paf_hz"] - 10.3) <= 0.25 and sorted(r["channels"]) == ["O1", "O2", "Oz", "Pz"]
    assert r["certainty"] == "moderate"          # clear peaks, but only 30 s


def test_labels_with_prefix_and_reference_answer_to_their_10_20_names(tmp_path):
    raw = synthetic(9.9, seconds=30, channels=("EEG O1-REF", "EEG O2-REF", "EEG Fz-REF", "ECG"))
    edf = tmp_path / "labels.edf"
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    r = iaf_json(edf)                                   # default: the posterior ones
    assert r["channels"] == ["EEG O1-REF", "EEG O2-REF"]
    assert iaf_json(edf, "--channels", "o2,Fz")["channels"] == ["EEG O2-REF", "EEG Fz-REF"]


@pytest.mark.parametrize("peak", [8.4, 9.65, 10.8, 12.1])
def test_paf_agrees_with_philistine(peak):
    """philistine.mne.savgol_iaf (Phillip Alday, a co-author of Corcoran et al. 2018) on the
    same data: its PAF is a 0.25 Hz bin, ours is refined between bins."""
    from philistine.mne import savgol_iaf

    from tesctl import iaf
    raw = synthetic(peak, seed=int(peak * 100))
    theirs = savgol_iaf(raw, ax=False)
    ours = iaf.estimate(raw.get_data(), raw.info["sfreq"], raw.ch_names)
    assert theirs.PeakAlphaFrequency is not None
    assert abs(ours["paf_hz"] - theirs.PeakAlphaFrequency) <= 0.125 + 0.05


def test_no_alpha_no_peak_and_no_protocol(tmp_path):
    raw = synthetic(10.0, alpha=0.0)
    fif = tmp_path / "pink_raw.fif"
    raw.save(fif, verbose="error")
    r = iaf_json(fif)
    assert r["paf_hz"] is None and r["certainty"] == "low"
    out = tmp_path / "x.toml"
    p = tesctl("iaf", fif, "--protocol", "tacs-alpha-10hz", "--out", out)
    assert p.returncode == 2 and "no PAF estimate" in p.stderr and not out.exists()


def test_writes_a_valid_tacs_protocol_with_provenance(tmp_path):
    raw = synthetic(9.65)
    edf = tmp_path / "rest.edf"
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    out = tmp_path / "iaf.toml"
    p = tesctl("iaf", edf, "--channels", "O1,O2,Pz", "--protocol", "tacs-alpha-10hz", "--out", out)
    assert p.returncode == 0, p.stderr
    loaded = protofile.load(out)
    assert loaded.ok, loaded.problems
    seg = loaded.canonical["segments"][0]
    prov = loaded.provenance
    assert prov["kind"] == "iaf" and prov["estimate"] == "paf"
    assert abs(prov["estimate_hz"] - 9.65) <= 0.25
    assert seg["frequency_mHz"] == round(prov["estimate_hz"] * 1000)
    assert seg["amplitude_uA"] == 1000 and seg["waveform"] == "sine"     # the rest is the base's
    assert prov["source_sha256"] == hashlib.sha256(edf.read_bytes()).hexdigest()
    assert prov["channels"] == ["O1", "O2", "Pz"] and "Corcoran" in prov["method"]
    assert prov["certainty"].startswith("high")
    base = protofile.load(ROOT / "protocols" / "tacs-alpha-10hz.toml")
    assert prov["base_protocol_sha256"] == base.sha256()
    assert tesctl("validate", out, "--board", "pico-mcp4922").returncode == 0
    # never over a file
    p = tesctl("iaf", edf, "--protocol", "tacs-alpha-10hz", "--out", out)
    assert p.returncode == 2 and "never overwritten" in p.stderr
    # --use cog
    out2 = tmp_path / "cog.toml"
    assert tesctl("iaf", edf, "--protocol", "tacs-alpha-10hz", "--out", out2, "--use", "cog").returncode == 0
    assert protofile.load(out2).provenance["estimate"] == "cog"


def test_bad_input_is_one_line_exit_2(tmp_path, spkit_files):
    fif, _ = spkit_files
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    bad_edf = tmp_path / "broken.edf"
    bad_edf.write_bytes(b"0       garbage" * 10)
    short = tmp_path / "short_raw.fif"
    synthetic(10.0, seconds=5).save(short, verbose="error")
    cases = [
        ((txt,), "not an EEG file"),
        ((tmp_path / "missing.edf",), "no such file"),
        ((bad_edf,), "cannot read it as EDF"),
        ((fif, "--channels", "O1,Cz"), "Cz not in the file"),
        ((fif, "--channels", ","), "give channel names"),
        ((fif, "--protocol", "tacs-alpha-10hz"), "go together"),
        ((fif, "--protocol", "tdcs-anodal-dlpfc", "--out", tmp_path / "a.toml"), "no sine"),
        ((fif, "--protocol", "tacs-alpha-10hz", "--out", tmp_path / "a.txt"), "ends in .toml"),
        ((short,), "needs at least 8 s"),
    ]
    for args, text in cases:
        p = tesctl("iaf", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], (args, p.stderr)


def test_missing_extra_says_what_to_install(spkit_files):
    fif, _ = spkit_files
    code = ("import sys; sys.modules['mne'] = None\n"
            "from tesctl.cli import main\n"
            "main(['iaf', %r])" % str(fif))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == "tesctl: tesctl iaf needs mne: pip install 'tesctl[eeg]'"


def test_provenance_table_is_checked_and_not_in_the_canonical_protocol():
    base = (ROOT / "protocols" / "tacs-alpha-10hz.toml").read_text()
    plain = protofile.check_data(base.encode())
    good = base + ('\n[provenance]\nkind = "iaf"\nsource_sha256 = "%s"\nchannels = ["O1"]\nestimate_hz = 9.5\n'
                   % ("a" * 64))
    with_prov = protofile.check_data(good.encode())
    assert with_prov.ok and with_prov.provenance["estimate_hz"] == 9.5
    assert with_prov.sha256() == plain.sha256() and plain.provenance is None
    for bad, text in [('source_sha256 = "xyz"', "SHA-256"), ('channels = "O1"', "array of strings"),
                      ("estimate_hz = nan", "finite number"), ('estimte_hz = 9', "did you mean 'estimate_hz'"),
                      ("threshold_uA = 10.5", "whole number"), ("kind = 3", "must be a string")]:
        loaded = protofile.check_data((base + "\n[provenance]\n" + bad + "\n").encode())
        assert not loaded.ok and any(text in p for p in loaded.problems), (bad, loaded.problems)
    assert not protofile.check_data((base + "\nprovenance = 3\n").encode()).ok


def test_schema_knows_the_provenance_fields():
    schema = json.loads((ROOT / "protocols" / "schema.json").read_text())
    assert set(schema["properties"]["provenance"]["properties"]) == set(protofile.PROVENANCE_FIELDS)
    import jsonschema
    import tomllib
    doc = tomllib.loads((ROOT / "protocols" / "tacs-alpha-10hz.toml").read_text())
    doc["provenance"] = {"kind": "iaf", "source_sha256": "0" * 64, "estimate_hz": 9.5, "channels": ["O1"]}
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    doc["provenance"]["source_sha256"] = "nope"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc))


def test_eeg_module_is_not_imported_by_the_cli_entry():
    code = "import sys, tesctl.cli; print('mne' in sys.modules, 'scipy' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert p.stdout.split() == ["False", "False"]
