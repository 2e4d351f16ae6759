"""Online changes: what a running session may change, within bounds its protocol declares
and the device enforces whatever the host sends (docs/online.md).

The canonical protocol's optional top-level "online" section (absent: nothing may change,
and the protocol's canonical bytes and hash are as before):

    {"ramp_ms": 200,                      # amplitude, offset and burst changes ramp linearly
     "params": {"amplitude_uA": {"min": 0, "max": 2000, "step": 500, "interval_ms": 1000},
                "frequency_mHz": {...}, "phase_deg": {...}, "offset_uA": {...}},
     "burst": {"interval_ms": 200, "start": "on"} or null}

Scope, checked by check(): a two-electrode protocol of one stimulation segment (no pause,
no sham), dc or sine. Changes take effect inside that segment's plateau only; its ramps
and any stop start from the level of the moment. A change is (code, value, at_sample):
at_sample counts the session's samples from the first one (at_ms * fs // 1000).
"""
from tes import kernels as K
from tes.engine import AT_MAX, DONE, QUEUE, QW, RAMP_DOWN
from tes.tables import SINE

AMP = 1
OFFSET = 2
FREQ = 3
PHASE = 4
BURST = 5
PARAMS = {"amplitude_uA": AMP, "offset_uA": OFFSET, "frequency_mHz": FREQ, "phase_deg": PHASE}
NAMES = ("", "amplitude_uA", "offset_uA", "frequency_mHz", "phase_deg", "burst")
KEYS = {"ramp_ms": int, "params": dict, "burst": (dict, type(None))}
BOUND_KEYS = {"min": int, "max": int, "step": int, "interval_ms": int}
BURST_KEYS = {"interval_ms": int, "start": str}
RAMP_MAX_SAMPLES = 65535       # keeps a ramp's step * position inside 31-bit ints


def _check_keys(obj, keys, path, out):
    from tes.validate import _check_keys as ck
    return ck(obj, keys, path, out)


def _bound(out, path, value, low, high, why):
    if value < low:
        out.append((path, value, ">=", low, why))
    elif value > high:
        out.append((path, value, "<=", high, why))


def _only_segment(proto):
    stims = [s for s in proto["segments"] if s.get("kind") == "stim"]
    return stims[0] if len(stims) == 1 and len(proto["segments"]) == 1 else None


def peak_uA(proto):
    """Largest |current| the online bounds allow (the segment's own peak if none)."""
    seg = proto["segments"][0]
    params = proto["online"]["params"]
    amp = params["amplitude_uA"]["max"] if "amplitude_uA" in params else seg["amplitude_uA"]
    if "offset_uA" in params:
        off = max(abs(params["offset_uA"]["min"]), abs(params["offset_uA"]["max"]))
    else:
        off = abs(seg["offset_uA"])
    return max(amp + off, abs(seg["offset_uA"]) + seg["amplitude_uA"])


