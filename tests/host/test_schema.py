"""protocols/schema.json: a JSON Schema (draft 2020-12) of the TOML file for editors."""
import json
import tomllib

import jsonschema
import pytest

from tes.limits import CEILING
from tes.validate import SEED_MAX
from tesctl import paths, protofile

SCHEMA = json.loads((paths.PROTOCOLS / "schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BAD = paths.ROOT / "tests" / "host" / "bad_protocols"
PROTOCOLS = sorted(paths.PROTOCOLS.glob("*.toml"))

# bad files whose problem is one field's type, range or name: the schema sees them too
SCHEMA_REJECTS = [
    "unknown-top-key", "unknown-stim-key", "unknown-sham-key", "string-amplitude", "bool-duration",
    "nan-amplitude", "inf-duration", "negative-duration", "zero-duration", "unknown-waveform",
    "missing-waveform", "sine-missing-frequency", "noise-missing-band", "pulse-missing-width",
    "above-max-current", "ramp-too-short", "ramp-too-long", "bad-schema", "missing-name",
    "phase-out-of-range", "impedance-too-high", "pause-extra-keys", "missing-anode",
    "negative-amplitude", "seed-out-of-range", "sample-rate-too-low", "sample-rate-above-ceiling",
    "band-three-edges", "phase-not-whole", "empty-segments", "montage-not-table",
    "sham-enabled-not-bool", "unknown-ramp-shape", "too-many-segments", "pause-negative",
]


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_ready_protocols_validate(path):
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    errors = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors


def test_properties_match_protofile():
    props = SCHEMA["properties"]
    assert set(props) == set(protofile.TOP_FIELDS)
    assert set(SCHEMA["$defs"]["stim"]["properties"]) == set(protofile.STIM_FIELDS)
    assert set(props["sham"]["properties"]) == set(protofile.SHAM_FIELDS) | {"enabled"}
    assert set(SCHEMA["$defs"]["montage_pair"]["properties"]) == set(protofile.MONTAGE_FIELDS)
    # the multi-electrode form (docs/montages.md)
    multi = SCHEMA["$defs"]["montage_multi"]["properties"]
    assert set(multi) == set(protofile.MULTI_MONTAGE_FIELDS)
    assert set(multi["electrodes"]["additionalProperties"]["properties"]) == set(protofile.ELECTRODE_FIELDS)
    assert set(SCHEMA["$defs"]["current"]["properties"]) == set(protofile.CURRENT_FIELDS)
    assert set(SCHEMA["$defs"]["stim_multi"]["properties"]) == set(protofile.STIM_FIELDS) | {"currents"}
    assert set(props["safety"]["properties"]) == set(protofile.SAFETY_FIELDS)
    assert set(SCHEMA["$defs"]["pause"]["properties"]) == {"pause_s"}


def test_every_field_described_and_defaults_match():
    stim = SCHEMA["$defs"]["stim"]["properties"]
    for key, spec in stim.items():
        assert spec.get("description"), key
    for key, default in protofile.STIM_DEFAULTS.items():
        assert stim[key]["default"] == default, key
    assert stim["waveform"]["enum"] == ["dc", "sine", "noise", "pulse"]
    assert SCHEMA["properties"]["sample_rate_hz"]["default"] == protofile.DEFAULT_SAMPLE_RATE
    imp = SCHEMA["properties"]["safety"]["properties"]["impedance_max_ohm"]
    assert imp["default"] == protofile.DEFAULT_IMPEDANCE_MAX


def test_ranges_come_from_the_ceiling():
    stim = SCHEMA["$defs"]["stim"]["properties"]
    props = SCHEMA["properties"]
    assert stim["amplitude_uA"]["maximum"] == CEILING["max_current_uA"]
    assert stim["ramp_up_s"]["minimum"] * 1000 == CEILING["min_ramp_ms"]
    assert stim["ramp_down_s"]["maximum"] * 1000 == CEILING["max_ramp_ms"]
    assert stim["duration_s"]["maximum"] * 1000 == CEILING["max_stim_ms"]
    assert stim["seed"]["maximum"] == SEED_MAX
    assert props["sample_rate_hz"]["minimum"] == CEILING["min_sample_rate_hz"]
    assert props["sample_rate_hz"]["maximum"] == CEILING["max_sample_rate_hz"]
    assert props["safety"]["properties"]["impedance_max_ohm"]["maximum"] == CEILING["max_impedance_ohm"]
    assert props["segments"]["maxItems"] == CEILING["max_segments"]


@pytest.mark.parametrize("name", SCHEMA_REJECTS)
def test_bad_files_rejected_by_schema(name):
    doc = tomllib.loads((BAD / (name + ".toml")).read_text(encoding="utf-8"))
    assert list(VALIDATOR.iter_errors(doc)), name


def test_schema_accepts_what_validate_accepts():
    doc = {"schema": 1, "name": "x", "montage": {"anode": "F3", "cathode": "Fp2"},
           "stimulation": {"waveform": "sine", "amplitude_uA": 1000.0, "frequency_hz": 10.3,
                           "duration_s": 600.123},
           "segments": [{}, {"pause_s": 5}, {"waveform": "noise", "band_hz": [0.1, 100]}],
           "sham": {"enabled": False}}
    assert not list(VALIDATOR.iter_errors(doc))
    text = ('schema = 1\nname = "x"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n[stimulation]\n'
            'waveform = "sine"\namplitude_uA = 1000.0\nfrequency_hz = 10.3\nduration_s = 600.123\n'
            '[[segments]]\n[[segments]]\npause_s = 5\n[[segments]]\nwaveform = "noise"\nband_hz = [0.1, 100]\n'
            '[sham]\nenabled = false\n')
    assert tomllib.loads(text) == doc
    assert protofile.check_data(text.encode()).ok
