"""The multi-electrode TOML form (docs/montages.md) -> the canonical multi form: its exact
canonical protocol, the per-electrode overrides, problems in the file's own terms (exact
messages), canonical paths mapped back to the table that set the field, and the
anode/cathode form unchanged (the canonical hashes of main before this form existed)."""
import json
import tomllib

import jsonschema
import pytest

from tesctl import paths
from tesctl import protofile as P

# sha256 of the canonical bytes of every protocol in protocols/ at 4c1cde6, computed there
# before the multi-electrode form was added: the two-electrode form must not move a byte.
MAIN_HASHES = {
    "hybrid-tdcs-tacs.toml": "0074ae3f4b161495652a58783dab289d8b88fa19f33a83bbadaeba026ac72193",
    "ngvs-200ua.toml": "2799133a2b252eb61c0091c09f54db30306d9d48400a827ebde74c77f86248b2",
    "ngvs-400ua.toml": "cbd8b86898fba4eb764b0fa05b09ccedb2b745f0b1711d446c757234e369dd38",
    "ngvs-sham.toml": "d6561852f2bf319c99764df547706cdfd5c16c549f60f8d50d5b7c918437763e",
    "tacs-alpha-10hz.toml": "d13e1c9dcac4a96f296d5d71d00d901470a026ad6673c7762251844b23283685",
    "tacs-theta-6hz.toml": "57da03c7172dcbab5beb6dc4de62932b7bf8bd749c2121a138fe36c4379a4ceb",
    "tdcs-13-20-13.toml": "033cb44b0f1e2ab3f0a8517fb8e3938a8dcbe55fc176c12b88e6a8f55cf07166",
    "tdcs-anodal-dlpfc.toml": "70daf97642e6cba5dac12a1ceb77f29cc6dbb69ff6c03cee5335d909b091d587",
    "tdcs-cathodal-dlpfc.toml": "8183ed229a7231f24075eee6383b39e11b061c592f728905518a15fd65f4c8a0",
    "tdcs-sham.toml": "bce107db3ab504b927a61eb8eedf4ba69a093869d42c6e2e17c313cf4439cbe9",
    "tpcs-pulsed.toml": "f85b8bda3859125ebf7b75586ed191bb1ea0127f6919f29a5eaa4dc5a8798865",
    "trns-hf.toml": "d7b19bc78b05cc773cbca0f7f7adf1e170d2485338b0f2955d80f49526224ca3",
}

# The spec's example (notes/multichannel_spec.md), 6 Hz anti-phase over F4 and P4.
SPEC = """schema = 1
name = "two sites"
[montage]
return = "Cz"
[montage.electrodes]
F4 = { area_cm2 = 35 }
P4 = { area_cm2 = 35 }
Cz = { area_cm2 = 35 }
[stimulation]
waveform = "sine"
frequency_hz = 6
duration_s = 1200
ramp_up_s = 30
ramp_down_s = 30
[stimulation.currents]
F4 = { amplitude_uA = 1000 }
P4 = { amplitude_uA = 1000, phase_deg = 180 }
"""

