"""Protocol files -> canonical protocols, pinned: the exact canonical form and bytes of
small files, the SHA-256 of every ready protocol (tests/vectors/protocols.json, written by
tools/gen_protocol_vectors.py), unit scaling and resolution, defaults, and problems in the
file's own terms."""
import hashlib
import json
from pathlib import Path

import pytest

from tesctl import protofile as P

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "protocols.json").read_text())

DC = b"""schema = 1
name = "DC"
[montage]
anode = "F3"
cathode = "Fp2"
electrode_area_cm2 = 35
[stimulation]
waveform = "dc"
amplitude_uA = 2000
duration_s = 1200
"""


def canon(text, ok=True):
    loaded = P.check_data(text if isinstance(text, bytes) else text.encode(), name="t.toml")
    assert loaded.ok == ok, loaded.problems
    return loaded


def test_every_ready_protocol_keeps_its_hash():
    files = sorted(p.name for p in (ROOT / "protocols").glob("*.toml"))
    assert files == sorted(VECTORS), "regenerate with tools/gen_protocol_vectors.py"
    for name in files:
        loaded = P.load(ROOT / "protocols" / name)
        assert loaded.ok, (name, loaded.problems)
        assert loaded.sha256() == VECTORS[name]["sha256"], name
        assert len(loaded.canonical_bytes()) == VECTORS[name]["bytes"], name


def test_canonical_form_of_a_dc_file_with_defaults():
    c = canon(DC).canonical
    assert c == {
        "schema": 1, "name": "DC", "sample_rate_hz": 5000,
        "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
        "segments": [{"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
                      "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1, "noise_sd_uA": 0,
                      "pulse_width_us": 0, "biphasic": False, "duration_ms": 1200000, "ramp_up_ms": 30000,
                      "ramp_down_ms": 30000, "ramp_shape": "linear"}],
        "sham": None, "safety": {"impedance_max_ohm": 20000}}


def test_canonical_bytes_are_sorted_compact_ascii_and_name_the_protocol():
    loaded = canon(DC)
    raw = loaded.canonical_bytes()
    assert raw == (b'{"montage":{"anode":"F3","cathode":"Fp2","electrode_area_mm2":3500},"name":"DC",'
                   b'"safety":{"impedance_max_ohm":20000},"sample_rate_hz":5000,"schema":1,'
                   b'"segments":[{"amplitude_uA":2000,"band_mHz":[0,0],"biphasic":false,"duration_ms":1200000,'
                   b'"frequency_mHz":0,"kind":"stim","noise_sd_uA":0,"offset_uA":0,"phase_deg":0,'
                   b'"pulse_width_us":0,"ramp_down_ms":30000,"ramp_shape":"linear","ramp_up_ms":30000,'
                   b'"seed":1,"waveform":"dc"}],"sham":null}')
    assert loaded.sha256() == hashlib.sha256(raw).hexdigest()
    # Non-ASCII names are escaped, so the bytes do not depend on an encoder's choices.
    name = canon(DC.replace(b'"DC"', '"Stimulation über F3"'.encode())).canonical_bytes()
    assert b'"name":"Stimulation \\u00fcber F3"' in name


def test_units_scale_to_integers():
    text = DC.decode().replace('waveform = "dc"', 'waveform = "sine"\nfrequency_hz = 10.25\noffset_uA = -500')
    text = text.replace("duration_s = 1200", "duration_s = 0.5\nramp_up_s = 0.125\nramp_down_s = 2")
    seg = canon(text).canonical["segments"][0]
    assert (seg["frequency_mHz"], seg["duration_ms"], seg["ramp_up_ms"], seg["ramp_down_ms"],
            seg["offset_uA"]) == (10250, 500, 125, 2000, -500)
    text = DC.decode().replace('waveform = "dc"', 'waveform = "noise"\nband_hz = [0.1, 100]')
    text = text.replace("amplitude_uA = 2000", "amplitude_uA = 1000")
    seg = canon(text).canonical["segments"][0]
    assert seg["band_mHz"] == [100, 100000] and seg["noise_sd_uA"] == 333 and seg["seed"] == 1
    text = DC.decode().replace("electrode_area_cm2 = 35", "electrode_area_cm2 = 12.34")
    assert canon(text).canonical["montage"]["electrode_area_mm2"] == 1234


def test_finer_than_the_resolution_is_refused():
    for field, value, res in (("duration_s", "1200.0005", "0.001"), ("frequency_hz", "10.0001", "0.001")):
        text = DC.decode().replace('waveform = "dc"', 'waveform = "sine"\nfrequency_hz = 10')
        text = text.replace("%s = %s" % (field, "1200" if field == "duration_s" else "10"),
                            "%s = %s" % (field, value))
        loaded = canon(text, ok=False)
        assert loaded.problems == ["stimulation.%s = %s: finer than the resolution %s" % (field, value, res)], \
            loaded.problems
    loaded = canon(DC.decode().replace("amplitude_uA = 2000", "amplitude_uA = 2000.5"), ok=False)
    assert loaded.problems == ["stimulation.amplitude_uA = 2000.5: must be a whole number"]
    loaded = canon(DC.decode().replace("amplitude_uA = 2000", "amplitude_uA = 2000.0"))
    assert loaded.canonical["segments"][0]["amplitude_uA"] == 2000