def check(proto, lim, out):
    """Problems of the online section (validate.check calls this when it is present)."""
    sec = proto["online"]
    before = len(out)
    if not isinstance(sec, dict):
        out.append(("online", sec, "is", "object", "wrong type"))
        return
    if not _check_keys(sec, KEYS, "online.", out):
        return
    seg = _only_segment(proto)
    if "electrodes" in proto["montage"] or seg is None or proto["sham"] is not None:
        out.append(("online", "online", "is", "one stimulation segment, two electrodes, no sham",
                    "online changes apply to a single-segment protocol"))
        return
    if seg.get("waveform") not in ("dc", "sine"):
        out.append(("online", seg.get("waveform"), "one of", ("dc", "sine"), "waveforms that change online"))
        return
    fs = proto["sample_rate_hz"]
    n = sec["ramp_ms"] * fs // 1000
    if sec["ramp_ms"] < lim["min_ramp_ms"]:
        # the device's rule for every current change: no step without a ramp
        out.append(("online.ramp_ms", sec["ramp_ms"], ">=", lim["min_ramp_ms"], "online ramp length"))
    elif n > RAMP_MAX_SAMPLES or sec["ramp_ms"] > lim["max_ramp_ms"]:
        out.append(("online.ramp_ms", sec["ramp_ms"], "<=",
                    min(lim["max_ramp_ms"], RAMP_MAX_SAMPLES * 1000 // fs), "online ramp length"))
    allowed = ("amplitude_uA", "frequency_mHz", "phase_deg", "offset_uA") if seg["waveform"] == "sine" \
        else ("amplitude_uA",)
    ok = True
    for name in sec["params"]:
        path = "online.params." + name
        b = sec["params"][name]
        if name not in allowed:
            out.append((path, name, "one of", allowed, "what a %s segment may change" % seg["waveform"]))
            ok = False
            continue
        if not isinstance(b, dict) or not _check_keys(b, BOUND_KEYS, path + ".", out):
            ok = False
            continue
        value = seg[name]
        if b["min"] > value:
            out.append((path + ".min", b["min"], "<=", value, "the protocol's own value lies within the bounds"))
            ok = False
        if b["max"] < value:
            out.append((path + ".max", b["max"], ">=", value, "the protocol's own value lies within the bounds"))
            ok = False
        if b["step"] < 1:
            out.append((path + ".step", b["step"], ">=", 1, "largest step of one change"))
        _bound(out, path + ".interval_ms", b["interval_ms"], 0, lim["max_session_ms"], "shortest time between changes")
        if name == "amplitude_uA" and b["min"] < 0:
            out.append((path + ".min", b["min"], ">=", 0, "polarity comes from the montage"))
        if name == "frequency_mHz":
            if b["min"] <= 0:
                out.append((path + ".min", b["min"], ">", 0, "sine frequency"))
            if b["max"] * 10 > fs * 1000:
                out.append((path + ".max", b["max"], "<=", fs * 100, "at least 10 samples per cycle"))
        if name == "phase_deg":
            if b["min"] < 0 or b["max"] > 359:
                out.append((path, [b["min"], b["max"]], "within", [0, 359], "phase"))
            elif b["step"] > 180:
                out.append((path + ".step", b["step"], "<=", 180, "a phase step goes the shorter way round"))
    burst = sec["burst"]
    if burst is not None and _check_keys(burst, BURST_KEYS, "online.burst.", out):
        if burst["start"] not in ("on", "off"):
            out.append(("online.burst.start", burst["start"], "one of", ("on", "off"), "burst state at the start"))
        _bound(out, "online.burst.interval_ms", burst["interval_ms"], 0, lim["max_session_ms"],
               "shortest time between changes")
    if not ok or len(out) > before:
        return
    # A phase change is spread over the ramp as a frequency offset: the highest frequency
    # during it (the largest frequency plus step/360 cycles over the ramp) keeps 10 samples
    # a cycle.
    params = sec["params"]
    if "phase_deg" in params:
        f_top = params["frequency_mHz"]["max"] if "frequency_mHz" in params else seg["frequency_mHz"]
        extra = (params["phase_deg"]["step"] * 1000000 + 360 * sec["ramp_ms"] - 1) // (360 * sec["ramp_ms"])
        if (f_top + extra) * 10 > fs * 1000:
            out.append(("online.params.phase_deg.step", params["phase_deg"]["step"], "<=",
                        (fs * 100 - f_top) * 360 * sec["ramp_ms"] // 1000000,
                        "a phase change spread over the ramp keeps at least 10 samples per cycle"))
    peak = peak_uA(proto)
    if peak > lim["max_current_uA"]:
        out.append(("online.params", peak, "<=", lim["max_current_uA"],
                    "peak current the online bounds allow (largest amplitude + largest |offset|)"))
    ms2 = 2 * seg["duration_ms"] + seg["ramp_up_ms"] + seg["ramp_down_ms"]
    charge = (peak * ms2 + 1999) // 2000
    if charge > lim["max_charge_uC"]:
        out.append(("online.params", charge, "<=", lim["max_charge_uC"],
                    "charge per session (uC) at the largest current the online bounds allow"))


class Online:
    """The device's judge of changes for one session (and the preview's: the same rules).
    accept() says yes or why not; the engine applies what was accepted at its sample."""

    def __init__(self, proto):
        sec = proto["online"]
        seg = proto["segments"][0]
        fs = self.fs = proto["sample_rate_hz"]
        self.ramp_n = sec["ramp_ms"] * fs // 1000
        up = seg["ramp_up_ms"] * fs // 1000
        self.first = up                                   # the plateau's samples
        self.end = up + seg["duration_ms"] * fs // 1000
        self.bounds = [None] * 6
        self.value = [0] * 6
        for name in sec["params"]:
            b = sec["params"][name]
            code = PARAMS[name]
            self.bounds[code] = (b["min"], b["max"], b["step"], b["interval_ms"] * fs // 1000)
            self.value[code] = seg[name]
        burst = sec["burst"]
        if burst is not None:
            self.bounds[BURST] = (0, 1, 1, burst["interval_ms"] * fs // 1000)
            self.value[BURST] = 1 if burst["start"] == "on" else 0
        self.last_at = [-AT_MAX] * 6      # the latest accepted change of each parameter
        self.last_ramp = -AT_MAX          # the latest accepted ramped change (amplitude, offset, burst)
        self.latest = -1                  # the latest accepted change of any kind

    def burst_start(self):
        return self.value[BURST] if self.bounds[BURST] is not None else 1

    def accept(self, code, value, at, now, pending):
        """None if the change may happen at sample `at` (the engine's next sample is `now`,
        `pending` changes wait), else the reason it may not. On None it is recorded."""
        if code < 1 or code > 5 or self.bounds[code] is None:
            return "not-online"
        lo, hi, step, interval = self.bounds[code]
        if type(value) is not int or value < lo or value > hi:
            return "out-of-bounds"
        if at < now:
            return "late"
        ramped = code == AMP or code == OFFSET or code == BURST
        spread = ramped or code == PHASE        # takes ramp_n samples from `at`
        if at < self.first or at >= self.end or (spread and at + self.ramp_n > self.end):
            return "outside-plateau"
        if at < self.latest:
            return "out-of-order"
        if pending >= QUEUE:
            return "busy"
        d = value - self.value[code]
        if code == PHASE:
            d = d % 360
            if d > 180:
                d = 360 - d
        if d < 0:
            d = -d
        if d > step:
            return "step"
        if at - self.last_at[code] < interval:
            return "too-soon"
        if ramped and at - self.last_ramp < self.ramp_n:
            return "ramping"
        if code == PHASE and at - self.last_at[PHASE] < self.ramp_n:
            return "ramping"
        self.value[code] = value
        self.last_at[code] = at
        if ramped:
            self.last_ramp = at
        self.latest = at
        return None


def env_lerp(out, start, r, a0, da, o0, do, k, n):
    """r samples of an online ramp from position k of n: sample j (position k+j+1) has
    amplitude a0 + da*(k+j+1)//n and offset o0 + do*(k+j+1)//n, exact, the last equal to
    the target. |da|, |do| <= 8000 and n <= RAMP_MAX_SAMPLES keep products inside 2**30."""
    for i in range(start, start + r):
        k += 1
        a = a0 + da * k // n
        out[i] = o0 + do * k // n + ((a * out[i] + 16384) >> 15)


def code_of(name):
    """A parameter's code from its name (as CHANGE and the records write it), or 0."""
    return BURST if name == "burst" else PARAMS.get(name, 0)


def fill_scheduled(engine, buf, n, changes, pos):
    """Preview (tesctl preview --changes): fill up to n samples into buf, handing the
    engine each change of changes[pos:] ((at_sample, code, value), in time order) at its
    sample, as a device does that receives it ahead of time. -> (samples, pos, why):
    why is None, or the engine's refusal of changes[pos] (nothing more is filled)."""
    if pos < len(changes):
        at = changes[pos][0]
        if at == engine.elapsed or at < engine.elapsed:
            why = engine.change(changes[pos][1], changes[pos][2], at)[0]
            if why is not None:
                return 0, pos, why
            return 0, pos + 1, None
        if at - engine.elapsed < n:
            n = at - engine.elapsed
    return engine.fill(buf, n), pos, None


# ---- the engine's side: called by tes.engine.Engine for a protocol with [online] ---------
# Functions over the engine `e` (its attributes are its state), here so that a board loads
# them only for such a protocol.
def change(e, code, value, at=None):
    """Accept a change at sample `at` (None: the next sample this engine fills) ->
    (None, at) or (why not, at). Called from the link, not the block loop."""
    if at is None:
        at = e.elapsed
    if e.online is None:
        return "not-online", at
    if e.state == DONE or (e.index == len(e.phases) - 1 and e.state == RAMP_DOWN):
        return "stopping", at
    old_phase = e.online.value[PHASE]
    why = e.online.accept(code, value, at, e.elapsed, e.qn)
    if why is None:
        i = QW * e.qn
        e.q[i] = at
        e.q[i + 1] = code
        e.q[i + 2] = value
        if code == FREQ:
            # The new advance per sample, worked out here: f << 20 leaves a board's
            # small ints, and the fill must not allocate.
            step = value << 20
            e.q[i + 3] = step // (e.fs * 1000)
            e.q[i + 4] = step % (e.fs * 1000)
        elif code == PHASE:
            # the step in phase units the shorter way round, spread over the ramp
            d = ((value << 20) // 360 - (old_phase << 20) // 360) & K.PHASE_MASK
            if d > 1 << 19:
                d -= 1 << 20
            n = e.online.ramp_n
            e.q[i + 3] = d // n
            e.q[i + 4] = d - n * (d // n)
        e.qn += 1
        e.next_at = e.q[0] if e.q[0] < e.ps_at else e.ps_at
    return why, at


def level_amp(e):
    """Amplitude of the moment, inside an online ramp or not (two functions, not a
    tuple: the fill runs with the heap locked)."""
    if e.lk < e.ln:
        return e.la + e.lda * e.lk // e.ln
    return e.amp


def level_off(e):
    if e.lk < e.ln:
        return e.lo + e.ldo * e.lk // e.ln
    return e.off


def apply_due(e):
    q = e.q
    if e.ps_at == e.elapsed:
        _phase_switch(e)
    while e.qn and q[0] == e.elapsed:
        _apply(e, q[1], q[2], q[3], q[4])
        j = 3 * (e.applied % QUEUE)
        e.done[j] = q[0]
        e.done[j + 1] = q[1]
        e.done[j + 2] = q[2]
        e.applied += 1
        for i in range(QW, QW * e.qn):
            q[i - QW] = q[i]
        e.qn -= 1
    nxt = q[0] if e.qn else AT_MAX
    e.next_at = nxt if nxt < e.ps_at else e.ps_at


def _phase_switch(e):
    """The next step of a phase change's spread: dq -> dq + 1 for the last r samples,
    then back to the oscillator's own advance."""
    st = e.st
    if e.ps_r > 0:
        st[K.IQ] += 1
        e.ps_extra += 1
        e.ps_at = e.elapsed + e.ps_r
        e.ps_r = 0
    else:
        st[K.IQ] -= e.ps_extra
        e.ps_extra = 0
        e.ps_at = AT_MAX


def _apply(e, code, value, iq, ir):
    st = e.st
    if code == FREQ:              # phase-continuous: only the advance per sample changes
        st[K.IQ] = iq + e.ps_extra
        st[K.IR] = ir
        return
    if code == PHASE:             # iq, ir here: the spread's dq and r
        n = e.online.ramp_n
        st[K.IQ] += iq
        e.ps_extra = iq
        e.ps_r = ir
        e.ps_at = e.elapsed + n - ir
        e.phase = value
        return
    if code == AMP:
        e.set_amp = value
    elif code == OFFSET:
        e.set_off = value
    else:
        e.gate = value
    a0 = level_amp(e)
    o0 = level_off(e)
    e.amp = e.set_amp if e.gate else 0
    e.off = e.set_off if e.gate else 0
    e.la = a0
    e.lo = o0
    e.lda = e.amp - a0
    e.ldo = e.off - o0
    e.lk = 0
    e.ln = e.online.ramp_n


def ramp_block(e, out, start, m):
    """A plateau block inside an online ramp: the oscillator, then the ramp's samples
    (linear from the level of the moment), then the new level for the rest."""
    k = e.kernels
    if e.kind == 0:
        k.osc_const(out, start, m, K.FULL)
    else:
        k.osc_sine(out, start, m, e.st, SINE)
    r = e.ln - e.lk
    if r > m:
        r = m
    env_lerp(out, start, r, e.la, e.lda, e.lo, e.ldo, e.lk, e.ln)
    e.lk += r
    if r < m:
        k.env_flat(out, start + r, m - r, e.amp, e.off)
