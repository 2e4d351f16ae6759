"""Test helper: runs Engine + SimHal + Supervisor block by block the way the device app
does (1 ms blocks, check after every block, hal.zero() at once on a hard fault, a linear
ramp to zero on a soft stop), with the heap locked around the control path on MicroPython.
Not the device app: it has no link and no state machine, only the safety loop."""
import json
import sys
from array import array

from hal.base import SENSE_LEN
from hal.sim import SimHal, SimReset, SimHang
from tes import journal
from tes.engine import Engine
from tes.limits import board_limits
from tes.supervisor import Supervisor, NAMES, SOFT_RAMP_MS, is_hard

MP = sys.implementation.name == "micropython"
if MP:
    import micropython

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
BOARD_PATH = _HERE + "/../../boards/sim.json"


def sim_board(**model):
    with open(BOARD_PATH) as f:
        b = json.load(f)
    b["model"].update(model)
    return b


def stim(**kw):
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0,
           "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 3000,
           "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    seg.update(kw)
    return seg


def proto(segments, fs=1000, z_max=20000):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": None, "safety": {"impedance_max_ohm": z_max}}


class Result:
    def __init__(self):
        self.outcome = "completed"
        self.reason = ""
        self.code = 0
        self.onset_ms = -1      # first injected fault
        self.zero_us = -1       # virtual time the output went to zero (hal.zero or reset)
        self.stop_us = -1       # virtual time a soft stop began its ramp
        self.charge_uC = 0
        self.peak_uA = 0        # largest |delivered current| (true, not measured)
        self.blocks = []        # with record=True: (t_us, set_last, true_peak, code)
        self.hal = None
        self.sup = None

    def latency_ms(self):
        """Onset to output zero, in (fractional) simulated ms."""
        return (self.zero_us - self.onset_ms * 1000) / 1000

    def __repr__(self):
        return "Result(%s, %s, latency %s ms)" % (self.outcome, self.reason, self.latency_ms())


def run(p, faults=(), board=None, wdt_ms=50, record=False, journal_dir=None, lock=True):
    b = board or sim_board()
    hal = SimHal(b, storage=journal_dir)
    res = Result()
    res.hal = hal
    for kind, at in faults:
        hal.inject(kind, at)
        if res.onset_ms < 0 or at < res.onset_ms:
            res.onset_ms = at
    fs = p["sample_rate_hz"]
    blk = fs // 1000 or 1
    eng = Engine(p)
    limits = board_limits(b)[0]
    sup = Supervisor(limits, p["safety"], fs, compliance_mV=b["compliance_V"] * 1000)
    res.sup = sup
    buf = array("i", [0] * blk)
    sense = array("i", [0] * SENSE_LEN)
    sid = journal.begin(journal_dir, "0" * 64, 0) if journal_dir else None
    hal.start(fs)
    hal.start_watchdog(wdt_ms)
    hal.enable(True)
    lost_at = -1
    ramp_n = SOFT_RAMP_MS * fs // 1000
    ramp_left = 0
    ramping = False
    locked = False
    try:
        while True:
            age = 0
            if hal.host_lost():
                if lost_at < 0:
                    lost_at = hal.ticks_ms()
                age = hal.ticks_ms() - lost_at
            if lock and MP:
                micropython.heap_lock()
                locked = True
            n = eng.fill(buf, blk)
            if n and ramping:
                # Soft stop: scale the waveform linearly to zero over ramp_n samples.
                for j in range(n):
                    k = ramp_left - j
                    buf[j] = buf[j] * (k if k > 0 else 0) // ramp_n
                ramp_left -= n
            if n:
                hal.write(buf, n)
                hal.sense(sense)
                code = sup.check(buf, n, sense, age)
                hal.feed()
            if locked:
                micropython.heap_unlock()
                locked = False
            if not n:
                hal.zero()
                break
            if record:
                res.blocks.append((hal.now_us(), buf[n - 1], hal.block[6], code))
            if code and is_hard(code):
                hal.zero()
                res.outcome, res.reason, res.code = "fault", NAMES[code], code
                break
            if ramping and ramp_left <= 0:
                hal.zero()
                break
            if code and not ramping:
                res.outcome, res.reason, res.code = "stopped", NAMES[code], code
                res.stop_us = hal.now_us()
                ramping = True
                ramp_left = ramp_n
    except SimReset as e:
        res.outcome, res.reason = "fault", e.args[0]
    except SimHang:
        res.outcome, res.reason = "hang", "stall"
    finally:
        if locked:
            micropython.heap_unlock()
    res.zero_us = hal.zero_at_us
    res.charge_uC = sup.charge_uC
    res.peak_uA = hal.peak_uA
    if sid is not None and res.reason not in ("reset", "watchdog"):
        journal.finish(journal_dir, sid, res.outcome, res.reason, res.charge_uC, hal.ticks_ms())
    return res
