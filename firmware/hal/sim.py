"""Simulated board: the analog stage and an electrode-skin load, modelled per sample with
integer math, on a virtual clock. Runs under the unix port and CPython.

Signal chain per sample (all ints, every product below 2**30 for the parameter ranges
that tes.board accepts; see _set_load for the two clamps that keep it so):
  uA -> DAC code (board calibration, hw limit, 12-bit range; frozen if dac-stuck)
     -> source current: code * nA_per_code (the true slope), clamped to
        hw_current_limit_uA, zero while the enable is off
     -> load: series R + (skin R || skin C). The voltage is v = i*Rs + vc; where it would
        pass compliance the source saturates: i = (+-compliance - vc) / Rs
     -> skin capacitor: backward-Euler step vc = (vc*k1 + i*k2) / 1024, exact DC gain
     -> ADC: current and voltage plus seeded uniform noise, quantized to the sense chain's
        codes (frozen if adc-stuck).
Slow changes (skin R falling while current flows, Hahn 2013; drift) update once per block.

Faults (DESIGN.md names), inject(kind, at_ms[, electrode]), take effect at the first sample
at or after at_ms:
  liftoff    series R -> model.liftoff_ohm (10 MOhm): current collapses to ~3 uA at
             compliance voltage
  short      series R -> model.short_ohm (10 Ohm), skin R and C bridged
  dac-stuck  the DAC keeps its last code; DAC_BACK reports the frozen code
  adc-stuck  current and voltage readings freeze; ADC_MOVES drops to 0
  drift      skin R climbs model.fault_drift_ohm_per_s (default 2000) ohm per second
  host-lost  host_gone turns True: simmain's port drops what the host sends
  stall      the app loop hangs inside write(): the DAC holds its last code until the
             virtual watchdog (start_watchdog) expires, then the board resets (SimReset);
             without a watchdog write() raises SimHang with the output still on
  reset      output zero and enable off from the onset sample; write() raises SimReset

Several electrodes: start(fs, C) with C > 1 (up to the board's current_sources) plays the
interleaved buffers through hal.simnet's electrode network instead of the model above, which
C = 1 keeps exactly. liftoff, short and drift then hit one electrode, named as in
electrodes(names) (no name: the return); the other kinds are the board's. A name not in the
session's montage is ignored, said once on stderr at the session's start.

Faults given to the constructor, (kind, ms) or (kind, ms, electrode name or None), count
from the session's START (session_started()); the
simulated board's entry (simmain.py) owns the host link, so host-lost and the fast
clock's gate are served there through host_gone and gate (called from feed()).
Sense: every sample is measured as it is modelled, so sense() returns the samples just
written, aligned, with no latency: set (uA), measured current (uA), electrode voltage (mV)
and the DAC readback (uA, through the calibration: a stuck DAC shows there).
"""
try:
    import micropython  # the native emitter: same semantics as bytecode, about 1.3x faster here
except ImportError:  # CPython
    from tes import compat as micropython

import time
from array import array

from hal.base import Hal
from hal.calib import conversion

FAULT_KINDS = ("liftoff", "short", "dac-stuck", "adc-stuck", "drift", "host-lost", "stall",
               "reset")
_MODEL = {"series_ohm": 1000, "skin_ohm": 10000, "skin_ohm_floor": 4000, "skin_tau_s": 60,
          "skin_nF": 100, "adc_noise_uA": 2, "adc_noise_mV": 5, "drift_ohm_per_s": 0,
          "fault_drift_ohm_per_s": 2000, "liftoff_ohm": 10000000, "short_ohm": 10, "seed": 1}
_SKIN_MAX = 1000000       # skin R ceiling (drift): keeps the RC constants small ints
_K2_MAX = (1 << 30) // 5000   # i * k2 < 2**30 for |i| <= 5000 uA
_ALWAYS_SANE = 1 << 29    # "never" as a time in ms
ELECTRODE_KINDS = ("liftoff", "short", "drift")   # the others are the board's
EVENTS = FAULT_KINDS + ("watchdog",)
_EV_MAX = 64
QUEUE = 256               # samples written and not yet sensed (more than any block)


