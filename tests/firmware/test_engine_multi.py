"""The engine on a montage of several electrodes (issue 12): Engine(proto).fill_all(outs, n).

- every row of every random valid protocol sums to exactly 0 (the return is minus the sum
  of the driven channels, in integers), and each driven channel is, sample for sample,
  what the single-channel engine (the golden one, tests/vectors/engine.json) gives for
  that channel's waveform as a two-electrode protocol of the same timing: the property is
  drawn by hypothesis under CPython and from a fixed pseudo-random sequence on every port;
- the phase of each sine channel is its closed form (k f 2**20 / fs) mod 2**20 exactly, at
  6 Hz and 7 Hz at 5 kS/s over an hour of samples; two channels at one frequency keep
  their phase difference exactly;
- fill_all allocates nothing (heap locked), a soft stop ramps every channel down as one;
- the two-electrode form through fill_all: the anode as fill gives it, the cathode its
  negation.

Plain asserts: runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port
(tools/wasm/mptest32.mjs) and CPython (pytest)."""
import sys
from array import array

from tes import engine as E
from tes import kernels as K
from tes import validate as V
from tes.engine import Engine
from tes.tables import SINE
from tes.limits import CEILING

import test_validate_montage as VM
from test_validate_montage import cur

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    import micropython
else:
    micropython = None

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:     # MicroPython: the seeded sequence below stands in
    given = None

LIM = dict(CEILING)
VIPER = E.F is not None and E.F.AVAILABLE      # the unix port: fast enough for an hour of samples


def mseg(currents, **kw):
    """A stim segment of the multi form, short enough to run every sample (0.7 s)."""
    base = {"duration_ms": 300, "ramp_up_ms": 200, "ramp_down_ms": 200}
    base.update(kw)
    return VM.mseg(currents, **base)


