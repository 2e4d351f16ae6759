"""One supervisor's check_run on a board or the virtual RP2040, per call, with the two-source
driver's Thumb kernel (hal.check_thumb) and with the viper loop: `mpremote connect PORT run
tools/bench_check_mp.py` on an rp2 board deployed with its frozen image (`tesctl deploy
--frozen`, then leave the app). A multi session's supervisor (no lock-in), 5 kS/s, four
buffers laid out as tes.multicontrol lays them out, samples that trip no rule (the printed
code is 0: every sample checked). Prints "check LOOP m M b B: N us a call" lines; the
differences give a block's rules, a sample's loop and a viper call of nine arguments
(docs/hardware.md "Where the CPU goes"). Profiling aid; never asserts; not part of make bench
(the virtual RP2040 needs an image CI does not have)."""
import time
from array import array

import micropython

from hal import check_thumb
from tes import supervisor as S
from tes import supervisor_fast as F

LIMITS = {"max_current_uA": 4000, "max_charge_uC": 7200000, "max_stim_ms": 2400000}
CAP = 40
REPS = 300

flat = array("i", [0] * (4 * CAP))
mv = memoryview(flat)
sb, ib, vb, db = [mv[k * CAP:(k + 1) * CAP] for k in range(4)]
for j in range(CAP):
    sb[j] = 1000
    ib[j] = 1000 + j % 3        # neither still (adc-stuck) nor off track
    vb[j] = 2000 + j % 5
    db[j] = 1000


@micropython.viper
def empty(st, sb, ib, vb, db, m: int, age: int, j0: int, b: int) -> int:
    return 0


def bench(label, run, kernel, m, b):
    F.use_samples(kernel)
    st = S.Supervisor(LIMITS, {"impedance_max_ohm": 20000}, 5000, lockin=False).st
    r = run(st, sb, ib, vb, db, m, 0, 0, b)
    t0 = time.ticks_us()
    for _ in range(REPS):
        run(st, sb, ib, vb, db, m, 0, 0, b)
    dt = time.ticks_diff(time.ticks_us(), t0)
    print("check %s m %d b %d: %.1f us a call (code %d)" % (label, m, b, dt / REPS, r & 31))


bench("empty-viper-call", empty, None, 20, 5)
for kernel, label in ((check_thumb.samples, "thumb"), (None, "viper")):
    for m, b in ((20, 5), (20, 20), (5, 5)):
        bench(label, F.check_run, kernel, m, b)
F.use_samples(None)
