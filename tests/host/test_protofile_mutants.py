"""protofile rules that a full mutation run (tools/mutate.py) found untested: how values are
shown in problems, the range and shape checks a user meets, the canonical defaults, the
canonical size limit, and the noise band probe (the host's estimate of the share of
noise_sd_uA a band delivers must agree with the engine's own gain design)."""
import errno
import os

import pytest

from tes import noise as N
from tesctl import protofile as P

TOP = """schema = 1
name = "mutants"
sample_rate_hz = 5000
"""
HEAD = TOP + """[montage]
anode = "F3"
cathode = "F4"
electrode_area_cm2 = 25
"""
DC = HEAD + """[stimulation]
waveform = "dc"
amplitude_uA = %s
duration_s = 10
ramp_up_s = 1
ramp_down_s = 1
"""
NOISE = HEAD + """[stimulation]
waveform = "noise"
amplitude_uA = %d
band_hz = [%s, %s]
duration_s = 10
ramp_up_s = 1
ramp_down_s = 1
"""


def check(text):
    return P.check_data(text.encode())


def problems(text):
    return check(text).problems


# --- values shown in problems --------------------------------------------------------------

def test_a_value_of_60_characters_is_shown_whole_and_a_longer_one_is_cut_at_60():
    v58 = "x" * 58                                   # json quotes make it 60 characters
    assert problems(DC % ('"%s"' % v58)) == ['stimulation.amplitude_uA = "%s": must be a number' % v58]
    v59 = "x" * 59                                   # 61 characters: cut, its length named
    assert problems(DC % ('"%s"' % v59)) == [
        'stimulation.amplitude_uA = %s...(61 characters): must be a number' % ('"' + v59)[:60]]


def test_an_array_of_60_characters_is_shown_whole_and_a_longer_one_is_cut_with_a_closing_bracket():
    a56 = "a" * 56                                   # ["aaa...a"]: 60 characters
    assert problems(DC % ('["%s"]' % a56)) == ['stimulation.amplitude_uA = ["%s"]: must be a number' % a56]
    a57 = "a" * 57
    assert problems(DC % ('["%s"]' % a57)) == [
        'stimulation.amplitude_uA = %s...]: must be a number' % ('["%s"]' % a57)[:60]]


def test_a_whole_float_from_1e16_is_shown_as_python_writes_it():
    assert problems(DC % "1e16") == ["stimulation.amplitude_uA = 1e+16: out of range"]
    assert problems(DC % "-1e16") == ["stimulation.amplitude_uA = -1e+16: out of range"]


def test_numbers_from_2_to_the_52_are_out_of_range_and_below_reach_the_limits():
    for text in ("4503599627370496", "4503599627370496.0", "-4503599627370496", "9007199254740992"):
        assert problems(DC % text) == ["stimulation.amplitude_uA = %s: out of range"
                                       % text.replace(".0", "")], text
    below = problems(DC % "4503599627370495")       # converted: the validator's limit shows
    assert below and all("out of range" not in p for p in below)
    assert below[0].startswith("stimulation.amplitude_uA = 4503599627370495: must be <= ")
    assert problems(DC % "2251799813685248")[0].startswith("stimulation.amplitude_uA = 2251799813685248: must be")


def test_an_unknown_key_suggests_the_closest_known_one():
    got = problems(DC.replace("waveform", "wavefrom") % "1000")
    assert got[0] == "stimulation.wavefrom: unknown field (did you mean 'waveform'?)"


def test_a_missing_file_names_the_operating_system_s_reason(tmp_path):
    path = tmp_path / "nope.toml"
    loaded = P.load(path)
    assert loaded.problems == ["%s: cannot read (%s)" % (path, os.strerror(errno.ENOENT))]
    assert loaded.path == str(path) and loaded.canonical is None


