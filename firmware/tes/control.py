"""The one block loop: engine -> hal.write -> hal.sense -> supervisor.

Every current the device puts out goes through here: stimulation sessions, the impedance
check and streaming alike. step() tops up the HAL's output queue from the engine (as much
as hal.room() offers, up to BLOCK_MAX: a board asks for a few ms at once, the simulated
board for one block) and checks every sample measured since the last call, in blocks. Nothing in it allocates (the app
runs it with the heap locked) and nothing in it waits: pacing is the HAL's (DMA on a
board, the virtual clock on the simulated one).

Blocks are at most 1 ms and at most BLOCK_MAX samples, so a hard fault shows in the
first block it touches and the supervisor's sums stay small ints.
"""
try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

from array import array

BLOCK_MAX = 32
END = -1            # step(): the engine is done and every sample it made has been checked
UNDERRUN = 13       # tes.supervisor.UNDERRUN: the output ran dry (it put out zero current)


def block_for(fs):
    """Samples per control block at sample rate fs: 1 ms, at most BLOCK_MAX, at least 1."""
    b = fs // 1000
    if b > BLOCK_MAX:
        b = BLOCK_MAX
    return b if b > 0 else 1


class Control:
    def __init__(self, hal, engine, sup, fs):
        self.hal = hal
        self.engine = engine
        self.sup = sup
        self.block = block_for(fs)
        b = self.block
        self.out = array("i", [0] * BLOCK_MAX)     # engine -> hal: up to BLOCK_MAX at a time
        self.last_m = 0
        self.sb = array("i", [0] * b)       # hal.sense -> supervisor: set, i, v, readback
        self.ib = array("i", [0] * b)
        self.vb = array("i", [0] * b)
        self.db = array("i", [0] * b)
        self.written = 0                    # samples queued so far
        self.checked = 0                    # samples sensed and checked so far
        self.engine_done = False
        self.tap = None                     # raw streaming: tap(set_block, n), allocation-free
        self.busy = False                   # the last step wrote something
        # Bound once here: a method looked up through its class in every step is a map
        # search or two each (on an RP2040, a tenth of the busy CPU went to them).
        self._room = hal.room
        self._write = hal.write
        self._sense = hal.sense
        self._fill = engine.fill
        self._check = sup.kernel            # Supervisor.check without its wrapper call
        self._st = sup.st

    def prime(self):
        """Queue the first samples at once, right after hal.start(): the app has replies to
        send before its loop runs, and the first sample is due a few ms after start()."""
        r = self._room()
        while r > 0 and not self.engine_done:         # the whole lead the queue offers
            n = self._fill(self.out, r if r < BLOCK_MAX else BLOCK_MAX)
            if not n:
                break
            self._write(self.out, n)
            self.written += n
            r -= n

    @micropython.native
    def step(self, host_age_ms):
        """One pass: fill, write, sense, check. -> fault code (> 0), 0, or END."""
        b = self.block
        busy = False
        r = self._room()            # (a board reads its DMA positions here, once a step)
        if r < 0:
            return UNDERRUN
        if not self.engine_done and r > 0:
            out = self.out
            n = self._fill(out, r if r < BLOCK_MAX else BLOCK_MAX)
            if n:
                self._write(out, n)
                self.written += n
                busy = True
            else:
                self.engine_done = True
                self.hal.drain()
        # busy: samples were written, so the queue may take more at once; otherwise the
        # caller may sleep until the next samples are measured (a board: ~1 ms).
        self.busy = busy
        sb = self.sb
        ib = self.ib
        vb = self.vb
        db = self.db
        sense = self._sense
        m = sense(sb, ib, vb, db, b)
        while m:
            self.checked += m
            if self.tap is not None:
                self.tap(sb, m)
            self.last_m = m         # the block a fault names (tes.app puts it in the fault event)
            code = self._check(self._st, sb, ib, vb, db, m, host_age_ms)
            if code:
                return code
            if m < b:
                break               # fewer than asked: nothing more is measured yet
            m = sense(sb, ib, vb, db, b)
        if self.engine_done and self.checked >= self.written:
            return END
        return 0
