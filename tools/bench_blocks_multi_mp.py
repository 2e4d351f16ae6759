"""Cost of one block of the DMA kernels, single source (hal.blocks_fast, as hal.rp2 runs them on
pico-mcp4922: 2 words, 3 conversions a sample) against C sources (hal.blocks_multi_fast).
Run under the unix port inside valgrind, once with REPS calls and once with none; the
difference of the instruction counts over REPS is one call's:

  valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
      .venv/bin/micropython tools/bench_blocks_multi_mp.py put|get|trip C N REPS

C = 0: the single-source kernel; C = 1, 2: the multi one on that many sources. N samples a call
(trip: N samples a scan, none faulty, the short rule of the single-source one armed but idle).
Prints nothing; valgrind's "Collected" line is the figure. From the repo root. A run's count
varies by up to ~2.5 M instructions from run to run (the port's start, its heap): take
REPS = 100000 (+-25 a call). Profiling aid; never asserts."""
import sys
from array import array

sys.path[:0] = ["firmware", "tests/firmware"]

from hal import blocks as B  # noqa: E402
from hal import blocks_fast as F  # noqa: E402
from hal import blocks_multi as M  # noqa: E402
from hal import blocks_multi_fast as MF  # noqa: E402
from test_blocks import PICO, put_cfg, sense_cfg  # noqa: E402
from test_blocks_multi import draft, one_source  # noqa: E402

kern, c, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = array("H", [0] * 1024)
adc = array("H", [(j * 37) & 0xFFF for j in range(4096)])
sring = array("i", [0] * 2048)
buf = array("i", [(j * 611) % 9001 - 4500 for j in range(2 * n)])
outs = [array("i", [0] * 2 * n) for _ in range(4)]
if c == 0:
    pc = put_cfg(PICO, 2, 1023, 2047)
    gc_ = sense_cfg(PICO, (0, 0, 0), 4095, 2047)
else:
    pc, gc_ = M.cfgs(draft() if c == 2 else one_source(), 1024, 2048, 4096)
put = F.put_words if c == 0 else (lambda o, s, b, n, k, p: MF.put_words_multi(o, s, b, n, k, p, 1, c))
get = F.get_sense if c == 0 else MF.get_sense_multi
k = 4000
if kern == "trip":
    nch = 3 if c == 0 else 2 * c
    q = array("i", [0] * M.Q_LEN_MULTI)
    q[B.Q_RUN], q[B.Q_MASKA], q[B.Q_NCH], q[B.Q_AWRAP], q[B.Q_TCAP] = 1, 4095, nch, nch << 22, n
    q[B.Q_TIOVER], q[B.Q_TVCOMP], q[B.Q_THOLDN], q[B.Q_TALAST] = 4000, 28500, 5000, 0x20002000
    B.trip_limits(q, gc_)
    adc = array("H", [2048] * 2048)
    reg = array("i", [0x20002000 + 2 * nch * (n + 1)])
    if c == 0:
        F.trip_bind(adc, q, gc_, reg, print)
    else:
        MF.trip_bind_multi(adc, q, gc_, reg, print)
    scan = F.trip_scan if c == 0 else MF.trip_scan_multi
    step = 2 * nch * n
    for _ in range(reps):
        scan(None)
        reg[0] = 0x20002000 + ((reg[0] + step) & 4095)
elif kern == "put":
    for _ in range(reps):
        put(out, sring, buf, n, k, pc)
else:
    for _ in range(reps):
        get(adc, sring, outs[0], outs[1], outs[2], outs[3], n, k, gc_)
