"""The one block loop: engine -> hal.write -> hal.sense -> supervisor.

Every current the device puts out goes through here: stimulation sessions, the impedance
check and streaming alike. step() tops up the HAL's output queue from the engine (as much
as hal.room() offers, up to FILL_MAX a pass: a board asks for a few ms at once, the simulated
board for one block) and checks every sample measured since the last call, in blocks. Nothing in it allocates (the app
runs it with the heap locked) and nothing in it waits: pacing is the HAL's (DMA on a
board, the virtual clock on the simulated one).

Blocks are at most 1 ms and at most BLOCK_MAX samples, so a hard fault shows in the
first block it touches and the supervisor's sums stay small ints.
"""
try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from tes import compat as micropython
    from tes.compat import const

from array import array

# const: the native loop reads these every pass; a plain global is a map search each time.
BLOCK_MAX = const(32)
# Samples one fill and write may take: a fill costs ~90 us and a write ~50 us on an RP2040
# whatever their length, so fewer and longer ones (two 1 ms blocks at 32 kS/s).
FILL_MAX = const(128)
# Blocks one sense() call may hand over: every whole block since the last pass in one call
# and one check (a call costs ~40 us on an RP2040, a two-source check's ~180 us), for a pass
# of up to 8 ms (hal.PASS_MS and the pass's own work).
SENSE_BLOCKS = const(8)
END = const(-1)         # step(): the engine is done and every sample it made has been checked
UNDERRUN = const(13)    # tes.supervisor.UNDERRUN: the output ran dry (it put out zero current)
# tes.supervisor.is_hard, inline: codes OPEN_CIRCUIT..COMPLIANCE and MEMORY on are hard
HARD_LO = const(1)
HARD_HI = const(7)
MEMORY = const(12)


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
        self.out = array("i", [0] * FILL_MAX)      # engine -> hal: up to FILL_MAX at a time
        self.last_m = 0                     # the last block checked (size) and, after a fault,
        self.last_at = 0                    # where the faulting block starts in sb..db
        self.cap = b * SENSE_BLOCKS
        c = self.cap
        self.sb = array("i", [0] * c)       # hal.sense -> supervisor: set, i, v, readback
        self.ib = array("i", [0] * c)
        self.vb = array("i", [0] * c)
        self.db = array("i", [0] * c)
        self.written = 0                    # samples queued so far
        self.owed = 0                       # offered by room() and not written yet
        self.checked = 0                    # samples sensed and checked so far
        self.engine_done = False
        self.tap = None                     # raw streaming: tap(set_block, n), allocation-free
        self.busy = False                   # the last step wrote something
        self.pause = getattr(hal, "PASS_MS", 1)     # ms to sleep after a pass that wrote nothing
        # Bound once here: a method looked up through its class in every step is a map
        # search or two each (on an RP2040, a tenth of the busy CPU went to them).
        self._room = hal.room
        self._write = hal.write
        self._sense = hal.sense
        self._fill = engine.fill
        # Supervisor.check without its wrapper call: check_run (every block one sense() handed
        # over, in one call) where the supervisor has it, else check (one call a block).
        run_k = getattr(sup, "kernel_run", None)
        self._multi = run_k is not None
        self._check = run_k if self._multi else sup.kernel
        self._st = sup.st
        self.bound_run = self.run           # for tes.app's tick: binding it there allocates

    def prime(self):
        """Queue the first samples at once, right after hal.start(): the app has replies to
        send before its loop runs, and the first sample is due a few ms after start()."""
        r = self._room()
        while r > 0 and not self.engine_done:         # the whole lead the queue offers
            n = self._fill(self.out, r if r < FILL_MAX else FILL_MAX)
            if not n:
                break
            self._write(self.out, n)
            self.written += n
            r -= n

    def step(self, host_age_ms):
        """One pass: fill, write, sense, check. -> fault code (> 0), 0, or END."""
        return self.run(host_age_ms, None, None, None)

    @micropython.native
    def run(self, host_age_ms, due, ticks, wait):
        """Passes until a fault code (> 0) or END, or until ticks() reaches `due` (-> 0);
        wait(hal.PASS_MS) after a pass that wrote nothing. One pass when due is None. (The caller
        binds hal.ticks_ms and hal.wait: binding allocates, and this runs heap-locked.)

        One loop with everything in locals: on an RP2040 every attribute looked up per
        pass costs a map search, and a call per pass as much again; at 1000 passes a
        second those were most of the busy CPU."""
        b = self.block
        cap = self.cap
        room = self._room
        write = self._write
        sense = self._sense
        fill = self._fill
        check = self._check
        multi = self._multi
        st = self._st
        tap = self.tap
        out = self.out
        sb = self.sb
        ib = self.ib
        vb = self.vb
        db = self.db
        written = self.written
        checked = self.checked
        done = self.engine_done
        last_m = self.last_m
        last_at = self.last_at
        code = 0
        owed = self.owed
        pause = self.pause
        while True:
            busy = False
            r = room()              # (a board reads its DMA positions here, once a pass)
            if r < 0:
                # -1: the output ran dry; -1 - code: the HAL's fast trip (hal.rp2) found a
                # hard fault and already put the output to zero. Nothing more is written.
                code = UNDERRUN if r == -1 else -1 - r
                break
            # A board offers nothing until a chunk is free, then all of it; a pass writes
            # FILL_MAX at most, so what the queue offered and was not written yet is owed
            # to the next passes (free room only grows: it still fits). At 20 kS/s a chunk
            # is 7 passes: the queue must not wait for the next chunk between them.
            if r < owed:
                r = owed
            if not done and r > 0:
                n = fill(out, r if r < FILL_MAX else FILL_MAX)
                if n:
                    write(out, n)
                    written += n
                    owed = r - n
                    busy = True     # the queue may take more at once: no sleep
                else:
                    owed = 0
                    done = True
                    self.hal.drain()
            m = sense(sb, ib, vb, db, cap, b)   # up to SENSE_BLOCKS whole blocks in one call
            while m:
                # Up to the first HARD fault; past a soft one's block every sample is still
                # checked and its code reported: a soft code (host-lost, say) comes every block
                # of the soft stop it began, and a driver that senses several blocks at once
                # would otherwise drop the rest of each batch unchecked, and its checked count
                # would never reach the written one (the session would never end).
                if multi:           # in blocks of b, up to the first fault, in one call
                    code = check(st, sb, ib, vb, db, m, host_age_ms, 0, b)
                    j = code >> 5
                    code &= 31
                    last_m = j - (j - 1) // b * b   # the last block checked (size)
                    while code and j < m and not (HARD_LO <= code <= HARD_HI or code >= MEMORY):
                        k = check(st, sb, ib, vb, db, m - j, host_age_ms, j, b)
                        j += k >> 5
                        k &= 31
                        if k and (HARD_LO <= k <= HARD_HI or k >= MEMORY):
                            code = k
                            last_m = j - (j - 1) // b * b
                            break
                else:
                    j = 0
                    soft = 0
                    while j < m:    # checked in blocks of b, in place (j0 = j)
                        k = m - j
                        if k > b:
                            k = b
                        last_m = k  # the block a fault names (tes.app puts it in the fault event)
                        code = check(st, sb, ib, vb, db, k, host_age_ms, j)
                        j += k
                        if code:
                            if HARD_LO <= code <= HARD_HI or code >= MEMORY:
                                break
                            if not soft:
                                soft = code
                    if soft and not (HARD_LO <= code <= HARD_HI or code >= MEMORY):
                        code = soft
                if code:
                    last_at = j - last_m    # where that block starts in sb..db (the evidence)
                checked += j
                if tap is not None:
                    tap(sb, j)      # what was checked, the faulting block included
                if code or m < cap:
                    break           # a fault, or fewer than asked: nothing more is measured yet
                m = sense(sb, ib, vb, db, cap, b)
            if code:
                break
            if done and checked >= written:
                code = END
                break
            # tes.session.ticks_diff(now, due) >= 0, inline (a call per pass costs more)
            if due is None or (ticks() - due) & 0x3FFFFFFF < 0x20000000:
                break
            if not busy:
                wait(pause)         # the next blocks are measured meanwhile
        self.owed = owed
        self.written = written
        self.checked = checked
        self.engine_done = done
        self.last_m = last_m
        self.last_at = last_at
        self.busy = busy
        return code
