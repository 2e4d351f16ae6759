"""Per-block cost of the simulated board's control path (run by tools/bench.py): where
App.control_step spends its time at 1 kS/s (1-sample blocks) and 10 kS/s (10-sample
blocks). Prints "part fs us_per_block" lines. Profiling aid; never asserts on speed."""
import time
from array import array

from hal.base import SENSE_LEN
from hal.sim import SimHal
from tes import supervisor as S
from tes.board import load_checked
from tes.engine import Engine
from tes.limits import board_limits

N = 20000


def proto(fs):
    s = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
         "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 1, "noise_sd_uA": 0,
         "pulse_width_us": 0, "biphasic": False, "duration_ms": 3600000, "ramp_up_ms": 100,
         "ramp_down_ms": 100, "ramp_shape": "linear"}
    return {"schema": 1, "name": "b", "sample_rate_hz": fs, "montage": {}, "segments": [s],
            "sham": None, "safety": {"impedance_max_ohm": 20000}}


def main():
    board = load_checked("boards/sim.json")
    limits, _ = board_limits(board)
    for fs in (1000, 10000):
        blk = fs // 1000
        e = Engine(proto(fs))
        hal = SimHal(board, storage="build/bench/blockcost-storage")
        hal.start(fs)
        hal.enable(True)
        sup = S.Supervisor(limits, {"impedance_max_ohm": 20000}, fs, compliance_mV=30000)
        buf = array("i", [0] * blk)
        sense = array("i", [0] * SENSE_LEN)
        for _ in range(300):      # past the ramp
            e.fill(buf, blk)
            hal.write(buf, blk)
        t = time.ticks_us()
        for _ in range(N):
            e.fill(buf, blk)
        t1 = time.ticks_us()
        for _ in range(N):
            hal.write(buf, blk)
        t2 = time.ticks_us()
        for _ in range(N):
            hal.sense(sense)
        t3 = time.ticks_us()
        for _ in range(N):
            sup.check(buf, blk, sense, 0)
        t4 = time.ticks_us()
        for name, a, b in (("engine.fill", t, t1), ("hal.write", t1, t2), ("hal.sense", t2, t3),
                           ("supervisor.check", t3, t4)):
            print("%s %d %.2f" % (name, fs, time.ticks_diff(b, a) / N))


main()
