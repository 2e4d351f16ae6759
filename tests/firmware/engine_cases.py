"""Short protocols that exercise every path of the engine, for the golden vectors
(tests/vectors/engine.json, written by tools/gen_engine_vectors.py and checked by
test_engine_golden.py). Each case: (name, protocol, soft stop (sample, ms) or None)."""


def seg(**kw):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0, "frequency_mHz": 0,
         "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
         "biphasic": False, "duration_ms": 700, "ramp_up_ms": 300, "ramp_down_ms": 400, "ramp_shape": "linear"}
    s.update(kw)
    return s


def proto(segments, fs=5000, sham=None):
    return {"schema": 1, "name": "golden", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": sham, "safety": {"impedance_max_ohm": 20000}}


SINE = dict(waveform="sine", amplitude_uA=1500, frequency_mHz=10300, phase_deg=33)
CASES = [
    ("dc-linear", proto([seg()]), None),
    ("dc-cosine", proto([seg(ramp_shape="cosine", amplitude_uA=3333)], fs=1000), None),
    ("dc-long-ramp", proto([seg(ramp_up_ms=9000, ramp_down_ms=7000, duration_ms=10)], fs=5000), None),
    ("sine", proto([seg(**SINE)]), None),
    ("sine-hybrid-cosine", proto([seg(offset_uA=-700, ramp_shape="cosine", **SINE)], fs=20000), None),
    ("pulse-mono", proto([seg(waveform="pulse", frequency_mHz=7700, pulse_width_us=9000)], fs=10000), None),
    ("pulse-bi", proto([seg(waveform="pulse", frequency_mHz=40000, pulse_width_us=3000, biphasic=True,
                           offset_uA=250)], fs=10000), None),
    ("noise-hf", proto([seg(waveform="noise", amplitude_uA=1000, band_mHz=[101000, 640000], seed=5,
                           noise_sd_uA=333)], fs=5000), None),
    ("noise-lf", proto([seg(waveform="noise", amplitude_uA=800, band_mHz=[100, 100000], seed=77,
                           noise_sd_uA=250)], fs=1280), None),
    ("noise-full", proto([seg(waveform="noise", amplitude_uA=1200, band_mHz=[0, 640000], seed=1 << 29,
                             noise_sd_uA=400)], fs=2000), None),
    ("segments-pause", proto([seg(**SINE), {"kind": "pause", "duration_ms": 333},
                              seg(amplitude_uA=900, ramp_up_ms=200, duration_ms=100, ramp_down_ms=150)]), None),
    ("sham", proto([seg(duration_ms=3000, **SINE)], sham={"ramp_up_ms": 300, "plateau_ms": 250,
                                                          "ramp_down_ms": 400, "double": False}), None),
    ("sham-double", proto([seg(duration_ms=3000)], sham={"ramp_up_ms": 300, "plateau_ms": 0,
                                                        "ramp_down_ms": 400, "double": True}), None),
    ("stop-in-ramp-up", proto([seg(**SINE)]), (777, 250)),
    ("stop-in-plateau", proto([seg()]), (2500, 1000)),
    ("stop-in-ramp-down", proto([seg(ramp_shape="cosine")]), (4600, 300)),
    ("stop-in-pause", proto([seg(), {"kind": "pause", "duration_ms": 500}, seg()]), (7200, 300)),
    ("stop-before-start", proto([seg()]), (0, 300)),
]


def run(p, stop=None, block=97):
    """Every sample of p (with a soft stop after `stop[0]` samples, ramp stop[1] ms)."""
    from array import array

    from tes.engine import Engine
    eng = Engine(p)
    buf = array("i", [0] * block)
    extra = stop[1] * p["sample_rate_hz"] // 1000 if stop else 0    # a stop's ramp may outlast the plan
    out = array("i", [0] * (eng.total + extra + 1))
    k = 0
    while True:
        n = block
        if stop is not None and k < stop[0] < k + n:
            n = stop[0] - k
        if stop is not None and k == stop[0]:
            eng.soft_stop(stop[1])
            stop = None
        n = eng.fill(buf, n)
        if not n:
            break
        for j in range(n):
            out[k + j] = buf[j]
        k += n
    return out, k


def digest(p, stop=None):
    import hashlib
    out, k = run(p, stop)
    h = hashlib.sha256()
    h.update(memoryview(out)[:k])
    return "".join("%02x" % b for b in h.digest()), k
