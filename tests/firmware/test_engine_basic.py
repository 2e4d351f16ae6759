"""Engine basics, run under the unix port (tools/mptest.py) and CPython (pytest)."""
from array import array

from tes.engine import Engine, RAMP_UP, PLATEAU, RAMP_DOWN


def stim(**kw):
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0,
           "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 1000,
           "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    seg.update(kw)
    return seg


def proto(segments, fs=1000, sham=None):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def run(p, block=97):
    e = Engine(p)
    buf = array("i", [0] * block)
    out = []
    states = []
    while True:
        n = e.fill(buf, block)
        if not n:
            break
        out.extend(buf[:n])
        states.append(e.state)
    return out, states


def test_dc_ramp_plateau_exact():
    out, states = run(proto([stim()]))
    assert len(out) == 2000
    assert out[0] == 0
    assert all(v == 2000 for v in out[500:1500])
    up = out[:500]
    assert all(a <= b for a, b in zip(up, up[1:]))
    down = out[1500:]
    assert all(a >= b for a, b in zip(down, down[1:]))
    assert max(out) == 2000
    assert RAMP_UP in states and PLATEAU in states and RAMP_DOWN in states


def test_block_size_does_not_change_samples():
    p = proto([stim(waveform="sine", amplitude_uA=1000, frequency_mHz=10000, ramp_shape="cosine")])
    assert run(p, 7)[0] == run(p, 256)[0]
