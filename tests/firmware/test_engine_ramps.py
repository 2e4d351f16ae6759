"""The engine against the waveform in closed form, sample by sample, over whole sessions:
ramps of every length up to the longest the limits allow, sines whose phases hold a
non-integer number of cycles, pulses, offsets, segments, pauses and sham.

A ramp or a phase boundary that steps (a long ramp turned into a step, an oscillator that
restarts at a phase boundary, an envelope off by a factor) shows as a sample far from
A * envelope(k) * waveform(k). Runs under the unix port (tools/mptest.py) and CPython.
"""
import math
from array import array

from tes.engine import Engine, build_phases, RAMP_UP, PLATEAU, RAMP_DOWN, PAUSE, SHAM_OFF, DONE

BLOCK = 97        # a block size that divides nothing: phases end mid-block


def stim(**kw):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0, "frequency_mHz": 0,
         "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
         "biphasic": False, "duration_ms": 1000, "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    s.update(kw)
    return s


def proto(segments, fs=5000, sham=None):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def generate(p, block=BLOCK):
    eng = Engine(p)
    out = array("i", [0] * eng.total)
    buf = array("i", [0] * block)
    k = 0
    while True:
        n = eng.fill(buf, block)
        if not n:
            break
        for j in range(n):
            out[k + j] = buf[j]
        k += n
    assert k == eng.total, (k, eng.total)
    return out


def envelope(state, j, n, cosine):
    """Envelope 0..1 at sample j of a phase of n samples."""
    if state == PLATEAU:
        return 1.0
    if state not in (RAMP_UP, RAMP_DOWN):
        return 0.0
    e = j / n
    if cosine:
        e = (1 - math.cos(math.pi * e)) / 2
    return e if state == RAMP_UP else 1.0 - e


def unit(seg, k, fs):
    """The segment's unit waveform at sample k counted from the segment's first sample."""
    wf = seg["waveform"]
    if wf == "dc":
        return 1.0
    f = seg["frequency_mHz"] / 1000.0
    if wf == "sine":
        return math.sin(2 * math.pi * (f * k / fs + seg["phase_deg"] / 360.0))
    if wf == "pulse":
        ph = (f * k / fs) % 1.0
        w = seg["pulse_width_us"] * f / 1e6
        if ph < w:
            return 1.0
        if seg["biphasic"] and ph < 2 * w:
            return -1.0
        return 0.0
    raise ValueError(wf)


def reference(p):
    """Closed-form samples (floats) of a protocol without noise, one at a time (a 600,000-
    sample session would not fit a small heap as a list)."""
    fs = p["sample_rate_hz"]
    w = 0
    seg_first = {}
    for state, n, i in build_phases(p):
        seg = p["segments"][i]
        if i not in seg_first:
            seg_first[i] = w
        for j in range(n):
            if state in (PAUSE, SHAM_OFF):
                yield 0.0
            else:
                e = envelope(state, j, n, seg["ramp_shape"] == "cosine")
                yield e * (seg["offset_uA"] + seg["amplitude_uA"] * unit(seg, w - seg_first[i], fs))
            w += 1


def worst_error(p, tol, skip_edges=False):
    got = generate(p)
    worst = 0.0
    where = -1
    want_at = 0.0
    k = 0
    for want in reference(p):
        err = abs(got[k] - want)
        if err > worst:
            worst, where, want_at = err, k, want
        k += 1
    assert k == len(got), (len(got), k)
    assert worst <= tol, ("sample %d: got %d, closed form %.2f" % (where, got[where], want_at), worst)
    return got


def max_step(xs):
    m = 0
    for k in range(1, len(xs)):
        d = abs(xs[k] - xs[k - 1])
        if d > m:
            m = d
    return m


def test_long_linear_ramps_at_the_default_rate():
    # The default 30 s ramps at 5 kS/s: 150,000 samples each way.
    p = proto([stim(amplitude_uA=2000, duration_ms=2000, ramp_up_ms=30000, ramp_down_ms=30000)])
    xs = worst_error(p, 1.5)
    assert max_step(xs) <= 1          # 2000 uA over 150,000 samples: never more than 1 uA a step
    up = 30000 * 5
    assert xs[0] == 0 and xs[up] == 2000 and xs[up - 1] <= 2000
    for k in range(1, up):
        assert xs[k] >= xs[k - 1]


def test_the_longest_ramp_the_limits_allow():
    # 5 min ramps (limits.max_ramp_ms) at 1 kS/s: 300,000 samples.
    p = proto([stim(amplitude_uA=4000, duration_ms=100, ramp_up_ms=300000, ramp_down_ms=300000)], fs=1000)
    xs = worst_error(p, 1.5)
    assert max_step(xs) <= 1


