"""Engine output as a scientist would measure it (CPython + numpy): sine frequency, phase
drift and distortion; noise mean, band power and SD; and a proof by instrumentation that
every integer in the plain per-sample kernels stays within +/-2**30 (31-bit small ints on
rp2, viper ints on a 32-bit board).

Long noise records run through the MicroPython engine (tesctl.enginerun.samples_micropython)
for speed; it is bit-exact to the CPython engine (tests/host/test_protocols.py).
"""
from array import array

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tes import engine as E
from tes import kernels as K
from tes import noise as N
from tes import validate as V
from tes.limits import CEILING
from tesctl import enginerun, paths, protofile

LIMIT = 1 << 30


def stim(**kw):
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": 1000, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1,
           "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 1000,
           "ramp_up_ms": 100, "ramp_down_ms": 100, "ramp_shape": "linear"}
    seg.update(kw)
    return seg


def proto(segments, fs=1000, sham=None):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


def valid(p):
    problems = V.check(p, CEILING)
    assert not problems, problems
    return p


def samples(p, engine="micropython"):
    return np.asarray(enginerun.ENGINES[engine](valid(p)), dtype=np.int64)


def plateau(x, seg, fs):
    up = seg["ramp_up_ms"] * fs // 1000
    return x[up:up + seg["duration_ms"] * fs // 1000]


# --- sine: frequency, drift, distortion ----------------------------------------------

def fit_sine(x, n0, f, fs):
    """Least-squares amplitude and phase (rad) of a sine at f, on absolute sample index."""
    n = n0 + np.arange(len(x))
    w = 2 * np.pi * f * n / fs
    m = np.column_stack([np.sin(w), np.cos(w), np.ones_like(w)])
    (a, b, c), *_ = np.linalg.lstsq(m, x.astype(float), rcond=None)
    return np.hypot(a, b), np.arctan2(b, a), c


@pytest.mark.parametrize("f_hz,fs,minutes", [(10.3, 1000, 40), (6.0, 777, 40), (10.3, 4410, 2),
                                             (6.0, 20000, 0.5), (39.9, 2500, 3), (0.7, 100, 40)])
def test_sine_frequency_exact_and_no_drift(f_hz, fs, minutes):
    ramp = 30000 if minutes >= 40 else 1000
    dur = int(minutes * 60000) - 2 * ramp
    seg = stim(waveform="sine", amplitude_uA=1000, frequency_mHz=round(f_hz * 1000),
               duration_ms=dur, ramp_up_ms=ramp, ramp_down_ms=ramp)
    x = samples(proto([seg], fs), "cpython")
    assert len(x) == 2 * (ramp * fs // 1000) + dur * fs // 1000
    up = ramp * fs // 1000
    flat = plateau(x, seg, fs)
    win = max(int(10 * fs / f_hz), fs)  # >= 10 cycles and >= 1 s
    # phase at the start and at the end of the plateau against the nominal frequency
    a0, p0, _ = fit_sine(flat[:win], up, f_hz, fs)
    a1, p1, _ = fit_sine(flat[-win:], up + len(flat) - win, f_hz, fs)
    assert abs(a0 - 1000) < 2 and abs(a1 - 1000) < 2
    dphi = (p1 - p0 + np.pi) % (2 * np.pi) - np.pi
    span_s = (len(flat) - win) / fs
    rel_err = abs(dphi) / (2 * np.pi * f_hz * span_s)
    assert rel_err < 1e-4
    assert abs(dphi) < 0.01, "phase drift %.4f rad over %.0f s" % (dphi, span_s)
    # zero crossings (upward) over the plateau: exactly f * T, within one at the edges
    s = np.signbit(flat)
    ups = np.count_nonzero(s[:-1] & ~s[1:])
    expected = f_hz * len(flat) / fs
    assert abs(ups - expected) <= 1.5


@pytest.mark.parametrize("f_hz,fs,amp", [(50.0, 1000, 1000), (10.3, 1000, 2000), (77.7, 2000, 1000),
                                         (6.0, 500, 4000), (250.0, 5000, 1000), (40.0, 800, 1500)])
def test_sine_thd_below_half_percent(f_hz, fs, amp):
    assert fs / f_hz >= 20
    seg = stim(waveform="sine", amplitude_uA=amp, frequency_mHz=round(f_hz * 1000), duration_ms=20000)
    x = plateau(samples(proto([seg], fs), "cpython"), seg, fs).astype(float)
    n = len(x)
    # 4-term Blackman-Harris: sidelobes below -92 dB, main lobe +/-4 bins
    k = np.arange(n)
    w = (0.35875 - 0.48829 * np.cos(2 * np.pi * k / n) + 0.14128 * np.cos(4 * np.pi * k / n)
         - 0.01168 * np.cos(6 * np.pi * k / n))
    spec = np.abs(np.fft.rfft((x - x.mean()) * w)) ** 2
    df = fs / n

    def power(fc):
        c = int(round(fc / df))
        return spec[max(0, c - 6):c + 7].sum()

    fund = power(f_hz)
    harm = sum(power(h * f_hz) for h in range(2, 11) if h * f_hz < fs / 2 - 7 * df)
    thd = np.sqrt(harm / fund)
    assert thd < 0.005, "THD %.4f%%" % (100 * thd)
    # THD + noise by fit: the residual after the fundamental, relative to it
    a, ph, c = fit_sine(x, seg["ramp_up_ms"] * fs // 1000, f_hz, fs)
    assert abs(a - amp) <= 1.5
    nn = seg["ramp_up_ms"] * fs // 1000 + np.arange(n)
    resid = x - (a * np.sin(2 * np.pi * f_hz * nn / fs + ph) + c)
    assert np.sqrt(np.mean(resid ** 2)) / (a / np.sqrt(2)) < 0.005


# --- noise ---------------------------------------------------------------------------

def hf_protocol(seed):
    loaded = protofile.load(paths.PROTOCOLS / "trns-hf.toml")
    assert loaded.ok, loaded.problems
    canon = loaded.canonical
    canon["segments"][0]["seed"] = seed
    return canon


@pytest.mark.parametrize("seed", [20080101, 1, 777, (1 << 30) - 1])
def test_trns_hf_zero_mean_every_10s_window(seed):
    canon = hf_protocol(seed)
    seg = canon["segments"][0]
    fs = canon["sample_rate_hz"]
    x = samples(canon)
    win = 10 * fs
    means = x[:len(x) // win * win].reshape(-1, win).mean(axis=1)
    assert np.all(np.abs(means) < 5), means[np.abs(means) >= 5]
    flat = plateau(x, seg, fs)
    sd = flat.std()
    assert abs(sd - seg["noise_sd_uA"]) <= 0.1 * seg["noise_sd_uA"], sd
    assert np.abs(x).max() <= seg["amplitude_uA"]


def band_fraction(x, fs, low, high):
    x = x.astype(float)
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / fs)
    inside = (f >= low) & (f <= high)
    return spec[inside].sum() / spec.sum()


BANDS = {"hf": (101, 640), "lf": (0.1, 100), "full": (0.1, 640)}


@pytest.mark.parametrize("band,fs", [("hf", 1280), ("hf", 2000), ("hf", 5000), ("hf", 16000),
                                     ("lf", 500), ("lf", 1000), ("lf", 5000),
                                     ("full", 1500), ("full", 2500), ("full", 10000)])
def test_noise_band_power_sd_and_peak(band, fs):
    low, high = BANDS[band]
    amp, sd = 1000, 333
    dur = 200000 if band != "hf" else 60000
    results = []
    for seed, offset in ((3, 0), (4242, 500)):
        seg = stim(waveform="noise", amplitude_uA=amp, offset_uA=offset, noise_sd_uA=sd,
                   band_mHz=[int(low * 1000), high * 1000], seed=seed, duration_ms=dur)
        x = samples(proto([seg], fs))
        assert np.abs(x).max() <= amp + offset
        flat = plateau(x, seg, fs) - offset
        frac = band_fraction(flat, fs, low, high)
        assert frac >= 0.90, "%s band at %d S/s: %.1f%% of the power in band" % (band, fs, 100 * frac)
        assert abs(flat.std() - sd) <= 0.1 * sd, flat.std()
        assert abs(flat.mean()) < 0.1 * sd
        results.append(frac)
    assert len(results) == 2


@pytest.mark.parametrize("sd", [100, 250, 500])
def test_noise_sd_follows_setting(sd):
    fs = 2000
    seg = stim(waveform="noise", amplitude_uA=2000, noise_sd_uA=sd, band_mHz=[100, 640000],
               seed=11, duration_ms=60000)
    flat = plateau(samples(proto([seg], fs)), seg, fs)
    assert abs(flat.std() - sd) <= 0.1 * sd
    assert np.abs(flat).max() <= 2000


# --- 31-bit integer range, by instrumentation ----------------------------------------

class IntRangeError(ArithmeticError):
    pass


def _check(v):
    if not -LIMIT <= v < LIMIT:
        raise IntRangeError("intermediate %d outside +/-2**30" % v)
    return BoundedInt(v)


def _binop(name):
    op = getattr(int, name)

    def method(self, other):
        r = op(int(self), int(other)) if isinstance(other, int) else NotImplemented
        if r is NotImplemented:
            return r
        return _check(r)
    method.__name__ = name
    return method


class BoundedInt(int):
    """An int whose every arithmetic result is checked to be within [-2**30, 2**30)."""

    def __neg__(self):
        return _check(-int(self))

    def __pos__(self):
        return self

    def __abs__(self):
        return _check(abs(int(self)))

    def __invert__(self):
        return _check(~int(self))


for _name in ("add", "sub", "mul", "floordiv", "mod", "lshift", "rshift", "and", "or", "xor"):
    setattr(BoundedInt, "__%s__" % _name, _binop("__%s__" % _name))
    setattr(BoundedInt, "__r%s__" % _name, _binop("__r%s__" % _name))


class Checked:
    """A stand-in for array('i'): reads give BoundedInt, writes are range-checked."""

    def __init__(self, data):
        self.data = list(data)

    def __getitem__(self, i):
        return BoundedInt(self.data[i])

    def __setitem__(self, i, v):
        if isinstance(i, slice):
            for j, x in zip(range(*i.indices(len(self.data))), v):
                self[j] = x
            return
        self.data[i] = int(_check(int(v)))

    def __len__(self):
        return len(self.data)


def test_bounded_int_catches_overflow():
    x = BoundedInt(1 << 29)
    assert x + 1 == (1 << 29) + 1 and type(x + 1) is BoundedInt
    y = BoundedInt(1 << 28)
    assert type(3 * y - y) is BoundedInt and 3 * y - y == 1 << 29  # reflected operators too
    for bad in (lambda: x * 2, lambda: 2 * x, lambda: x << 1, lambda: 1 << BoundedInt(30),
                lambda: x + x, lambda: -x - x - 1, lambda: (-x) * 3, lambda: 5 - (-x) + x):
        with pytest.raises(IntRangeError):
            bad()
    assert -x - x == -LIMIT  # -2**30 itself is a 31-bit small int
    c = Checked([0, 0])
    with pytest.raises(IntRangeError):
        c[0] = LIMIT
    with pytest.raises(IntRangeError):
        c[1] = c[0] - LIMIT - 1


def run_checked(p, block=257, max_samples=None):
    """Run the plain engine with st, out and the tables instrumented; return the samples."""
    eng = E.Engine(p, fast=False)
    assert eng.fast is False
    eng.st = Checked(eng.st)
    eng.osc_init = [None if i is None else list(i) for i in eng.osc_init]
    out = Checked([0] * block)
    got = []
    while max_samples is None or len(got) < max_samples:
        n = eng.fill(out, block)
        if not n:
            break
        got.extend(out.data[:n])
    return got


@pytest.fixture
def checked_tables(monkeypatch):
    monkeypatch.setattr(E, "SINE", Checked(E.SINE))
    monkeypatch.setattr(E, "RCOS", Checked(E.RCOS))


def test_instrumented_engine_catches_a_deliberate_overflow(checked_tables):
    # a protocol no validator would pass: 2**20 uA makes amp * unit exceed 2**30
    p = proto([stim(amplitude_uA=1 << 20, duration_ms=10, ramp_up_ms=100, ramp_down_ms=100)])
    with pytest.raises(IntRangeError):
        run_checked(p)
    # and a noise state forced beyond the filter's range trips inside filter_step
    seg = stim(waveform="noise", amplitude_uA=1000, noise_sd_uA=333, band_mHz=[100, 100000])
    eng = E.Engine(proto([seg]), fast=False)
    eng.fill(array("i", [0] * 10), 10)
    eng.st = Checked(eng.st)
    eng.st.data[K.NOISE_BASE + N.N_SEC] = 1 << 20   # b0 of the first section
    with pytest.raises(IntRangeError):
        eng.fill(Checked([0] * 64), 64)


def test_instrumented_engine_matches_plain(checked_tables):
    p = proto([stim(waveform="noise", amplitude_uA=1000, noise_sd_uA=333, band_mHz=[101000, 640000],
                    duration_ms=300)], fs=2000)
    assert run_checked(p) == list(enginerun.samples_cpython(p))


@st.composite
def protocols(draw):
    fs = draw(st.sampled_from([100, 250, 1000, 1280, 2000, 4410, 5000, 20000, 50000]))
    # keep runs short: about 3000 samples per segment whatever the rate
    unit = max(1, 1000 * 3000 // fs // 4)
    segs = []
    for _ in range(draw(st.integers(1, 3))):
        if segs and draw(st.integers(0, 4)) == 0:
            segs.append({"kind": "pause", "duration_ms": draw(st.integers(1, unit))})
            continue
        wf = draw(st.sampled_from(["dc", "sine", "pulse", "noise"]))
        amp = draw(st.integers(0, 4000))
        off = 0 if wf == "dc" else draw(st.integers(-(4000 - amp), 4000 - amp))
        seg = stim(waveform=wf, amplitude_uA=amp, offset_uA=off,
                   duration_ms=draw(st.integers(1, unit)),
                   ramp_up_ms=draw(st.integers(100, max(100, unit))),
                   ramp_down_ms=draw(st.integers(100, max(100, unit))),
                   ramp_shape=draw(st.sampled_from(["linear", "cosine"])))
        if wf == "sine":
            seg["frequency_mHz"] = draw(st.integers(1, fs * 100))
            seg["phase_deg"] = draw(st.integers(0, 359))
        elif wf == "pulse":
            f = draw(st.integers(1, fs * 500 - 1))
            seg["frequency_mHz"] = f
            seg["biphasic"] = draw(st.booleans())
            period_us = 1000000000 // f
            lo = (1000000 + fs - 1) // fs
            hi = (period_us - 1) // (2 if seg["biphasic"] else 1)
            assume(lo <= hi)
            seg["pulse_width_us"] = draw(st.integers(lo, hi))
        elif wf == "noise":
            assume(amp >= 1)
            high = draw(st.integers(2, fs * 500))
            low = draw(st.integers(0, high - 1))
            seg["band_mHz"] = [low, high]
            seg["seed"] = draw(st.integers(0, (1 << 30) - 1))
            seg["noise_sd_uA"] = draw(st.one_of(st.integers(1, amp), st.just(amp)))
        segs.append(seg)
    sham = None
    if draw(st.booleans()):
        sham = {"ramp_up_ms": draw(st.integers(100, 300)), "plateau_ms": draw(st.integers(0, 300)),
                "ramp_down_ms": draw(st.integers(100, 300)), "double": draw(st.booleans())}
    p = proto(segs, fs, sham)
    assume(not V.check(p, CEILING))
    return p


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
@given(protocols())
def test_plain_kernels_stay_within_31_bits(p):
    """Every value the plain kernels compute, read or store is within [-2**30, 2**30)."""
    saved = E.SINE, E.RCOS
    E.SINE, E.RCOS = Checked(saved[0]), Checked(saved[1])
    try:
        got = run_checked(p, block=193, max_samples=40000)
    finally:
        E.SINE, E.RCOS = saved
    peak = max([V.peak_uA(s) for s in p["segments"]])
    assert all(abs(v) <= peak for v in got)


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_longest_ramp_at_highest_rate_stays_within_31_bits(shape, checked_tables):
    """The end of a 5-minute ramp at 50 kS/s (15 M samples), reached by fast-forwarding the
    ramp state to its last samples rather than computing all of them."""
    fs = CEILING["max_sample_rate_hz"]
    ramp = CEILING["max_ramp_ms"]
    seg = stim(waveform="sine", amplitude_uA=2000, offset_uA=-2000, frequency_mHz=fs * 100,
               ramp_up_ms=ramp, ramp_down_ms=ramp, duration_ms=1, ramp_shape=shape)
    p = valid(proto([seg], fs))
    eng = E.Engine(p, fast=False)
    eng.st = Checked(eng.st)
    out = Checked([0] * 1000)
    got = []
    ramps = 0
    while True:
        k = eng.fill(out, 1)  # enters the next phase
        if not k:
            break
        got.append(out.data[0])
        if eng.state in (E.RAMP_UP, E.RAMP_DOWN):
            ramps += 1
            n = eng.left + 1
            skip = n - 1000
            st_ = eng.st.data
            q, r, m = st_[K.EQ], st_[K.ER], st_[K.EN]
            assert m == n == ramp * fs // 1000
            st_[K.EP] = skip * q + (skip * r) // m
            st_[K.EF] = (skip * r) % m
            eng.left = n - skip
        while eng.left:
            k = eng.fill(out, min(1000, eng.left))
            got.extend(out.data[:k])
    assert ramps == 2
    assert max(abs(v) for v in got) <= 4000


@pytest.mark.parametrize("fs,band,amp,sd,off", [
    (1280, [101000, 640000], 4000, 4000, 0),      # no low-pass, gain at its largest
    (50000, [1, 1000], 1, 1, 3999),               # DC blocker at its longest (k = 14), shift 8
    (2000, [100, 640000], 4000, 1, 0),            # smallest gain
    (20000, [5000, 40000], 2000, 2000, -2000),    # true high-pass, narrow band
    (1000, [0, 499999], 3000, 3000, 1000),        # band edge at Nyquist
])
def test_noise_extremes_stay_within_31_bits(fs, band, amp, sd, off, checked_tables):
    seg = stim(waveform="noise", amplitude_uA=amp, offset_uA=off, noise_sd_uA=sd, band_mHz=band,
               seed=(1 << 30) - 1, duration_ms=20000 * 1000 // fs, ramp_up_ms=100, ramp_down_ms=100)
    got = run_checked(valid(proto([seg], fs)), max_samples=25000)
    assert max(abs(v) for v in got) <= amp + abs(off)
