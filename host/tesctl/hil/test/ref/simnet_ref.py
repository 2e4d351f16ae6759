"""Reference numbers for host/tesctl/hil/test/network.test.mjs: firmware/hal/simnet.py's
network (two sources, the draft pico2-mcp4922 board of /work/notes/two_source_contract.md
with boards/sim.json's load) run under CPython, sample by sample, noise-free true values.

    python3 host/tesctl/hil/test/ref/simnet_ref.py > host/tesctl/hil/test/ref/simnet_ref.json

Per scenario: the set currents (a spec the test recomputes: dc levels or a 6 Hz sine of
amplitude amp per source, phase in degrees, rounded half up), the events at their sample,
and every 10th sample's DAC codes, currents (uA), electrode voltages (mV) and skin
capacitor voltages before the sample (mV, electrodes 0, 1, return). The
skin R is held constant (skin_ohm_floor = skin_ohm): the JS model has no Hahn fall."""
import json
import math
import os
import sys
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "firmware"))

from hal.sim import SimHal  # noqa: E402

BOARD = {
    "id": "pico2-mcp4922", "mcu": "rp2",
    "dac": {"kind": "mcp4922", "bits": 12, "vref_mV": 2048, "channels": 2},
    "current_source": {"nA_per_code": 2200, "zero_code": 2048},
    "sense": {"shunt_ohm": 100, "current_gain": 3, "voltage_divider": 20, "readback_tol_uA": 50,
              "adc": {"kind": "rp2040", "bits": 12, "ref_mV": 3300, "mid_mV": 1650,
                      "current_channels": [0, 2], "voltage_channels": [1, 3], "readback_channel": None,
                      "latency_samples": [0, 0, 0]}},
    "enable_pin": 15, "hw_current_limit_uA": 4500, "current_sources": 2, "return": "ground",
    "compliance_V": 30, "max_sample_rate_hz": 5000, "pace_hz": 256000000,
    "calibration": {"zero_code": 2048, "full_scale_code": 3848, "full_scale_uA": 3960, "load_ohm": 1000},
    "limits": {"max_current_uA": 4000},
}
with open(os.path.join(ROOT, "boards", "sim.json")) as f:
    MODEL = json.load(f)["model"]
MODEL = dict(MODEL, skin_ohm_floor=MODEL["skin_ohm"], adc_noise_uA=0, adc_noise_mV=0)
FS = 5000
EVERY = 10


def levels_of(spec):
    if spec["kind"] == "dc":
        return lambda k: spec["uA"]
    return lambda k: [int(math.floor(a * math.sin(2 * math.pi * spec["hz"] * k / FS + math.radians(ph)) + 0.5))
                      for a, ph in zip(spec["amp"], spec["phase"])]


def scenario(spec, ms, events=()):
    """spec: the set currents (levels_of); events: {sample: action} with action
    ('fault', kind, electrode) or ('enable', bool)."""
    levels = levels_of(spec)
    b = dict(BOARD, model=MODEL)
    h = SimHal(b, storage="build/sim-storage-ref")
    h.electrodes(("C1", "C2", "Cz"))
    h.start(FS, 2)
    h.enable(True)
    net = h.net
    buf = array("i", [0, 0])
    out = array("i", [0] * 8)
    ev = dict(events)
    rows = []
    for k in range(ms * FS // 1000):
        if k in ev:
            a = ev[k]
            if a[0] == "fault":
                net.fault(a[1], a[2])
            else:
                h.enable(a[1])
        buf[0], buf[1] = levels(k)
        vc_before = list(net.vc)
        h.write(buf, 1)
        h.sense(out, out, out, out, 1, 1)
        if k % EVERY == 0:
            rows.append([k, list(net.code), list(net.cur), list(net.volt), vc_before])
    return {"fs": FS, "ms": ms, "set": spec, "events": {str(k): list(a) for k, a in ev.items()},
            "rows": rows}


def dc(a, b):
    return {"kind": "dc", "uA": [a, b]}


def sine(amp, phase):
    return {"kind": "sine", "hz": 6, "amp": amp, "phase": phase}


def main():
    s = {
        "dc": scenario(dc(1000, 500), 200),
        "ac_inphase": scenario(sine([1000, 1000], [0, 0]), 400),
        "ac_antiphase": scenario(sine([1000, 1000], [0, 180]), 400),
        "ac_unequal": scenario(sine([1500, 700], [0, 90]), 400),
        "liftoff_e0": scenario(dc(1000, 1000), 300, {500: ("fault", "liftoff", 0)}),
        "liftoff_ret_inphase": scenario(sine([1000, 1000], [0, 0]), 300, {500: ("fault", "liftoff", 2)}),
        "short_e1": scenario(dc(1000, 1000), 200, {250: ("fault", "short", 1)}),
        "short_ret": scenario(dc(1000, -500), 200, {250: ("fault", "short", 2)}),
        "compliance_dc": scenario(dc(3000, 0), 200),
        "compliance_inphase": scenario(dc(2500, 2500), 200),
        "relay_open": scenario(dc(1000, -1000), 200, {500: ("enable", False)}),
    }
    json.dump({"board": BOARD, "model": MODEL, "every": EVERY, "scenarios": s}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
