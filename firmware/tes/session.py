"""One current the device puts out, and the clock arithmetic of a board.

A Session is a stimulation (journalled), the impedance check or streaming: its protocol,
engine, supervisor and block loop (tes.control). All three run through the same loop and
the same supervisor; they differ in what happens at their end.
"""
try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

from tes import engine as E
from tes import validate as V
from tes.control import Control
from tes.supervisor import Supervisor

STIM = 0
CHECK = 1
STREAM = 2

CHECK_RAMP_MS = 20     # the check's test current fades in and out (a tickle, not a step)
STREAM_MS = 3600000    # streaming holds its test current for up to an hour (STREAM off ends it)


# A board's ticks_ms wraps every 2**30 ms (12.4 days): every time mark is compared through
# these, with that period on every platform (the simulated board's clock never nears it).
# Written so no intermediate leaves the 31-bit small ints of a board (no allocation).
# Native: a bytecode call allocates a frame and costs several times more (the tick calls
# these a few times every 20 ms).
@micropython.native
def ticks_diff(a, b):
    d = (a - b) & 0x3FFFFFFF
    if d >= 0x20000000:
        d -= 0x20000000
        d -= 0x20000000
    return d


@micropython.native
def ticks_add(a, b):
    if b >= 0 and a > 0x3FFFFFFF - b:
        return a - (0x3FFFFFFF - b) - 1
    return (a + b) & 0x3FFFFFFF


def period_samples(proto):
    """Samples in one period of the slowest periodic segment (sine, pulse), 0 if none:
    the supervisor's impedance window spans whole periods of it. A multi-electrode
    segment counts each of its currents (every electrode's window is this one)."""
    fs = proto["sample_rate_hz"]
    slowest = 0
    for seg in proto["segments"]:
        if seg["kind"] != "stim":
            continue
        for ch in seg.get("currents") or (seg,):
            if ch["waveform"] in ("sine", "pulse") and ch["frequency_mHz"] > 0:
                p = (fs * 1000 + ch["frequency_mHz"] // 2) // ch["frequency_mHz"]
                if p > slowest:
                    slowest = p
    return slowest


def test_current_protocol(current, duration_ms, fs=1000):
    """A DC test current (the check, streaming): the same engine and supervisor as a
    session, so every current the device puts out is checked the same way."""
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": current, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0,
           "pulse_width_us": 0, "biphasic": False, "duration_ms": duration_ms,
           "ramp_up_ms": CHECK_RAMP_MS, "ramp_down_ms": CHECK_RAMP_MS, "ramp_shape": "linear"}
    return {"schema": 1, "name": "test current", "sample_rate_hz": fs,
            "montage": {"anode": "", "cathode": "", "electrode_area_mm2": 0},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 50000}}


class Session:
    def __init__(self, kind, proto, sha, hal, limits, board):
        self.kind = kind
        self.proto = proto
        self.sha = sha
        fs = self.fs = proto["sample_rate_hz"]
        self.engine = E.Engine(proto)
        C = self.channels = self.engine.channels
        # The HAL's electrode names: driven first, the return last (hal.electrodes).
        self.names = V.driven_names(proto) + [V.return_name(proto)]
        self.fault_electrode = None     # the electrode a fault named (a multi session)
        if C >= 2:
            # Several driven electrodes (issue 12): their own block loop and a supervisor
            # each, loaded only for such a session.
            from tes import multicontrol as MC
            self.MC = MC                # the app's part too (telemetry, the named record)
            self.sups = MC.supervisors(proto, limits, board, fs, period_samples(proto))
            self.sup = MC.MultiSup(self.sups)
            self.control = MC.MultiControl(hal, self.engine, self.sups, fs, C)
            # TELEM rows in montage order: each electrode's index in names
            for k, n in enumerate(V.electrode_names(proto)):
                self.control.torder[k] = self.names.index(n)
        else:
            sense = board.get("sense") or {}
            self.sup = Supervisor(limits, proto["safety"], fs,
                                  compliance_mV=board.get("compliance_V", 30) * 1000,
                                  dac_tol_uA=sense.get("readback_tol_uA", 50),
                                  period_samples=period_samples(proto))
            self.control = Control(hal, self.engine, self.sup, fs)
        self.outcome = None       # (outcome, reason) once a stop is decided
        self.fault_stop = False   # a supervisor soft stop is under way
        self.sid = None           # journal id (STIM)
        self.retained_ms = 0      # when hal.retain last kept the charge
        self.tick_max_ms = 0      # the longest the block loop was away (a tick, a command)
        self.opened = None
        self.prev_state = -1
        self.reported = 0         # online changes reported so far (engine.applied counts them)
        self.t0_ms = 0            # the device clock when the output started (START's reply)
        self.changes = []         # [[at_ms, param, value]] applied, for the journal (CHANGES_KEPT)
        # CHECK: the measuring span (samples checked), then the result
        self.span = None
        self.span_open = False
        self.z = None
        self.check_reason = ""
        self.mcheck = None        # a step of the multi-electrode check (tes.multicheck)
        if kind == CHECK:
            seg = proto["segments"][0]
            up = seg["ramp_up_ms"] * fs // 1000
            flat = seg["duration_ms"] * fs // 1000
            self.span = (up + flat // 2, up + flat)   # the second half of the plateau

    def state(self):
        return self.engine.state

    def done_phase(self):
        return self.engine.state == E.DONE
