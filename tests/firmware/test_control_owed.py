"""tes.control against a queue that offers nothing until a chunk is free and then all of it
(hal.blocks.queue_room, the rp2 driver): the loop writes the whole offer over consecutive
passes, FILL_MAX at a time and without sleeping between them, never more than offered, so
the queue refills to its full lead. Before this rule the loop wrote one FILL_MAX per offer
and the queue hovered a chunk below full: at 20 kS/s a quarter of the lead was lost margin.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import control as C


class Engine:
    def __init__(self):
        self.k = 0

    def fill(self, out, n):
        for j in range(n):
            self.k += 1
            out[j] = self.k
        return n


class ChunkQueue:
    """A lead of `lead` samples; the DMA takes `per_pass` samples during each pass and
    `per_sleep` during each 1 ms sleep; room() offers 0 under `chunk` free, else all that
    is free (as queue_room)."""

    def __init__(self, lead, chunk, per_pass, per_sleep=20):
        self.lead = lead
        self.chunk = chunk
        self.per_pass = per_pass
        self.per_sleep = per_sleep
        self.kw = lead              # written up to here (primed)
        self.consumed = 0
        self.under = 0
        self.sleeps = 0
        self.offers = []

    def room(self):
        self.consumed += self.per_pass          # the DMA moved on since the last pass
        if self.consumed > self.kw:
            self.under += self.consumed - self.kw
            return -1
        free = self.consumed + self.lead - self.kw
        r = free if free >= self.chunk else 0
        self.offers.append(r)
        return r

    def write(self, buf, n):
        assert self.kw + n <= self.consumed + self.lead, "wrote past the lead"
        self.kw += n

    def sense(self, sb, ib, vb, db, n, b):
        return 0

    def drain(self):
        pass

    def ticks_ms(self):
        return 0

    def wait(self, ms):
        self.sleeps += 1
        self.consumed += self.per_sleep


class Sup:
    st = None

    @staticmethod
    def kernel(st, sb, ib, vb, db, n, age, j0):
        return 0


def test_a_chunk_is_written_over_consecutive_passes_without_sleeping():
    q = ChunkQueue(lead=928, chunk=232, per_pass=0)
    c = C.Control(q, Engine(), Sup(), 20000)
    q.consumed = 232                            # a chunk is free
    for _ in range(20):
        c.step(0)
    assert q.kw == 928 + 232                    # all of it, in 4 passes (64, 64, 64, 40)
    assert q.offers[0] == 232 and q.offers[1:4] == [0] * 3
    assert c.owed == 0 and q.sleeps == 0


def test_the_loop_keeps_up_at_20_ksps_and_refills_to_full():
    # 20 kS/s: a pass ~0.7 ms (14 samples), a sleep 1 ms (20)
    q = ChunkQueue(lead=928, chunk=232, per_pass=14)
    c = C.Control(q, Engine(), Sup(), 20000)
    fullest = 0
    for _ in range(5000):
        assert c.run(0, None, q.ticks_ms, q.wait) == 0
        fullest = max(fullest, q.kw - q.consumed)
        if not c.busy:
            q.wait(1)
    assert q.under == 0 and q.sleeps > 1000
    assert q.kw - q.consumed >= 928 - 232 - 34   # never under 3/4 full, less a pass
    assert fullest >= 928 - 14                   # and refilled to the lead


def test_without_the_owed_rule_the_queue_stays_a_chunk_below_full():
    # The old loop on the same queue: one FILL_MAX per offer, a sleep when offered nothing.
    q = ChunkQueue(lead=928, chunk=232, per_pass=14)
    fullest = 0
    for k in range(5000):
        r = q.room()
        assert r >= 0
        if r > 0:
            q.write(None, min(r, C.FILL_MAX))
        else:
            q.wait(1)
        if k > 100:
            fullest = max(fullest, q.kw - q.consumed)
    assert fullest <= 928 - 232 + C.FILL_MAX      # never refilled: the test above would fail
