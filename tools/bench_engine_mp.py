"""Engine throughput under MicroPython (run by tools/bench.py): samples per second per
waveform at 10 kS/s, plain kernels and fast (viper) kernels."""
import sys
import time
from array import array

from tes.engine import Engine

FS = 10000
SECONDS = 20


def seg(**kw):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 1000, "offset_uA": 0,
         "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1,
         "noise_sd_uA": 333, "pulse_width_us": 0, "biphasic": False,
         "duration_ms": SECONDS * 1000, "ramp_up_ms": 1000, "ramp_down_ms": 1000,
         "ramp_shape": "linear"}
    s.update(kw)
    return s


CASES = (
    ("dc", seg()),
    ("sine", seg(waveform="sine", frequency_mHz=10000, ramp_shape="cosine")),
    ("pulse", seg(waveform="pulse", frequency_mHz=40000, pulse_width_us=5000)),
    ("noise", seg(waveform="noise", band_mHz=[101000, 640000])),
    ("hybrid", seg(waveform="sine", offset_uA=1000, amplitude_uA=500, frequency_mHz=10000)),
)


def main():
    fast_modes = (False, True) if sys.implementation.name == "micropython" else (False,)
    for name, s in CASES:
        for fast in fast_modes:
            p = {"schema": 1, "name": name, "sample_rate_hz": FS, "montage": {}, "segments": [s],
                 "sham": None, "safety": {}}
            e = Engine(p, fast=fast)
            buf = array("i", [0] * 256)
            t0 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1e6)
            n = 0
            while True:
                k = e.fill(buf, 256)
                if not k:
                    break
                n += k
            t1 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.time() * 1e6)
            rate = n * 1000000 // max(1, t1 - t0)
            print("%s\t%s\t%d\t%d" % (name, "fast" if fast and e.fast else "plain", rate, rate // FS))


main()
