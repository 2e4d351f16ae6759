"""tes.multicontrol against a small fake HAL of C current sources (sample-major buffers, a
linear load per electrode, faults scripted per electrode): the samples written are the
engine's, every one checked; a fault on one electrode names it; an open circuit on every
electrode that carries current names the return; the return's own overcurrent names the
return; the session's rules (host-lost) name none; the evidence is the named electrode's
block; nothing in the block loop allocates.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
import sys
from array import array

from tes import engine as E
from tes import kernels as K
from tes import multi
from tes import multicontrol as MC
from tes import supervisor as S
from tes.control import END
from tes.limits import board_limits
from tes.session import STIM, Session
from tes.tables import SINE

from devrun import BOARD

try:
    from hypothesis import given, settings
    from hypothesis import strategies as hst
except ImportError:     # MicroPython: the seeded sequence below stands in
    given = None

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    import micropython
else:
    micropython = None

R_OHM = 5000            # every electrode's path (to the return, i.e. ground)
V_OPEN = 29500          # an electrode off the skin: its source at compliance (30 V board)


def cur(name, amp, wave="dc", freq=0, phase=0):
    return {"electrode": name, "waveform": wave, "amplitude_uA": amp, "offset_uA": 0, "frequency_mHz": freq,
            "phase_deg": phase, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
            "biphasic": False}


def mproto(currents, ret="Cz", fs=2000, duration_ms=400, ramp_ms=100, names=None):
    """A multi-electrode protocol, the driven electrodes named by their currents; the return
    listed where names puts it (last by default)."""
    driven = [c["electrode"] for c in currents]
    names = names or driven + [ret]
    seg = {"kind": "stim", "duration_ms": duration_ms, "ramp_up_ms": ramp_ms, "ramp_down_ms": ramp_ms,
           "ramp_shape": "linear", "currents": currents}
    return {"schema": 1, "name": "multi", "sample_rate_hz": fs,
            "montage": {"electrodes": [{"name": n, "area_mm2": 3500} for n in names], "return": ret},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


class FakeHal:
    """C sources into linear loads, measured at once, one block queued at a time; the
    clock is the samples put out. faults: {electrode index: (kind, from sample)} with kind
    "open" (no current, the source at compliance), "over" (+extra uA measured), "dac"
    (readback off by 500 uA); electrode index C = the return ("open": every driven
    electrode open); later: faults the app's stimulation session gets (session_started()).
    fast_trip: (code, source, from sample): a board's fast trip (hal.rp2_multi) that zeroes
    the output and reports through room() before the supervisor sees the block.
    Every sample written is kept (out, per sample and electrode)."""
    SIMULATED = True
    PASS_MS = 1

    def __init__(self, channels=8, storage="build/test-devrun-multicontrol", cap=40000):
        self.channels = channels
        self._storage = storage
        self.faults = {}
        self.later = None
        self.lead = 0               # samples queued at once (0: one block)
        self.C = 1
        self.fs = 1000
        self.k = 0                  # samples put out this session
        self.base_ms = 0
        self.ms0 = 0
        self.cap = cap
        self.out = array("i", [0] * (cap * 8))
        self.pend = 0
        self.q = array("i", [0] * (4 * 8 * 64))
        self.en = False
        self.zeros = 0
        self.level = array("i", [0] * 9)    # what each source puts out now
        self.names = None
        self.started = None
        self.drained = 0
        self._retained = None
        self.fast_trip = None
        self.later_trip = None
        self.tripped = -1

    # -- the block path
    def start(self, fs, channels=1):
        assert 1 <= channels <= self.channels
        self.fs = fs
        self.C = channels
        self.base_ms = self.ticks_ms()
        self.k = 0
        self.pend = 0
        self.started = (fs, channels)

    def room(self):
        t = self.fast_trip
        if t is not None and self.started and self.k >= t[2]:
            self.zero()
            self.tripped = t[1]
            return -1 - t[0]
        return (self.lead or self.fs // 1000 or 1) if self.pend == 0 else 0

    def tripped_source(self):
        return self.tripped

    def write(self, buf, n):
        C = self.C
        q = self.q
        out = self.out
        f = self.faults
        ret = f.get(C)
        for k in range(n):
            w = self.k * C
            for c in range(C):
                s = buf[k * C + c]
                if w + c < len(out):
                    out[w + c] = s
                x = (self.k * 7 + c * 3) % 5 - 2        # a noisy ADC: never still
                i = s + x
                v = s * R_OHM // 1000 + x
                d = s
                fc = f.get(c) if ret is None else ret
                if fc is not None and self.k >= fc[1]:
                    if fc[0] == "open":
                        i = x
                        v = V_OPEN + x
                    elif fc[0] == "over":
                        i += fc[2]
                    elif fc[0] == "dac":
                        d = s + 500
                j = 4 * ((self.pend + k) * C + c)
                q[j] = s
                q[j + 1] = i
                q[j + 2] = v
                q[j + 3] = d
                self.level[c] = s if self.en else 0
            self.k += 1
        self.pend += n

    def sense(self, sb, ib, vb, db, n, b):
        m = self.pend if self.pend < n else n
        C = self.C
        q = self.q
        for w in range(m * C):
            sb[w] = q[4 * w]
            ib[w] = q[4 * w + 1]
            vb[w] = q[4 * w + 2]
            db[w] = q[4 * w + 3]
        self.pend -= m          # (never more than a block pending: nothing to move)
        return m

    def zero(self):
        self.zeros += 1
        self.en = False
        for c in range(9):
            self.level[c] = 0

    def ticks_ms(self):
        return self.ms0 + self.base_ms + self.k * 1000 // self.fs if self.started else self.ms0

    def wait(self, ms):
        self.ms0 += ms

    # -- the rest of the HAL
    def electrodes(self, names):
        self.names = list(names)

    def enable(self, on):
        self.en = on

    def drain(self):
        self.drained += 1

    def stop(self):
        pass

    def underruns(self):
        return 0

    def arm_trip(self, iover_uA, vcomp_mV):
        self.trip = (iover_uA, vcomp_mV)

    def start_watchdog(self, ms):
        pass

    def feed(self):
        pass

    def storage(self):
        from devrun import storage_dir
        return storage_dir(self._storage.rsplit("-", 1)[-1])

    def retain(self, sid, charge_uC, stim_ms):
        self._retained = (sid, charge_uC, stim_ms)

    def retained(self):
        return None

    def session_started(self):
        if self.later is not None:      # faults of a stimulation session, not of the check before
            self.faults = self.later
        if self.later_trip is not None:
            self.fast_trip = self.later_trip

    def session_ended(self):
        pass


LIMITS = board_limits(BOARD)[0]


def session(proto, hal):
    s = Session(STIM, proto, "x", hal, LIMITS, BOARD)
    hal.start(s.fs, s.channels)
    hal.enable(True)
    s.control.prime()
    return s


def run(s, host_age_ms=0, locked=False, limit=200000):
    """Steps until a code; -> code. locked: every step with the heap locked (MicroPython)."""
    c = s.control
    lock = locked and micropython is not None and hasattr(micropython, "heap_lock")
    for _ in range(limit):
        if lock:
            micropython.heap_lock()
        try:
            code = c.step(host_age_ms)
        finally:
            if lock:
                micropython.heap_unlock()
        if code:
            return code
    raise AssertionError("no code")


def four():
    """4 driven electrodes around a return (a 4x1-like montage) at 2 kS/s."""
    return mproto([cur("C3", 500), cur("FC1", 500), cur("CP5", 500), cur("FC5", 500)], ret="Cz")


def test_a_clean_session_writes_the_engines_samples_and_checks_them_all():
    p = mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700, "sine", 6000, 180), cur("T8", 300)])
    hal = FakeHal()
    s = session(p, hal)
    assert s.channels == 3 and hal.started == (2000, 3)
    assert run(s) == END
    c = s.control
    assert c.checked == c.written == hal.k == E.Engine(p).total
    assert c.electrode == -1
    # the samples, interleaved, are fill_all's
    eng = E.Engine(p)
    outs = [array("i", [0] * 64) for _ in range(4)]
    k = 0
    while True:
        n = eng.fill_all(outs, 64)
        if not n:
            break
        for j in range(n):
            for ch in range(3):
                assert hal.out[(k + j) * 3 + ch] == outs[ch][j], (k + j, ch)
        k += n
    assert k == hal.k
    # every supervisor saw its own electrode: charge and time; the return's the total
    sups = s.sups
    assert len(sups) == 4
    assert sups[0].charge_uC > sups[1].charge_uC > sups[2].charge_uC > 0
    assert s.sup.charge_uC == max(x.charge_uC for x in sups)
    assert sups[0].stim_ms > 0 and s.sup.stim_ms == max(x.stim_ms for x in sups)


def test_the_bounds_are_each_electrodes_own():
    p = mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700), cur("T8", 300)])
    s = Session(STIM, p, "x", FakeHal(), LIMITS, BOARD)
    over = [x.st[S.T_IOVER] for x in s.sups]
    assert over == [1100, 800, 400, 2100], over     # the return: the sum of the peaks
    # the impedance lockout: the protocol's for a path of two contacts, scaled by the
    # return's share (peak 2000 uA) in each electrode's reading
    assert [x.st[S.T_ZMAX] for x in s.sups] == [30000, 38571, 76666, S.OPEN_OHM]
    assert MC.lockout(20000, 1000, 1000) == 20000       # one driven electrode: the protocol's own
    assert MC.lockout(20000, 500, 2000) == 50000        # a 4x1 ring electrode
    assert MC.lockout(20000, 0, 2000) == MC.lockout(900000, 1, 8000) == S.OPEN_OHM
    assert all(x.st[S.T_QMAX] == LIMITS["max_charge_uC"] for x in s.sups)


def fault_case(proto, faults, at, host_age_ms=0):
    hal = FakeHal()
    hal.faults = faults
    s = session(proto, hal)
    code = run(s, host_age_ms)
    return s, hal, code


def test_an_open_electrode_is_named():
    p = four()
    at = 600    # the plateau (ramp 100 ms at 2 kS/s = 200 samples)
    for e in range(4):
        s, hal, code = fault_case(p, {e: ("open", at)}, at)
        c = s.control
        assert code == S.OPEN_CIRCUIT, (e, code)
        assert c.electrode == e and c.electrode_name(s.names) == s.names[e]
        # within the block holding the onset (1 ms: 2 samples)
        assert at < c.checked <= at + 2, c.checked
        # the evidence: that electrode's block, no current in it
        sb, ib, vb, db, a = c.evidence()
        assert a == 0 and c.last_m == 2         # (the fake senses one block at a time)
        assert all(abs(x) <= 2 for x in ib[a:a + 2]), list(ib[a:a + 2])
        assert all(v >= V_OPEN - 2 for v in vb[a:a + 2])
        assert all(400 <= x <= 500 for x in sb[a:a + 2]) and list(db[a:a + 2]) == list(sb[a:a + 2])


def test_a_fault_in_a_later_block_of_one_sense():
    # 8 samples queued and sensed at once (4 blocks of 2): the fault's block is the third.
    hal = FakeHal()
    hal.lead = 8
    hal.faults = {2: ("open", 605)}
    s = session(four(), hal)
    assert run(s) == S.COMPLIANCE          # (current in the block's first sample)
    c = s.control
    assert c.electrode == 2 and c.checked == 606 and c.last_m == 2
    sb, ib, vb, db, a = c.evidence()
    assert a == 4 and ib[a + 1] <= 2 and vb[a + 1] >= V_OPEN - 2 and vb[a] < 5000


def test_every_electrode_open_names_the_return():
    p = four()
    # onset mid-block: current flowed in its first sample, so compliance (as for two electrodes)
    s, hal, code = fault_case(p, {4: ("open", 601)}, 601)
    assert code == S.COMPLIANCE and s.control.electrode == 4
    s, hal, code = fault_case(p, {4: ("open", 600)}, 600)
    assert code == S.OPEN_CIRCUIT
    assert s.control.electrode == 4 and s.control.electrode_name(s.names) == "Cz"
    # its evidence: the return's block (current ~0, voltage 0: it is ground; set -2 mA)
    sb, ib, vb, db, a = s.control.evidence()
    assert list(vb[a:a + 2]) == [0, 0]
    assert all(abs(x) <= 8 for x in ib[a:a + 2])
    assert all(-2000 <= x <= -1600 for x in sb[a:a + 2]), list(sb[a:a + 2])


def test_two_electrodes_open_of_four_names_the_first():
    s, hal, code = fault_case(four(), {1: ("open", 600), 3: ("open", 600)}, 600)
    assert code == S.OPEN_CIRCUIT and s.control.electrode == 1


def test_an_electrode_without_current_does_not_stop_the_return_being_named():
    # F4 carries nothing: P4 and T8 open is the return's contact (the only current path).
    p = mproto([cur("F4", 0), cur("P4", 800), cur("T8", 800)])
    s, hal, code = fault_case(p, {1: ("open", 600), 2: ("open", 600)}, 600)
    assert code == S.OPEN_CIRCUIT and s.control.electrode == 3, s.control.electrode


def test_overcurrent_on_one_and_on_the_return():
    # +150 uA measured on P4 only: its own bound (peak + 100) trips, not the board's 4 mA.
    p = mproto([cur("F4", 1000), cur("P4", 500), cur("T8", 500)])
    s, hal, code = fault_case(p, {1: ("over", 600, 150)}, 600)
    assert code == S.OVERCURRENT and s.control.electrode == 1
    # +90 uA on each: every electrode within its own bound, the total 270 uA over the
    # return's (the sum of the peaks + 100): the return is named.
    s, hal, code = fault_case(p, {0: ("over", 600, 90), 1: ("over", 600, 90), 2: ("over", 600, 90)}, 600)
    assert code == S.OVERCURRENT and s.control.electrode == 3, (code, s.control.electrode)


def test_a_readback_fault_is_named():
    s, hal, code = fault_case(four(), {2: ("dac", 700)}, 700)
    assert code == S.DAC_STUCK and s.control.electrode == 2


def test_a_hard_fault_wins_over_a_soft_one_in_the_same_block():
    # host-lost on every electrode from the first block; an open P4 later: the session
    # rule names none, the hard one its electrode.
    p = four()
    s, hal, code = fault_case(p, {}, 0, host_age_ms=S.HOST_LOST_MS + 1)
    assert code == S.HOST_LOST and s.control.electrode == -1
    hal = FakeHal()
    hal.faults = {2: ("open", 0)}
    s = session(p, hal)
    assert run(s, S.HOST_LOST_MS + 1) == S.OPEN_CIRCUIT
    assert s.control.electrode == 2


def test_the_block_loop_allocates_nothing():
    if micropython is None or not hasattr(micropython, "heap_lock"):
        return
    p = mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700, "sine", 6000, 180), cur("T8", 300)])
    s = session(p, FakeHal())
    tap = _Tap()
    s.control.tap = tap.add
    assert run(s, locked=True) == END
    assert tap.n == s.control.written
    # a fault's path (deciding and naming) too
    hal = FakeHal()
    hal.faults = {4: ("open", 600)}
    s = session(four(), hal)
    assert run(s, locked=True) == S.OPEN_CIRCUIT and s.control.electrode == 4


class _Tap:
    def __init__(self):
        self.n = 0

    def add(self, buf, n):
        self.n += n


def random_case(rnd):
    """A montage of 2..6 driven electrodes (DC or 6 Hz sines, signed), a fault on one of
    them or on the return, on the plateau -> (proto, faults, electrode expected)."""
    C = rnd(2, 6)
    dc = rnd(0, 1) == 1
    kind = "over" if dc and rnd(0, 2) == 0 else "open"
    currents = []
    for k in range(C):
        a = rnd(200, 600) * (1 if rnd(0, 1) else -1)
        currents.append(cur("E%d" % k, a) if dc else cur("E%d" % k, a, "sine", 6000, rnd(0, 359)))
    p = mproto(currents, ret="R", fs=1000 * rnd(1, 2), duration_ms=600)
    e = rnd(0, C if kind == "open" else C - 1)
    at = p["sample_rate_hz"] * rnd(120, 400) // 1000
    extra = 300 if currents[e if e < C else 0]["amplitude_uA"] > 0 else -300
    return p, {e: (kind, at, extra)}, e, at


def check_case(p, faults, e, at):
    hal = FakeHal()
    hal.faults = faults
    s = session(p, hal)
    code = run(s)
    kind = faults[e][0]
    want = (S.OVERCURRENT,) if kind == "over" else (S.OPEN_CIRCUIT, S.COMPLIANCE)
    assert code in want, (code, faults, e)
    assert s.control.electrode == e, (s.control.electrode, faults)
    assert at < s.control.checked <= at + s.control.block, (at, s.control.checked)


class _Lcg:
    def __init__(self, seed):
        self.x = seed * 2654435761 % 2147483647 or 1

    def __call__(self, lo, hi):
        self.x = self.x * 48271 % 2147483647
        return lo + self.x % (hi - lo + 1)


def test_seeded_random_montages_name_the_faulting_electrode():
    for seed in range(12):
        check_case(*random_case(_Lcg(seed)))


if given is not None:
    @settings(max_examples=40, deadline=None)
    @given(hst.data())
    def test_hypothesis_random_montages_name_the_faulting_electrode(data):
        check_case(*random_case(lambda lo, hi: data.draw(hst.integers(lo, hi))))


class SplitHal(FakeHal):
    """FakeHal with the optional sense_split, write_blocks and sine_flat (hal.base;
    hal.rp2_multi's): its interleaved samples split per electrode as tes.multi.split does,
    one block per source interleaved into write(), a sine plateau's block by the engine's
    two kernels, each counted."""

    def __init__(self, **kw):
        FakeHal.__init__(self, **kw)
        self.splits = 0
        self.blocks = 0
        self.sines = 0
        self._raw = [array("i", [0] * 400 * 9) for _ in range(4)]
        self._words = array("i", [0] * 128 * 9)

    def write_blocks(self, buf, n, stride):
        C = self.C
        for c in range(C):
            for j in range(n):
                self._words[j * C + c] = buf[c * stride + j]
        self.write(self._words, n)
        self.blocks += 1

    def sine_flat(self, out, st, f, n):
        """hal.sine_thumb.sine_flat's contract in plain code (tests/hil/test_sine_thumb.py
        holds the machine code to the same two kernels)."""
        K.osc_sine(out, f[3], n, st, SINE)
        K.env_flat(out, f[3], n, f[1], f[2])
        self.sines += 1
        return 0

    def sense_split(self, sbs, ibs, vbs, dbs, n, b):
        r = self._raw
        m = self.sense(r[0], r[1], r[2], r[3], n, b)
        if m:
            multi.split(r[0], r[1], r[2], r[3], sbs, ibs, vbs, dbs, m, self.C)
            self.splits += 1
        return m


def test_a_drivers_sense_split_and_write_blocks_give_the_same_session():
    # The block loop through the driver's sense_split and write_blocks (no interleaved
    # arrays of its own) runs the same session, samples, fault and name as through sense()
    # and write() with its own split and interleave.
    cases = [(mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700, "sine", 6000, 180), cur("T8", 300)]), {}),
             (four(), {4: ("open", 600)}), (four(), {1: ("over", 900, 300)})]
    for p, faults in cases:
        got = []
        for H in (FakeHal, SplitHal):
            hal = H()
            hal.faults = dict(faults)
            s = session(p, hal)
            tap = _Tap()
            s.control.tap = tap.add
            code = run(s, locked=True)
            c = s.control
            got.append((code, c.electrode, c.checked, c.written, tap.n, [list(st) for st in c.sts],
                        list(hal.out[:c.written * hal.C])))
            if H is SplitHal:
                assert hal.splits > 0 and len(c.rsb) == 0 and hal.blocks > 0 and len(c.out) == 0
                assert hal.sines > 0 or not any(x.get("waveform") == "sine" for x in p["segments"][0]["currents"])
        assert got[0] == got[1], (faults, got[0][:5], got[1][:5])
