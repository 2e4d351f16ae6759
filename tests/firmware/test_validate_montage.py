"""The multi-electrode form of the validator (issue 12; /work/notes/multichannel_spec.md):
structure problems with their exact paths, and every limit just at and one past its bound
(a channel's peak, the return's peak bound, the board's current sources, the charge bound
per electrode), the density warnings per electrode, and the helpers the host uses on both
forms. The two-electrode form is tried by test_validate_bounds.py and _edges.py unchanged.

Plain asserts: runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port
(tools/wasm/mptest32.mjs) and CPython (pytest)."""
from tes import validate as V
from tes.limits import CEILING, board_limits

LIM = dict(CEILING)


def cur(name, **kw):
    c = {"electrode": name, "waveform": "dc", "amplitude_uA": 500, "offset_uA": 0, "frequency_mHz": 0,
         "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
         "biphasic": False}
    c.update(kw)
    return c


def mseg(currents, **kw):
    s = {"kind": "stim", "duration_ms": 60000, "ramp_up_ms": 30000, "ramp_down_ms": 30000,
         "ramp_shape": "linear", "currents": currents}
    s.update(kw)
    return s


def montage(names=("F4", "P4", "Cz"), ret="Cz", area=3500):
    return {"electrodes": [{"name": n, "area_mm2": area} for n in names], "return": ret}