def test_a_protocol_file_reads_where_the_os_has_no_o_nonblock(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text(DC % "1000")
    monkeypatch.delattr(os, "O_NONBLOCK")            # Windows: no such flag, nothing to add
    loaded = P.load(path)
    assert loaded.problems == [] and loaded.canonical["segments"][0]["amplitude_uA"] == 1000


# --- structure ------------------------------------------------------------------------------

def test_a_protocol_error_carries_every_problem_and_names_them_all():
    e = P.ProtocolError(["a: missing", "b = 1: must be a string"])
    assert e.problems == ["a: missing", "b = 1: must be a string"]
    assert str(e) == "a: missing; b = 1: must be a string"


def test_a_loaded_protocol_keeps_its_name_and_where_each_segment_came_from(tmp_path):
    one = check(DC % "1000")
    assert one.path == "protocol" and one.layout == {0: "stimulation."}
    segs = P.check_data((HEAD + '[stimulation]\nwaveform = "dc"\nramp_up_s = 1\nramp_down_s = 1\n'
                         '[[segments]]\namplitude_uA = 1000\nduration_s = 10\n'
                         '[[segments]]\npause_s = 5\n'
                         '[[segments]]\namplitude_uA = 500\nduration_s = 10\n').encode(), name="x.toml")
    assert segs.problems == [] and segs.path == "x.toml"
    assert segs.layout == {0: "segments[0].", 1: "segments[1].", 2: "segments[2]."}
    path = tmp_path / "p.toml"
    path.write_text(DC % "1000")
    assert P.load(path).path == str(path)


def test_a_required_field_present_but_bad_is_reported_once_not_as_missing():
    assert problems(NOISE.replace("amplitude_uA = %d", 'amplitude_uA = "lots"') % ("100", "640")) == [
        'stimulation.amplitude_uA = "lots": must be a number']
    seg = HEAD + '[[segments]]\nwaveform = "dc"\namplitude_uA = "lots"\nduration_s = 10\nfrequency_hz = 10\n'
    assert problems(seg) == ['segments[0].amplitude_uA = "lots": must be a number']


def test_a_segment_field_its_waveform_does_not_use_is_refused():
    seg = HEAD + '[[segments]]\nwaveform = "dc"\namplitude_uA = 1000\nduration_s = 10\nfrequency_hz = 10\n'
    assert problems(seg) == ["segments[0].frequency_hz: not used by waveform \"dc\" (it uses %s)"
                             % ", ".join(P.COMMON)]


def test_provenance_unknown_fields_and_string_arrays_are_checked():
    assert problems(DC % "1000" + '[provenance]\nknd = "iaf"\n') == [
        "provenance.knd: unknown field (did you mean 'kind'?)"]
    assert problems(DC % "1000" + '[provenance]\nchannels = [1, 2]\n') == [
        "provenance.channels = [1, 2]: must be an array of strings"]
    assert problems(DC % "1000" + '[provenance]\nchannels = "F3"\n') == [
        'provenance.channels = "F3": must be an array of strings']
    good = check(DC % "1000" + '[provenance]\nchannels = ["F3", "Fz"]\n')
    assert good.problems == [] and good.provenance == {"channels": ["F3", "Fz"]}


def test_a_description_must_be_a_string():
    assert problems(DC.replace('name = "mutants"', 'name = "mutants"\ndescription = 5') % "1000") == [
        "description: must be a string"]
    assert problems(DC.replace('name = "mutants"', 'name = "mutants"\ndescription = "ok"') % "1000") == []


def test_the_sample_rate_is_canonical_integer_and_checked_as_a_number():
    loaded = check((DC % "1000").replace("sample_rate_hz = 5000", "sample_rate_hz = 5000.0"))
    assert loaded.problems == [] and type(loaded.canonical["sample_rate_hz"]) is int
    assert b'"sample_rate_hz":5000,' in loaded.canonical_bytes()
    assert problems((DC % "1000").replace("sample_rate_hz = 5000", 'sample_rate_hz = "fast"')) == [
        'sample_rate_hz = "fast": must be a number']


def test_segments_that_are_no_array_of_tables_are_named():
    montage = HEAD[len(TOP):]
    assert problems(TOP + "segments = 5\n" + montage) == [
        "segments: must be a non-empty array of tables ([[segments]])"]
    assert problems(TOP + "segments = [1, 2]\n" + montage) == [
        "segments[0]: must be a table", "segments[1]: must be a table"]


def test_a_pause_segment_with_other_fields_names_the_first_of_them():
    text = HEAD + '[[segments]]\npause_s = 5\nwaveform = "dc"\namplitude_uA = 1\n'
    assert problems(text) == ["segments[0].waveform: a pause segment takes only pause_s"]


def test_a_sham_with_no_stimulation_segment_to_copy_takes_30_s_ramps():
    canon, probs, _ = P.parse((HEAD + "[[segments]]\npause_s = 5\n[sham]\n").encode())
    assert probs == [] and canon["sham"] == {"ramp_up_ms": 30000, "plateau_ms": 0, "ramp_down_ms": 30000,
                                             "double": False}
    # the validator then refuses the protocol (no stimulation), not the sham's ramps
    assert all("sham" not in p for p in problems(HEAD + "[[segments]]\npause_s = 5\n[sham]\n"))


def test_an_electrode_area_not_given_is_0_in_the_canonical_protocol():
    loaded = check((DC % "1000").replace("electrode_area_cm2 = 25\n", ""))
    assert loaded.problems == [] and loaded.canonical["montage"]["electrode_area_mm2"] == 0


def test_a_value_that_is_not_an_integer_is_explained_as_it_is():
    canon = check(NOISE % (1000, "100", "640")).canonical
    line = P.explain(("segments[0].band_mHz", [1.5, 2], "is", "[low, high] integers", "noise band"),
                     {0: "stimulation."}, canon)
    assert line == "stimulation.band_hz = [1.5, 2]: noise band ([low, high] integers)"
    line = P.explain(("segments[0].duration_ms", 2.5, "<=", 10, "why"), {0: "stimulation."}, canon)
    assert line == "stimulation.duration_s = 2.5: must be <= 0.01 (why)"


# --- the canonical size limit ---------------------------------------------------------------

def test_a_canonical_protocol_of_exactly_the_device_s_size_is_accepted_and_one_byte_more_refused():
    base = check(DC % "1000")
    pad = P.MAX_CANONICAL_BYTES - len(base.canonical_bytes())
    name = "mutants" + "n" * pad
    exact = check((DC % "1000").replace('name = "mutants"', 'name = "%s"' % name))
    assert len(exact.canonical_bytes()) == P.MAX_CANONICAL_BYTES and exact.problems == []
    over = check((DC % "1000").replace('name = "mutants"', 'name = "%sn"' % name))
    assert over.problems == ["protocol: its canonical form is %d bytes, the device holds at most %d (shorten "
                             "name, description or montage names, or use fewer segments)"
                             % (P.MAX_CANONICAL_BYTES + 1, P.MAX_CANONICAL_BYTES)]


# --- the noise band probe -------------------------------------------------------------------

def engine_gain_uncapped(seg, fs, monkeypatch):
    """The Q12 gain the engine's design would pick for seg if its gain had no cap."""
    with monkeypatch.context() as m:
        m.setattr(N, "GAIN_MAX", 1 << 60)
        return N._gain(N.design(seg, fs), seg)


def expected_ratio(seg, fs, monkeypatch):
    need = engine_gain_uncapped(seg, fs, monkeypatch)
    return 1.0 if need <= N.GAIN_MAX else N.GAIN_MAX / need


def noise_seg(low_mhz, high_mhz, sd=1000, amp=1000):
    return {"kind": "stim", "waveform": "noise", "band_mHz": [low_mhz, high_mhz], "seed": 1,
            "noise_sd_uA": sd, "amplitude_uA": amp}


# (band in mHz, sample rate, noise_sd_uA, amplitude_uA): wide, narrow, near Nyquist, very low
# edges (the DC blocker), a 1 uA peak and none at all.
PROBES = [((0, 1000000), 5000, 1000, 1000), ((10000, 100000), 5000, 1000, 1000),
          ((100000, 640000), 5000, 1000, 1000), ((2300000, 2490000), 5000, 1000, 1000),
          ((2300000, 2490000), 20000, 1000, 1000), ((1000, 2000), 1000, 1000, 1000),
          ((1000, 2000), 20000, 1000, 1000), ((10, 1000), 20000, 1000, 1000),
          ((100, 1000), 5000, 1000, 1000), ((5000, 6000), 1000, 1000, 1000),
          ((1, 100000), 5000, 1000, 1000), ((1, 1000000), 5000, 1, 1), ((1, 1000000), 5000, 1, 0),
          ((484717, 500000), 1000, 1000, 1000), ((482385, 500000), 1000, 1000, 1000),
          ((484823, 500000), 1000, 1000, 1000), ((476882, 500000), 1000, 1000, 1000),
          ((100000, 640000), 5000, 700, 2000), ((2490000, 2500000), 5000, 3, 3)]


@pytest.mark.parametrize("band,fs,sd,amp", PROBES)
def test_the_host_s_noise_sd_share_agrees_with_the_engine_s_gain_design(band, fs, sd, amp, monkeypatch):
    seg = noise_seg(band[0], band[1], sd, amp)
    assert P.noise_sd_ratio(seg, fs) == expected_ratio(seg, fs, monkeypatch)


def test_a_band_that_reaches_the_engine_as_silence_has_no_share():
    # the filter's output rounds to 0 for every sample: no gain brings any noise back
    assert P.noise_sd_ratio(noise_seg(2499000, 2500000), 5000) == 0.0
    assert P.noise_sd_ratio(noise_seg(10, 20), 5000) == 0.0


def test_the_refusal_names_the_share_the_band_delivers_in_percent(monkeypatch):
    text = (NOISE % (1000, "2300", "2490")).replace("duration_s", "noise_sd_uA = 1000\nduration_s")
    seg = check((NOISE % (1000, "100", "640")).replace("duration_s", "noise_sd_uA = 1000\nduration_s"))
    seg = dict(seg.canonical["segments"][0], band_mHz=[2300000, 2490000])
    share = expected_ratio(seg, 5000, monkeypatch)
    assert 0.3 < share < 0.5
    assert problems(text) == ["stimulation.band_hz = [2300, 2490]: the band carries too little power: the engine's "
                              "filter delivers %.1f%% of noise_sd_uA at 5000 S/s (widen the band or move it below "
                              "Nyquist)" % (100 * share)]


def test_a_powerless_band_is_refused_from_1_ua_and_not_checked_at_0_ua():
    assert problems(NOISE % (1, "2499", "2500"))[0].startswith("stimulation.band_hz = [2499, 2500]: the band "
                                                              "carries too little power")
    zero = check(NOISE % (0, "2499", "2500"))
    assert zero.problems == [] and zero.canonical["segments"][0]["amplitude_uA"] == 0
