"""A sham session lasts exactly as long as the real one, whatever the sample rate."""
from hypothesis import given, settings, strategies as st

from tes import validate as V
from tes.engine import Engine
from tes.limits import CEILING


def proto(seg, fs, sham):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": [seg], "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def seg(d, up, down):
    return dict(kind="stim", waveform="dc", amplitude_uA=1000, offset_uA=0, frequency_mHz=0, phase_deg=0,
                band_mHz=[0, 0], seed=1, noise_sd_uA=0, pulse_width_us=0, biphasic=False,
                duration_ms=d, ramp_up_ms=up, ramp_down_ms=down, ramp_shape="linear")


def test_fade_that_does_not_fit_in_samples_is_refused():
    # 102 ms phases at 250 S/s round down to 25 samples each: a 306 ms fade is 76 samples.
    sham = {"ramp_up_ms": 100, "plateau_ms": 106, "ramp_down_ms": 100, "double": False}
    problems = V.check(proto(seg(102, 102, 102), 250, sham), CEILING)
    assert [p[0] for p in problems] == ["sham.plateau_ms"]


@settings(max_examples=300, deadline=None)
@given(fs=st.sampled_from([100, 250, 777, 1000, 44100]), d=st.integers(100, 3000), up=st.integers(100, 1000),
       down=st.integers(100, 1000), s_up=st.integers(100, 1000), s_pl=st.integers(0, 2000),
       s_down=st.integers(100, 1000), double=st.booleans())
def test_valid_sham_session_is_as_long_as_the_real_one(fs, d, up, down, s_up, s_pl, s_down, double):
    s = seg(d, up, down)
    sham = {"ramp_up_ms": s_up, "plateau_ms": s_pl, "ramp_down_ms": s_down, "double": double}
    p = proto(s, fs, sham)
    if V.check(p, CEILING):
        return
    assert Engine(p).total == Engine(proto(s, fs, None)).total
