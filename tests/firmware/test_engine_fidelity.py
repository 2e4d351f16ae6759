"""Engine fidelity: the exactness claims of the integer engine, sample for sample.

Plain asserts, no pytest or numpy: runs under the unix port
(`micropython tools/mptest.py test_engine_fidelity`) and CPython (pytest). Under
MicroPython it also checks that the viper noise kernel is bit-exact to the plain one and
that every waveform is generated with the heap locked.
"""
import sys
from array import array

from tes.engine import Engine, RAMP_UP, PLATEAU, RAMP_DOWN, PAUSE, SHAM_OFF

MICROPYTHON = sys.implementation.name == "micropython"
try:
    import micropython
except ImportError:  # CPython
    micropython = None


def stim(**kw):
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1,
           "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 1000,
           "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    seg.update(kw)
    return seg


def noise_seg(**kw):
    base = {"waveform": "noise", "amplitude_uA": 1000, "noise_sd_uA": 333,
            "band_mHz": [101000, 640000], "seed": 7}
    base.update(kw)
    return stim(**base)


def pause(ms):
    return {"kind": "pause", "duration_ms": ms}


def proto(segments, fs=1000, sham=None):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def sham_of(up=300, plateau=200, down=300, double=False):
    return {"ramp_up_ms": up, "plateau_ms": plateau, "ramp_down_ms": down, "double": double}


def run(p, block=113, fast=True):
    """Every sample of a protocol, and the engine state of every sample."""
    e = Engine(p, fast)
    buf = array("i", [0] * block)
    out = []
    while True:
        n = e.fill(buf, block)
        if not n:
            break
        out.extend(buf[:n])
    assert e.remaining() == 0
    return out


def run_states(p):
    """Samples and the state each one was made in (block of one sample)."""
    e = Engine(p)
    buf = array("i", [0])
    out = []
    states = []
    while e.fill(buf, 1):
        out.append(buf[0])
        states.append(e.state)
    return out, states


def monotonic_up(xs):
    return all(a <= b for a, b in zip(xs, xs[1:]))


def monotonic_down(xs):
    return all(a >= b for a, b in zip(xs, xs[1:]))


# --- DC plateau and ramps -----------------------------------------------------------

def test_dc_plateau_exact_and_ramps_linear_and_cosine():
    for shape in ("linear", "cosine"):
        for amp in (1, 999, 2000, 4000):
            for up, down in ((100, 100), (500, 300), (1000, 2000)):
                p = proto([stim(amplitude_uA=amp, ramp_up_ms=up, ramp_down_ms=down,
                                duration_ms=700, ramp_shape=shape)])
                out = run(p)
                assert len(out) == up + 700 + down
                assert out[0] == 0
                assert all(v == amp for v in out[up:up + 700]), (shape, amp)
                ramp_up = out[:up]
                ramp_down = out[up + 700:]
                assert monotonic_up(ramp_up), (shape, amp, up)
                assert monotonic_down(ramp_down), (shape, amp, down)
                assert max(ramp_up) <= amp and max(ramp_down) <= amp
                assert min(out) >= 0
                # the ramp down starts from the plateau level, the ramp up ends below it
                assert ramp_down[0] == amp
                assert ramp_up[-1] <= amp


def test_dc_ramp_at_other_sample_rates():
    for fs in (100, 777, 5000):
        p = proto([stim(amplitude_uA=3000, ramp_up_ms=130, ramp_down_ms=170, duration_ms=200,
                        ramp_shape="cosine")], fs=fs)
        out = run(p)
        up = 130 * fs // 1000
        flat = 200 * fs // 1000
        down = 170 * fs // 1000
        assert len(out) == up + flat + down
        assert all(v == 3000 for v in out[up:up + flat])
        assert monotonic_up(out[:up]) and monotonic_down(out[up + flat:])
        assert max(out) == 3000


def _peaks(out, start, stop, period, first):
    return [out[i] for i in range(start + first, stop, period)]