SINE = {"waveform": "sine", "offset_uA": 0, "frequency_mHz": 6000, "band_mHz": [0, 0], "seed": 1,
        "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False}


def parse(text):
    canon, problems, layout = P.parse(text.encode(), "t.toml")
    return canon, problems, layout


def problems_of(text):
    canon, problems, _ = parse(text)
    assert canon is None
    return problems


@pytest.mark.parametrize("name", sorted(MAIN_HASHES))
def test_two_electrode_protocols_keep_their_canonical_bytes(name):
    loaded = P.load(paths.PROTOCOLS / name)
    assert loaded.ok, loaded.problems
    assert loaded.sha256() == MAIN_HASHES[name]
    assert set(loaded.canonical["montage"]) == {"anode", "cathode", "electrode_area_mm2"}
    assert not P.is_multi(loaded.canonical)


def test_canonical_form_of_the_spec_example():
    canon, problems, layout = parse(SPEC)
    assert problems == []
    assert canon == {
        "schema": 1, "name": "two sites", "sample_rate_hz": 5000,
        "montage": {"electrodes": [{"name": "F4", "area_mm2": 3500}, {"name": "P4", "area_mm2": 3500},
                                   {"name": "Cz", "area_mm2": 3500}], "return": "Cz"},
        "segments": [{"kind": "stim", "duration_ms": 1200000, "ramp_up_ms": 30000, "ramp_down_ms": 30000,
                      "ramp_shape": "linear",
                      "currents": [dict(SINE, electrode="F4", amplitude_uA=1000, phase_deg=0),
                                   dict(SINE, electrode="P4", amplitude_uA=1000, phase_deg=180)]}],
        "sham": None, "safety": {"impedance_max_ohm": 20000}}
    assert P.is_multi(canon) and P.electrode_names(canon) == ["F4", "P4", "Cz"]
    assert layout[0] == "stimulation."


def test_montage_order_is_the_tables_order_and_the_return_may_be_anywhere():
    text = SPEC.replace('return = "Cz"', 'return = "F4"').replace(
        "F4 = { amplitude_uA = 1000 }\nP4", "Cz = { amplitude_uA = 1000 }\nP4")
    canon, problems, _ = parse(text)
    assert problems == []
    assert [e["name"] for e in canon["montage"]["electrodes"]] == ["F4", "P4", "Cz"]
    assert [c["electrode"] for c in canon["segments"][0]["currents"]] == ["P4", "Cz"]


def test_signed_amplitudes_and_electrodes_without_area():
    text = SPEC.replace("F4 = { area_cm2 = 35 }", "F4 = {}").replace(
        "F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = -1000, offset_uA = -200 }")
    canon, problems, _ = parse(text)
    assert problems == []
    assert canon["montage"]["electrodes"][0] == {"name": "F4", "area_mm2": 0}
    f4 = canon["segments"][0]["currents"][0]
    assert (f4["amplitude_uA"], f4["offset_uA"]) == (-1000, -200)


def test_noise_sd_default_is_a_third_of_the_signed_amplitudes_size():
    text = SPEC.replace('waveform = "sine"\nfrequency_hz = 6', 'waveform = "noise"\nband_hz = [0.1, 100]')
    text = text.replace(", phase_deg = 180", ", seed = 2").replace("F4 = { amplitude_uA = 1000 }",
                                                                  "F4 = { amplitude_uA = -900 }")
    canon, problems, _ = parse(text)
    assert problems == []
    f4, p4 = canon["segments"][0]["currents"]
    assert (f4["noise_sd_uA"], p4["noise_sd_uA"], f4["seed"], p4["seed"]) == (300, 333, 1, 2)


def test_per_electrode_fields_override_shared_ones_at_every_level():
    text = SPEC + """
[[segments]]
[[segments]]
pause_s = 10
[[segments]]
amplitude_uA = 500
phase_deg = 90
[segments.currents]
P4 = { phase_deg = 270 }
"""
    canon, problems, layout = parse(text)
    assert problems == []
    one, pause, three = canon["segments"]
    assert pause == {"kind": "pause", "duration_ms": 10000}
    # an empty segment copies [stimulation] with its currents
    assert [(c["amplitude_uA"], c["phase_deg"]) for c in one["currents"]] == [(1000, 0), (1000, 180)]
    # per electrode beats shared at any level: [stimulation.currents] keeps F4's and P4's
    # amplitude over the segment's shared 500; the segment's own currents.P4 beats both phases
    assert [(c["amplitude_uA"], c["phase_deg"]) for c in three["currents"]] == [(1000, 90), (1000, 270)]
    assert layout[(2, 1, "phase_deg")] == "segments[2].currents.P4."
    assert layout[(2, 0, "phase_deg")] == "segments[2]."
    assert layout[(2, 0, "amplitude_uA")] == "stimulation.currents.F4."
    assert layout[(0, 0, "frequency_hz")] == "stimulation."


def test_canonical_paths_map_back_to_the_table_that_set_the_field():
    canon, _, layout = parse(SPEC)
    cases = [
        (("segments[0].currents[1].amplitude_uA", 5000, "<=", 4000, "peak current"),
         "stimulation.currents.P4.amplitude_uA = 5000: must be <= 4000 (peak current)"),
        (("segments[0].currents[0].frequency_mHz", 600000, "<=", 100000, "ten samples"),
         "stimulation.frequency_hz = 600: must be <= 100 (ten samples)"),
        (("segments[0].currents[0].seed", -1, ">=", 0, "noise seed"),
         "stimulation.currents.F4.seed = -1: must be >= 0 (noise seed)"),
        (("segments[0].currents[1].band_mHz[1]", 1500, ">", 2000, "band"),
         "stimulation.currents.P4.band_hz[1] = 1.5: must be > 2 (band)"),
        (("segments[0].currents[1]", "P4", "is", "x", "why"), "stimulation.currents.P4 = \"P4\": why (x)"),
        (("montage.electrodes[2].area_mm2", 200000, "<=", 100000, "electrode area"),
         "montage.electrodes.Cz.area_cm2 = 2000: must be <= 1000 (electrode area)"),
        (("montage.return", "Cz", "is", "x", "why"), "montage.return = \"Cz\": why (x)"),
        (("segments[0].duration_ms", 0, ">", 0, "stimulation duration"),
         "stimulation.duration_s = 0: must be > 0 (stimulation duration)"),
    ]
    for problem, line in cases:
        assert P.explain(problem, layout, canon) == line


def test_a_limit_of_one_electrode_is_said_where_its_file_set_it():
    text = SPEC.replace("P4 = { amplitude_uA = 1000,", "P4 = { amplitude_uA = 5000,")
    loaded = P.check_data(text.encode(), name="t.toml")
    assert loaded.problems[0] == ("stimulation.currents.P4.amplitude_uA = 5000: must be <= 4000 "
                                  "(peak current |offset| + |amplitude|)")


def test_a_shared_field_problem_is_said_once():
    loaded = P.check_data(SPEC.replace("frequency_hz = 6", "frequency_hz = 600").encode(), name="t.toml")
    assert loaded.problems == ["stimulation.frequency_hz = 600: must be <= 500 (at least 10 samples per cycle)"]


BAD = [
    # montage
    ('return = "Cz"', 'retrun = "Cz"',
     ["montage.retrun: unknown field (did you mean 'return'?)",
      "montage.return: missing (the electrode whose current is minus the sum of the others, one of F4, P4, Cz)"]),
    ('return = "Cz"', 'return = "CZ"', ["montage.return = \"CZ\": not an electrode of [montage.electrodes] "
                                        "(did you mean 'Cz'?)"]),
    ('return = "Cz"', 'return = 3', ["montage.return = 3: must be a string (the name of an electrode)"]),
    ('return = "Cz"', 'return = "Cz"\nanode = "F4"',
     ["montage.anode: anode/cathode do not mix with montage.return and [montage.electrodes]: "
      "name every electrode in [montage.electrodes]"]),
    ("F4 = { area_cm2 = 35 }", "F4 = { area_cm = 35 }",
     ["montage.electrodes.F4.area_cm: unknown field (did you mean 'area_cm2'?)"]),
    ("F4 = { area_cm2 = 35 }", "F4 = { area_cm2 = 35.001 }",
     ["montage.electrodes.F4.area_cm2 = 35.001: finer than the resolution 0.01"]),
    ("F4 = { area_cm2 = 35 }", "F4 = 35",
     ["montage.electrodes.F4 = 35: must be a table, e.g. { area_cm2 = 35 } or {}"]),
    ("F4 = { area_cm2 = 35 }", "F4_left_x = {}",
     ["montage.electrodes.F4_left_x: electrode name of 9 characters, must be 1 to 8"]),
    ("F4 = { area_cm2 = 35 }", '"F,4" = {}',
     ['montage.electrodes."F,4": electrode name must be letters, digits, - and _ only '
      "(it names a CSV column and a record field)"]),
    # currents (a montage with problems stops there: no electrode is known)
    ("F4 = { amplitude_uA = 1000 }", "F3 = { amplitude_uA = 1000 }",
     ["stimulation.currents.F3: not an electrode of [montage.electrodes]",
      'stimulation.currents.F4.amplitude_uA: missing (needed by waveform "sine")']),
    ("F4 = { amplitude_uA = 1000 }", "f4 = { amplitude_uA = 1000 }",
     ["stimulation.currents.f4: not an electrode of [montage.electrodes] (did you mean 'F4'?)",
      'stimulation.currents.F4.amplitude_uA: missing (needed by waveform "sine")']),
    ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000 }\nCz = { amplitude_uA = 1 }",
     ["stimulation.currents.Cz: Cz is the return electrode: its current is minus the sum of the others, "
      "it takes no fields"]),
    ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000, duration_s = 10 }",
     ["stimulation.currents.F4.duration_s: timing is shared by every electrode (one envelope): set it in "
      "[stimulation] or in the segment"]),
    ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000, phase = 10 }",
     ["stimulation.currents.F4.phase: unknown field (did you mean 'phase_deg'?)"]),
    ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000, band_hz = [1, 2] }",
     ['stimulation.currents.F4.band_hz: not used by waveform "sine" (it uses waveform, amplitude_uA, '
      "duration_s, ramp_up_s, ramp_down_s, ramp_shape, offset_uA, frequency_hz, phase_deg)"]),
    ("F4 = { amplitude_uA = 1000 }", "F4 = 1000",
     ["stimulation.currents.F4 = 1000: must be a table, e.g. { amplitude_uA = -500 }"]),
    ("F4 = { amplitude_uA = 1000 }", "F4 = {}",
     ['stimulation.currents.F4.amplitude_uA: missing (needed by waveform "sine")']),
    ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000.5 }",
     ["stimulation.currents.F4.amplitude_uA = 1000.5: must be a whole number"]),
    # shared fields
    ('waveform = "sine"\n', "", ["stimulation.waveform: missing (one of dc, sine, noise, pulse)"]),
    ("duration_s = 1200\n", "", ["stimulation.duration_s: missing (shared by every electrode)"]),
    ("frequency_hz = 6\n", "frequency_hz = 6\nband_hz = [1, 2]\n",
     ["stimulation.band_hz: not used by any electrode's waveform (sine)"]),
    ("frequency_hz = 6\n", "", ['stimulation.frequency_hz: missing (needed by waveform "sine")']),
]