def _is_micropython():
    import sys
    return sys.implementation.name == "micropython"


_MP = _is_micropython()


def check_fault(kind, electrode=None):
    """ValueError for a fault the simulated board does not know, or an electrode given to a
    board-wide one."""
    if kind not in FAULT_KINDS:
        raise ValueError("unknown fault %r (known: %s)" % (kind, ", ".join(FAULT_KINDS)))
    if electrode is not None and kind not in ELECTRODE_KINDS:
        raise ValueError("fault %s is the board's: it takes no electrode (%s:%s)" % (kind, kind, electrode))


class SimReset(BaseException):  # not an Exception: the app's error guard must not swallow a reset
    """The simulated board reset (reason 'reset' or 'watchdog'): output is off."""


class SimHang(BaseException):
    """The app loop stalled and no watchdog was running: the output is still on."""


def _scale(board, key):
    # (num, den) of the sense chain: uA per current code, mV per voltage code.
    s = board.get("sense") or {}
    adc = s.get("adc") or {}
    # The board's ADC converts ref_mV over 2**bits codes centred on mid_mV: +/-ref/2 over
    # +/-2**(bits-1) codes around zero.
    fsr = adc.get("ref_mV", 3300) // 2
    full = 1 << (adc.get("bits", 12) - 1)
    if key == "i":
        num, den = fsr * 1000, full * s.get("shunt_ohm", 100) * s.get("current_gain", 3)
    else:
        num, den = fsr * s.get("voltage_divider", 20), full
    a, b = num, den
    while b:
        a, b = b, a % b
    return num // a, den // a, full - 1