def test_values_of_the_wrong_kind():
    cases = [("amplitude_uA = 2000", "amplitude_uA = true", "stimulation.amplitude_uA = true: must be a number"),
             ("amplitude_uA = 2000", 'amplitude_uA = "2000"', 'stimulation.amplitude_uA = "2000": must be a number'),
             ("amplitude_uA = 2000", "amplitude_uA = nan", "stimulation.amplitude_uA = nan: must be a finite number"),
             ("amplitude_uA = 2000", "amplitude_uA = inf", "stimulation.amplitude_uA = inf: must be a finite number"),
             ('anode = "F3"', "anode = 3", "montage.anode = 3: must be a string"),
             ('waveform = "dc"', 'waveform = "dc"\nbiphasic = 1', "stimulation.biphasic = 1: must be true or false")]
    for old, new, problem in cases:
        loaded = canon(DC.decode().replace(old, new), ok=False)
        assert problem in loaded.problems, (new, loaded.problems)


def test_sham_defaults_follow_the_first_segment():
    text = DC.decode().replace("duration_s = 1200", "duration_s = 1200\nramp_up_s = 20\nramp_down_s = 25")
    c = canon(text + "[sham]\n").canonical
    assert c["sham"] == {"ramp_up_ms": 20000, "plateau_ms": 0, "ramp_down_ms": 25000, "double": False}
    c = canon(text + "[sham]\nplateau_s = 5\ndouble = true\n").canonical
    assert c["sham"] == {"ramp_up_ms": 20000, "plateau_ms": 5000, "ramp_down_ms": 25000, "double": True}
    assert canon(text + "[sham]\nenabled = false\n").canonical["sham"] is None
    loaded = canon(text + "[sham]\nenabled = 1\n", ok=False)
    assert loaded.problems == ["sham.enabled = 1: must be true or false"]


def test_limit_problems_are_reported_in_file_units():
    loaded = canon(DC.decode().replace("amplitude_uA = 2000", "amplitude_uA = 4001"), ok=False)
    assert loaded.problems == ["stimulation.amplitude_uA = 4001: must be <= 4000 (peak current |offset| + amplitude)"]
    loaded = canon(DC.decode().replace("duration_s = 1200", "duration_s = 2341"), ok=False)
    assert loaded.problems == ["stimulation: total stimulation time is 2401 s, must be <= 2400 s"], loaded.problems
    loaded = canon(DC.decode().replace("duration_s = 1200", "duration_s = 1200\nramp_up_s = 0.05"), ok=False)
    assert loaded.problems == ["stimulation.ramp_up_s = 0.05: must be >= 0.1 (ramp length)"], loaded.problems
    text = DC.decode().replace("amplitude_uA = 2000", "amplitude_uA = 4000").replace("duration_s = 1200",
                                                                                     "duration_s = 1780")
    loaded = canon(text, ok=False)
    assert loaded.problems == ["stimulation: charge per session is 7.24 C, must be <= 7.2 C"], loaded.problems


def test_segments_and_pauses_map_back_to_file_paths():
    text = DC.decode().split("[stimulation]")[0] + (
        '[[segments]]\nwaveform = "dc"\namplitude_uA = 1000\nduration_s = 10\n'
        '[[segments]]\npause_s = 0.0001\n'
        '[[segments]]\nwaveform = "dc"\namplitude_uA = 5000\nduration_s = 10\n')
    loaded = canon(text, ok=False)
    assert loaded.problems == ["segments[1].pause_s = 0.0001: finer than the resolution 0.001"], loaded.problems
    text = text.replace("pause_s = 0.0001", "pause_s = 3")
    loaded = canon(text, ok=False)
    assert loaded.problems == ["segments[2].amplitude_uA = 5000: must be <= 4000 (peak current |offset| + amplitude)"]
    loaded = canon(text.replace("amplitude_uA = 5000", "amplitude_uA = 500"))
    assert [s["kind"] for s in loaded.canonical["segments"]] == ["stim", "pause", "stim"]
    assert loaded.canonical["segments"][1] == {"kind": "pause", "duration_ms": 3000}


@pytest.mark.parametrize("field,value,problem", [
    ("schema", "2", "schema = 2: unsupported (this tesctl reads schema 1)"),
    ("schema", "true", "schema = true: unsupported (this tesctl reads schema 1)"),
    ("name", '""', "name: missing or empty"),
    ("name", "5", "name = 5: must be a string"),
])
def test_top_level_problems(field, value, problem):
    text = DC.decode().replace('name = "DC"', "name = %s" % value) if field == "name" else \
        DC.decode().replace("schema = 1", "schema = %s" % value)
    assert problem in canon(text, ok=False).problems


def test_missing_and_unknown_fields():
    assert "schema: missing (use schema = 1)" in canon(DC.replace(b"schema = 1\n", b""), ok=False).problems
    loaded = canon(DC.decode().replace("amplitude_uA", "amplitude_ua"), ok=False)
    assert "stimulation.amplitude_ua: unknown field (did you mean 'amplitude_uA'?)" in loaded.problems
    assert "stimulation.amplitude_uA: missing (needed by waveform \"dc\")" in loaded.problems
    loaded = canon(DC.decode().replace('cathode = "Fp2"\n', ""), ok=False)
    assert "montage.cathode: missing (electrode position, e.g. F3)" in loaded.problems
    loaded = canon(DC.split(b"[stimulation]")[0], ok=False)
    assert loaded.problems == ["stimulation: missing (a [stimulation] table or [[segments]])"]


def test_a_missing_or_bad_waveform_is_reported_once():
    head = b'schema = 1\nname = "x"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n[stimulation]\n'
    canon, problems, _ = P.parse(head + b"amplitude_uA = 1000\nduration_s = 60\n")
    assert canon is None and problems == ["stimulation.waveform: missing (one of dc, sine, noise, pulse)"]
    # A waveform of the wrong type: that problem only, not "missing" as well.
    canon, problems, _ = P.parse(head + b"waveform = 3\namplitude_uA = 1000\nduration_s = 60\n")
    assert canon is None and problems == ["stimulation.waveform = 3: must be a string"], problems
