"""Online changes on the real-time simulated board (`make bench` section 9, or alone:
python tools/bench_online.py): the latency from a script's change() call to the changed
sample, and the clock mapping's error. Figures are of this machine's simulated board (a
unix-port process in real time), not of a chip.

What is measured, per change asked "as soon as possible" (no at_ms):
  - reply: the host's call to the device's answer (the link's round trip and a tick);
  - to sample: the call to the host time of the changed sample's device time (through the
    clock mapping: device ms of session time 0 + at_ms -> host time), i.e. the reply plus
    the device's output lead, the time the engine fills ahead of the output.
and, per change scheduled for a session time, that it took effect at exactly that sample
(tests/e2e/test_api_e2e.py replays the samples; here the reply's at_ms is compared).
"""
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host")]

PROTO = """schema = 1
name = "online bench"
sample_rate_hz = %d
[montage]
anode = "O2"
cathode = "Cz"
[stimulation]
waveform = "sine"
amplitude_uA = 1000
frequency_hz = 10
duration_s = %d
ramp_up_s = 0.5
ramp_down_s = 0.5
[online]
ramp_s = 0.05
amplitude_uA = { min = 500, max = 1500, step = 500 }
"""


def measure(changes=20, gap_s=0.25, fs=1000):
    """-> dict of figures (ms lists and the clock's residuals)."""
    from tesctl.api import Session
    tmp = tempfile.mkdtemp(prefix="tesctl-bench-online-")
    os.environ.setdefault("TESCTL_STATE", os.path.join(tmp, "state"))
    os.environ.setdefault("TESCTL_SIM_STORAGE", os.path.join(tmp, "sim"))
    path = os.path.join(tmp, "p.toml")
    with open(path, "w") as f:
        f.write(PROTO % (fs, int(changes * gap_s) + 4))
    asked = []
    with Session(path, port="sim", out_dir=os.path.join(tmp, "rec")) as s:
        s.start()
        time.sleep(1.0)                    # past the ramp-up, into the plateau
        value = 1000
        for _ in range(changes):
            value = 1500 if value == 1000 else 1000
            t0 = time.time()
            reply = s.change("amplitude_uA", value)
            t1 = time.time()
            asked.append((t0, t1, reply["at_ms"]))
            time.sleep(gap_s)
        exact = []
        for k in range(5):
            at = asked[-1][2] + 300 + 100 * k
            exact.append(s.change("amplitude_uA", 1500 if k % 2 == 0 else 1000, at_ms=at)["at_ms"] == at)
        s.stop()
        s.wait(timeout=60)
        run = s._run
        clock = run.rec.clock
        reply_ms = [(t1 - t0) * 1000 for t0, t1, _ in asked]
        sample_ms = [(clock.to_host(run.first_stim_t + at) - t0) * 1000 for t0, _, at in asked]
        resid = clock.residuals("host")
        return {"reply_ms": reply_ms, "to_sample_ms": sample_ms, "scheduled_exact": exact,
                "clock_rms_ms": resid["rms_ms"], "clock_max_ms": resid["max_ms"],
                "drift_ppm": clock.summary()["host"].get("drift_ppm")}


def main():
    r = measure()
    q = lambda xs: "median %.1f, min %.1f, max %.1f ms" % (statistics.median(xs), min(xs), max(xs))  # noqa: E731
    print("online changes, real-time simulated board (this machine), %d asked as soon as possible:"
          % len(r["reply_ms"]))
    print("  call -> reply:          " + q(r["reply_ms"]))
    print("  call -> changed sample: " + q(r["to_sample_ms"]))
    print("  scheduled at_ms exact:  %d of %d" % (sum(r["scheduled_exact"]), len(r["scheduled_exact"])))
    print("  clock mapping: excess RMS %.2f ms, max %.2f ms, drift %s ppm"
          % (r["clock_rms_ms"], r["clock_max_ms"], r["drift_ppm"]))
    return r


if __name__ == "__main__":
    main()
