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


# ---- states, phases, soft-stop corners, pulse edges, raised-cosine envelope -------------------

def test_state_numbers_index_their_names():
    from tes import engine as E
    for name in ("off", "ramp-up", "plateau", "ramp-down", "pause", "sham-off", "done"):
        const = getattr(E, name.upper().replace("-", "_"))
        assert E.STATE_NAMES[const] == name, (name, const)
    assert (E.OFF, E.DONE) == (0, 6)
    assert Engine(proto([stim()])).state == E.OFF


def test_phases_of_zero_samples_are_dropped_and_of_one_kept():
    from tes.engine import build_phases, PAUSE, SHAM_OFF
    p = proto([stim(ramp_up_ms=1, duration_ms=1, ramp_down_ms=1), {"kind": "pause", "duration_ms": 1},
               stim(ramp_up_ms=100, duration_ms=0, ramp_down_ms=100)])
    assert build_phases(p) == [(RAMP_UP, 1, 0), (PLATEAU, 1, 0), (RAMP_DOWN, 1, 0), (PAUSE, 1, 1),
                               (RAMP_UP, 100, 2), (RAMP_DOWN, 100, 2)]
    sham = {"ramp_up_ms": 100, "plateau_ms": 0, "ramp_down_ms": 100, "double": False}
    ph = build_phases(proto([stim(ramp_up_ms=100, duration_ms=1000, ramp_down_ms=100)], sham=sham))
    assert ph == [(RAMP_UP, 100, 0), (RAMP_DOWN, 100, 0), (SHAM_OFF, 1000, 0)], ph


def test_soft_stop_before_the_first_sample_or_after_the_end_gives_nothing():
    from tes import engine as E
    buf = array("i", [0] * 64)
    e = Engine(proto([stim()]))
    e.soft_stop(1000)
    assert e.state == E.DONE and e.fill(buf, 64) == 0 and e.fill(buf, 1) == 0
    e = Engine(proto([stim(ramp_up_ms=1, duration_ms=2, ramp_down_ms=1)]))
    assert e.fill(buf, 64) == 4 and e.fill(buf, 64) == 0
    e.soft_stop(1000)
    assert e.state == E.DONE and e.fill(buf, 64) == 0


def test_soft_stop_where_the_envelope_is_zero_ends_at_once():
    from tes import engine as E
    buf = array("i", [0] * 64)
    # In a pause, and in the off part of a sham: no ramp, done now.
    e = Engine(proto([stim(ramp_up_ms=100, duration_ms=100, ramp_down_ms=100), {"kind": "pause", "duration_ms": 500},
                      stim()]))
    assert e.fill(buf, 64) == 64
    while e.state != E.PAUSE:
        e.fill(buf, 1)
    e.fill(buf, 10)
    e.soft_stop(1000)
    assert e.state == E.DONE and e.fill(buf, 64) == 0
    sham = {"ramp_up_ms": 100, "plateau_ms": 0, "ramp_down_ms": 100, "double": False}
    e = Engine(proto([stim(ramp_up_ms=100, duration_ms=1000, ramp_down_ms=100)], sham=sham))
    while e.state != E.SHAM_OFF:
        e.fill(buf, 1)
    e.fill(buf, 10)
    assert e.envelope() == 0
    e.soft_stop(1000)
    assert e.state == E.DONE and e.fill(buf, 64) == 0


def test_soft_stop_of_zero_ms_is_one_sample():
    for ms in (0, 1):
        e = Engine(proto([stim()], fs=1000))
        buf = array("i", [0] * 800)
        e.fill(buf, 800)          # in the plateau
        e.soft_stop(ms)
        n = e.fill(buf, 64)
        assert n == 1 and 0 <= buf[0] <= 2000, (ms, n, buf[0])
        assert e.fill(buf, 64) == 0


def test_pulse_edges_fall_on_the_exact_sample():
    # 1 Hz at 1024 S/s: the phase advances 1024 (of 2**20) a sample; 1955 us is a width of
    # 2049: samples 0, 1 and 2 (phase 2048) are in the pulse, sample 3 is not.
    e = Engine(proto([stim(waveform="pulse", amplitude_uA=1000, frequency_mHz=1000, pulse_width_us=1955,
                           ramp_up_ms=0, ramp_down_ms=0, duration_ms=2000)], fs=1024))
    buf = array("i", [0] * 2048)
    assert e.fill(buf, 2048) == 2048
    on = [k for k in range(2048) if buf[k]]
    assert on == [0, 1, 2, 1024, 1025, 1026], on
    assert all(buf[k] == 1000 for k in on)
    # A pulse narrower than one unit of phase (1 mHz, 200 us at 5 kS/s: 2**20 units per
    # 1000 s, one every 4.77 samples) is one unit wide, not none: the samples at phase 0.
    e = Engine(proto([stim(waveform="pulse", amplitude_uA=1500, frequency_mHz=1, pulse_width_us=200,
                           ramp_up_ms=0, ramp_down_ms=0, duration_ms=2)], fs=5000))
    buf = array("i", [0] * 10)
    assert e.fill(buf, 10) == 10
    assert list(buf) == [1500] * 5 + [0] * 5, list(buf)


def test_raised_cosine_envelope_on_and_between_table_points():
    import math
    from tes.tables import RCOS
    for n, step in ((256, 1), (512, 2)):
        e = Engine(proto([stim(ramp_shape="cosine", ramp_up_ms=n, duration_ms=100)], fs=1000))
        buf = array("i", [0] * 1)
        for j in range(n):
            env = e.envelope() if j else 0
            if j % step == 0:
                assert env == RCOS[j // step], (n, j, env, RCOS[j // step])
            want = 32768 * (1 - math.cos(math.pi * j / n)) / 2
            assert abs(env - want) <= 2, (n, j, env, want)
            e.fill(buf, 1)
        assert e.state == RAMP_UP and e.envelope() == 32768     # the ramp's end: full
    # Any length: position floor(65536 * j / n) in Q8 of the 256-step table, linearly
    # interpolated between its points.
    for n in (300, 777):
        e = Engine(proto([stim(ramp_shape="cosine", ramp_up_ms=n, duration_ms=100)], fs=1000))
        buf = array("i", [0] * 1)
        e.fill(buf, 1)
        for j in range(1, n):
            pos = 65536 * j // n
            k = pos >> 8
            want = RCOS[k] + (((RCOS[k + 1] - RCOS[k]) * (pos & 255)) >> 8)
            assert e.envelope() == want, (n, j, e.envelope(), want)
            e.fill(buf, 1)
