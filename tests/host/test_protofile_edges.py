"""protofile at its edges, from the rule's side: the noise SD default, the provenance
table's value checks, and how values are shown in a problem (each of these let a mutant of
protofile.py through, tools/mutate.py)."""
import os

import pytest

from tesctl import protofile as P

NOISE = """schema = 1
name = "edges"
sample_rate_hz = 5000
[montage]
anode = "F3"
cathode = "F4"
electrode_area_cm2 = 25
[stimulation]
waveform = "noise"
amplitude_uA = %d
band_hz = [101, 640]
seed = 1
duration_s = 10
ramp_up_s = 1
ramp_down_s = 1
"""
SHA = "0123456789abcdef" * 4


def check(text):
    return P.check_data(text.encode())


def test_noise_sd_defaults_to_a_third_of_the_amplitude_and_never_zero():
    assert check(NOISE % 1000).canonical["segments"][0]["noise_sd_uA"] == 333
    loaded = check(NOISE % 2)                     # 2 // 3 == 0: the floor of 1 uA holds
    assert loaded.problems == [] and loaded.canonical["segments"][0]["noise_sd_uA"] == 1


def test_provenance_values_are_checked_by_kind():
    good = check(NOISE % 1000 + '[provenance]\nkind = "iaf"\nsource_sha256 = "%s"\nestimate_hz = 10.5\n'
                 'channels_with_peak = 3\n' % SHA)
    assert good.problems == []
    assert good.provenance == {"kind": "iaf", "source_sha256": SHA, "estimate_hz": 10.5, "channels_with_peak": 3}
    for field, value, why in [
        ("source_sha256", '"%s"' % SHA.upper(), "must be a SHA-256 (64 lowercase hex digits)"),
        ("source_sha256", '"%s"' % SHA[:63], "must be a SHA-256 (64 lowercase hex digits)"),
        ("estimate_hz", "true", "must be a finite number"),          # a bool is no number
        ("estimate_hz", '"10"', "must be a finite number"),
        ("channels_with_peak", "2.5", "must be a whole number"),
        ("kind", "1", "must be a string"),
    ]:
        loaded = check(NOISE % 1000 + "[provenance]\n%s = %s\n" % (field, value))
        assert len(loaded.problems) == 1, (field, value, loaded.problems)
        assert loaded.problems[0].startswith("provenance.%s = " % field) and loaded.problems[0].endswith(why), \
            loaded.problems


def test_values_in_problems_are_shown_short_and_shallow():
    assert P._fmt(list(range(8))) == "[0, 1, 2, 3, 4, 5, 6, 7]"
    assert P._fmt(list(range(9))) == "[0, 1, 2, 3, 4, 5, 6, 7, ...]"
    assert P._fmt([[[1]]]) == "[[[1]]]"
    assert P._fmt([[[[1]]]]) == "[[[[...]]]]"            # three levels shown, then [...]
    assert P._fmt(True) == "true" and P._fmt("a\nb") == '"a\\nb"'


def test_a_powerless_band_is_named_in_the_file_s_units():
    problems = check((NOISE % 1000).replace("band_hz = [101, 640]", "band_hz = [0.001, 0.002]")).problems
    assert len(problems) == 1, problems
    assert problems[0].startswith("stimulation.band_hz = [0.001, 0.002]: the band carries too little power"), problems


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    # Opened without O_NONBLOCK, a FIFO with no writer would block the CLI for ever.
    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        P.read_protocol(fifo)


def test_a_file_at_the_size_limit_is_read_whole_and_one_past_it_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(b"#" * P.MAX_FILE_BYTES)
    assert len(P.read_protocol(path)) == P.MAX_FILE_BYTES
    path.write_bytes(b"#" * (P.MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match="over the %d-byte limit" % P.MAX_FILE_BYTES):
        P.read_protocol(path)


def test_a_band_just_above_half_the_asked_sd_is_accepted():
    # The filter gives 51.6 % of noise_sd_uA here: over the 50 % bar by little, so the power
    # estimate's arithmetic (the Irwin-Hall input variance) must be exact to accept it.
    text = (NOISE % 1000).replace("band_hz = [101, 640]", "band_hz = [2420, 2421]")
    loaded = check(text)
    assert loaded.problems == [], loaded.problems
    assert 0.5 <= P.noise_sd_ratio(loaded.canonical["segments"][0], 5000) < 0.52
