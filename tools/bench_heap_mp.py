"""Engine peak heap for 40-minute protocols (run by tools/bench.py under the unix port,
from precompiled .mpy, possibly with a small -X heapsize=).

    micropython -m bench_heap_mp [--quick] [CASE...]

Builds Engine for each case and generates every sample in 256-sample blocks with the heap
locked (so the steady state provably allocates nothing); --quick stops after the first
100000 samples (the peak is reached by import + construction). Prints "key value" lines.
"""
import gc
import sys

import micropython

gc.collect()
BASE = gc.mem_alloc()

from array import array  # noqa: E402

from tes.engine import Engine  # noqa: E402

MIN40 = 40 * 60 * 1000
RAMP = 30000


def seg(**kw):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
         "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1,
         "noise_sd_uA": 333, "pulse_width_us": 0, "biphasic": False,
         "duration_ms": MIN40 - 2 * RAMP, "ramp_up_ms": RAMP, "ramp_down_ms": RAMP,
         "ramp_shape": "linear"}
    s.update(kw)
    return s


CASES = {
    "dc-1k": (1000, lambda: seg()),
    "sine10-1k": (1000, lambda: seg(waveform="sine", amplitude_uA=1000, frequency_mHz=10000,
                                    ramp_shape="cosine")),
    "sine10-10k": (10000, lambda: seg(waveform="sine", amplitude_uA=1000, frequency_mHz=10000,
                                      ramp_shape="cosine")),
    "noise-10k": (10000, lambda: seg(waveform="noise", amplitude_uA=1000,
                                     band_mHz=[101000, 640000])),
}
ORDER = ("dc-1k", "sine10-1k", "sine10-10k", "noise-10k")


def main():
    args = [a for a in sys.argv[1:] if not a.endswith(".py")]
    quick = "--quick" in args
    names = [a for a in args if not a.startswith("--")] or list(ORDER)
    gc.collect()
    print("live_base", BASE)
    print("live_after_imports", gc.mem_alloc())
    buf = array("i", [0] * 256)
    for name in names:
        fs, make = CASES[name]
        p = {"schema": 1, "name": name, "sample_rate_hz": fs,
             "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
             "segments": [make()], "sham": None, "safety": {"impedance_max_ohm": 20000}}
        e = Engine(p)
        p = None
        gc.collect()
        live = gc.mem_alloc()
        n = 0
        limit = 100000 if quick else e.total
        micropython.heap_lock()
        try:
            while n < limit:
                k = e.fill(buf, 256)
                if not k:
                    break
                n += k
            locked_ok = 1
        except MemoryError:
            locked_ok = 0
        micropython.heap_unlock()
        print("case %s fs %d samples %d expected %d live_built %d heap_locked_ok %d fast %d" % (
            name, fs, n, limit, live, locked_ok, 1 if e.fast else 0))
        e = None
        gc.collect()
    gc.collect()
    print("live_end", gc.mem_alloc())
    print("heap_total", gc.mem_alloc() + gc.mem_free())
    print("mem_peak", micropython.mem_peak())
    print("mem_current", micropython.mem_current())
    print("done 1")


main()