@pytest.mark.parametrize("old,new,want", BAD, ids=[b[1][:30] for b in BAD])
def test_problems_in_the_files_terms(old, new, want):
    assert old in SPEC
    assert problems_of(SPEC.replace(old, new, 1)) == want


def test_structure_problems():
    one = SPEC.replace("P4 = { area_cm2 = 35 }\n", "").replace("F4 = { area_cm2 = 35 }\n", "")
    assert problems_of(one)[0] == "montage.electrodes: 1 electrode, a montage needs at least 2 (one of them the return)"
    none = SPEC.replace("[montage.electrodes]\nF4 = { area_cm2 = 35 }\nP4 = { area_cm2 = 35 }\n"
                        "Cz = { area_cm2 = 35 }\n", "")
    assert problems_of(none)[0] == ("montage.electrodes: missing (one key per electrode, in montage order, "
                                    "e.g. C3 = { area_cm2 = 35 })")
    assert problems_of(SPEC.replace("[stimulation.currents]", "[stimulation.currents.x]"))[0] == \
        "stimulation.currents.x: not an electrode of [montage.electrodes]"
    pair = 'schema = 1\nname = "x"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n[stimulation]\nwaveform = "dc"\n' \
           'amplitude_uA = 1000\nduration_s = 60\n[stimulation.currents]\nF3 = { amplitude_uA = 1 }\n'
    assert problems_of(pair) == ["stimulation.currents: per-electrode currents need the multi-electrode montage "
                                 "([montage.electrodes] and montage.return), not anode/cathode"]
    segs = SPEC + "[[segments]]\nduration_s = 60\n[segments.currents]\nF4 = { ramp_up_s = 1 }\n"
    assert problems_of(segs) == ["segments[0].currents.F4.ramp_up_s: timing is shared by every electrode "
                                 "(one envelope): set it in [stimulation] or in the segment"]


