"""The stimulation engine: a canonical protocol in, integer microamps per sample out.

Engine(proto).fill(buf, n) writes the next n samples (fewer only at the end) into an
array('i') and allocates nothing, so it can run with the heap locked. The plan (phases
and oscillator set-up) is built once in the constructor, where allocation is allowed.

Several electrodes (issue 12): engine.channels is the number of driven electrodes C (1
for the two-electrode form: the anode, its cathode the return) and fill_all(outs, n)
writes the next n samples of every driven electrode into outs[0..C-1], in montage order,
and the return's, minus their sum in integers, into outs[C]. The channels share the
phases and the envelope; each has its own oscillator state (an st array of the layout of
tes.kernels) and runs the same kernels as the single-channel path, so a channel is bit
for bit what the two-electrode engine gives for its waveform. Each st holds a copy of the
shared envelope words, all set together (phase entry, soft stop) and each advanced once
per sample by its channel's pass. fill(buf, n) of a multi-electrode protocol with one
driven electrode is that electrode's current; with more it refuses (use fill_all).
"""
try:
    import micropython  # the native emitter: same semantics as bytecode, about 1.3x faster here
except ImportError:  # CPython
    from tes import compat as micropython

from array import array

from tes import kernels as K
from tes import noise
from tes.tables import SINE, RCOS

try:
    from tes import kernels_fast as F  # viper twins on MicroPython; absent under CPython
except (ImportError, SyntaxError):  # CPython, or a port without viper (WebAssembly)
    F = None

# Phase states, as reported in telemetry and events.
OFF = 0
RAMP_UP = 1
PLATEAU = 2
RAMP_DOWN = 3
PAUSE = 4
SHAM_OFF = 5
DONE = 6
STATE_NAMES = ("off", "ramp-up", "plateau", "ramp-down", "pause", "sham-off", "done")

_ENV_OF = {RAMP_UP: 1, PLATEAU: 0, RAMP_DOWN: 1, PAUSE: 2, SHAM_OFF: 2}
_OSC = {"dc": 0, "sine": 1, "pulse": 2, "noise": 3}
ST_LEN = K.NOISE_BASE + noise.NOISE_LEN
QW = 5        # words of a pending online change: at, code, value, and a frequency's iq, ir
QUEUE = 8     # online changes an engine holds ahead of their time
AT_MAX = (1 << 30) - 1    # "no change pending" as a sample


def samples(ms, fs):
    return ms * fs // 1000


def _osc_init(seg, fs):
    """State words of a segment's oscillator at its first sample."""
    init = [0] * ST_LEN
    wf = seg["waveform"]
    if wf in ("sine", "pulse"):
        # Phase advance per sample = f / fs cycles = f_mHz * 2**20 / (fs * 1000), split
        # into quotient and remainder so the phase is exact: no drift however long.
        mod = fs * 1000
        step = seg["frequency_mHz"] << 20
        init[K.IQ], init[K.IR], init[K.MOD] = step // mod, step % mod, mod
        init[K.PH] = (seg["phase_deg"] << 20) // 360 if wf == "sine" else 0
        if wf == "pulse":
            # Pulse width as phase: width_us * f / 1e6 cycles.
            w = (seg["pulse_width_us"] * seg["frequency_mHz"] << 20) // 1000000000
            init[K.W1] = max(1, w)
            init[K.W2] = init[K.W1] * (2 if seg["biphasic"] else 1)
    elif wf == "noise":
        init[K.NOISE_BASE:] = noise.design(seg, fs)
    return array("i", init)


def return_kernels(fast):
    """tes.multi's kernels, or their viper twins (tes.multi_fast) where fast and the emitter
    exists: imported only here, by a multi-electrode engine."""
    if fast:
        try:
            from tes import multi_fast as MF
            if MF.AVAILABLE:
                return MF
        except (ImportError, SyntaxError):  # CPython, or a port without viper
            pass
    from tes import multi as M
    return M


def mirror(seg):
    """A flat segment of negative amplitude as the kernels run it: amplitude |amplitude|,
    offset negated; the engine negates their output, so the channel delivers
    -(mirror's samples). The kernels (and their viper twins) and the noise design (its gain
    is sd / peak) thus only ever see amplitude >= 0, as in the two-electrode form."""
    if seg["kind"] != "stim" or seg["amplitude_uA"] >= 0:
        return seg
    c = dict(seg)
    c["amplitude_uA"] = -seg["amplitude_uA"]
    c["offset_uA"] = -seg["offset_uA"]
    return c