def mproto(segments, names, ret, fs=5000, sham=None):
    return {"schema": 1, "name": "m", "sample_rate_hz": fs,
            "montage": {"electrodes": [{"name": n, "area_mm2": 3500} for n in names], "return": ret},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def flat_proto(p, c, mirrored=False):
    """Driven channel c of a multi protocol as a two-electrode protocol of the same timing;
    mirrored: each segment of negative amplitude as amplitude |a| and offset negated."""
    segs = E.channel_segments(p, c)
    if mirrored:
        segs = [E.mirror(s) for s in segs]
    return {"schema": 1, "name": "c%d" % c, "sample_rate_hz": p["sample_rate_hz"],
            "montage": {"anode": "A", "cathode": "B", "electrode_area_mm2": 3500},
            "segments": segs, "sham": p["sham"], "safety": p["safety"]}


def run(p, stop=None, block=97, every=True, fast=True, sine_flat=None):
    """Every sample of p, with a soft stop (sample, ms): every=True, fill_all: a list of
    columns, one per electrode in the engine's order (driven channels, then the return);
    every=False, fill: one column. And the number of samples. sine_flat: the engine's
    (Engine.use_sine_flat)."""
    eng = Engine(p, fast)
    eng.use_sine_flat(sine_flat)
    cols_n = eng.channels + 1 if every else 1
    extra = stop[1] * p["sample_rate_hz"] // 1000 + 1 if stop else 1
    cols = [array("i", [0] * (eng.total + extra)) for _ in range(cols_n)]
    outs = [array("i", [0] * block) for _ in range(cols_n)]
    k = 0
    while True:
        if stop is not None and k == stop[0]:
            eng.soft_stop(stop[1])
            stop = None
        want = block
        if stop is not None and stop[0] - k < block:
            want = stop[0] - k
        n = eng.fill_all(outs, want) if every else eng.fill(outs[0], want)
        for c in range(cols_n):
            col, out = cols[c], outs[c]
            for i in range(n):
                col[k + i] = out[i]
        k += n
        if n == 0:
            break
    cols = [col[:k] for col in cols]
    return (cols if every else cols[0]), k


def run_all(p, stop=None, block=97):
    return run(p, stop, block, True)


def run_one(p, stop=None, block=97):
    """The single-channel engine's samples (fill)."""
    return run(p, stop, block, False)


# --- random valid protocols, from any source of integers rnd(lo, hi) (inclusive) ---

BANDS = ([0, 100000], [100, 100000], [101000, 400000], [1000, 40000])


def gen_channel(rnd, name, budget, fs):
    """A channel whose peak |offset| + |amplitude| is at most budget (budget >= 1)."""
    wf = ("dc", "sine", "pulse", "noise")[rnd(0, 3)]
    sign = -1 if rnd(0, 1) else 1
    if wf == "dc":
        return cur(name, amplitude_uA=sign * rnd(0, budget))
    off = rnd(-(budget // 4), budget // 4)
    amp = sign * rnd(0, budget - abs(off))
    if wf == "sine":
        return cur(name, waveform="sine", amplitude_uA=amp, offset_uA=off, frequency_mHz=rnd(100, fs * 100),
                   phase_deg=rnd(0, 359))
    if wf == "pulse":
        biphasic = rnd(0, 1) == 1
        f = rnd(500, 40000)
        lo = (1000000 + fs - 1) // fs
        hi = (1000000000 // f - 1) // (2 if biphasic else 1)
        return cur(name, waveform="pulse", amplitude_uA=amp, offset_uA=off, frequency_mHz=f,
                   pulse_width_us=rnd(lo, min(hi, lo + 5000)), biphasic=biphasic)
    band = BANDS[rnd(0, len(BANDS) - 1)]
    return cur(name, waveform="noise", amplitude_uA=amp, offset_uA=off, band_mHz=list(band),
               seed=rnd(0, V.SEED_MAX), noise_sd_uA=rnd(1, max(1, abs(amp))))


def gen_proto(rnd):
    fs = (1000, 2000, 5000)[rnd(0, 2)]
    C = rnd(1, 3)
    names = ["E%d" % k for k in range(C + 1)]
    ret = names[rnd(0, C)]
    driven = [n for n in names if n != ret]
    budget = 4000 // C
    segs = []
    for _ in range(rnd(1, 2)):
        if segs and rnd(0, 1):
            segs.append({"kind": "pause", "duration_ms": rnd(1, 150)})
        segs.append(mseg([gen_channel(rnd, n, budget, fs) for n in driven],
                         duration_ms=rnd(1, 250), ramp_up_ms=rnd(100, 250), ramp_down_ms=rnd(100, 250),
                         ramp_shape=("linear", "cosine")[rnd(0, 1)]))
    sham = None
    if rnd(0, 3) == 0:
        sham = {"ramp_up_ms": 100, "plateau_ms": rnd(0, 1) * 1, "ramp_down_ms": 100, "double": False}
    p = mproto(segs, names, ret, fs, sham)
    stop = None
    if rnd(0, 2) == 0:
        stop = (rnd(0, Engine(p).total), rnd(1, 300))
    return p, stop, rnd(1, 300)


def check_property(p, stop, block):
    assert V.check(p, LIM) == [], V.check(p, LIM)
    cols, k = run_all(p, stop, block)
    C = len(cols) - 1
    ret = cols[C]
    for i in range(k):
        s = ret[i]
        for c in range(C):
            s += cols[c][i]
        assert s == 0, (i, s)
    for c in range(C):
        signs = [s["amplitude_uA"] < 0 for s in E.channel_segments(p, c) if s["kind"] == "stim"]
        # the channel as a valid two-electrode protocol (segments of negative amplitude
        # mirrored: amplitude |a|, offset negated), run by the golden single-channel engine
        fp = flat_proto(p, c, True)
        assert V.check(fp, LIM) == [], V.check(fp, LIM)
        one, n = run_one(fp, stop, block)
        assert n == k, (c, n, k)
        if True not in signs:           # amplitude >= 0 throughout: the same samples
            assert one == cols[c], c
        else:                           # per segment: the same samples, or their negation
            seg_of = _segment_of_samples(p, n, stop)
            for i in range(n):
                want = -one[i] if seg_of[i] >= 0 and signs[seg_of[i]] else one[i]
                assert cols[c][i] == want, (c, i)
        peak = 0
        for x in cols[c]:
            peak = max(peak, abs(x))
        assert peak <= 4000


def _segment_of_samples(p, n, stop):
    """For each sample: the index among the stim segments of the one it belongs to
    (-1 in a pause); a soft stop's ramp belongs to the segment it stopped."""
    idx = []
    stim_ids = {}
    for i, s in enumerate(p["segments"]):
        if s["kind"] == "stim":
            stim_ids[i] = len(stim_ids)
    for state, count, seg in E.build_phases(p):
        idx += [stim_ids.get(seg, -1) if state != E.PAUSE else -1] * count
    if stop is not None and stop[0] < len(idx):
        last = idx[stop[0] - 1] if stop[0] > 0 else -1
        idx = idx[:stop[0]]
    else:
        last = idx[-1] if idx else -1
    return idx + [last] * (n - len(idx))


class _Lcg:
    def __init__(self, seed):
        self.x = seed

    def __call__(self, lo, hi):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (self.x >> 4) % (hi - lo + 1)


def test_random_protocols_sum_to_zero_and_match_the_single_channel_engine():
    for seed in range(12 if VIPER or not MICROPYTHON else 4):
        rnd = _Lcg(seed)
        p, stop, block = gen_proto(rnd)
        check_property(p, stop, block)


if given is not None:
    @settings(max_examples=40, deadline=None)
    @given(st.data())
    def test_hypothesis_rows_sum_to_zero_and_channels_match_the_single_channel_engine(data):
        def rnd(lo, hi):
            return data.draw(st.integers(lo, hi))
        p, stop, block = gen_proto(rnd)
        check_property(p, stop, block)


def test_the_two_electrode_form_through_fill_all():
    from engine_cases import CASES
    for name, p, _stop in CASES[:6]:
        eng = Engine(p)
        assert eng.channels == 1, name
        ref, n = run_one(p)
        cols, k = run_all(p)
        assert k == n and cols[0] == ref, name
        assert all(cols[1][i] == -ref[i] for i in range(k)), name


def test_a_multi_montage_of_two_electrodes_runs_through_fill_too():
    p = mproto([mseg([cur("F4", waveform="sine", amplitude_uA=-1500, frequency_mHz=10300, phase_deg=33)])],
               ("F4", "Cz"), "Cz")
    assert V.check(p, LIM) == []
    eng = Engine(p)
    assert eng.channels == 1
    one, n = run_one(p)                   # fill(): the driven electrode
    cols, k = run_all(p)
    assert n == k and cols[0] == one and min(one) == -1500
    assert [-x for x in cols[0]] == list(cols[1])
    ref, n = run_one(flat_proto(p, 0, True))    # the golden engine on the mirrored channel
    assert n == k and [-x for x in ref] == list(one)


def test_fill_refuses_several_channels():
    p = mproto([mseg([cur("F4"), cur("P4")])], ("F4", "P4", "Cz"), "Cz")
    eng = Engine(p)
    assert eng.channels == 2
    try:
        eng.fill(array("i", [0] * 8), 8)
    except ValueError:
        pass
    else:
        raise AssertionError("fill of a 2-channel montage must refuse")


def test_4x1_dc_exact_levels():
    # 4x1 HD-tDCS: the centre C3 returns 2000 uA, four surround electrodes at -500 each.
    names = ("C3", "FC1", "FC5", "CP1", "CP5")
    p = mproto([mseg([cur(n, amplitude_uA=-500) for n in names[1:]], ramp_up_ms=100, duration_ms=100,
                     ramp_down_ms=100)], names, "C3", fs=1000)
    assert V.check(p, LIM) == []
    cols, k = run_all(p)
    assert k == 300
    for i in range(100, 200):                      # the plateau: exactly the levels
        assert [cols[c][i] for c in range(5)] == [-500, -500, -500, -500, 2000], i
    assert [cols[c][0] for c in range(5)] == [0, 0, 0, 0, 0]
    assert [cols[c][299] for c in range(5)] == [cols[0][299]] * 4 + [-4 * cols[0][299]]


def test_a_channel_of_another_position_in_the_montage():
    # the return in the middle: the channels are the other electrodes in montage order
    p = mproto([mseg([cur("F4", amplitude_uA=1000), cur("P4", amplitude_uA=-300)])], ("F4", "Cz", "P4"), "Cz",
               fs=1000)
    cols, k = run_all(p)
    assert cols[0][350] == 1000 and cols[1][350] == -300 and cols[2][350] == -700


def _phase_closed(k, f_mhz, fs, deg):
    step = f_mhz << 20
    mod = fs * 1000
    return ((deg << 20) // 360 + k * step // mod) & 0xFFFFF, k * step % mod


def _phase_proto(f1, f2, d1, d2, ms):
    return mproto([mseg([cur("F4", waveform="sine", amplitude_uA=1000, frequency_mHz=f1, phase_deg=d1),
                         cur("P4", waveform="sine", amplitude_uA=1000, frequency_mHz=f2, phase_deg=d2)],
                        ramp_up_ms=100, duration_ms=ms, ramp_down_ms=100)], ("F4", "P4", "Cz"), "Cz", fs=5000)


def _check_phases(eng, k, f1, f2, d1, d2):
    st0, st1 = eng.sts[0], eng.sts[1]
    assert (st0[K.PH], st0[K.FR]) == _phase_closed(k, f1, 5000, d1), k
    assert (st1[K.PH], st1[K.FR]) == _phase_closed(k, f2, 5000, d2), k


def _run_phases(f1, f2, d1, d2, hour_ms, span_ms, block=5000):
    """Run the engine to the end of the plateau of a protocol of hour_ms, checking both
    channels' phase words against their closed forms after every block. When span_ms is
    smaller than the hour, the first span runs from sample 0, then both oscillators are
    set to their closed form at the hour minus span and the last span runs to the hour."""
    p = _phase_proto(f1, f2, d1, d2, hour_ms)
    eng = Engine(p)
    outs = [array("i", [0] * block) for _ in range(3)]
    up = 500                                        # 100 ms at 5 kS/s
    end = up + hour_ms * 5
    k = 0
    while k < min(end, up + span_ms * 5):
        n = eng.fill_all(outs, block if k else up)
        k += n
        _check_phases(eng, k, f1, f2, d1, d2)
        if f1 == f2:                                # the same frequency: a constant difference
            assert (eng.sts[0][K.PH] - eng.sts[1][K.PH]) & 0xFFFFF == ((d1 << 20) // 360 - (d2 << 20) // 360) & 0xFFFFF
    if k < end:                                     # jump: the last span of the hour
        k0 = end - span_ms * 5
        for c, f, d in ((0, f1, d1), (1, f2, d2)):
            eng.sts[c][K.PH], eng.sts[c][K.FR] = _phase_closed(k0, f, 5000, d)
        eng.left -= k0 - k
        eng.elapsed += k0 - k
        k = k0
        while k < end:
            n = eng.fill_all(outs, block)
            k += n
            _check_phases(eng, k, f1, f2, d1, d2)
    assert k == end and eng.state == E.PLATEAU
    return eng


HOUR_MS = 3600 * 1000


def test_phase_is_exact_for_an_hour_same_frequency_antiphase():
    # 6 Hz at 5 kS/s, 0 and 180 degrees: the difference stays 2**19 exactly
    span = HOUR_MS if VIPER else 60000
    eng = _run_phases(6000, 6000, 0, 180, HOUR_MS, span)
    assert (eng.sts[1][K.PH] - eng.sts[0][K.PH]) & 0xFFFFF == 1 << 19
    assert eng.sts[0][K.FR] == eng.sts[1][K.FR]


def test_phase_is_exact_for_an_hour_at_two_frequencies():
    # 6 Hz and 7 Hz: each its closed form (k f 2**20 / fs) mod 2**20 at every checked k
    span = HOUR_MS if VIPER else 60000
    _run_phases(6000, 7000, 0, 90, HOUR_MS, span)
    # an awkward frequency whose step does not divide: 6.001 Hz vs 7.0003 Hz at an odd phase
    _run_phases(6001, 7000, 33, 271, 60000, 60000)


def test_fill_all_with_heap_locked():
    names = ("C3", "FC1", "FC5", "CP1")
    chans = [cur("FC1", waveform="sine", amplitude_uA=-700, offset_uA=100, frequency_mHz=6000, phase_deg=90),
             cur("FC5", waveform="noise", amplitude_uA=800, band_mHz=[101000, 400000], seed=9, noise_sd_uA=200),
             cur("CP1", waveform="pulse", amplitude_uA=-900, frequency_mHz=40000, pulse_width_us=1000,
                 biphasic=True)]
    chans2 = [cur("FC1", amplitude_uA=-300), cur("FC5", amplitude_uA=300), cur("CP1", amplitude_uA=-200)]
    p = mproto([mseg(chans), {"kind": "pause", "duration_ms": 50}, mseg(chans2, ramp_shape="cosine")],
               names, "C3", fs=2000)
    sham = {"ramp_up_ms": 100, "plateau_ms": 0, "ramp_down_ms": 100, "double": True}
    ps = mproto([mseg(chans, duration_ms=600)], names, "C3", fs=2000, sham=sham)
    assert V.check(p, LIM) == [] and V.check(ps, LIM) == []
    engines = [Engine(p), Engine(p, False), Engine(ps), Engine(p)]
    outs = [array("i", [0] * 64) for _ in range(4)]
    counts = array("i", [0] * len(engines))
    states = array("i", [0] * (len(engines) * 8))
    bad = array("i", [0])
    if micropython is not None:
        micropython.heap_lock()
    try:
        for j in range(len(engines)):
            e = engines[j]
            while True:
                n = e.fill_all(outs, 64)
                if n == 0:
                    break
                for i in range(n):
                    if outs[0][i] + outs[1][i] + outs[2][i] + outs[3][i] != 0:
                        bad[0] += 1
                counts[j] += n
                states[j * 8 + e.state] = 1
                if j == 3 and counts[j] >= 700 and e.state == E.PLATEAU:
                    e.soft_stop(100)            # a soft stop, heap locked
    finally:
        if micropython is not None:
            micropython.heap_unlock()
    assert bad[0] == 0
    for j in range(3):
        assert counts[j] == engines[j].total, j
    assert counts[3] < engines[3].total and engines[3].state == E.DONE
    for state in (E.RAMP_UP, E.PLATEAU, E.RAMP_DOWN, E.PAUSE, E.SHAM_OFF):
        assert any(states[j * 8 + state] for j in range(len(engines))), state


def test_fill_driven_is_fill_all_without_the_return():
    """The block loop's fill (tes.multicontrol): every driven electrode's samples as
    fill_all gives them, through every phase, and the return's array never written."""
    names = ("C3", "FC1", "FC5")
    chans = [cur("FC1", waveform="sine", amplitude_uA=-700, offset_uA=100, frequency_mHz=6000, phase_deg=90),
             cur("FC5", waveform="noise", amplitude_uA=800, band_mHz=[101000, 400000], seed=9, noise_sd_uA=200)]
    p = mproto([mseg(chans, duration_ms=300), {"kind": "pause", "duration_ms": 50},
                mseg([cur("FC1", amplitude_uA=-300), cur("FC5", amplitude_uA=300)], ramp_shape="cosine")],
               names, "C3", fs=2000)
    assert V.check(p, LIM) == []
    a, b = Engine(p), Engine(p)
    outs_a = [array("i", [0] * 64) for _ in range(3)]
    outs_b = [array("i", [0] * 64) for _ in range(3)]
    outs_b[2][0] = 12345                # the return's: must stay as it is
    total = 0
    n = 1
    while True:
        k = a.fill_all(outs_a, n)
        assert b.fill_driven(outs_b, n) == k
        if k == 0:
            break
        for c in range(2):
            assert list(outs_a[c][:k]) == list(outs_b[c][:k]), (total, c)
        total += k
        n = n % 61 + 3                  # fills of varying length, across the phase boundaries
    assert total == a.total and b.state == E.DONE
    assert outs_b[2][0] == 12345 and all(x == 0 for x in outs_b[2][1:])


def test_a_drivers_sine_plateau_kernel_gives_the_same_samples():
    # Engine.use_sine_flat (a board's machine code for osc_sine then env_flat in one call,
    # hal.sine_thumb, held to those kernels on rp2040js): here a stand-in that does exactly
    # that from the frame the engine hands it. Random montages (ramps, soft stops, pauses,
    # every waveform): the same samples with it as without, and it is called for sine
    # plateaus only, with the table's address in the frame where the port has one.
    try:
        import uctypes
        table_at = uctypes.addressof(SINE) & 0xFFFFFFFF
    except ImportError:
        table_at = None
    calls = []

    def sine_flat(out, st, f, n):
        assert table_at is None or f[0] & 0xFFFFFFFF == table_at
        calls.append(n)
        K.osc_sine(out, f[3], n, st, SINE)
        K.env_flat(out, f[3], n, f[1], f[2])
        return 0
    sines = 0
    for seed in range(8 if VIPER or not MICROPYTHON else 3):
        rnd = _Lcg(100 + seed)
        p, stop, block = gen_proto(rnd)
        n0 = len(calls)
        want = run(p, stop, block)
        got = run(p, stop, block, sine_flat=sine_flat)
        assert got == want, seed
        waves = [c.get("waveform", "dc") for s in p["segments"] if s["kind"] == "stim" for c in s["currents"]]
        if "sine" not in waves:
            assert len(calls) == n0, seed
        sines += "sine" in waves
    assert sines and calls                          # the stand-in ran, on plateaus of sines


def test_a_soft_stop_ramps_every_channel_down_as_one():
    names = ("F4", "P4", "Cz")
    p = mproto([mseg([cur("F4", amplitude_uA=2000), cur("P4", waveform="sine", amplitude_uA=-1500,
                                                         frequency_mHz=6000, phase_deg=180)],
                     ramp_up_ms=300, duration_ms=2000, ramp_down_ms=300)], names, "Cz", fs=1000)
    stop = (1000, 200)                  # in the plateau, a 200 ms ramp
    cols, k = run_all(p, stop, block=64)
    assert k == 1000 + 200
    # F4 (dc): the stop's first sample is the level of the moment, then exact linear steps
    # (envelope Q15: 32768 - floor(32768 j / 200) at step j)
    f4 = cols[0]
    assert f4[999] == 2000
    for j in range(200):
        assert f4[1000 + j] == (2000 * (32768 - 32768 * j // 200)) >> 15, j
    assert f4[k - 1] == 10 and abs(cols[1][k - 1]) <= 8
    for i in range(k):
        assert cols[0][i] + cols[1][i] + cols[2][i] == 0, i
    # each channel: the single-channel engine with the same stop
    one, n = run_one(flat_proto(p, 0), stop, block=64)
    assert n == k and one == cols[0]
    one, n = run_one(flat_proto(p, 1, True), stop, block=64)      # P4 mirrored (amplitude -1500)
    assert n == k and [-x for x in one] == list(cols[1])
    # a stop in a pause ends at once; a stop before the first sample gives nothing
    q = mproto([mseg([cur("F4"), cur("P4")]), {"kind": "pause", "duration_ms": 500}, mseg([cur("F4"), cur("P4")])],
               names, "Cz", fs=1000)
    cols, k = run_all(q, (900, 300))
    assert k == 900
    cols, k = run_all(q, (0, 300))
    assert k == 0


def test_one_channel_paths_with_heap_locked():
    # the two-electrode form through fill_all, and a 2-electrode multi montage through fill
    from engine_cases import CASES
    two = CASES[4][1]                                   # sine, hybrid, cosine ramps
    p = mproto([mseg([cur("F4", waveform="noise", amplitude_uA=-800, band_mHz=[101000, 400000], seed=9,
                          noise_sd_uA=200)])], ("F4", "Cz"), "Cz", fs=2000)
    e1, e2 = Engine(two), Engine(p)
    outs = [array("i", [0] * 64) for _ in range(2)]
    counts = array("i", [0, 0])
    bad = array("i", [0])
    if micropython is not None:
        micropython.heap_lock()
    try:
        while True:
            n = e1.fill_all(outs, 64)
            if n == 0:
                break
            for i in range(n):
                if outs[0][i] + outs[1][i] != 0:
                    bad[0] += 1
            counts[0] += n
        while True:
            n = e2.fill(outs[0], 64)
            if n == 0:
                break
            counts[1] += n
    finally:
        if micropython is not None:
            micropython.heap_unlock()
    assert bad[0] == 0 and counts[0] == e1.total and counts[1] == e2.total


def test_the_fast_kernels_are_bit_exact_to_the_plain_ones():
    # on the unix port: the viper twins (tes.kernels_fast, tes.multi_fast) against the plain
    # kernels over random multi protocols; elsewhere both runs are the plain code
    for seed in range(100, 106):
        p, stop, block = gen_proto(_Lcg(seed))
        fast, k1 = run(p, stop, block, True, True)
        plain, k2 = run(p, stop, block, True, False)
        assert k1 == k2 and fast == plain, seed
    e = Engine(p)
    if VIPER:
        from tes import multi_fast
        assert e.mk is multi_fast
    from tes import multi
    src = array("i", [1, -2, 3, -(1 << 30), 1 << 30, 0])
    for mk in (e.mk, multi):
        d = array("i", [7] * 6)
        mk.neg_into(d, src, 1, 4)
        assert list(d) == [7, 2, -3, 1 << 30, -(1 << 30), 7]
        mk.sub_into(d, src, 0, 3)
        assert list(d) == [6, 4, -6, 1 << 30, -(1 << 30), 7]


def test_interleave_and_split_twins_are_bit_exact():
    # The block path's interleave (engine -> hal.write) and split (hal.sense -> per electrode,
    # the return as minus the sums): tes.multi's plain code and, where viper exists,
    # tes.multi_fast's twin, on values up to +/-2**30, heap locked (the loop's state).
    from tes import multi
    kits = [multi]
    if VIPER:
        from tes import multi_fast
        kits.append(multi_fast)
    rng = _Lcg(77)
    for C in (1, 2, 3, 8):
        n = 13
        outs = [array("i", [rng(-(1 << 26), 1 << 26) for _ in range(n)]) for _ in range(C + 1)]
        outs[0][0], outs[C - 1][n - 1] = (1 << 30) - 1, -(1 << 30)     # a 32-bit port's small ints
        raw = [array("i", [rng(-4000, 4000) for _ in range(n * C)]) for _ in range(4)]
        results = []
        for mk in kits:
            out = array("i", [5] * (n * C + 2))
            bufs = [[array("i", [9] * n) for _ in range(C + 1)] for _ in range(4)]
            if micropython is not None:
                micropython.heap_lock()
            try:
                mk.interleave(out, outs, n, C)
                mk.split(raw[0], raw[1], raw[2], raw[3], bufs[0], bufs[1], bufs[2], bufs[3], n, C)
            finally:
                if micropython is not None:
                    micropython.heap_unlock()
            assert [out[k * C + c] for k in range(n) for c in range(C)] == \
                [outs[c][k] for k in range(n) for c in range(C)], C
            assert list(out[n * C:]) == [5, 5], "wrote past n samples"
            for a in range(4):
                for c in range(C):
                    assert list(bufs[a][c]) == [raw[a][k * C + c] for k in range(n)], (a, c)
            for a in (0, 1, 3):          # set, current, readback: the return is minus the sum
                assert list(bufs[a][C]) == [-sum(raw[a][k * C + c] for c in range(C)) for k in range(n)], a
            assert list(bufs[2][C]) == list(bufs[1][C])   # its "voltage" is its current
            results.append([list(x) for b in bufs for x in b] + [list(out)])
        assert all(r == results[0] for r in results), C