def test_sine_and_hybrid_envelope_ramps_monotonic_no_overshoot():
    # fs / f = 100 samples, phase 90: every 100th sample is a crest, +50 a trough.
    for shape in ("linear", "cosine"):
        for off, amp in ((0, 1000), (1000, 500), (-1500, 2000), (300, 3700)):
            up, flat, down = 700, 1000, 900
            p = proto([stim(waveform="sine", amplitude_uA=amp, offset_uA=off, frequency_mHz=10000,
                            phase_deg=90, ramp_up_ms=up, duration_ms=flat, ramp_down_ms=down,
                            ramp_shape=shape)])
            out = run(p)
            assert len(out) == up + flat + down
            peak = abs(off) + amp
            assert max(abs(v) for v in out) <= peak
            crest = _peaks(out, 0, up, 100, 0)
            trough = _peaks(out, 0, up, 100, 50)
            assert monotonic_up(crest), (shape, off, amp, crest)
            assert (monotonic_up if off - amp >= 0 else monotonic_down)(trough), (shape, off, amp)
            assert max(crest) <= off + amp
            assert abs(out[up] - (off + amp)) <= 1  # plateau reached: first plateau sample is a crest
            crest_d = _peaks(out, up + flat, len(out), 100, 0)
            trough_d = _peaks(out, up + flat, len(out), 100, 50)
            assert monotonic_down(crest_d), (shape, off, amp)
            assert (monotonic_down if off - amp >= 0 else monotonic_up)(trough_d)
            plateau = out[up:up + flat]
            assert max(plateau) - (off + amp) in (-1, 0) and min(plateau) - (off - amp) in (0, 1)


# --- sham --------------------------------------------------------------------------

def test_sham_single_zero_outside_fade_and_real_length():
    real = stim(amplitude_uA=2000, ramp_up_ms=500, duration_ms=3000, ramp_down_ms=500)
    out_real = run(proto([real]))
    for plateau in (0, 200, 1000):
        out, states = run_states(proto([real], sham=sham_of(300, plateau, 400)))
        assert len(out) == len(out_real) == 4000
        fade = 300 + plateau + 400
        assert all(v == 0 for v in out[fade:])
        assert all(s == SHAM_OFF for s in states[fade:])
        assert all(v == 2000 for v in out[300:300 + plateau])
        assert states[300:300 + plateau] == [PLATEAU] * plateau
        assert monotonic_up(out[:300]) and monotonic_down(out[300 + plateau:fade])
        assert max(out) == (2000 if plateau else max(out[:fade]))
        assert max(out) <= 2000
        assert out[300 + plateau] == 2000  # the fade out starts at full level


def test_sham_double_repeats_fade_at_end():
    real = stim(amplitude_uA=1500, ramp_up_ms=500, duration_ms=5000, ramp_down_ms=500)
    out, states = run_states(proto([real], sham=sham_of(300, 250, 350, double=True)))
    fade = 300 + 250 + 350
    assert len(out) == 6000
    first = out[:fade]
    last = out[-fade:]
    assert first == last
    assert all(v == 0 for v in out[fade:len(out) - fade])
    assert all(s == SHAM_OFF for s in states[fade:len(out) - fade])
    assert out[300:550] == [1500] * 250 and last[300:550] == [1500] * 250
    assert states[:300] == [RAMP_UP] * 300 and states[-350:] == [RAMP_DOWN] * 350


def test_sham_over_segments_and_sine():
    segs = [stim(waveform="sine", amplitude_uA=1000, frequency_mHz=10000, duration_ms=2000,
                 ramp_up_ms=200, ramp_down_ms=200), pause(700), stim(duration_ms=1500)]
    real = run(proto(segs))
    out, states = run_states(proto(segs, sham=sham_of(100, 100, 100)))
    assert len(out) == len(real) == 2400 + 700 + 2500
    # each stimulation segment gets its own fade; the pause stays zero
    assert all(v == 0 for v in out[300:2400])
    assert all(v == 0 for v in out[2400:3100]) and states[2400:3100] == [PAUSE] * 700
    assert out[3100 + 100:3100 + 200] == [2000] * 100
    assert all(v == 0 for v in out[3100 + 300:])
    assert max(abs(v) for v in out) <= 2000


# --- segments ----------------------------------------------------------------------