def test_cosine_ramps_long_and_short():
    for up, down in ((20000, 7000), (100, 100), (333, 777)):
        p = proto([stim(amplitude_uA=3000, ramp_shape="cosine", ramp_up_ms=up, ramp_down_ms=down)])
        worst_error(p, 3.0)


def test_sine_with_non_integer_cycles_in_every_phase():
    # 10.3 Hz: the ramp-up (1.234 s), plateau (2.5 s) and ramp-down (0.9 s) each hold a
    # fraction of a cycle at their ends; the oscillator must run on across them.
    for phase in (0, 90, 217):
        seg = stim(waveform="sine", amplitude_uA=1500, frequency_mHz=10300, phase_deg=phase,
                   ramp_up_ms=1234, duration_ms=2500, ramp_down_ms=900)
        xs = worst_error(proto([seg]), 3.0)
        slope = 2 * math.pi * 10.3 * 1500 / 5000        # the largest step a 10.3 Hz sine takes
        assert max_step(xs) <= slope * 1.02 + 1500 / (0.9 * 5000) + 2, max_step(xs)


def test_hybrid_offset_and_cosine_ramps():
    seg = stim(waveform="sine", amplitude_uA=1000, offset_uA=-1500, frequency_mHz=40000, ramp_shape="cosine",
               ramp_up_ms=2100, duration_ms=1000, ramp_down_ms=1700)
    worst_error(proto([seg], fs=10000), 3.0)


def test_pulse_trains_at_non_integer_periods():
    for biphasic in (False, True):
        seg = stim(waveform="pulse", amplitude_uA=2000, frequency_mHz=7700, pulse_width_us=10000,
                   biphasic=biphasic, ramp_up_ms=1000, duration_ms=3000, ramp_down_ms=1000)
        got = generate(proto([seg], fs=10000))
        bad = edges = 0
        prev = 0.0
        k = 0
        for want in reference(proto([seg], fs=10000)):
            if abs(got[k] - want) > 2:
                bad += 1
            if k and (want > 0.5) != (prev > 0.5):
                edges += 1
            prev = want
            k += 1
        assert bad <= edges, (bad, edges)


def test_segments_pauses_and_each_segment_restarts_its_oscillator():
    segs = [stim(waveform="sine", amplitude_uA=1200, frequency_mHz=6100, ramp_up_ms=700, duration_ms=1300,
                 ramp_down_ms=800),
            {"kind": "pause", "duration_ms": 1111},
            stim(amplitude_uA=900, ramp_up_ms=300, duration_ms=500, ramp_down_ms=450),
            stim(waveform="sine", amplitude_uA=700, frequency_mHz=23000, phase_deg=45, ramp_up_ms=250,
                 duration_ms=600, ramp_down_ms=350, ramp_shape="cosine")]
    worst_error(proto(segs), 3.0)


def test_sham_is_the_fade_and_then_silence():
    seg = stim(waveform="sine", amplitude_uA=1500, frequency_mHz=10000, ramp_up_ms=3000, duration_ms=20000,
               ramp_down_ms=3000)
    for double in (False, True):
        p = proto([seg], sham={"ramp_up_ms": 3000, "plateau_ms": 1500, "ramp_down_ms": 3000, "double": double})
        xs = worst_error(p, 3.0)
        assert len(xs) == 26000 * 5        # a sham lasts exactly as long as the real session
        fade = (3000 + 1500 + 3000) * 5
        assert all(xs[k] == 0 for k in range(fade, len(xs) - (fade if double else 0)))
        assert max(abs(v) for v in xs[:fade]) >= 1490


def test_block_size_never_changes_a_sample():
    seg = stim(waveform="sine", amplitude_uA=1500, frequency_mHz=10300, ramp_up_ms=1234, duration_ms=777,
               ramp_down_ms=901)
    p = proto([seg, {"kind": "pause", "duration_ms": 50}, stim(ramp_up_ms=200, duration_ms=33, ramp_down_ms=100)])
    a = generate(p, 1)
    for block in (5, 64, 1000, 4099):
        assert generate(p, block) == a, block


# ---- ramps and soft stops in exact integers -----------------------------------------------------
# A DC segment's sample is the envelope e (Q15) applied to full scale:
# ((A * e) >> 15) * 32768 + 16384 >> 15. A linear ramp of n samples has e = k * top // n at its
# k-th sample (the Bresenham step of tes.kernels.env_ramp, exact), counting down from top
# for a ramp down.

def dc_sample(amp, e):
    return (((amp * e) >> 15) * 32768 + 16384) >> 15