class SimHal(Hal):
    SIMULATED = True

    def __init__(self, board, realtime=False, storage=None, seed=None, faults=()):
        super().__init__(board)
        self.faults_at_start = list(faults)   # (kind, ms after START[, electrode])
        self.channels = board.get("current_sources", 1)
        self.names = ()                       # the session's electrodes (electrodes())
        self.net = None                       # hal.simnet.SimNet while a session drives C > 1
        self._play = self._run
        self.gate = None                      # fast clock: simmain's hold for a slow host
        # Measured samples not yet sensed (preallocated: write() runs with the heap locked).
        self.q_set = array("i", [0] * QUEUE)
        self.q_i = array("i", [0] * QUEUE)
        self.q_v = array("i", [0] * QUEUE)
        self.q_d = array("i", [0] * QUEUE)
        self.pend = 0
        self.lead = 1
        m = dict(_MODEL)
        m.update(board.get("model") or {})
        self.model = m
        self.realtime = realtime
        self._storage = storage
        self.conv = conversion(board)
        cs = board.get("current_source") or {}
        self.npc = cs.get("nA_per_code", 2200)          # true slope of the current source
        self.hw = board["hw_current_limit_uA"]
        self.vcomp = board.get("compliance_V", 30) * 1000
        self.inum, self.iden, self.icode_max = _scale(board, "i")
        self.vnum, self.vden, self.vcode_max = _scale(board, "v")
        c = self.conv
        self.z, self.sc, self.su, self.top = c["zero_code"], c["span_code"], c["span_uA"], c["code_max"]
        self.dac_stuck = False   # hardware faults outlive a reset
        self.adc_stuck = False
        self.noise_i = m["adc_noise_uA"] * 1000          # nA
        self.noise_v = m["adc_noise_mV"] * 1000          # uV
        self.rng = (m["seed"] if seed is None else seed) & 0xFFFF
        self.tpk = 0             # peak |true current| of the last block
        self.fs = 1000
        self.ms = 0          # virtual clock: ms + frac / fs
        self.frac = 0
        self.faults = []     # (at_ms, kind, electrode name or "") sorted; faults[fi:] pending
        self.fi = 0
        self.next_at = _ALWAYS_SANE
        # Event log (ms, index into EVENTS), preallocated: onsets happen with the heap locked.
        self.ev = array("i", [0] * 2 * _EV_MAX)
        self.ev_n = 0
        self.resets = 0
        self.zero_at_us = -1
        self._exc_reset = SimReset("reset")
        self._exc_wdt = SimReset("watchdog")
        self._exc_hang = SimHang("stall")
        self._wall0 = None
        ni = self.noise_i
        nv = self.noise_v
        # Constants of the per-sample loop in one tuple: one attribute load and an unpack
        # (which allocates nothing) instead of twenty attribute loads per block.
        self.consts = (self.z, self.sc, self.su, self.su >> 1, self.top, self.hw, self.npc,
                       self.vcomp, ni, nv, 2 * ni + 1, 2 * nv + 1, self.inum, self.iden, self.icode_max,
                       self.vnum, self.vden, self.vcode_max,
                       # ADC codes per 100 nA and per 100 uV, Q16: (x // 100) * k >> 16 stays
                       # a small int on a 32-bit board (x * den // num would not)
                       (65536 * self.iden + 5 * self.inum) // (10 * self.inum),
                       (65536 * self.vden + 5 * self.vnum) // (10 * self.vnum))
        self._boot()

    # ---- state -------------------------------------------------------------------------
    def _boot(self):
        """Power-on state of the analog stage (after a reset too); the skin keeps its state."""
        self.en = False
        self.code = self.z
        if self.net is not None:
            self.net.zero()
        self.stall = False
        self.wdt_ms = 0
        self.fed_ms = self.ms
        if not hasattr(self, "vc"):
            m = self.model
            self.vc = 0
            self.rs = m["series_ohm"]
            self.skin_floor = m["skin_ohm_floor"]
            self.skin_ex = (m["skin_ohm"] - self.skin_floor) << 12   # Q12 excess over floor
            self.skin_add = 0         # drift so far, ohm
            self.drift = m["drift_ohm_per_s"]
            self.drift_acc = 0
            self.shorted = False
            self.host_gone = False
            self.i_raw = 0
            self.v_raw = 0
            self.i_meas = 0
            self.v_meas = 0
            self.i_true = 0
            self.skin_ms = 0
            self.peak_uA = 0         # largest |delivered current| ever (tests)
            self._set_load()

    def _skin(self):
        if self.shorted:
            return 0
        r = self.skin_floor + (self.skin_ex >> 12) + self.skin_add
        return r if r < _SKIN_MAX else _SKIN_MAX

    def _set_load(self):
        """RC constants for the current skin R and sample rate (per block: a few divisions)."""
        r = self._skin()
        self.skin = r
        c = self.model["skin_nF"]
        dt_us = 1000000 // self.fs or 1
        tau_us = r * c // 1000
        if self.shorted or r == 0:
            self.k1, self.k2 = 0, 0
        else:
            self.k1 = 1024 * tau_us // (tau_us + dt_us)
            k2 = (1024 - self.k1) * r // 1000
            self.k2 = k2 if k2 < _K2_MAX else _K2_MAX
        # |i| above this surely saturates: |i*Rs| > 2 * compliance >= compliance + |vc|.
        self.i_fast = 2 * self.vcomp * 1000 // self.rs + 1

    # ---- Hal interface -----------------------------------------------------------------
    def electrodes(self, names):
        self.names = tuple(names)

    def start(self, fs, channels=1):
        if channels < 1 or channels > self.channels:
            raise ValueError("this board drives %d current source(s); the session needs %d" % (
                self.channels, channels))
        self.fs = fs
        self.lead = fs // 1000 or 1
        if self.lead > 32:
            self.lead = 32
        self.frac = 0
        self.code = self.z
        self.pend = 0
        self._set_load()
        self._wall0 = None
        if channels == 1:
            self.net = None
            self._play = self._run
        else:
            if self.net is None or self.net.C != channels:
                from hal.simnet import SimNet     # only a session of several electrodes pays for it
                self.net = SimNet(self, channels)
            net = self.net
            net.zero()
            for e in range(channels + 1):
                net.set_load(e)                   # the sample rate's RC constants
            self._play = net.run

    def room(self):
        # One block ahead (1 ms): the output is modelled when written, so a longer queue
        # would put out samples after a fault the supervisor has not yet seen.
        r = self.lead - self.pend
        return r if r > 0 else 0

    def enable(self, on):
        self.en = bool(on)

    def zero(self):
        if not self.dac_stuck:
            self.code = self.z
            if self.net is not None:
                self.net.zero()
        self.en = False
        self.zero_at_us = self.now_us()

    def ticks_ms(self):
        return self.ms

    def now_us(self):
        return self.ms * 1000 + self.frac * 1000 // self.fs

    def feed(self):
        self.fed_ms = self.ms
        if self.gate is not None:
            self.gate()

    def start_watchdog(self, ms):
        self.wdt_ms = ms
        self.fed_ms = self.ms

    def storage(self):
        if self._storage is None:
            self._storage = "build/sim-storage"
        _mkdirs(self._storage)
        return self._storage

    def retain(self, sid, charge_uC, stim_ms):
        self._retained = (sid, charge_uC, stim_ms)      # the simulated chip's RAM outlives its resets

    def retained(self):
        return getattr(self, "_retained", None)

    def session_started(self):
        for f in self.faults_at_start:
            self.inject(f[0], self.ms + f[1], f[2] if len(f) > 2 else None)
        self.faults_at_start = []
        for _, kind, name in self.faults[self.fi:]:
            if name and self._electrode(name) < 0:
                import sys
                sys.stderr.write("simulated board: fault %s:%s ignored: no electrode %s in this session (%s)\n" % (
                    kind, name, name, ", ".join(self.names)))

    def wait(self, ms):
        """Let virtual time pass with the output as it is (an idle app); checks the watchdog."""
        self.ms += ms
        self._watchdog()
        self._pace()

    # ---- the simulator's own controls (tests, simmain) ------------------------------------
    def stalled(self):
        return self.stall

    def inject(self, kind, at_ms, electrode=None):
        check_fault(kind, electrode)
        self.faults = sorted(self.faults[self.fi:] + [(at_ms, kind, electrode or "")])
        self.fi = 0
        self.next_at = self.faults[0][0]

    def log(self):
        """[(ms, event)]: fault onsets and resets so far ("reset", "watchdog")."""
        return [(self.ev[2 * k], EVENTS[self.ev[2 * k + 1]]) for k in range(self.ev_n)]

    def _event(self, ms, name):
        if self.ev_n < _EV_MAX:
            self.ev[2 * self.ev_n] = ms
            self.ev[2 * self.ev_n + 1] = EVENTS.index(name)
            self.ev_n += 1

    def _electrode(self, name):
        """Index of electrode name in the session (no allocation), -1 if it is not there."""
        names = self.names
        for k in range(len(names)):
            if names[k] == name:
                return k
        return -1

    @micropython.native
    def write(self, buf, n):
        if self.wdt_ms and self.ms - self.fed_ms > self.wdt_ms:
            self._watchdog()
        self.tpk = 0              # peak |true current| of this block (skin model: did current flow?)
        start = 0
        # Block end, rounded up: faults due before it start at their exact sample.
        end_ms = self.ms + (self.frac + n * 1000 + self.fs - 1) // self.fs if self.next_at < _ALWAYS_SANE else 0
        while self.next_at <= end_ms:
            at = self.next_at
            j = (at - self.ms) * self.fs - self.frac
            j = 0 if j <= 0 else (j + 999) // 1000
            if j > n:
                break
            self._play(buf, start, j)
            start = j
            self._onset(j, n)
        self._play(buf, start, n)
        acc = self.frac + n * 1000          # advance the virtual clock (as _advance)
        self.ms += acc // self.fs
        self.frac = acc % self.fs
        if self.ms != self.skin_ms:
            self._slow()
        if self.realtime:
            self._pace()

    @micropython.native
    def sense(self, set_out, i_out, v_out, d_out, n, b):
        if self.net is not None:
            return self.net.sense(set_out, i_out, v_out, d_out, n)
        m = self.pend if self.pend < n else n
        qs = self.q_set
        qi = self.q_i
        qv = self.q_v
        qd = self.q_d
        for j in range(m):
            set_out[j] = qs[j]
            i_out[j] = qi[j]
            v_out[j] = qv[j]
            d_out[j] = qd[j]
        rest = self.pend - m
        for j in range(rest):           # the loop reads everything each pass: rarely runs
            qs[j] = qs[m + j]
            qi[j] = qi[m + j]
            qv[j] = qv[m + j]
            qd[j] = qd[m + j]
        self.pend = rest
        return m

    # ---- the per-sample model ----------------------------------------------------------
    @micropython.native
    def _run(self, buf, a, e):
        """Play buf[a:e]: the only per-sample loop. Locals only: no attribute traffic."""
        if a >= e:
            return
        (z, sc, su, half, top, hw, npc, vcomp, ni, nv, spi, spv, inum, iden, imax, vnum, vden, vmax,
         kiq, kvq) = self.consts
        ifast = self.i_fast
        code = self.code
        stuck = self.dac_stuck
        en = self.en
        vc = self.vc
        rs = self.rs
        k1 = self.k1
        k2 = self.k2
        rng = self.rng
        astuck = self.adc_stuck
        iraw = self.i_raw
        vraw = self.v_raw
        im = self.i_meas
        vm = self.v_meas
        tpk = self.tpk
        qs = self.q_set
        qi = self.q_i
        qv = self.q_v
        qd = self.q_d
        w = self.pend
        i = 0
        for j in range(a, e):
            s = buf[j]
            qs[w] = s
            if not stuck:
                # Calibration: nearest code (as hal.calib.ua_to_code), hw limit, DAC range.
                if s > hw:
                    s = hw
                elif s < -hw:
                    s = -hw
                if s >= 0:
                    code = z + (s * sc + half) // su
                else:
                    code = z - ((half - s * sc) // su)
                if code > top:
                    code = top
                elif code < 0:
                    code = 0
            if en:
                i = (code - z) * npc // 1000
                if i > hw:       # the stage's own current limit
                    i = hw
                elif i < -hw:
                    i = -hw
                # Compliance: the source saturates where i*Rs + vc would pass it.
                if i > ifast or i < -ifast:
                    v = vcomp if i > 0 else -vcomp
                    i = (v - vc) * 1000 // rs
                else:
                    v = i * rs // 1000 + vc
                    if v > vcomp:
                        v = vcomp
                        i = (v - vc) * 1000 // rs
                    elif v < -vcomp:
                        v = -vcomp
                        i = (v - vc) * 1000 // rs
            else:
                i = 0
                v = vc
            vc = (vc * k1 + i * k2 + 512) >> 10
            if i > tpk:
                tpk = i
            elif -i > tpk:
                tpk = -i
            if not astuck:
                rng = (rng * 4093 + 13849) & 0xFFFF
                raw = ((i * 1000 + ((rng >> 4) * spi >> 12) - ni) // 100 * kiq) >> 16
                if raw > imax:
                    raw = imax
                elif raw < -imax:
                    raw = -imax
                if raw != iraw:
                    iraw = raw
                    im = raw * inum // iden
                rng = (rng * 4093 + 13849) & 0xFFFF
                raw = ((v * 1000 + ((rng >> 4) * spv >> 12) - nv) // 100 * kvq) >> 16
                if raw > vmax:
                    raw = vmax
                elif raw < -vmax:
                    raw = -vmax
                if raw != vraw:
                    vraw = raw
                    vm = raw * vnum // vden
            qi[w] = im
            qv[w] = vm
            # DAC readback through the calibration, as hal.calib.code_to_ua (toward zero).
            p = (code - z) * su
            qd[w] = p // sc if p >= 0 else -((-p) // sc)
            w += 1
        self.pend = w
        self.tpk = tpk
        self.code = code
        self.vc = vc
        self.rng = rng
        self.i_raw = iraw
        self.v_raw = vraw
        self.i_meas = im
        self.v_meas = vm
        self.i_true = i
        if tpk > self.peak_uA:
            self.peak_uA = tpk

    # ---- per block ---------------------------------------------------------------------
    def _advance(self, n):
        acc = self.frac + n * 1000
        self.ms += acc // self.fs
        self.frac = acc % self.fs

    def _slow(self):
        """Once per elapsed ms: skin R falls while current flows; drift climbs."""
        d = self.ms - self.skin_ms
        if d <= 0:
            return
        self.skin_ms = self.ms
        if self.net is not None:
            self.net.slow(d)
            return
        if self.tpk >= 10:
            self.skin_ex -= (self.skin_ex // (self.model["skin_tau_s"] * 1000 or 1)) * d
        if self.drift:
            self.drift_acc += self.drift * d
            self.skin_add += self.drift_acc // 1000
            self.drift_acc %= 1000
        if self._skin() != self.skin:
            self._set_load()

    def _onset(self, j, n):
        """Apply the fault due at sample j of the current block."""
        at, kind, name = self.faults[self.fi]
        self.fi += 1
        self.next_at = self.faults[self.fi][0] if self.fi < len(self.faults) else _ALWAYS_SANE
        e = self._electrode(name) if name else -1
        if name and e < 0:
            return               # not an electrode of this session (said at its start)
        if kind != "reset":
            self._event(at, kind)
        if self.net is not None and (kind == "liftoff" or kind == "short" or kind == "drift"):
            self.net.fault(kind, self.net.C if e < 0 else e)   # no name: the return
        elif kind == "liftoff":
            self.rs = self.model["liftoff_ohm"]
            self._set_load()
        elif kind == "short":
            self.rs = self.model["short_ohm"] or 1
            self.shorted = True
            self.vc = 0          # the bridge discharges the skin capacitance at once
            self._set_load()
        elif kind == "dac-stuck":
            self.dac_stuck = True
        elif kind == "adc-stuck":
            self.adc_stuck = True
        elif kind == "drift":
            self.drift = self.model["fault_drift_ohm_per_s"]
        elif kind == "host-lost":
            self.host_gone = True
        elif kind == "stall":
            self.stall = True
            self._advance(j)   # the clock stops at the sample where the loop hung
            if not self.wdt_ms:
                raise self._exc_hang
            # The DAC holds its code until the watchdog fires.
            if self.ms < self.fed_ms + self.wdt_ms:
                self.ms = self.fed_ms + self.wdt_ms
            self._reset("watchdog")
            raise self._exc_wdt
        elif kind == "reset":
            self._advance(j)
            self._reset("reset")
            raise self._exc_reset

    def _reset(self, why):
        self.resets += 1
        self.zero_at_us = self.now_us()
        self._event(self.ms, why)
        self.frac = 0
        self._boot()

    def _watchdog(self):
        if self.wdt_ms and self.ms - self.fed_ms > self.wdt_ms:
            self.ms = self.fed_ms + self.wdt_ms
            self._reset("watchdog")
            raise self._exc_wdt

    def _pace(self):
        if not self.realtime:
            return
        if _MP:
            if self._wall0 is None:
                self._wall0 = time.ticks_add(time.ticks_ms(), -self.ms)
            ahead = time.ticks_diff(time.ticks_add(self._wall0, self.ms), time.ticks_ms())
            if ahead > 0:
                time.sleep_ms(ahead)
        else:
            if self._wall0 is None:
                self._wall0 = time.monotonic() - self.ms / 1000
            ahead = self._wall0 + self.ms / 1000 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def _mkdirs(path):
    import os
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        if not p:
            continue
        cur = cur + p
        try:
            os.mkdir(cur)
        except OSError:
            pass
        cur += "/"