def test_segments_13_20_13_like_pause_exact_and_lengths():
    for fs in (1000, 250, 3000):
        block = stim(amplitude_uA=1000, ramp_up_ms=150, duration_ms=1300, ramp_down_ms=150)
        out, states = run_states(proto([block, pause(2000), block], fs=fs))
        # every phase is a whole number of samples: ms * fs // 1000, phase by phase
        up = 150 * fs // 1000
        n_block = up + 1300 * fs // 1000 + up
        n_pause = 2000 * fs // 1000
        assert len(out) == 2 * n_block + n_pause
        mid = out[n_block:n_block + n_pause]
        assert mid == [0] * n_pause
        assert states[n_block:n_block + n_pause] == [PAUSE] * n_pause
        assert out[:n_block] == out[n_block + n_pause:]
        assert out[up:up + 1300 * fs // 1000] == [1000] * (1300 * fs // 1000)


def test_segment_phases_restart_oscillator():
    # a sine segment after a pause restarts at its own phase
    seg = stim(waveform="sine", amplitude_uA=1000, frequency_mHz=7000, ramp_up_ms=100,
               ramp_down_ms=100, duration_ms=333)
    out = run(proto([seg, pause(123), seg]))
    n = 533
    assert out[:n] == out[n + 123:]


# --- pulse -------------------------------------------------------------------------

def _runs(xs, value):
    """(start, length) of every run of `value`."""
    runs = []
    i = 0
    while i < len(xs):
        if xs[i] == value:
            j = i
            while j < len(xs) and xs[j] == value:
                j += 1
            runs.append((i, j - i))
            i = j
        else:
            i += 1
    return runs


def test_pulse_width_and_rate_exact_in_samples():
    # (fs, f_mHz, width_us) -> period and width are whole numbers of samples
    for fs, f, width, biphasic in ((10000, 40000, 5000, False), (2000, 40000, 5000, False),
                                   (1000, 10000, 20000, True), (5000, 25000, 2000, True),
                                   (4000, 100000, 500, True)):
        period = fs * 1000 // f
        w = width * fs // 1000000
        up = 100 * fs // 1000
        flat = 1000 * fs // 1000
        p = proto([stim(waveform="pulse", amplitude_uA=1200, frequency_mHz=f, pulse_width_us=width,
                        biphasic=biphasic, ramp_up_ms=100, ramp_down_ms=100, duration_ms=1000)], fs=fs)
        out = run(p)
        plateau = out[up:up + flat]
        pos = _runs(plateau, 1200)
        assert pos, (fs, f, width)
        # whole pulses only (drop a run cut by the plateau's edges)
        inner = [r for r in pos if r[0] > 0 and r[0] + r[1] < flat]
        assert all(length == w for _, length in inner), (fs, f, width, inner[:3])
        starts = [s for s, _ in pos]
        assert all(b - a == period for a, b in zip(starts, starts[1:])), (fs, f, starts[:4])
        neg = _runs(plateau, -1200)
        if biphasic:
            inner_n = [r for r in neg if r[0] > 0 and r[0] + r[1] < flat]
            assert all(length == w for _, length in inner_n)
            # symmetric: each negative phase follows its positive one directly
            for s, length in inner:
                assert plateau[s + length] == -1200 and plateau[s + 2 * length - 1] == -1200
            assert sum(plateau) == 0 or abs(sum(plateau)) <= 1200 * w
        else:
            assert not neg
        assert set(plateau) <= {1200, -1200, 0}
        assert max(abs(v) for v in out) <= 1200


def test_biphasic_pulse_charge_balanced_over_whole_periods():
    fs, f, width = 10000, 50000, 2000
    p = proto([stim(waveform="pulse", amplitude_uA=2000, frequency_mHz=f, pulse_width_us=width,
                    biphasic=True, ramp_up_ms=100, ramp_down_ms=100, duration_ms=2000)], fs=fs)
    out = run(p)
    period = fs * 1000 // f
    up = 1000
    plateau = out[up:up + 20000]
    # the plateau starts at a period boundary (ramp = 5 whole periods): 100 whole periods
    assert len(plateau) % period == 0
    assert sum(plateau) == 0
    assert plateau.count(2000) == plateau.count(-2000) == 100 * width * fs // 1000000


# --- sine --------------------------------------------------------------------------

def test_sine_peak_within_1uA_when_fs_over_f_multiple_of_4():
    for fs, f in ((1000, 10000), (2000, 25000), (5000, 12500), (1000, 62500), (400, 1000),
                  (20000, 40000)):
        assert (fs * 1000) % f == 0 and (fs * 1000 // f) % 4 == 0
        for amp in (1, 500, 1000, 4000):
            p = proto([stim(waveform="sine", amplitude_uA=amp, frequency_mHz=f, ramp_up_ms=100,
                            ramp_down_ms=100, duration_ms=1000)], fs=fs)
            out = run(p)
            up = 100 * fs // 1000
            plateau = out[up:up + fs]
            assert abs(max(plateau) - amp) <= 1, (fs, f, amp, max(plateau))
            assert abs(min(plateau) + amp) <= 1, (fs, f, amp, min(plateau))


def test_sine_phase_90_starts_at_peak_and_0_at_zero():
    # ramp of 10 whole cycles: the plateau starts where the oscillator started
    for fs in (1000, 4000):
        for phase, want in ((90, 1000), (0, 0), (180, 0), (270, -1000)):
            p = proto([stim(waveform="sine", amplitude_uA=1000, frequency_mHz=10000, phase_deg=phase,
                            ramp_up_ms=1000, ramp_down_ms=100, duration_ms=500)], fs=fs)
            out = run(p)
            assert abs(out[fs] - want) <= 1, (fs, phase, out[fs])
            if phase == 90:
                assert out[fs + 1] <= out[fs]
                assert out[fs] == max(out)


def test_no_sample_beyond_offset_plus_amplitude():
    cases = [
        stim(waveform="sine", amplitude_uA=1700, offset_uA=-2300, frequency_mHz=10300, ramp_shape="cosine"),
        stim(waveform="sine", amplitude_uA=4000, frequency_mHz=33333, phase_deg=17),
        stim(waveform="pulse", amplitude_uA=1000, offset_uA=1500, frequency_mHz=7000, pulse_width_us=3000,
             biphasic=True),
        noise_seg(amplitude_uA=1000, offset_uA=-500, noise_sd_uA=1000, seed=3),
        noise_seg(amplitude_uA=500, noise_sd_uA=500, band_mHz=[100, 100000], seed=99),
        stim(amplitude_uA=4000, ramp_shape="cosine"),
    ]
    for seg in cases:
        for fs in (1000, 2000):
            out = run(proto([seg], fs=fs))
            peak = abs(seg["offset_uA"]) + seg["amplitude_uA"]
            assert max(abs(v) for v in out) <= peak, (seg["waveform"], fs)


def test_noise_deterministic_per_seed_and_block_size():
    p = proto([noise_seg(seed=12345)], fs=2000)
    a = run(p, block=1)
    b = run(p, block=1000)
    assert a == b
    c = run(proto([noise_seg(seed=12346)], fs=2000))
    assert a != c


# --- fast path ---------------------------------------------------------------------

def _has_viper():
    try:
        from tes import kernels_fast  # noqa: F401
        return True
    except (ImportError, SyntaxError):
        return False


def test_fast_path_availability():
    p = proto([noise_seg()], fs=2000)
    # The viper twin wherever the emitter exists (the unix port, a board); never under
    # CPython or the WebAssembly port, where the plain kernels run.
    assert Engine(p).fast is (MICROPYTHON and _has_viper())
    if MICROPYTHON and sys.implementation._machine.startswith("JS"):
        assert Engine(p).fast is False
    assert Engine(p, fast=False).fast is False


def test_viper_noise_bit_exact_to_plain():
    if not (MICROPYTHON and _has_viper()):
        return          # no viper twin here: the plain kernel is the only one
    # (fs, band_mHz): covers upsampling shifts 0..8, DC blocker and true high-pass edges
    cases = [
        (1280, [101000, 640000]),     # shift 0, no low-pass
        (5000, [101000, 640000]),     # shift 1
        (2000, [100, 640000]),        # full band, DC blocker
        (1000, [100, 100000]),        # low band
        (10000, [100, 100000]),       # shift 4
        (50000, [100, 1000]),         # shift 8
        (20000, [5000, 40000]),       # shift 6, true high-pass
        (1000, [0, 50000]),           # no high-pass at all
    ]
    seeds = (0, 1, 20080101, (1 << 30) - 1)
    for fs, band in cases:
        for seed in seeds:
            for off, sd in ((0, 333), (700, 1000)):
                seg = noise_seg(band_mHz=band, seed=seed, offset_uA=off, noise_sd_uA=sd,
                                ramp_up_ms=100, ramp_down_ms=100, duration_ms=200)
                p = proto([seg], fs=fs)
                n = min(3000, 400 * fs // 1000)
                fast = Engine(p, True)
                plain = Engine(p, False)
                assert fast.fast and not plain.fast
                a = array("i", [0] * n)
                b = array("i", [0] * n)
                blk = 97
                done = 0
                while done < n:
                    m = min(blk, n - done)
                    fa = fast.fill(a, m)
                    fb = plain.fill(b, m)
                    assert fa == fb
                    assert a[:fa] == b[:fb], (fs, band, seed, done)
                    done += m
                assert fast.st == plain.st, (fs, band, seed)


# --- no allocation ----------------------------------------------------------------

def _all_waveforms():
    """Protocols for every waveform and phase kind; short, but crossing every transition."""
    sine = stim(waveform="sine", amplitude_uA=1000, offset_uA=0, frequency_mHz=10300, phase_deg=45,
                ramp_up_ms=100, ramp_down_ms=100, duration_ms=300)
    hybrid = stim(waveform="sine", amplitude_uA=500, offset_uA=1000, frequency_mHz=6000,
                  ramp_up_ms=100, ramp_down_ms=100, duration_ms=300, ramp_shape="cosine")
    pulse = stim(waveform="pulse", amplitude_uA=1000, frequency_mHz=40000, pulse_width_us=5000,
                 biphasic=True, ramp_up_ms=100, ramp_down_ms=100, duration_ms=300)
    noise = noise_seg(ramp_up_ms=100, ramp_down_ms=100, duration_ms=300)
    noise_lf = noise_seg(band_mHz=[100, 100000], offset_uA=500, ramp_up_ms=100, ramp_down_ms=100,
                         duration_ms=300, ramp_shape="cosine")
    dc_lin = stim(ramp_up_ms=100, ramp_down_ms=100, duration_ms=300)
    dc_cos = stim(ramp_up_ms=100, ramp_down_ms=100, duration_ms=300, ramp_shape="cosine")
    return [
        proto([dc_lin]), proto([dc_cos]), proto([sine]), proto([hybrid]), proto([pulse], fs=2000),
        proto([noise], fs=2000), proto([noise_lf], fs=1000),
        proto([dc_lin, pause(200), sine, pause(100), noise, pulse, hybrid], fs=2000),
        proto([dc_cos], sham=sham_of(100, 50, 100)),
        proto([sine, pause(150), dc_lin], sham=sham_of(100, 0, 100, double=True)),
    ]


def test_generation_with_heap_locked():
    protos = _all_waveforms()
    engines = [Engine(p) for p in protos] + [Engine(p, False) for p in protos]
    buf = array("i", [0] * 64)
    counts = array("i", [0] * len(engines))
    states = array("i", [0] * (len(engines) * 8))
    if micropython is not None:
        micropython.heap_lock()
    try:
        for k in range(len(engines)):
            e = engines[k]
            while True:
                n = e.fill(buf, 64)
                if n == 0:
                    break
                counts[k] += n
                states[k * 8 + e.state] = 1
    finally:
        if micropython is not None:
            micropython.heap_unlock()
    for k in range(len(engines)):
        assert counts[k] == engines[k].total, k
        assert engines[k].remaining() == 0
    # the locked region crossed ramps, plateaus, pauses and sham-off
    for state in (RAMP_UP, PLATEAU, RAMP_DOWN, PAUSE, SHAM_OFF):
        assert any(states[k * 8 + state] for k in range(len(engines))), state
