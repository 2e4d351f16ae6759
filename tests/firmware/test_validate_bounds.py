"""Every rule of the protocol validator (tes.validate, which also runs on the device) tried
just under, at and just over its bound, with the exact problem it must report.

Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import validate as V
from tes.limits import CEILING

LIM = dict(CEILING)


def seg(**kw):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0, "frequency_mHz": 0,
         "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
         "biphasic": False, "duration_ms": 60000, "ramp_up_ms": 30000, "ramp_down_ms": 30000,
         "ramp_shape": "linear"}
    s.update(kw)
    return s


def sine(**kw):
    base = {"waveform": "sine", "amplitude_uA": 1000, "frequency_mHz": 10000}
    base.update(kw)
    return seg(**base)


def noise(**kw):
    base = {"waveform": "noise", "amplitude_uA": 1000, "band_mHz": [101000, 640000], "seed": 7,
            "noise_sd_uA": 333}
    base.update(kw)
    return seg(**base)


def pulse(**kw):
    base = {"waveform": "pulse", "amplitude_uA": 1000, "frequency_mHz": 10000, "pulse_width_us": 1000}
    base.update(kw)
    return seg(**base)


def proto(segments=None, fs=5000, sham=None, z=20000, **kw):
    p = {"schema": 1, "name": "t", "sample_rate_hz": fs,
         "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
         "segments": segments if segments is not None else [seg()], "sham": sham,
         "safety": {"impedance_max_ohm": z}}
    p.update(kw)
    return p


def problems(p, lim=LIM):
    return V.check(p, lim)


def one(p, lim=LIM):
    """The single problem of p (asserts there is exactly one)."""
    out = V.check(p, lim)
    assert len(out) == 1, out
    return out[0]


def ok(p, lim=LIM):
    out = V.check(p, lim)
    assert out == [], out


# ---- structure ---------------------------------------------------------------------------
def test_a_valid_protocol_of_each_waveform_passes():
    for s in (seg(), sine(), noise(), pulse(), pulse(biphasic=True)):
        ok(proto([s]))
    ok(proto([seg(), {"kind": "pause", "duration_ms": 1000}, sine()]))


def test_not_an_object():
    for bad in ([], "x", 3, None):
        assert problems(bad) == [("", bad, "is", "object", "a protocol is a JSON object")]


def test_top_level_fields_known_present_typed():
    p = proto()
    p["extra"] = 1
    assert one(p) == ("extra", 1, "is", "not a known field", "unknown field")
    for key in ("schema", "name", "sample_rate_hz", "montage", "segments", "sham", "safety"):
        p = proto()
        del p[key]
        assert one(p) == (key, None, "is", "required", "missing field"), key
    for key, bad, want in (("schema", True, "integer"), ("schema", 1.0, "integer"), ("name", 3, "string"),
                           ("sample_rate_hz", True, "integer"), ("sample_rate_hz", "5000", "integer"),
                           ("montage", [], "object"), ("segments", {}, "array"), ("sham", 0, "object or null"),
                           ("safety", None, "object")):
        p = proto()
        p[key] = bad
        assert one(p) == (key, bad, "is", want, "wrong type"), (key, bad)


def test_the_device_speaks_schema_1_only():
    for schema in (0, 2, -1):
        assert one(proto(schema=schema)) == ("schema", schema, "=", 1, "schema version")


def test_sample_rate_bounds():
    ok(proto(fs=100, segments=[seg(duration_ms=1000, ramp_up_ms=100, ramp_down_ms=100)]))
    ok(proto(fs=50000))
    assert one(proto(fs=99)) == ("sample_rate_hz", 99, ">=", 100, "sample rate")
    assert one(proto(fs=50001)) == ("sample_rate_hz", 50001, "<=", 50000, "sample rate")
    lim = dict(LIM, max_sample_rate_hz=20000)
    ok(proto(fs=20000), lim)
    assert one(proto(fs=20001), lim) == ("sample_rate_hz", 20001, "<=", 20000, "sample rate")
    # A bad rate stops validation: nothing below it can be judged in samples.
    p = proto(fs=10, segments=[seg(amplitude_uA=9999)])
    assert problems(p) == [("sample_rate_hz", 10, ">=", 100, "sample rate")]


def test_montage_and_safety_fields():
    p = proto()
    p["montage"]["electrode_area_mm2"] = True
    assert one(p) == ("montage.electrode_area_mm2", True, "is", "integer", "wrong type")
    p = proto()
    p["montage"]["ground"] = "Cz"
    assert one(p) == ("montage.ground", "Cz", "is", "not a known field", "unknown field")
    p = proto()
    del p["montage"]["cathode"]
    assert one(p) == ("montage.cathode", None, "is", "required", "missing field")
    p = proto()
    p["safety"]["impedance_max_ohm"] = "20k"
    assert one(p) == ("safety.impedance_max_ohm", "20k", "is", "integer", "wrong type")
    p = proto()
    p["safety"]["max_uA"] = 1
    assert one(p) == ("safety.max_uA", 1, "is", "not a known field", "unknown field")


def test_electrode_area_bounds():
    # 0 (not given) up to 1000 cm^2, the bounds themselves included; one past either is refused.
    for area in (0, 1, V.MAX_AREA_MM2):
        p = proto()
        p["montage"]["electrode_area_mm2"] = area
        ok(p)
    p = proto()
    p["montage"]["electrode_area_mm2"] = V.MAX_AREA_MM2 + 1
    assert one(p) == ("montage.electrode_area_mm2", V.MAX_AREA_MM2 + 1, "<=", V.MAX_AREA_MM2,
                      "electrode area (0: not given)")
    p = proto()
    p["montage"]["electrode_area_mm2"] = -1
    assert one(p) == ("montage.electrode_area_mm2", -1, ">=", 0, "electrode area (0: not given)")


def test_impedance_lockout_bounds():
    ok(proto(z=100))
    ok(proto(z=50000))
    assert one(proto(z=99)) == ("safety.impedance_max_ohm", 99, ">=", 100, "impedance lockout")
    assert one(proto(z=50001)) == ("safety.impedance_max_ohm", 50001, "<=", 50000, "impedance lockout")
    lim = dict(LIM, max_impedance_ohm=30000)
    assert one(proto(z=30001), lim) == ("safety.impedance_max_ohm", 30001, "<=", 30000, "impedance lockout")


def test_segment_count_bounds():
    assert one(proto([])) == ("segments", 0, ">=", 1, "at least one segment")
    short = seg(duration_ms=1000, ramp_up_ms=100, ramp_down_ms=100)
    ok(proto([short] * 32))
    assert one(proto([short] * 33)) == ("segments", 33, "<=", 32, "number of segments")
    lim = dict(LIM, max_segments=2)
    ok(proto([short] * 2), lim)
    assert one(proto([short] * 3), lim) == ("segments", 3, "<=", 2, "number of segments")


def test_segment_kind_and_keys():
    assert one(proto([seg(), 5])) == ("segments[1].kind", 5, "one of", ("stim", "pause"), "segment kind")
    assert one(proto([seg(), seg(kind="rest")])) == ("segments[1].kind", "rest", "one of", ("stim", "pause"),
                                                      "segment kind")
    assert problems(proto([seg(kind="rest")]))[1] == ("segments", 0, ">=", 1, "at least one stimulation segment")
    s = seg()
    del s["kind"]
    assert one(proto([seg(), s])) == ("segments[1].kind", None, "one of", ("stim", "pause"), "segment kind")
    s = seg()
    del s["seed"]
    assert one(proto([s])) == ("segments[0].seed", None, "is", "required", "missing field")
    s = seg(biphasic=0)
    assert one(proto([s])) == ("segments[0].biphasic", 0, "is", "boolean", "wrong type")
    for key in ("amplitude_uA", "duration_ms", "ramp_up_ms", "seed", "frequency_mHz"):
        s = seg(**{key: True})
        assert one(proto([s])) == ("segments[0]." + key, True, "is", "integer", "wrong type"), key
    s = seg(band_mHz=(1, 2))
    assert one(proto([s])) == ("segments[0].band_mHz", (1, 2), "is", "array", "wrong type")
    p = proto([seg(), {"kind": "pause", "duration_ms": 1000, "amplitude_uA": 0}])
    assert one(p) == ("segments[1].amplitude_uA", 0, "is", "not a known field", "unknown field")
    p = proto([seg(), {"kind": "pause", "duration_ms": False}])
    assert one(p) == ("segments[1].duration_ms", False, "is", "integer", "wrong type")


def test_a_protocol_needs_a_stimulation_segment():
    p = proto([{"kind": "pause", "duration_ms": 1000}])
    assert one(p) == ("segments", 0, ">=", 1, "at least one stimulation segment")


# ---- current -------------------------------------------------------------------------------
def test_peak_current_bounds():
    ok(proto([seg(amplitude_uA=4000)]))
    ok(proto([seg(amplitude_uA=0)]))
    assert one(proto([seg(amplitude_uA=4001)])) == ("segments[0].amplitude_uA", 4001, "<=", 4000,
                                                     "peak current |offset| + amplitude")
    assert one(proto([seg(amplitude_uA=-1)])) == ("segments[0].amplitude_uA", -1, ">=", 0,
                                                   "polarity comes from the montage")
    ok(proto([sine(amplitude_uA=3000, offset_uA=1000)]))
    ok(proto([sine(amplitude_uA=3000, offset_uA=-1000)]))
    assert one(proto([sine(amplitude_uA=3000, offset_uA=1001)])) == (
        "segments[0].amplitude_uA", 4001, "<=", 4000, "peak current |offset| + amplitude")
    assert one(proto([sine(amplitude_uA=3000, offset_uA=-1001)])) == (
        "segments[0].amplitude_uA", 4001, "<=", 4000, "peak current |offset| + amplitude")
    lim = dict(LIM, max_current_uA=2000)
    ok(proto([seg(amplitude_uA=2000, duration_ms=60000)]), lim)
    assert one(proto([seg(amplitude_uA=2001)]), lim)[3] == 2000


def test_dc_sets_its_level_with_amplitude_only():
    assert one(proto([seg(offset_uA=1)])) == ("segments[0].offset_uA", 1, "=", 0,
                                              "a dc segment sets its level with amplitude_uA")
    assert one(proto([seg(offset_uA=-1)]))[0] == "segments[0].offset_uA"


def test_waveform_and_ramp_shape_names():
    assert one(proto([seg(waveform="square")])) == ("segments[0].waveform", "square", "one of", V.WAVEFORMS,
                                                    "unknown waveform")
    assert one(proto([seg(ramp_shape="sigmoid")])) == ("segments[0].ramp_shape", "sigmoid", "one of",
                                                       V.RAMP_SHAPES, "unknown ramp shape")
    ok(proto([seg(ramp_shape="cosine")]))


# ---- time ------------------------------------------------------------------------------------
def test_duration_and_ramp_bounds():
    assert one(proto([seg(duration_ms=0)])) == ("segments[0].duration_ms", 0, ">", 0, "stimulation duration")
    assert one(proto([seg(duration_ms=-5)])) == ("segments[0].duration_ms", -5, ">", 0, "stimulation duration")
    for key in ("ramp_up_ms", "ramp_down_ms"):
        ok(proto([seg(**{key: 100})]))
        ok(proto([seg(**{key: 300000})]))
        assert one(proto([seg(**{key: 99})])) == ("segments[0]." + key, 99, ">=", 100, "ramp length")
        assert one(proto([seg(**{key: 300001})])) == ("segments[0]." + key, 300001, "<=", 300000, "ramp length")
        assert one(proto([seg(**{key: 0})]))[2:4] == (">=", 100)
    lim = dict(LIM, min_ramp_ms=500)
    assert one(proto([seg(ramp_up_ms=499)]), lim) == ("segments[0].ramp_up_ms", 499, ">=", 500, "ramp length")
    ok(proto([seg(ramp_up_ms=500)]), lim)


def test_a_stimulation_lasts_at_least_one_sample():
    # 1 ms at 1000 S/s is one sample; at 500 S/s it is none.
    ok(proto([seg(duration_ms=1, ramp_up_ms=100, ramp_down_ms=100)], fs=1000))
    assert one(proto([seg(duration_ms=1, ramp_up_ms=100, ramp_down_ms=100)], fs=500)) == (
        "segments[0].duration_ms", 1, ">=", 2, "one sample")
    assert one(proto([seg(duration_ms=9, ramp_up_ms=100, ramp_down_ms=100)], fs=100)) == (
        "segments[0].duration_ms", 9, ">=", 10, "one sample")
    ok(proto([seg(duration_ms=10, ramp_up_ms=100, ramp_down_ms=100)], fs=100))


def test_total_stimulation_time_bound():
    # 40 min of stimulation, ramps included, exactly: allowed; one more ms: refused.
    forty = [seg(amplitude_uA=1000, duration_ms=1140000, ramp_up_ms=30000, ramp_down_ms=30000)] * 2
    ok(proto(forty))
    over = [forty[0], seg(amplitude_uA=1000, duration_ms=1140001, ramp_up_ms=30000, ramp_down_ms=30000)]
    assert one(proto(over)) == ("segments", 2400001, "<=", 2400000, "total stimulation time (ms)")
    lim = dict(LIM, max_stim_ms=60000)
    ok(proto([seg(duration_ms=40000, ramp_up_ms=10000, ramp_down_ms=10000)]), lim)
    assert one(proto([seg(duration_ms=40001, ramp_up_ms=10000, ramp_down_ms=10000)]), lim) == (
        "segments", 60001, "<=", 60000, "total stimulation time (ms)")


def test_total_session_time_bound_counts_pauses():
    s = seg(amplitude_uA=100, duration_ms=600000, ramp_up_ms=30000, ramp_down_ms=30000)   # 11 min
    pause = {"kind": "pause", "duration_ms": 2880000}                                  # 48 min
    ok(proto([s, pause, s, pause, s, pause]))             # 33 + 144 = 177 min < 180
    p = proto([s, pause, s, pause, s, pause, {"kind": "pause", "duration_ms": 180000}])   # 180 min
    ok(p)
    p = proto([s, pause, s, pause, s, pause, {"kind": "pause", "duration_ms": 180001}])
    assert one(p) == ("segments", 10800001, "<=", 10800000, "total session time (ms)")


def test_a_pause_lasts_at_least_one_sample():
    ok(proto([seg(), {"kind": "pause", "duration_ms": 1}], fs=1000))
    assert one(proto([seg(), {"kind": "pause", "duration_ms": 1}], fs=500)) == (
        "segments[1].duration_ms", 1, ">=", 2, "pause of at least one sample")
    assert one(proto([seg(), {"kind": "pause", "duration_ms": 0}]))[2:4] == (">=", 1)


def test_charge_bound():
    # 4 mA for 30 min plateau + 2 x 30 s ramps: 4000 uA * (1800 + 30) s = 7.32 C > 7.2 C.
    s = seg(amplitude_uA=4000, duration_ms=1800000, ramp_up_ms=30000, ramp_down_ms=30000)
    assert V.charge_bound_uC(s) == 7320000
    assert one(proto([s])) == ("segments", 7320000, "<=", 7200000, "charge per session (uC)")
    s = seg(amplitude_uA=4000, duration_ms=1770000, ramp_up_ms=30000, ramp_down_ms=30000)
    assert V.charge_bound_uC(s) == 7200000
    ok(proto([s]))
    lim = dict(LIM, max_charge_uC=1000000)
    s = seg(amplitude_uA=1000, duration_ms=999000, ramp_up_ms=1000, ramp_down_ms=1000)
    assert V.charge_bound_uC(s) == 1000000
    ok(proto([s]), lim)
    s = seg(amplitude_uA=1000, duration_ms=999001, ramp_up_ms=1000, ramp_down_ms=1000)
    assert one(proto([s]), lim) == ("segments", 1000001, "<=", 1000000, "charge per session (uC)")


def test_charge_and_time_helpers():
    s = seg(amplitude_uA=1500, offset_uA=0, duration_ms=1000, ramp_up_ms=200, ramp_down_ms=400)
    assert V.stim_ms(s) == 1600
    assert V.peak_uA(s) == 1500
    assert V.peak_uA(sine(amplitude_uA=1000, offset_uA=-300)) == 1300
    assert V.peak_uA({"kind": "pause", "duration_ms": 5}) == 0
    assert V.charge_bound_uC({"kind": "pause", "duration_ms": 5}) == 0
    # plateau 1500 uA * 1 s + half of it over 0.6 s of ramps = 1950 uC (rounded up)
    assert V.charge_bound_uC(s) == 1950
    assert V.charge_bound_uC(seg(amplitude_uA=1, duration_ms=1, ramp_up_ms=0, ramp_down_ms=0)) == 1


# ---- sine --------------------------------------------------------------------------------------
def test_sine_frequency_and_phase_bounds():
    assert one(proto([sine(frequency_mHz=0)])) == ("segments[0].frequency_mHz", 0, ">", 0, "sine frequency")
    assert one(proto([sine(frequency_mHz=-1)]))[0:3] == ("segments[0].frequency_mHz", -1, ">")
    ok(proto([sine(frequency_mHz=1)]))
    # at least 10 samples per cycle: 500 Hz at 5000 S/s exactly, 500.001 Hz refused
    ok(proto([sine(frequency_mHz=500000)]))
    assert one(proto([sine(frequency_mHz=500001)])) == ("segments[0].frequency_mHz", 500001, "<=", 500000,
                                                         "at least 10 samples per cycle")
    ok(proto([sine(phase_deg=0)]))
    ok(proto([sine(phase_deg=359)]))
    assert one(proto([sine(phase_deg=360)])) == ("segments[0].phase_deg", 360, "<=", 359, "phase")
    assert one(proto([sine(phase_deg=-1)])) == ("segments[0].phase_deg", -1, ">=", 0, "phase")


# ---- pulse -------------------------------------------------------------------------------------
def test_pulse_rate_bounds():
    assert one(proto([pulse(frequency_mHz=0)])) == ("segments[0].frequency_mHz", 0, ">", 0, "pulse rate")
    assert one(proto([pulse(frequency_mHz=-3)]))[1:3] == (-3, ">")
    # Nyquist at 5000 S/s is 2500 Hz: a rate exactly there is refused, just under accepted.
    assert one(proto([pulse(frequency_mHz=2500000, pulse_width_us=200)])) == (
        "segments[0].frequency_mHz", 2500000, "<", 2500000, "below the Nyquist frequency")
    ok(proto([pulse(frequency_mHz=2499999, pulse_width_us=200)]))


def test_pulse_width_bounds():
    # One sample at 5000 S/s is 200 us.
    ok(proto([pulse(pulse_width_us=200)]))
    assert one(proto([pulse(pulse_width_us=199)])) == ("segments[0].pulse_width_us", 199, ">=", 200,
                                                        "one sample at the sample rate")
    assert one(proto([pulse(pulse_width_us=0)]))[2:4] == (">=", 200)
    # At 3000 S/s one sample is 333.3 us: 334 us is the shortest whole-sample width.
    assert one(proto([pulse(pulse_width_us=333)], fs=3000))[2:4] == (">=", 334)
    ok(proto([pulse(pulse_width_us=334)], fs=3000))
    # Monophasic 10 Hz: the pulse must end before the 100 ms period does.
    ok(proto([pulse(pulse_width_us=99999)]))
    assert one(proto([pulse(pulse_width_us=100000)])) == ("segments[0].pulse_width_us", 100000, "<", 100000,
                                                           "pulses must fit in the period")


def test_a_biphasic_pulse_must_fit_in_its_period():
    # Both phases, 2 x width, must fit in the period, or the pulse becomes net DC.
    ok(proto([pulse(biphasic=True, pulse_width_us=49999)]))
    assert one(proto([pulse(biphasic=True, pulse_width_us=50000)])) == (
        "segments[0].pulse_width_us", 50000, "<", 50000, "pulses must fit in the period")
    assert one(proto([pulse(biphasic=True, pulse_width_us=60000)]))[3] == 50000
    ok(proto([pulse(biphasic=False, pulse_width_us=60000)]))


# ---- noise ----------------------------------------------------------------------------------------
def test_noise_band_bounds():
    ok(proto([noise(band_mHz=[0, 100000])]))
    assert one(proto([noise(band_mHz=[-1, 100000])])) == ("segments[0].band_mHz[0]", -1, ">=", 0,
                                                           "band low edge")
    assert one(proto([noise(band_mHz=[100000, 100000])])) == ("segments[0].band_mHz[1]", 100000, ">", 100000,
                                                               "band high edge above low edge")
    ok(proto([noise(band_mHz=[100000, 100001])]))
    # Upper edge at most half the sample rate: 2500 Hz at 5000 S/s.
    ok(proto([noise(band_mHz=[101000, 2500000])]))
    assert one(proto([noise(band_mHz=[101000, 2500001])])) == (
        "segments[0].band_mHz[1]", 2500001, "<=", 2500000, "sample rate at least twice the band's upper edge")
    for bad in ([1], [1, 2, 3], [1, "2"], [True, 5], []):
        assert one(proto([noise(band_mHz=bad)])) == ("segments[0].band_mHz", bad, "is", "[low, high] integers",
                                                      "noise band"), bad


def test_noise_seed_and_sd_bounds():
    ok(proto([noise(seed=0)]))
    ok(proto([noise(seed=(1 << 30) - 1)]))
    assert one(proto([noise(seed=1 << 30)])) == ("segments[0].seed", 1 << 30, "<=", (1 << 30) - 1, "noise seed")
    assert one(proto([noise(seed=-1)])) == ("segments[0].seed", -1, ">=", 0, "noise seed")
    ok(proto([noise(noise_sd_uA=1)]))
    ok(proto([noise(noise_sd_uA=1000)]))
    assert one(proto([noise(noise_sd_uA=0)])) == ("segments[0].noise_sd_uA", 0, ">=", 1,
                                                   "noise standard deviation within the peak")
    assert one(proto([noise(noise_sd_uA=1001)])) == ("segments[0].noise_sd_uA", 1001, "<=", 1000,
                                                      "noise standard deviation within the peak")
    # A zero peak still allows an SD of 1 (the bound never falls below 1).
    ok(proto([noise(amplitude_uA=0, noise_sd_uA=1)]))


def test_fields_of_other_waveforms_are_not_judged_by_sine_rules():
    ok(proto([seg(frequency_mHz=0, phase_deg=0)]))
    ok(proto([noise(frequency_mHz=0)]))
    ok(proto([pulse(phase_deg=0)]))


# ---- sham ----------------------------------------------------------------------------------------
def sham(**kw):
    s = {"ramp_up_ms": 30000, "plateau_ms": 5000, "ramp_down_ms": 30000, "double": False}
    s.update(kw)
    return s


def test_sham_fields_and_ramp_bounds():
    ok(proto(sham=sham()))
    s = sham()
    s["fade"] = 1
    assert one(proto(sham=s)) == ("sham.fade", 1, "is", "not a known field", "unknown field")
    assert one(proto(sham=sham(double=1))) == ("sham.double", 1, "is", "boolean", "wrong type")
    for key in ("ramp_up_ms", "ramp_down_ms"):
        ok(proto(sham=sham(**{key: 100})))
        assert one(proto(sham=sham(**{key: 99}))) == ("sham." + key, 99, ">=", 100, "sham ramp length")
        big = proto([seg(duration_ms=1000000)], sham=sham(**{key: 300001}))
        assert one(big) == ("sham." + key, 300001, "<=", 300000, "sham ramp length")
        ok(proto([seg(duration_ms=1000000)], sham=sham(**{key: 300000})))


def test_sham_plateau_bounds():
    ok(proto(sham=sham(plateau_ms=0)))
    assert one(proto(sham=sham(plateau_ms=-1))) == ("sham.plateau_ms", -1, ">=", 0, "sham plateau")
    assert one(proto(sham=sham(plateau_ms=-1000)))[2:4] == (">=", 0)
    # nonzero plateau: at least one sample (1 ms at 1000 S/s, 2 ms at 500 S/s)
    ok(proto(fs=1000, sham=sham(plateau_ms=1)))
    assert one(proto(fs=500, sham=sham(plateau_ms=1))) == ("sham.plateau_ms", 1, ">=", 2, "one sample, or 0")


def test_sham_fades_must_fit_every_stimulation_segment():
    # Segment: 30 s + 60 s + 30 s = 120 s. Single sham: 30 + P + 30 <= 120 -> P <= 60 s.
    ok(proto(sham=sham(plateau_ms=60000)))
    assert one(proto(sham=sham(plateau_ms=60001))) == (
        "sham.plateau_ms", 60001, "<=", 60000, "sham fades (twice for a double sham) must fit in every "
        "stimulation segment")
    # Double sham: 2 x (60 + P) <= 120 -> P <= 0.
    ok(proto(sham=sham(plateau_ms=0, double=True)))
    assert one(proto(sham=sham(plateau_ms=1, double=True)))[3] == 0
    # The shortest segment decides.
    short = seg(duration_ms=10000, ramp_up_ms=10000, ramp_down_ms=10000)       # 30 s
    p = proto([seg(), short], sham=sham(ramp_up_ms=10000, ramp_down_ms=10000, plateau_ms=10001))
    assert one(p)[3] == 10000
    ok(proto([seg(), short], sham=sham(ramp_up_ms=10000, ramp_down_ms=10000, plateau_ms=10000)))


# ---- warnings --------------------------------------------------------------------------------------
def test_density_warning_and_figure():
    p = proto([seg(amplitude_uA=2100)])        # 2.1 mA over 35 cm^2 = 0.06 mA/cm^2: at the guideline
    assert V.density_uA_per_cm2(p) == 60
    assert V.warnings(p) == []
    p = proto([seg(amplitude_uA=2101)])
    assert V.density_uA_per_cm2(p) == 60
    w = V.warnings(p)
    assert len(w) == 1 and w[0].startswith("current density 0.060 mA/cm^2 (peak 2101 uA over 35.00 cm^2)"), w
    p = proto([seg(amplitude_uA=4000)])
    p["montage"]["electrode_area_mm2"] = 1650
    assert V.density_uA_per_cm2(p) == 242
    assert "0.242 mA/cm^2 (peak 4000 uA over 16.50 cm^2)" in V.warnings(p)[0]
    p["montage"]["electrode_area_mm2"] = 0
    assert V.warnings(p) == [] and V.density_uA_per_cm2(p) == 0


def test_narrow_noise_band_warning():
    assert V.warnings(proto([noise(band_mHz=[101000, 640000])])) == []
    assert V.warnings(proto([noise(band_mHz=[100000, 200000])])) == []       # exactly an octave
    w = V.warnings(proto([noise(amplitude_uA=1000, band_mHz=[100000, 199999])]))
    assert len(w) == 1 and w[0].startswith("segments[0]: noise band narrower than an octave"), w
    assert V.warnings(proto([noise(band_mHz=[0, 100])])) == []               # low-pass: no octave rule


# ---- exact boundaries in samples (fs = 999: 1 ms is 0.999 samples) ------------------------
def test_one_sample_bounds_at_an_odd_rate():
    short = seg(duration_ms=1, ramp_up_ms=100, ramp_down_ms=100)
    assert one(proto([short], fs=999)) == ("segments[0].duration_ms", 1, ">=", 2, "one sample")
    ok(proto([seg(duration_ms=2, ramp_up_ms=100, ramp_down_ms=100)], fs=999))
    assert one(proto([seg(), {"kind": "pause", "duration_ms": 1}], fs=999)) == (
        "segments[1].duration_ms", 1, ">=", 2, "pause of at least one sample")
    assert one(proto(fs=999, sham=sham(plateau_ms=1))) == ("sham.plateau_ms", 1, ">=", 2, "one sample, or 0")
    # A pulse of 1001 us at 999 S/s is 0.999999 samples.
    assert one(proto([pulse(pulse_width_us=1001)], fs=999)) == ("segments[0].pulse_width_us", 1001, ">=", 1002,
                                                                 "one sample at the sample rate")
    ok(proto([pulse(pulse_width_us=1002)], fs=999))


def test_pulse_period_is_exact_at_slow_rates():
    # 7 mHz: the period is 142857142.86 us; a pulse of 142857142 us does not fit it whole.
    assert one(proto([pulse(frequency_mHz=7, pulse_width_us=142857142)])) == (
        "segments[0].pulse_width_us", 142857142, "<", 142857142, "pulses must fit in the period")
    ok(proto([pulse(frequency_mHz=7, pulse_width_us=142857141)]))
    ok(proto([pulse(frequency_mHz=1, pulse_width_us=1000)]))


def test_noise_sd_bound_at_tiny_amplitudes():
    ok(proto([noise(amplitude_uA=1, noise_sd_uA=1)]))
    assert one(proto([noise(amplitude_uA=1, noise_sd_uA=2)])) == (
        "segments[0].noise_sd_uA", 2, "<=", 1, "noise standard deviation within the peak")


def test_charge_bound_rounds_up():
    # 1 uA over 1000 ms plus a 1 ms ramp: 1.0005 uC, which must count as 2, not 1.
    assert V.charge_bound_uC(seg(amplitude_uA=1, duration_ms=1000, ramp_up_ms=1, ramp_down_ms=0)) == 2
    assert V.charge_bound_uC(seg(amplitude_uA=1, duration_ms=1000, ramp_up_ms=0, ramp_down_ms=0)) == 1


def test_sham_that_cannot_fit_reports_zero_plateau():
    # A 10 ms segment at 100 S/s cannot hold even the sham's ramps: the largest plateau is 0.
    s = seg(duration_ms=10, ramp_up_ms=100, ramp_down_ms=100)
    p = proto([s], fs=100, sham=sham(ramp_up_ms=300, plateau_ms=0, ramp_down_ms=300))
    assert one(p) == ("sham.plateau_ms", 0, "<=", 0, "sham fades (twice for a double sham) must fit in every "
                                                     "stimulation segment")


def test_a_malformed_segment_still_counts_as_stimulation_and_stops_its_checks():
    s = seg(amplitude_uA=9999)
    s["extra"] = 1
    assert problems(proto([s])) == [("segments[0].extra", 1, "is", "not a known field", "unknown field")]
    p = proto(schema=2)
    p["extra"] = 1
    assert problems(p) == [("extra", 1, "is", "not a known field", "unknown field")]


def test_density_figures_and_message_formats():
    p = proto([seg(amplitude_uA=4000)])
    p["montage"]["electrode_area_mm2"] = 200               # 2 cm^2: 2 mA/cm^2
    assert V.density_uA_per_cm2(p) == 2000
    assert V.warnings(p)[0].startswith("current density 2.000 mA/cm^2 (peak 4000 uA over 2.00 cm^2)")
    p["montage"]["electrode_area_mm2"] = 990
    assert "(peak 4000 uA over 9.90 cm^2)" in V.warnings(p)[0]
    p = proto([seg(amplitude_uA=3996)])
    p["montage"]["electrode_area_mm2"] = 400               # 0.999 mA/cm^2
    assert V.density_uA_per_cm2(p) == 999
    assert V.warnings(p)[0].startswith("current density 0.999 mA/cm^2 (peak 3996 uA over 4.00 cm^2)")
    p["montage"]["electrode_area_mm2"] = 1
    p["montage"]["electrode_area_mm2"] = 1                 # 0.01 cm^2
    assert V.density_uA_per_cm2(p) == 399600 and len(V.warnings(p)) == 1
    p = proto([seg(amplitude_uA=0)])
    p["montage"]["electrode_area_mm2"] = 50
    assert V.density_uA_per_cm2(p) == 0 and V.warnings(p) == []
