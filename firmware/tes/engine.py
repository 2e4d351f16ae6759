"""The stimulation engine: a canonical protocol in, integer microamps per sample out.

Engine(proto).fill(buf, n) writes the next n samples (fewer only at the end) into an
array('i') and allocates nothing, so it can run with the heap locked. The plan (phases
and oscillator set-up) is built once in the constructor, where allocation is allowed.
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
    def __init__(self, proto, fast=True):
        self.fs = proto["sample_rate_hz"]
        self.segments = proto["segments"]
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
            s = self.segments[seg]
            st[K.AMP] = s["amplitude_uA"]
            st[K.OFF] = s["offset_uA"]

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

    @micropython.native
    @micropython.native     # called every pass: a bytecode frame costs more than the call
    def fill(self, out, n):
        """Write up to n samples (uA) into out[0:n]; return how many (0 when done)."""
        if n <= self.left:          # the usual case: the block lies inside the current phase
            self._block(out, 0, n)
            self.left -= n
            self.elapsed += n
            return n
        done = 0
        while done < n:
            if self.left == 0:
                if self.index + 1 >= len(self.phases):
                    self.state = DONE
                    break
                self._enter(self.index + 1)
            m = n - done
            if m > self.left:
                m = self.left
            self._block(out, done, m)
            self.left -= m
            self.elapsed += m
            done += m
        return done

    @micropython.native
    def _block(self, out, start, m):
        env = self.env
        k = self.kernels
        if env == 2:
            k.osc_const(out, start, m, 0)
            return
        kind = self.kind
        if kind == 0 and env == 0:      # DC plateau: amplitude exactly, as env_flat would give
            k.osc_const(out, start, m, self.amp)
            return
        st = self.st
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