def channel_segments(proto, c):
    """The segments of driven channel c as flat (two-electrode form) segments: the stim
    segment's timing with that channel's waveform keys; pauses as they are."""
    flat = []
    for seg in proto["segments"]:
        if seg["kind"] != "stim":
            flat.append(seg)
            continue
        f = {}
        for key in seg:
            if key != "currents":
                f[key] = seg[key]
        for key in seg["currents"][c]:
            if key != "electrode":
                f[key] = seg["currents"][c][key]
        flat.append(f)
    return flat


def _refuse_fill(out, n):
    raise ValueError("a montage of several driven electrodes: use fill_all")


def build_phases(proto):
    """List of (state, n_samples, segment_index) for the whole session."""
    fs = proto["sample_rate_hz"]
    sham = proto["sham"]
    phases = []
    for i, seg in enumerate(proto["segments"]):
        if seg["kind"] == "pause":
            phases.append((PAUSE, samples(seg["duration_ms"], fs), i))
            continue
        up = samples(seg["ramp_up_ms"], fs)
        flat = samples(seg["duration_ms"], fs)
        down = samples(seg["ramp_down_ms"], fs)
        if sham is None:
            phases += [(RAMP_UP, up, i), (PLATEAU, flat, i), (RAMP_DOWN, down, i)]
            continue
        total = up + flat + down
        fade = [(RAMP_UP, samples(sham["ramp_up_ms"], fs), i),
                (PLATEAU, samples(sham["plateau_ms"], fs), i),
                (RAMP_DOWN, samples(sham["ramp_down_ms"], fs), i)]
        fade_n = sum(p[1] for p in fade)
        rest = total - fade_n * (2 if sham["double"] else 1)
        phases += fade + [(SHAM_OFF, rest, i)] + (fade if sham["double"] else [])
    return [p for p in phases if p[1] > 0]


