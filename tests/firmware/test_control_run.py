"""Control.run (tes.control): the loop the app runs until a deadline, on a scripted HAL whose
DAC takes a few samples per ms: it keeps the queue topped up, sleeps 1 ms only after a pass
that wrote nothing, stops at the deadline (ticks in a 30-bit wrapping clock), at a fault or
at the end, and keeps its counts across calls.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import control as C
from tes import supervisor as S

from test_control import make, checked

MASK = 0x3FFFFFFF


class Clock:
    """ticks() in ms, wrapping at 2**30; wait(ms) lets the DAC put out `rate` samples a ms
    (they are measured and their room comes back)."""

    def __init__(self, hal, t0=0, rate=5, lead=10):
        self.hal = hal
        self.t = t0
        self.rate = rate
        self.waits = []
        self.out = 0
        hal.r = lead

    def ticks(self):
        return self.t & MASK

    def wait(self, ms):
        self.waits.append(ms)
        self.t += ms
        n = self.rate * ms
        queued = len(self.hal.written) - self.out
        if n > queued:
            n = queued
        self.out += n
        self.hal.measure(n)
        self.hal.r += n


def test_run_until_the_deadline():
    for t0 in (0, 1000, MASK - 7):                 # the last one wraps past 2**30
        hal, eng, sup, c = make(5000, 100000)
        clk = Clock(hal, t0)
        due = (t0 + 20) & MASK
        assert c.run(0, due, clk.ticks, clk.wait) == 0
        assert clk.t == t0 + 20, (t0, clk.t)
        assert clk.waits == [1] * 20
        # Topped up after every ms: 10 queued, then 5 a ms; all measured ones checked.
        assert c.written == 10 + 5 * 20 == len(hal.written)
        assert c.checked == 5 * 20 and checked(sup) == list(range(1, 101))
        assert all(len(b) == 5 for b in sup.blocks)
        # The next call goes on where this one stopped.
        due = (t0 + 30) & MASK
        assert c.run(0, due, clk.ticks, clk.wait) == 0
        assert clk.t == t0 + 30 and c.checked == 150 and c.written == 160


def test_run_with_the_deadline_passed_or_none_is_one_pass():
    for due_off in (0, -1, -5000):
        hal, eng, sup, c = make(5000, 100000)
        clk = Clock(hal, 77)
        assert c.run(0, (77 + due_off) & MASK, clk.ticks, clk.wait) == 0
        assert clk.waits == [] and c.written == 10
    hal, eng, sup, c = make(5000, 100000)
    clk = Clock(hal, 77)
    assert c.run(0, None, None, None) == 0 and c.written == 10 and c.busy


def test_a_deadline_half_the_clock_ahead_is_still_ahead():
    # ticks_diff(now, due) lies in [-2**29, 2**29): 2**29 ms ahead reads as -2**29, not yet.
    for t0 in (0, 5, MASK - 3):
        hal, eng, sup, c = make(5000, 37)
        clk = Clock(hal, t0)
        assert c.run(0, (t0 + (1 << 29)) & MASK, clk.ticks, clk.wait) == C.END, t0
        assert clk.t == t0 + 8 and c.checked == 37
        hal, eng, sup, c = make(5000, 37)
        clk = Clock(hal, t0)
        assert c.run(0, (t0 + (1 << 29) + 1) & MASK, clk.ticks, clk.wait) == 0, t0     # 2**29 - 1 ago
        assert clk.waits == [] and c.checked == 0


def test_run_does_not_sleep_while_it_writes():
    F = C.FILL_MAX
    hal, eng, sup, c = make(5000, 100000)
    clk = Clock(hal, 0, lead=3 * F + 8)            # room for 3F + 8: F, F, F, 8 before a sleep
    assert c.run(0, 1, clk.ticks, clk.wait) == 0
    assert hal.writes[:4] == [F, F, F, 8] and clk.waits == [1]
    assert c.busy                                   # the last pass wrote the 5 measured ones back


def test_run_stops_at_a_fault_and_at_the_end():
    hal, eng, sup, c = make(5000, 100000, codes={7: S.HOST_LOST})
    clk = Clock(hal, 0)
    assert c.run(3000, 1000, clk.ticks, clk.wait) == S.HOST_LOST
    assert len(sup.blocks) == 7 and clk.t == 7 and c.checked == 35 and c.last_m == 5
    assert sup.ages == [3000] * 7
    hal, eng, sup, c = make(5000, 37)
    clk = Clock(hal, 0)
    assert c.run(0, 1000, clk.ticks, clk.wait) == C.END
    assert c.written == c.checked == 37 and checked(sup) == list(range(1, 38))
    assert c.engine_done and hal.drained == 1
    assert clk.t == 8                              # 37 samples at 5 a ms: the last in the 8th ms
    assert c.run(0, 2000, clk.ticks, clk.wait) == C.END and clk.t == 8


def test_run_reports_an_underrun_at_once():
    hal, eng, sup, c = make(5000, 100000)
    clk = Clock(hal, 0)
    assert c.run(0, 5, clk.ticks, clk.wait) == 0
    hal.r = -1
    n = c.written
    assert c.run(0, 10, clk.ticks, clk.wait) == C.UNDERRUN
    assert c.written == n and clk.t == 5


class ChunkHal:
    """A board's queue: room() offers nothing until a chunk of `chunk` samples is free, then
    all the free room; the DAC takes `rate` samples a ms (measured back at once)."""

    def __init__(self, chunk=64, size=128, free=0):
        self.chunk = chunk
        self.free = free
        self.written = []
        self.writes = []
        self.measured = []
        self.drained = 0

    def room(self):
        return self.free if self.free >= self.chunk else 0

    def write(self, buf, n):
        assert n <= self.free, (n, self.free)          # never more than the queue holds
        self.writes.append(n)
        for j in range(n):
            self.written.append(buf[j])
        self.free -= n

    def sense(self, sb, ib, vb, db, n, b):
        m = 0
        while m < n and self.measured:
            x = self.measured.pop(0)
            sb[m], ib[m], vb[m], db[m] = x, x + 1000, x + 2000, x + 3000
            m += 1
        return m

    def drain(self):
        self.drained += 1


def chunky(total, free):
    from test_control import Engine, Sup
    hal = ChunkHal(free=free)
    eng = Engine(total)
    sup = Sup()
    return hal, eng, sup, C.Control(hal, eng, sup, 20000)


def test_what_the_queue_offered_is_written_over_the_next_passes():
    F = C.FILL_MAX
    # A chunk of 2F offered once: F now, the other F in the next pass, though room()
    # offers nothing then (the rest of the chunk is still free).
    hal, eng, sup, c = chunky(100000, 2 * F)
    assert c.step(0) == 0 and hal.writes == [F] and c.busy
    assert c.step(0) == 0 and hal.writes == [F, F] and c.busy
    assert c.step(0) == 0 and hal.writes == [F, F] and not c.busy       # nothing owed now
    assert hal.written == list(range(1, 2 * F + 1)) and hal.free == 0
    # 3F + 8 free: F, F, F, 8 over four passes; room grows meanwhile: it is taken as offered.
    hal, eng, sup, c = chunky(100000, 3 * F + 8)
    assert c.step(0) == 0 and c.step(0) == 0
    hal.free += 2 * F + 12                      # F + 8 + 2F + 12 free now, all offered
    assert c.step(0) == 0 and c.step(0) == 0 and c.step(0) == 0 and c.step(0) == 0
    assert hal.writes == [F, F, F, F, F, 20], hal.writes
    assert c.step(0) == 0 and hal.writes[-1] == 20 and not c.busy
    assert c.written == 5 * F + 20 == len(hal.written)


def test_nothing_is_owed_past_the_end_of_the_session():
    F = C.FILL_MAX
    hal, eng, sup, c = chunky(F + 16, 4 * F)
    assert c.step(0) == 0 and hal.writes == [F]
    assert c.step(0) == 0 and hal.writes == [F, 16] and not c.engine_done
    assert c.step(0) == 0 and c.engine_done and hal.drained == 1
    assert c.step(0) == 0 and hal.drained == 1 and eng.asks == [F, F, F]
    hal.measured = list(range(1, F + 17))
    assert c.step(0) == C.END and c.checked == F + 16


def test_run_keeps_what_it_owes_across_calls():
    F = C.FILL_MAX
    hal, eng, sup, c = chunky(100000, 3 * F)
    assert c.run(0, None, None, None) == 0 and hal.writes == [F]
    assert c.run(0, None, None, None) == 0 and hal.writes == [F, F]
    assert c.run(0, None, None, None) == 0 and hal.writes == [F, F, F]
    assert c.run(0, None, None, None) == 0 and hal.writes == [F, F, F]


def test_run_returns_a_fast_trip_at_the_next_pass_and_writes_nothing_after_it():
    hal, eng, sup, c = make(5000, 100000)
    clk = Clock(hal, 0)
    assert c.run(0, 5, clk.ticks, clk.wait) == 0
    n = c.written
    waits = len(clk.waits)
    hal.r = -1 - S.COMPLIANCE                     # the trip fired while the loop slept
    hal.measure()
    assert c.run(0, 10, clk.ticks, clk.wait) == S.COMPLIANCE
    assert c.written == n and len(hal.written) == n and clk.t == 5 and len(clk.waits) == waits