def run_until(eng, k, block=BLOCK):
    """The first k samples, then stop filling."""
    out = []
    buf = array("i", [0] * block)
    while len(out) < k:
        n = eng.fill(buf, min(block, k - len(out)))
        assert n
        out.extend(buf[j] for j in range(n))
    return out


def test_linear_ramps_are_exact_in_integers():
    fs = 5000
    p = proto([stim(amplitude_uA=3000, duration_ms=600, ramp_up_ms=247, ramp_down_ms=131)], fs=fs)
    xs = list(generate(p))
    up, down = 247 * fs // 1000, 131 * fs // 1000
    flat = len(xs) - up - down
    for k in range(up):
        assert xs[k] == dc_sample(3000, k * 32768 // up), k
    assert xs[up:up + flat] == [3000] * flat
    for k in range(down):
        assert xs[up + flat + k] == dc_sample(3000, 32768 - k * 32768 // down), k


def test_soft_stop_is_a_linear_ramp_from_the_level_of_the_moment_exactly():
    # From the plateau, from a linear ramp up and from a cosine one: the stop's ramp starts
    # at the envelope of the moment (its first sample is the level before the stop), falls
    # linearly in exact steps and ends at zero; the engine says ramp-down, then done.
    fs = 5000
    # (83 ms from the plateau at 2500 uA: a ramp whose one sample where the Bresenham
    # fraction carries shows in the output)
    for shape, at, ms in (("linear", 3000, 57), ("linear", 3000, 83), ("linear", 700, 57), ("cosine", 700, 57),
                          ("cosine", 1601, 57)):
        n = ms * fs // 1000
        eng = Engine(proto([stim(amplitude_uA=2500, duration_ms=800, ramp_up_ms=400, ramp_down_ms=400,
                                 ramp_shape=shape)], fs=fs))
        run_until(eng, at)
        e0 = eng.envelope()
        assert 0 < e0 <= 32768
        eng.soft_stop(ms)
        assert eng.state == RAMP_DOWN
        rest = generate_rest(eng)
        assert len(rest) == n, (shape, at, len(rest))
        want = [dc_sample(2500, e0 - k * e0 // n) for k in range(n)]
        assert rest == want, (shape, at, [k for k in range(n) if rest[k] != want[k]][:5])
        assert eng.state == DONE


def test_a_second_soft_stop_never_raises_the_current():
    fs = 5000
    eng = Engine(proto([stim(amplitude_uA=2000, duration_ms=800, ramp_up_ms=200, ramp_down_ms=200)], fs=fs))
    before = run_until(eng, 2500)              # on the plateau
    eng.soft_stop(100)                          # 500 samples
    first = run_until(eng, 200)
    e_mid = eng.envelope()
    assert e_mid < 32768 and eng.state == RAMP_DOWN
    eng.soft_stop(100)                          # a second stop, from where the first one is
    second = generate_rest(eng)
    xs = before[-1:] + first + second
    assert all(b <= a for a, b in zip(xs, xs[1:])), "the current rose"
    assert second[0] == dc_sample(2000, e_mid) and second[-1] < 10 and eng.state == DONE


def generate_rest(eng, block=BLOCK):
    out = []
    buf = array("i", [0] * block)
    while True:
        m = eng.fill(buf, block)
        if not m:
            return out
        out.extend(buf[j] for j in range(m))


def test_env_ramp_twins_agree_for_signed_levels():
    """The viper env_ramp reads AMP and OFF sign-extended, as the plain one sees them:
    a negative amplitude (or offset) gives the same samples on both (the engine passes
    amplitudes >= 0 today; helpers 19 and 20 found AMP read unsigned). Unix port only:
    elsewhere the twin is the plain kernel."""
    from array import array
    from tes import kernels as K
    from tes.tables import RCOS
    try:
        from tes import kernels_fast as F
    except (ImportError, SyntaxError):
        return
    if not F.AVAILABLE:
        return
    for amp, off, cos, down in ((-1500, 0, 0, 0), (-2000, -700, 1, 1), (1800, -400, 1, 0), (-1, 3, 0, 1)):
        outs = []
        for kern in (K, F):
            st = array("i", [0] * (K.NOISE_BASE + 8))
            st[K.EQ], st[K.ER], st[K.EN] = 32768 // 97, 32768 % 97, 97
            st[K.ECOS], st[K.EDOWN], st[K.ETOP] = cos, down, K.FULL
            st[K.AMP], st[K.OFF] = amp, off
            out = array("i", [(k * 2731) % 65535 - 32767 for k in range(97)])
            kern.env_ramp(out, 0, 97, st, RCOS)
            outs.append(list(out))
        assert outs[0] == outs[1], (amp, off, cos, down)