class Engine:
    sine_flat = None        # use_sine_flat()
    sf_frame = None

    def __init__(self, proto, fast=True):
        self.fs = proto["sample_rate_hz"]
        multi = "electrodes" in proto["montage"]
        # The multi form: channel 0's flat segments (mirrored) drive the single-channel state below.
        self.segments = [mirror(s) for s in channel_segments(proto, 0)] if multi else proto["segments"]
        self.phases = build_phases(proto)
        self.total = sum(p[1] for p in self.phases)
        self.osc_init = [None if s["kind"] == "pause" else _osc_init(s, self.fs)
                         for s in self.segments]
        self.osc_kind = [_OSC.get(s.get("waveform"), 0) for s in self.segments]
        self.cosine = [s.get("ramp_shape") == "cosine" for s in self.segments]
        self.fast = fast and F is not None and F.AVAILABLE
        self.st = array("i", [0] * ST_LEN)
        self.index = -1      # phase index; -1 before the first sample
        self.left = 0        # samples left in the current phase
        self.elapsed = 0     # samples delivered so far
        self.state = OFF
        self.seg = -1
        self.env = 2
        self.kind = 0
        self.amp = self.off = 0
        self.kernels = F if self.fast else K
        self.multi = multi
        self.channels = len(proto["montage"]["electrodes"]) - 1 if multi else 1
        self.sts = [self.st]
        if multi:
            self._init_channels(proto)
            # fill(): the one driven electrode of a 2-electrode montage; refused for more
            # (the single-channel path would give channel 0 alone).
            self.fill = self._fill_one if self.channels == 1 else _refuse_fill
            # The single-channel fill loop runs every channel: its phase entry and block
            # step, looked up on the instance first, become the all-channel ones.
            self._enter = self._enter_all
            self._block = self._block_all
            self._ret = 1
        # the return's kernels: loaded by a multi-electrode engine only (an RP2040 holds
        # every imported module in its RAM; a two-electrode session must not pay for them)
        self.mk = return_kernels(self.fast) if self.multi else None
        # Online changes (tes.online): accepted ones wait in q as (at, code, value, iq, ir), in
        # order; the fill splits at next_at. Applied ones go to the ring `done` for the
        # app to report. An amplitude/offset change ramps linearly from the level of the
        # moment (la, lo) by (lda, ldo) over ln samples; lk of them are out.
        self.online = self.O = self.q = self.done = None
        if proto.get("online") is not None:
            from tes import online as O
            self.O = O
            self.online = O.Online(proto)
            self.q = array("i", [0] * (QW * QUEUE))
            self.done = array("i", [0] * (3 * QUEUE))
        self.qn = 0
        self.next_at = AT_MAX
        self.applied = 0
        self.la = self.lo = self.lda = self.ldo = self.lk = self.ln = 0
        self.gate = 1
        self.set_amp = self.set_off = self.phase = 0
        # A phase change spreads over the ramp as an extra advance per sample: dq for the
        # first n - r samples, dq + 1 for the last r (n*dq + r = the phase step, exact);
        # ps_at is the sample of the next switch, ps_extra what is added to IQ now.
        self.ps_at = AT_MAX
        self.ps_dq = self.ps_r = self.ps_extra = 0
        if self.online is not None:
            s0 = self.segments[0]
            self.gate = self.online.burst_start()
            self.set_amp, self.set_off = s0["amplitude_uA"], s0["offset_uA"]
            self.phase = s0["phase_deg"]

    def _init_channels(self, proto):
        """Per channel and segment: oscillator set-up, kind, amplitude, offset, sign (None for a pause)."""
        C = self.channels
        signed = [channel_segments(proto, c) for c in range(C)]
        flats = [self.segments] + [[mirror(s) for s in signed[c]] for c in range(1, C)]
        self.sts = [self.st] + [array("i", [0] * ST_LEN) for _ in range(1, C)]
        self.ch_init, self.ch_kinds, self.ch_amps, self.ch_offs, self.ch_negs = [], [], [], [], []
        for i, seg in enumerate(self.segments):
            if seg["kind"] == "pause":
                for lst in (self.ch_init, self.ch_kinds, self.ch_amps, self.ch_offs, self.ch_negs):
                    lst.append(None)
                continue
            self.ch_init.append([self.osc_init[i]] + [_osc_init(flats[c][i], self.fs) for c in range(1, C)])
            self.ch_kinds.append(array("i", [_OSC[flats[c][i]["waveform"]] for c in range(C)]))
            self.ch_amps.append(array("i", [flats[c][i]["amplitude_uA"] for c in range(C)]))
            self.ch_offs.append(array("i", [flats[c][i]["offset_uA"] for c in range(C)]))
            self.ch_negs.append(array("i", [1 if signed[c][i]["amplitude_uA"] < 0 else 0 for c in range(C)]))
        zero = array("i", [0] * C)
        self.ch_kind = self.ch_amp = self.ch_off = self.ch_neg = zero
        self._one = [None, None]      # fill() of one channel: outs without a return

    def remaining(self):
        return self.total - self.elapsed

    def _enter(self, index):
        state, n, seg = self.phases[index]
        st = self.st
        if seg != self.seg:
            self.seg = seg
            init = self.osc_init[seg]
            if init is not None:
                for j in range(ST_LEN):
                    st[j] = init[j]
        self.index = index
        self.left = n
        self.state = state
        # What _block needs, looked up once per phase rather than once per block.
        self.env = _ENV_OF[state]
        s = self.segments[seg]
        self.kind = self.osc_kind[seg]
        self.amp = s.get("amplitude_uA", 0)
        self.off = s.get("offset_uA", 0)
        if self.online is not None:
            # Changed online: the ramps go from and to the level of the moment.
            self.amp = self.set_amp if self.gate else 0
            self.off = self.set_off if self.gate else 0
        if state == RAMP_UP or state == RAMP_DOWN:
            full = 65536 if self.cosine[seg] else 32768
            st[K.ECOS] = 1 if self.cosine[seg] else 0
            st[K.ETOP] = K.FULL
            st[K.EP] = 0
            st[K.EF] = 0
            st[K.EQ] = full // n
            st[K.ER] = full % n
            st[K.EN] = n
            st[K.EDOWN] = 1 if state == RAMP_DOWN else 0
            st[K.AMP] = self.amp
            st[K.OFF] = self.off

    def envelope(self):
        """Envelope now, Q15 (32768 = full): where a soft stop starts its ramp."""
        state = self.state
        if state == PLATEAU:
            return K.FULL
        if state != RAMP_UP and state != RAMP_DOWN:
            return 0
        st = self.st
        pos = st[K.EP]
        if st[K.ECOS]:
            k = pos >> 8
            e = RCOS[k]
            if k < 256:
                e += ((RCOS[k + 1] - e) * (pos & 255)) >> 8
        else:
            e = pos
        return st[K.ETOP] - e if st[K.EDOWN] else e

    def soft_stop(self, ms):
        """Ramp linearly from the present envelope to zero over ms, then end. Allocates
        nothing, so a supervisor stop can call it from the control loop."""
        if self.state == DONE or self.index < 0:
            # Nothing out yet (or already done): end here, and no phase may start after.
            self.index = len(self.phases) - 1
            self.state = DONE
            self.left = 0
            return
        e0 = self.envelope()
        n = samples(ms, self.fs) or 1
        self.index = len(self.phases) - 1   # nothing after this ramp
        if self.online is not None:
            # No change after a stop; the stop ramps from the level of the moment.
            self.qn = 0
            self.next_at = self.ps_at       # a phase change under way still ends exactly
            if self.state == PLATEAU:
                self.st[K.AMP] = self._level_amp()
                self.st[K.OFF] = self._level_off()
                self.ln = 0
        if e0 == 0 or self.osc_init[self.seg] is None:
            self.left = 0
            self.state = DONE
            return
        st = self.st
        st[K.EP] = 0
        st[K.EF] = 0
        st[K.EQ] = e0 // n
        st[K.ER] = e0 % n
        st[K.EN] = n
        st[K.EDOWN] = 1
        st[K.ETOP] = e0
        st[K.ECOS] = 0
        self.left = n
        self.state = RAMP_DOWN
        self.env = 1
        if self.channels > 1:
            self._share_envelope()

    def _share_envelope(self):
        """Copy channel 0's envelope words to every other channel (their own amplitude and
        offset stay): all channels then ramp as one."""
        st0 = self.st
        sts = self.sts
        for c in range(1, self.channels):
            st = sts[c]
            for j in range(K.EP, K.ETOP + 1):
                if j != K.AMP and j != K.OFF:
                    st[j] = st0[j]

    @micropython.native
    @micropython.native     # called every pass: a bytecode frame costs more than the call
    def fill(self, out, n):
        """Write up to n samples (uA) into out[0:n]; return how many (0 when done)."""
        if n <= self.left and self.elapsed + n <= self.next_at:   # the usual case: inside one phase
            self._block(out, 0, n)
            self.left -= n
            self.elapsed += n
            return n
        done = 0
        while done < n:
            if self.elapsed == self.next_at:
                self._apply_due()
            if self.left == 0:
                if self.index + 1 >= len(self.phases):
                    self.state = DONE
                    break
                self._enter(self.index + 1)
            m = n - done
            if m > self.left:
                m = self.left
            if m > self.next_at - self.elapsed:
                m = self.next_at - self.elapsed
            self._block(out, done, m)
            self.left -= m
            self.elapsed += m
            done += m
        return done

    def use_sine_flat(self, fn):
        """A sine plateau's block by fn(out, st, f, n) from now on (hal.base: a driver's
        optional sine_flat; tes.kernels.SF_LEN's frame f), the same samples as osc_sine then
        env_flat; None: those two kernels."""
        self.sine_flat = fn
        if fn is not None and self.sf_frame is None:
            f = self.sf_frame = array("i", [0] * K.SF_LEN)
            try:
                import uctypes
                f[0] = uctypes.addressof(SINE)
            except ImportError:     # CPython: a stand-in kernel (tests) reads the table itself
                pass

    @micropython.native
    def _block(self, out, start, m):
        env = self.env
        k = self.kernels
        if env == 2:
            k.osc_const(out, start, m, 0)
            return
        kind = self.kind
        if env == 0 and self.lk < self.ln:
            self.O.ramp_block(self, out, start, m)
            return
        if kind == 0 and env == 0:      # DC plateau: amplitude exactly, as env_flat would give
            k.osc_const(out, start, m, self.amp)
            return
        st = self.st
        if kind == 1 and env == 0:
            sf = self.sine_flat
            if sf is not None:          # a board's machine code: osc_sine then env_flat, one pass
                f = self.sf_frame
                f[1] = self.amp
                f[2] = self.off
                f[3] = start
                sf(out, st, f, m)
                return
        if kind == 0:
            k.osc_const(out, start, m, K.FULL)
        elif kind == 1:
            k.osc_sine(out, start, m, st, SINE)
        elif kind == 2:
            k.osc_pulse(out, start, m, st)
        else:
            k.osc_noise(out, start, m, st)
        if env == 0:
            k.env_flat(out, start, m, self.amp, self.off)
        else:
            k.env_ramp(out, start, m, st, RCOS)

    def _enter_all(self, index):
        """_enter for every channel: channel 0 by the single-channel _enter, the others'
        oscillators from their own set-up on a new segment, the shared envelope copied to them."""
        seg = self.phases[index][2]
        new = seg != self.seg
        Engine._enter(self, index)
        inits = self.ch_init[seg]
        if inits is None:           # a pause: every channel outputs 0 and reads no state
            return
        self.ch_kind = self.ch_kinds[seg]
        self.ch_neg = self.ch_negs[seg]
        self.ch_amp = amp = self.ch_amps[seg]
        self.ch_off = off = self.ch_offs[seg]
        sts = self.sts
        for c in range(1, self.channels):
            st = sts[c]
            if new:
                init = inits[c]
                for j in range(ST_LEN):
                    st[j] = init[j]
            st[K.AMP] = amp[c]
            st[K.OFF] = off[c]
        self._share_envelope()

    def fill_all(self, outs, n):
        """Write up to n samples of every electrode: outs[c][0:n] for driven channel c
        (montage order, the return excluded), outs[channels][0:n] for the return (minus
        their sum). Returns how many (0 when done). Allocates nothing."""
        if not self.multi:          # the two-electrode path, exactly: fill and negate
            k = self.fill(outs[0], n)
            a = outs[0]
            r = outs[1]
            for j in range(k):
                r[j] = -a[j]
            return k
        self._ret = 1
        return Engine.fill(self, outs, n)   # its _enter and _block are the instance's, below

    @micropython.native
    def fill_driven(self, outs, n):
        """fill_all without the return's samples (outs[channels] is not touched) for a montage
        of several driven electrodes (fill_all itself for the two-electrode forms): the block
        loop's (tes.multicontrol), which never sends the return to a DAC and takes its current
        from what is sensed. The driven electrodes' samples are fill_all's, to the bit."""
        if not self.multi:
            return self.fill_all(outs, n)
        self._ret = 0
        return Engine.fill(self, outs, n)

    def _fill_one(self, out, n):
        """fill() of a multi montage of two electrodes: the driven one's samples."""
        one = self._one
        one[0] = out
        self._ret = 0
        k = Engine.fill(self, one, n)
        one[0] = None
        return k

    @micropython.native     # every fill of a multi session: no heap frame for its many locals
    def _block_all(self, outs, start, m):
        """_block for every channel in turn (each its own state, kind and levels), then the
        return. The channel's words are set where _block reads them and channel 0's put back."""
        C = self.channels
        sts = self.sts
        kind = self.ch_kind
        amp = self.ch_amp
        off = self.ch_off
        neg = self.ch_neg
        mk = self.mk
        r = outs[C]
        for c in range(C):
            out = outs[c]
            self.st = sts[c]
            self.kind = kind[c]
            self.amp = amp[c]
            self.off = off[c]
            Engine._block(self, out, start, m)
            if neg[c]:              # a negative amplitude: the mirror's samples, negated
                mk.neg_into(out, out, start, m)
            if not self._ret:
                continue
            if c == 0:
                mk.neg_into(r, out, start, m)
            else:
                mk.sub_into(r, out, start, m)
        self.st = sts[0]
        self.kind = kind[0]
        self.amp = amp[0]
        self.off = off[0]

    # ---- online changes: the code is in tes.online, loaded only for a protocol with
    # [online] (a board's RAM: every module it imports costs it at boot) -------------------
    def change(self, code, value, at=None):
        """Accept a change at sample `at` (None: the next sample this engine fills) ->
        (None, at) or (why not, at). Called from the link, not the block loop."""
        if self.online is None:
            return "not-online", self.elapsed if at is None else at
        return self.O.change(self, code, value, at)

    def _apply_due(self):
        self.O.apply_due(self)

    def _level_amp(self):
        return self.O.level_amp(self)

    def _level_off(self):
        return self.O.level_off(self)