def test_refusal_names_the_command_and_the_electrodes():
    canon, _, _ = parse(SPEC)
    assert P.refuse_multi(canon, "titrate") == (
        "titrate does not take a multi-electrode montage (F4, P4, Cz) yet: this version runs those in "
        "tesctl validate, preview and run only (docs/montages.md)")
    pair = P.load(paths.PROTOCOLS / "tdcs-anodal-dlpfc.toml").canonical
    assert P.refuse_multi(pair, "titrate") is None


def test_schema_knows_the_multi_form():
    schema = json.loads((paths.PROTOCOLS / "schema.json").read_text())
    v = jsonschema.Draft202012Validator(schema)
    good = tomllib.loads(SPEC)
    assert not list(v.iter_errors(good))
    for old, new in [('return = "Cz"', 'return = "Cz"\nanode = "F4"'),
                     ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = 1000, duration_s = 10 }"),
                     ("F4 = { area_cm2 = 35 }", '"F,4" = {}'),
                     ("F4 = { amplitude_uA = 1000 }", "F4 = { amplitude_uA = -5000 }")]:
        assert list(v.iter_errors(tomllib.loads(SPEC.replace(old, new)))), new
    # a negative amplitude is the multi form's sign, never the two-electrode form's
    assert not list(v.iter_errors(tomllib.loads(SPEC.replace("F4 = { amplitude_uA = 1000 }",
                                                             "F4 = { amplitude_uA = -1000 }"))))


