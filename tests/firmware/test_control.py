"""The one block loop (tes.control) against a scripted HAL, engine and supervisor kernel:
what it writes, in what chunks, what it checks and in which blocks, when it reports a
fault, an underrun or the end, and that no sample it wrote goes unchecked.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from array import array

from tes import control as C
from tes import supervisor as S


class Engine:
    """Samples 1, 2, 3, ... up to total, handed out by fill() in the sizes asked for."""

    def __init__(self, total):
        self.total = total
        self.k = 0
        self.asks = []

    def fill(self, out, n):
        self.asks.append(n)
        m = self.total - self.k
        if m > n:
            m = n
        for j in range(m):
            self.k += 1
            out[j] = self.k
        return m


class Hal:
    """A FIFO output queue: room() is what the test says; write() queues samples; sense()
    gives back, in order, the samples the test has 'measured' (moved by measure())."""

    def __init__(self, room=0):
        self.r = room
        self.written = []
        self.writes = []            # chunk sizes
        self.measured = []          # samples measured, not yet sensed
        self.sensed = 0
        self.drained = 0
        self.asks = []

    def room(self):
        return self.r

    def write(self, buf, n):
        self.writes.append(n)
        for j in range(n):
            self.written.append(buf[j])
        if self.r > 0:
            self.r -= n

    def measure(self, n=None):
        """The next n written samples (all by default) come back from the ADC."""
        k = self.sensed + len(self.measured)
        end = len(self.written) if n is None else k + n
        self.measured += self.written[k:end]

    def sense(self, sb, ib, vb, db, n, b):
        self.asks.append(n)
        assert n % b == 0       # the loop asks for whole blocks
        m = len(self.measured)
        if m > n:
            m = n
        for j in range(m):
            x = self.measured.pop(0)
            sb[j] = x
            ib[j] = x + 1000            # distinct channels: the kernel gets each one right
            vb[j] = x + 2000
            db[j] = x + 3000
        self.sensed += m
        return m

    def drain(self):
        self.drained += 1


class Sup:
    """A supervisor whose kernel records every block and returns scripted codes."""

    def __init__(self, codes=None):
        self.st = array("i", [7, 0])
        self.codes = codes or {}
        self.blocks = []
        self.ages = []

        def kernel(st, sb, ib, vb, db, n, age, j0):
            assert st is self.st
            blk = [sb[j] for j in range(j0, j0 + n)]
            for j in range(j0, j0 + n):
                assert (ib[j], vb[j], db[j]) == (sb[j] + 1000, sb[j] + 2000, sb[j] + 3000)
            self.blocks.append(blk)
            self.ages.append(age)
            return self.codes.get(len(self.blocks), 0)
        self.kernel = kernel


def make(fs, total, room=0, codes=None):
    hal = Hal(room)
    eng = Engine(total)
    sup = Sup(codes)
    return hal, eng, sup, C.Control(hal, eng, sup, fs)


def checked(sup):
    out = []
    for b in sup.blocks:
        out += b
    return out


def test_block_is_1_ms_between_1_and_32_samples():
    for fs, b in ((1, 1), (999, 1), (1000, 1), (1999, 1), (2000, 2), (5000, 5), (20000, 20), (31999, 31),
                  (32000, 32), (32999, 32), (33000, 32), (50000, 32), (200000, 32)):
        assert C.block_for(fs) == b, (fs, C.block_for(fs))
        hal, eng, sup, c = make(fs, 10)
        assert c.block == b
        assert c.cap == b * C.SENSE_BLOCKS
        assert len(c.sb) == len(c.ib) == len(c.vb) == len(c.db) == c.cap
        assert len(c.out) == C.FILL_MAX == 128 and C.BLOCK_MAX == 32
    assert C.END == -1 and C.UNDERRUN == S.UNDERRUN


def test_a_new_loop_has_done_nothing():
    hal, eng, sup, c = make(5000, 10)
    assert (c.hal, c.engine, c.sup) == (hal, eng, sup)
    assert (c.written, c.checked, c.last_m, c.engine_done, c.busy, c.tap) == (0, 0, 0, False, False, None)
    assert c.bound_run == c.run
    assert hal.writes == [] and eng.asks == [] and hal.asks == [] and sup.blocks == []


def test_prime_fills_the_whole_lead_in_chunks_of_fill_max():
    F = C.FILL_MAX
    hal, eng, sup, c = make(5000, 1000, room=F + 36)
    c.prime()
    assert hal.writes == [F, 36], hal.writes
    assert hal.written == list(range(1, F + 37))
    assert c.written == F + 36 and not c.engine_done and hal.drained == 0
    assert sup.blocks == []                       # priming checks nothing
    # An engine shorter than the lead: prime stops when it has nothing more.
    hal, eng, sup, c = make(5000, F + 36, room=2 * F)
    c.prime()
    assert hal.writes == [F, 36] and c.written == F + 36
    hal, eng, sup, c = make(5000, 2 * F, room=2 * F)
    c.prime()
    assert hal.writes == [F, F] and c.written == 2 * F and eng.asks == [F, F]
    # No room: nothing.
    hal, eng, sup, c = make(5000, F, room=0)
    c.prime()
    assert hal.writes == [] and eng.asks == [] and c.written == 0
    for room, chunks in ((31, [31]), (1, [1]), (F, [F]), (F + 1, [F, 1]), (2 * F + 1, [F, F, 1])):
        hal, eng, sup, c = make(5000, 1000, room=room)
        c.prime()
        assert hal.writes == chunks and eng.asks == chunks, (room, hal.writes)
        assert c.written == room and hal.written == list(range(1, room + 1))


def test_step_writes_what_the_queue_offers_up_to_fill_max():
    F = C.FILL_MAX
    for room, want in ((1, 1), (5, 5), (F - 1, F - 1), (F, F), (F + 1, F), (5 * F, F)):
        hal, eng, sup, c = make(5000, 10000, room=room)
        assert c.step(0) == 0
        assert hal.writes == [want] and eng.asks == [want], (room, hal.writes)
        assert c.written == want and c.busy
    hal, eng, sup, c = make(5000, 10000, room=0)
    assert c.step(0) == 0
    assert hal.writes == [] and eng.asks == [] and not c.busy and c.written == 0


def test_underrun_is_reported_before_anything_else():
    hal, eng, sup, c = make(5000, 100, room=-1)
    hal.written = [1, 2, 3, 4, 5]
    hal.measure()
    assert c.step(0) == C.UNDERRUN
    assert hal.writes == [] and sup.blocks == [] and hal.asks == []
    hal.r = 0
    assert c.step(0) == 0 and sup.blocks == [[1, 2, 3, 4, 5]]


def test_every_written_sample_is_checked_in_order_in_blocks():
    for fs in (1000, 5000, 20000, 50000):
        b = C.block_for(fs)
        hal, eng, sup, c = make(fs, 997, room=0)
        ends = 0
        for k in range(2000):
            hal.r = 7 + k % 40          # the queue offers a varying amount
            code = c.step(k)
            assert code in (0, C.END), code
            if code == C.END:
                ends += 1
                break
            hal.measure(3 + k % 11)     # the ADC lags the output by a varying amount
        assert ends == 1, fs
        assert hal.written == list(range(1, 998)) and c.written == 997
        assert checked(sup) == hal.written, fs        # all of them, once, in order
        assert c.checked == 997
        assert all(1 <= len(blk) <= b for blk in sup.blocks), fs
        assert hal.drained == 1 and c.engine_done
        assert sup.ages == sorted(sup.ages) and sup.ages[-1] > sup.ages[0]    # each step's own age


def test_sense_is_asked_for_several_blocks_until_fewer_come_back():
    K = C.SENSE_BLOCKS
    cap = 5 * K                         # K blocks of 5 samples at 5 kS/s
    hal, eng, sup, c = make(5000, 100000, room=0)
    hal.written = list(range(1, cap + 4))
    hal.measure()                       # cap + 3 measured: cap in one call (K blocks), then 3
    assert c.step(42) == 0
    assert sup.blocks == [list(range(5 * k + 1, 5 * k + 6)) for k in range(K)] + [[cap + 1, cap + 2, cap + 3]]
    assert hal.asks == [cap, cap]
    assert sup.ages == [42] * (K + 1)
    assert c.checked == cap + 3 and c.last_m == 3
    # Fewer than asked (two blocks): checked in blocks, no second ask.
    hal.written += list(range(cap + 4, cap + 14))
    hal.measure()
    hal.asks = []
    assert c.step(43) == 0
    assert sup.blocks[K + 1:] == [list(range(cap + 4, cap + 9)), list(range(cap + 9, cap + 14))]
    assert hal.asks == [cap] and c.last_m == 5 and c.checked == cap + 13
    # Exactly what was asked: one more ask, which finds nothing.
    hal.written += list(range(cap + 14, 2 * cap + 14))
    hal.measure()
    hal.asks = []
    assert c.step(44) == 0
    assert hal.asks == [cap, cap] and len(sup.blocks) == 2 * K + 3 and c.checked == 2 * cap + 13
    # Nothing measured: one ask, no check.
    hal.asks = []
    assert c.step(45) == 0
    assert hal.asks == [cap] and len(sup.blocks) == 2 * K + 3


def test_a_fault_returns_at_once_with_its_block():
    hal, eng, sup, c = make(5000, 100000, room=0, codes={2: S.SHORT})
    hal.written = list(range(1, 21))
    hal.measure()
    assert c.step(0) == S.SHORT
    assert sup.blocks == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]      # no block after the fault's
    assert c.last_m == 5 and c.checked == 10
    # A fault in a short block.
    hal, eng, sup, c = make(5000, 100000, room=0, codes={1: S.HOST_LOST})
    hal.written = [1, 2, 3]
    hal.measure()
    assert c.step(0) == S.HOST_LOST and c.last_m == 3
    # A fault in the last block wins over the end.
    hal, eng, sup, c = make(1000, 3, room=10, codes={3: S.OVERCURRENT})
    assert c.step(0) == 0
    hal.measure()
    assert c.step(0) == S.OVERCURRENT
    assert c.engine_done and c.checked == 3


def test_end_only_once_every_sample_is_checked():
    hal, eng, sup, c = make(5000, 12, room=100)
    assert c.step(0) == 0 and c.written == 12 and not c.engine_done
    assert c.step(0) == 0 and c.engine_done and hal.drained == 1 and not c.busy
    hal.measure(11)
    assert c.step(0) == 0 and c.checked == 11         # one sample still out
    hal.measure()
    assert c.step(0) == C.END and c.checked == 12
    assert c.step(0) == C.END and hal.drained == 1     # the engine is asked no more
    assert eng.asks == [min(100, C.FILL_MAX), min(88, C.FILL_MAX)]    # the room less the 12 written


def test_tap_sees_every_checked_sample():
    hal, eng, sup, c = make(5000, 100000, room=0)
    seen = []
    c.tap = lambda buf, n: seen.append([buf[j] for j in range(n)])
    hal.written = list(range(1, 13))
    hal.measure()
    assert c.step(0) == 0
    assert seen == [list(range(1, 13))]                # one sense call, one tap
    assert sup.blocks == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    hal, eng, sup, c = make(5000, 100000, room=0, codes={1: S.SHORT})
    c.tap = lambda buf, n: seen.append(n)
    seen = []
    hal.written = list(range(1, 13))
    hal.measure()
    assert c.step(0) == S.SHORT and seen == [5]      # the faulting block is tapped too


def test_with_the_real_supervisor_a_hard_fault_stops_the_loop():
    # Control binds the supervisor's kernel and state: a real Supervisor's rule fires here.
    from tes.limits import CEILING
    hal = Hal(0)
    eng = Engine(100)
    sup = S.Supervisor(dict(CEILING), {"impedance_max_ohm": 20000}, 5000)
    c = C.Control(hal, eng, sup, 5000)
    # The scripted sense reads back set + 3000 uA from the DAC: stuck, within one block.
    hal.written = [0] * 10
    hal.measure()
    assert c.step(0) == S.DAC_STUCK
    assert sup.code == S.DAC_STUCK and c.checked == 5


def test_a_fast_trip_is_the_fault_and_nothing_is_written_or_checked_after_it():
    # A board's fast trip (hal.rp2) zeroed the output: room() says -1 - code. The loop
    # returns that code at once, before it writes or senses anything more.
    for code in (S.OPEN_CIRCUIT, S.SHORT, S.OVERCURRENT, S.COMPLIANCE, S.DAC_STUCK):
        hal, eng, sup, c = make(5000, 100000, room=20)
        assert c.step(0) == 0 and c.written == 20
        hal.measure()
        hal.r = -1 - code
        assert c.step(0) == code, code
        assert hal.writes == [20] and c.written == 20 and eng.asks == [20]
        assert sup.blocks == [] and hal.asks == [c.cap]    # the first pass's sense call only
        assert c.checked == 0 and not c.busy
        assert c.step(0) == code and c.written == 20    # and again while the HAL says so
    # -1 stays the underrun, -2 is a trip named open-circuit.
    hal, eng, sup, c = make(5000, 100000, room=-1)
    assert c.step(0) == C.UNDERRUN
    hal, eng, sup, c = make(5000, 100000, room=-2)
    assert c.step(0) == S.OPEN_CIRCUIT