def mproto(segments=None, names=("F4", "P4", "Cz"), ret="Cz", fs=5000, area=3500, sham=None):
    if segments is None:
        segments = [mseg([cur(n) for n in names if n != ret])]
    return {"schema": 1, "name": "m", "sample_rate_hz": fs, "montage": montage(names, ret, area),
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def hd4x1(amp=-500):
    """4x1 HD-tDCS: four surround electrodes driven at amp each, the centre is the return."""
    names = ("C3", "FC1", "FC5", "CP1", "CP5")
    return mproto([mseg([cur(n, amplitude_uA=amp) for n in names[1:]])], names=names, ret="C3")


def at(problems, path):
    return [p for p in problems if p[0] == path]


def test_a_valid_multi_protocol_has_no_problem():
    assert V.check(mproto(), LIM) == []
    assert V.check(hd4x1(), LIM) == []
    # sine at opposite phases, pulse, noise and dc mixed in one segment; a pause; a sham
    p = mproto([mseg([cur("F4", waveform="sine", amplitude_uA=1000, frequency_mHz=6000),
                      cur("P4", waveform="noise", amplitude_uA=-800, band_mHz=[100000, 640000], seed=3,
                          noise_sd_uA=200)]),
                {"kind": "pause", "duration_ms": 1000},
                mseg([cur("F4", waveform="pulse", amplitude_uA=-1000, offset_uA=100, frequency_mHz=10000,
                          pulse_width_us=1000, biphasic=True), cur("P4", amplitude_uA=0)])],
               sham={"ramp_up_ms": 30000, "plateau_ms": 0, "ramp_down_ms": 30000, "double": False})
    assert V.check(p, LIM) == []
    assert V.is_multi(p) and not V.is_multi(two_electrode())
    assert V.electrode_names(p) == ["F4", "P4", "Cz"] and V.driven_names(p) == ["F4", "P4"]
    assert V.return_name(p) == "Cz"


def two_electrode():
    from test_validate_bounds import proto
    return proto()


def test_the_two_electrode_form_is_one_driven_electrode_and_its_return():
    p = two_electrode()
    assert V.electrode_names(p) == ["F3", "Fp2"] and V.driven_names(p) == ["F3"] and V.return_name(p) == "Fp2"
    assert V.check(p, LIM) == []
    # a 1-source board still runs it: max_sources does not concern the two-electrode form
    lim, _ = board_limits({})
    assert lim["max_sources"] == 1 and V.check(p, lim) == []


def test_the_return_may_be_anywhere_in_the_montage():
    p = mproto([mseg([cur("F4"), cur("P4")])], names=("F4", "Cz", "P4"), ret="Cz")
    assert V.check(p, LIM) == []
    assert V.driven_names(p) == ["F4", "P4"]


def test_montage_structure_problems_and_their_paths():
    p = mproto()
    p["montage"]["return"] = "Oz"
    assert V.check(p, LIM) == [("montage.return", "Oz", "one of", ("F4", "P4", "Cz"),
                                "the return names an electrode")]
    p = mproto()
    del p["montage"]["return"]
    assert V.check(p, LIM) == [("montage.return", None, "is", "required", "missing field")]
    p = mproto()
    p["montage"]["anode"] = "F3"
    assert V.check(p, LIM) == [("montage.anode", "F3", "is", "not a known field", "unknown field")]
    p = mproto([mseg([])], names=("Cz",), ret="Cz")
    assert V.check(p, LIM) == [("montage.electrodes", 1, ">=", 2, "electrodes of a montage")]
    p = mproto()
    p["montage"]["electrodes"][1]["name"] = "F4"
    got = V.check(p, LIM)
    assert got[0] == ("montage.electrodes[1].name", "F4", "is", "unique", "each electrode once in the montage"), got
    p = mproto()
    p["montage"]["electrodes"][1]["name"] = "ABCDEFGHI"
    assert at(V.check(p, LIM), "montage.electrodes[1].name") == [
        ("montage.electrodes[1].name", "ABCDEFGHI", "is", "1 to 8 characters", "electrode name")]
    p["montage"]["electrodes"][1]["name"] = ""
    assert at(V.check(p, LIM), "montage.electrodes[1].name")[0][1] == ""
    p = mproto([mseg([cur("F4"), cur("ABCDEFGH")])], names=("F4", "ABCDEFGH", "Cz"))
    assert V.check(p, LIM) == []                                  # 8 characters: the longest
    p = mproto()
    p["montage"]["electrodes"][2] = "Cz"
    assert at(V.check(p, LIM), "montage.electrodes[2]") == [("montage.electrodes[2]", "Cz", "is", "object",
                                                             "wrong type")]
    p = mproto()
    p["montage"]["electrodes"][0]["area_cm2"] = 35
    assert at(V.check(p, LIM), "montage.electrodes[0].area_cm2")[0][4] == "unknown field"
    p = mproto()
    p["montage"]["electrodes"][0]["area_mm2"] = 35.0
    assert at(V.check(p, LIM), "montage.electrodes[0].area_mm2") == [
        ("montage.electrodes[0].area_mm2", 35.0, "is", "integer", "wrong type")]


def test_electrode_area_bounds():
    MAX = V.MAX_AREA_MM2
    for area, ok in ((0, True), (MAX, True), (MAX + 1, False), (-1, False)):
        p = mproto()
        p["montage"]["electrodes"][2]["area_mm2"] = area
        got = at(V.check(p, LIM), "montage.electrodes[2].area_mm2")
        assert (got == []) == ok, (area, got)
    p = mproto()
    p["montage"]["electrodes"][2]["area_mm2"] = MAX + 1
    assert at(V.check(p, LIM), "montage.electrodes[2].area_mm2") == [
        ("montage.electrodes[2].area_mm2", MAX + 1, "<=", MAX, "electrode area (0: not given)")]


def test_currents_name_every_driven_electrode_once_in_montage_order():
    why = "every electrode but the return once, in montage order"
    p = mproto([mseg([cur("P4"), cur("F4")])])
    assert V.check(p, LIM) == [("segments[0].currents[0].electrode", "P4", "=", "F4", why),
                               ("segments[0].currents[1].electrode", "F4", "=", "P4", why)]
    p = mproto([mseg([cur("F4"), cur("Cz")])])            # the return has no current of its own
    assert V.check(p, LIM) == [("segments[0].currents[1].electrode", "Cz", "=", "P4", why)]
    p = mproto([mseg([cur("F4")])])
    assert V.check(p, LIM) == [("segments[0].currents", 1, "=", 2,
                                "one current per electrode but the return (its current is minus their sum)")]
    p = mproto([mseg([cur("F4"), cur("P4"), cur("Cz")])])
    assert V.check(p, LIM)[0] == ("segments[0].currents", 3, "=", 2,
                                  "one current per electrode but the return (its current is minus their sum)")
    p = mproto([mseg([cur("F4"), cur("F4")])])
    assert V.check(p, LIM) == [("segments[0].currents[1].electrode", "F4", "=", "P4", why)]
    # the second segment's paths
    p = mproto([mseg([cur("F4"), cur("P4")]), {"kind": "pause", "duration_ms": 100}, mseg([cur("F4"), cur("X")])])
    assert V.check(p, LIM) == [("segments[2].currents[1].electrode", "X", "=", "P4", why)]


def test_segment_and_channel_keys():
    # a flat (two-electrode) segment in a multi montage: its waveform keys are unknown there
    from test_validate_bounds import seg
    p = mproto([seg()])
    got = V.check(p, LIM)
    assert ("segments[0].amplitude_uA", 2000, "is", "not a known field", "unknown field") in got
    assert ("segments[0].currents", None, "is", "required", "missing field") in got
    # a timing key inside a channel, a channel without its waveform
    c = cur("P4", duration_ms=5)
    del c["waveform"]
    p = mproto([mseg([cur("F4"), c])])
    assert V.check(p, LIM) == [("segments[0].currents[1].duration_ms", 5, "is", "not a known field", "unknown field"),
                               ("segments[0].currents[1].waveform", None, "is", "required", "missing field")]
    p = mproto([mseg([cur("F4"), 7])])
    assert V.check(p, LIM) == [("segments[0].currents[1]", 7, "is", "object", "wrong type")]
    p = mproto([mseg([cur("F4"), cur("P4", biphasic=0)])])
    assert V.check(p, LIM) == [("segments[0].currents[1].biphasic", 0, "is", "boolean", "wrong type")]
    # a multi segment in a two-electrode protocol
    p = two_electrode()
    p["segments"] = [mseg([cur("F3")])]
    got = V.check(p, LIM)
    assert ("segments[0].currents", [cur("F3")], "is", "not a known field", "unknown field") in got


def test_timing_problems_are_the_segments_and_waveform_problems_the_channels():
    p = mproto([mseg([cur("F4"), cur("P4")], ramp_up_ms=99, ramp_shape="step", duration_ms=0)])
    assert V.check(p, LIM) == [
        ("segments[0].ramp_shape", "step", "one of", V.RAMP_SHAPES, "unknown ramp shape"),
        ("segments[0].duration_ms", 0, ">", 0, "stimulation duration"),
        ("segments[0].ramp_up_ms", 99, ">=", 100, "ramp length")]
    p = mproto([mseg([cur("F4", waveform="sine", frequency_mHz=500001, phase_deg=360, amplitude_uA=100),
                      cur("P4", waveform="square")])])
    assert V.check(p, LIM) == [
        ("segments[0].currents[0].frequency_mHz", 500001, "<=", 500000, "at least 10 samples per cycle"),
        ("segments[0].currents[0].phase_deg", 360, "<=", 359, "phase"),
        ("segments[0].currents[1].waveform", "square", "one of", V.WAVEFORMS, "unknown waveform")]
    p = mproto([mseg([cur("F4", offset_uA=10), cur("P4", waveform="pulse", frequency_mHz=10000,
                                                   pulse_width_us=199)])])
    assert V.check(p, LIM) == [
        ("segments[0].currents[0].offset_uA", 10, "=", 0, "a dc segment sets its level with amplitude_uA"),
        ("segments[0].currents[1].pulse_width_us", 199, ">=", 200, "one sample at the sample rate")]
    # noise: the standard deviation within |amplitude|, for a negative amplitude too
    for sd, ok in ((1, True), (800, True), (801, False), (0, False)):
        p = mproto([mseg([cur("F4"), cur("P4", waveform="noise", amplitude_uA=-800, band_mHz=[0, 100000],
                                         seed=1, noise_sd_uA=sd)])])
        got = V.check(p, LIM)
        assert (got == []) == ok, (sd, got)
    assert got == [("segments[0].currents[1].noise_sd_uA", 0, ">=", 1, "noise standard deviation within the peak")]


def test_a_channels_peak_is_signed_and_bounded_exactly():
    why = "peak current |offset| + |amplitude|"
    # two channels in a 2-electrode multi montage: the return's bound is the channel's own peak
    names = ("F4", "Cz")
    for amp, off in ((4000, 0), (-4000, 0), (-3000, 1000), (3000, -1000)):
        p = mproto([mseg([cur("F4", waveform="sine", amplitude_uA=amp, offset_uA=off, frequency_mHz=6000)])],
                   names=names)
        assert V.check(p, LIM) == [], (amp, off)
    for amp, off in ((4001, 0), (-4001, 0), (-3000, 1001), (3001, -1000)):
        p = mproto([mseg([cur("F4", waveform="sine", amplitude_uA=amp, offset_uA=off, frequency_mHz=6000)])],
                   names=names)
        assert V.check(p, LIM) == [("segments[0].currents[0].amplitude_uA", 4001, "<=", 4000, why)], (amp, off)
    # with a board's narrower limit
    lim = dict(LIM, max_current_uA=2000)
    p = mproto([mseg([cur("F4", amplitude_uA=-2000)])], names=names)
    assert V.check(p, lim) == []
    p = mproto([mseg([cur("F4", amplitude_uA=-2001)])], names=names)
    assert V.check(p, lim)[0] == ("segments[0].currents[0].amplitude_uA", 2001, "<=", 2000, why)


def test_the_returns_peak_bound_is_the_sum_of_the_channels_peaks():
    why = "the return's peak: the sum of the channels' peaks"
    assert V.check(hd4x1(-1000), LIM) == []                      # 4 x 1000 = 4000 at the return
    assert V.check(hd4x1(1000), LIM) == []
    p = hd4x1(-1000)
    p["segments"][0]["currents"][3]["amplitude_uA"] = -1001
    assert V.check(p, LIM) == [("segments[0].currents", 4001, "<=", 4000, why)]
    # opposite signs do not cancel in the bound (sum of |peak|), offsets count
    p = mproto([mseg([cur("F4", waveform="sine", amplitude_uA=2000, frequency_mHz=6000),
                      cur("P4", waveform="sine", amplitude_uA=-1500, offset_uA=500, frequency_mHz=6000)])])
    assert V.check(p, LIM) == []
    p["segments"][0]["currents"][1]["offset_uA"] = 501
    assert V.check(p, LIM) == [("segments[0].currents", 4001, "<=", 4000, why)]
    assert V.peak_uA(p["segments"][0]) == 4001


def test_the_boards_current_sources_bound_the_montage():
    why = "current sources: one per electrode but the return, at most the board's"
    for sources in (1, 2, 4, 8):
        lim, problems = board_limits({"current_sources": sources})
        assert problems == []
        n = sources + 1                                          # electrodes: one per source + the return
        names = tuple("E%d" % k for k in range(n))
        amp = 4000 // sources // 2
        ok = mproto([mseg([cur(x, amplitude_uA=amp) for x in names[1:]])], names=names, ret="E0")
        assert V.check(ok, lim) == [], sources
        names = tuple("E%d" % k for k in range(n + 1))
        bad = mproto([mseg([cur(x, amplitude_uA=amp // 2) for x in names[1:]])], names=names, ret="E0")
        assert V.check(bad, lim) == [("montage.electrodes", sources + 1, "<=", sources, why)], sources
    # limits without the key (an older caller) mean one source
    lim = dict(LIM)
    del lim["max_sources"]
    assert V.check(mproto(), lim) == [("montage.electrodes", 2, "<=", 1, why)]
    assert V.check(mproto([mseg([cur("F4")])], names=("F4", "Cz")), lim) == []
    # the ceiling: 8 sources, 9 electrodes
    names = tuple("E%d" % k for k in range(10))
    p = mproto([mseg([cur(x, amplitude_uA=100) for x in names[1:]])], names=names, ret="E0")
    assert V.check(p, LIM) == [("montage.electrodes", 9, "<=", 8, why)]


def test_the_shipped_boards_sources():
    from tes import board as B
    for name, sources in (("pico-mcp4922", 1), ("esp32-mcp4922", 1), ("sim", 8)):
        b = B.load(_HERE + "/../../boards/%s.json" % name)
        assert B.check(b) == [], name
        lim, _ = board_limits(b)
        assert lim["max_sources"] == sources, name
        assert b["return"] == "ground"


_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def test_board_return_and_sources_are_checked():
    from tes import board as B
    b = B.load(_HERE + "/../../boards/sim.json")
    assert B.check(b) == []
    for sources, want in ((1, []), (8, []), (9, ["current_sources = 9: above the compiled-in ceiling 8"]),
                          (0, ["current_sources: must be a positive integer"]),
                          (True, ["current_sources: must be a positive integer"])):
        c = dict(b, current_sources=sources)
        assert B.check(c) == want, (sources, B.check(c))
    c = dict(b)
    del c["current_sources"]
    del c["return"]
    assert B.check(c) == [] and board_limits(c)[0]["max_sources"] == 1
    c = dict(b, **{"return": "driven"})
    assert B.check(c) == ["return: must be one of ground (the return electrode's connection)"]


def test_the_charge_bound_is_per_electrode_and_the_returns_is_the_sum():
    # plateau 60 s + ramps 2 x 30 s at half: 90 s at the peak. 7.2 C at 4000 uA is 1800 s.
    # 20 segments of 90 s at a 4000 uA return bound: 20 x 360000 uC = 7.2 C exactly.
    lim = dict(LIM, max_stim_ms=10 * 3600 * 1000, max_session_ms=10 * 3600 * 1000)

    def p_of(n, a1, a2):
        return mproto([mseg([cur("F4", amplitude_uA=a1), cur("P4", amplitude_uA=a2)]) for _ in range(n)])

    p = p_of(20, 2000, -2000)
    assert V.check(p, lim) == []
    b = V.electrode_bounds(p)
    assert b == [("F4", 3500, 2000, 3600000), ("P4", 3500, 2000, 3600000), ("Cz", 3500, 4000, 7200000)], b
    assert sum(V.charge_bound_uC(s) for s in p["segments"]) == 7200000
    lim1 = dict(lim, max_charge_uC=7199999)
    assert V.check(p, lim1) == [("segments", 7200000, "<=", 7199999, "charge per session (uC) at electrode Cz")]
    # a channel over its own bound names itself too (the return's is then over as well)
    lim2 = dict(lim, max_charge_uC=3600000)
    p = p_of(20, 2000, 10)
    assert V.check(p, lim2) == [("segments", 3618000, "<=", 3600000, "charge per session (uC) at electrode Cz")]
    p = p_of(20, 2001, 0)
    assert V.check(p, lim2) == [("segments", 3601800, "<=", 3600000, "charge per session (uC) at electrode F4"),
                                ("segments", 3601800, "<=", 3600000, "charge per session (uC) at electrode Cz")]


def test_session_limits_and_sham_apply_to_the_multi_form():
    p = mproto([mseg([cur("F4"), cur("P4")], duration_ms=2400000 - 60000)])
    assert V.check(p, LIM) == []
    p = mproto([mseg([cur("F4"), cur("P4")], duration_ms=2400000 - 60000 + 1)])
    assert V.check(p, LIM) == [("segments", 2400001, "<=", 2400000, "total stimulation time (ms)")]
    p = mproto(sham={"ramp_up_ms": 30000, "plateau_ms": 60000, "ramp_down_ms": 30000, "double": False})
    assert V.check(p, LIM) == []
    p = mproto(sham={"ramp_up_ms": 30000, "plateau_ms": 60001, "ramp_down_ms": 30000, "double": False})
    assert V.check(p, LIM)[0][0] == "sham.plateau_ms"


def test_density_warnings_per_electrode():
    # 35 cm^2: 0.06 mA/cm^2 is 2100 uA. F4 at 2100 and P4 at 0: the return carries 2100.
    p = mproto([mseg([cur("F4", amplitude_uA=2100), cur("P4", amplitude_uA=0)])])
    assert V.warnings(p) == [] and V.density_uA_per_cm2(p) == 60
    p = mproto([mseg([cur("F4", amplitude_uA=2101), cur("P4", amplitude_uA=0)])])
    assert V.warnings(p) == [
        "F4: current density 0.060 mA/cm^2 (peak 2101 uA over 35.00 cm^2) is above the 0.06 mA/cm^2 guideline",
        "Cz: current density 0.060 mA/cm^2 (peak 2101 uA over 35.00 cm^2) is above the 0.06 mA/cm^2 guideline"]
    # each electrode over its own area: a small return (HD: 3.14 cm^2 ring electrodes)
    p = hd4x1(-100)
    p["montage"]["electrodes"][0]["area_mm2"] = 314
    assert V.warnings(p) == [
        "C3: current density 0.127 mA/cm^2 (peak 400 uA over 3.14 cm^2) is above the 0.06 mA/cm^2 guideline"]
    assert V.density_uA_per_cm2(p) == 127
    p["montage"]["electrodes"][0]["area_mm2"] = 0                 # not given: no warning
    assert V.warnings(p) == [] and V.density_uA_per_cm2(p) == 2     # the surround: 100 uA over 35 cm^2
    # a narrow noise band of one channel
    p = mproto([mseg([cur("F4"), cur("P4", waveform="noise", amplitude_uA=800, band_mHz=[100000, 199999], seed=1,
                                     noise_sd_uA=200)])])
    assert V.check(p, LIM) == []
    assert V.warnings(p) == ["segments[0].currents[1]: noise band narrower than an octave: its filter skirts put "
                             "more than 10% of the power outside the band"]


def test_host_helpers_on_both_forms():
    from test_validate_bounds import seg
    s = seg(amplitude_uA=1500, offset_uA=0)
    assert V.peak_uA(s) == 1500 and V.stim_ms(s) == 120000
    assert V.charge_bound_uC(s) == 1500 * 90                      # 90 s at the peak
    m = mseg([cur("F4", amplitude_uA=-1000), cur("P4", waveform="sine", amplitude_uA=300, offset_uA=-200,
                                                  frequency_mHz=6000)])
    assert V.peak_uA(m) == 1500 and V.stim_ms(m) == 120000
    assert V.charge_bound_uC(m) == 1500 * 90
    assert V.peak_uA({"kind": "pause", "duration_ms": 10}) == 0
    assert V.charge_bound_uC({"kind": "pause", "duration_ms": 10}) == 0