def test_random_damage_to_a_multi_file_never_crashes_the_parser():
    """Any value, in any place of the spec's example (and of a [[segments]] version),
    deleted or replaced: problems or a canonical protocol whose validator problems all
    explain, never an exception."""
    import copy
    import random

    from tes import validate as V
    from tes.limits import CEILING
    values = [None, 0, -1, 1.5, "x", "Cz", "F4", True, [], [1, 2], {}, {"a": 1}, {"F4": {}},
              {"amplitude_uA": 5}, 10 ** 20, float("nan")]

    def places(d, pre=()):
        yield pre
        if isinstance(d, dict):
            for k, v in d.items():
                yield from places(v, pre + (k,))

    rng = random.Random(12)
    base = tomllib.loads(SPEC)
    valid = 0
    for _ in range(1500):
        doc = copy.deepcopy(base)
        if rng.random() < 0.3:
            doc["segments"] = [{}, {"pause_s": 1}, {"currents": {"P4": {"phase_deg": 90}}}]
        for _ in range(rng.randint(1, 3)):
            place = rng.choice(list(places(doc))[1:])
            table = doc
            for k in place[:-1]:
                table = table[k]
            if not isinstance(table, dict):
                continue
            if rng.random() < 0.25:
                del table[place[-1]]
            else:
                key = place[-1] if rng.random() < 0.8 else rng.choice(["currents", "return", "electrodes", "anode"])
                table[key] = copy.deepcopy(rng.choice(values))
        canon, problems, layout, _ = P._parse_doc(doc)
        assert (canon is None) == bool(problems)
        if canon is not None:
            valid += 1
            for problem in V.check(canon, dict(CEILING)):
                assert P.explain(problem, layout, canon)
            P.host_checks(canon, layout)
    assert valid >= 50          # the validator and explain ran on some (63 with this seed)
