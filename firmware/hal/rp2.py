"""RP2040 (Raspberry Pi Pico) driver: output and sense paced by hardware, no per-sample CPU
work and no per-sample interrupt.

Output. A PIO state machine clocks MCP4922 command words out on CS/SCK/MOSI and pulses
LDAC, one sample every 1/fs exactly: its program takes a fixed number of PIO cycles per
sample (a delay loop pads it) at an exact clock divider, both derived from the system
clock, so the pacing has no jitter and no drift. The words come by DMA from a ring in RAM:
channel D reads the ring in CHUNK-word pieces into the PIO's TX FIFO (paced by its DREQ);
after each piece it chains to channel Z, which overwrites that piece with the zero-current
word and chains back to D. So every ring slot the CPU has not refilled holds zero current:
if the CPU falls behind, the DAC puts out zero (an underrun, counted and a fault), never a
stale level. write() converts uA to words (hal.blocks) and stores them LEAD_MS ahead.

Sense. The RP2040's ADC converts current (AIN0), electrode voltage (AIN1) and the DAC's
output (AIN2, a true readback) in round robin, NCH conversions per sample, clocked from
the 48 MHz USB PLL at an exact divider: the same crystal as the PIO, so output and sense
never slip. Channel S moves the ADC FIFO into a second ring. The ADC starts half a
conversion interval after the PIO, so every conversion falls between two latches, never
on one; the board file declares each channel's latency in samples (0 when the analog path
settles within 1/6 of a sample), and sense() pairs each measured sample with the set
sample it belongs to.

Rates: the PIO clock divider is 16.8 fixed point and the ADC's too, so exact pacing needs
fs to divide the board's pace_hz (256 MHz: 2**14 * 5**6 covers 1, 1.28, 2, 2.5, 5, 10,
20 kS/s...); the validator refuses other rates for this board. Written for and
type-checked against the official rp2 stubs, compiled with mpy-cross; run on an emulated
RP2040 (rp2040js, tesctl hil) with a stock MicroPython image, not yet on silicon.
"""
import os
import time
from array import array

import machine
import micropython
import rp2
import uctypes
from micropython import const

from hal import blocks, calib, mcp4922
from hal.pio_dac import CYCLES_1, CYCLES_2, dac1, dac2
from hal.rp2_pacing import adc_divider, adc_offset_us, pacing
from hal.base import Hal

from hal import blocks_fast as _kern      # the rings are byte buffers: the viper kernels index them by halfword

_qroom = _kern.queue_room
_qblock = _kern.queue_block
_Q_RUN = const(0)           # hal.blocks.Q_RUN, Q_KW, Q_KS, Q_UNDER (const: no lookup in the block path)
_Q_KW = const(5)
_Q_KS = const(6)
_Q_UNDER = const(9)
assert _Q_RUN == blocks.Q_RUN and _Q_KW == blocks.Q_KW and _Q_KS == blocks.Q_KS and _Q_UNDER == blocks.Q_UNDER

STORAGE = "/data"
LEAD_MS = const(100)        # the output queue runs this far ahead of the DAC, at most what
                            # the ring holds (a hard fault aborts the DMA at once; a soft
                            # stop or STOP starts this much later): room for a slow tick.
                            # 50 ms was too short: a tick with an event and a garbage
                            # collection took 37 ms, with the queue at 3/4 of its lead (a
                            # 10 kS/s tRNS ran dry at its ramp-down on the virtual RP2040)
GAP_MS = const(5)           # the session's first sample goes out this long after start()
CHUNK = const(32)           # words D moves before Z clears them
SET_LEN = const(2048)       # set-value ring, samples (a power of two dividing 2**22)
OUT_BITS = const(11)        # output ring: 2**11 bytes = 1024 halfwords (25 ms at 20 kS/s, two words)
ADC_BITS = const(13)        # ADC ring: 2**13 bytes = 4096 conversions (68 ms at 20 kS/s):
                            # sensing may lag by a tick with a garbage collection (~25 ms)
K_MASK = const(0x3FFFFF)    # sample counters wrap at 2**22 (a multiple of every ring length)
_FIXED_CYCLES = const(48)   # PIO cycles of one word's program outside the delay loop
TRIP_HZ = const(1000)       # the fast trip's rate: every 1 ms (a hard timer interrupt: hal.blocks.trip_scan).
                            # Each costs ~50 us of the chip's CPU (the interrupt's dispatch, a call): at
                            # 2000 a bound-method callback took tACS 5 kS/s from 68.9 to 58.1 % idle
TRIP_BLOCKS = const(2)      # samples one trip scan judges at most: this many 1 ms blocks (the newest)

_DMA_BASE = const(0x50000000)
_TIMERAWL = const(0x40054028)
_CHAN_ABORT = const(0x50000444)
_PIO0 = const(0x50200000)
_PIO_CTRL = const(0x50200000)
_ADC_CS = const(0x4004C000)
_ADC_FCS = const(0x4004C008)
_ADC_FIFO = const(0x4004C00C)
_ADC_DIV = const(0x4004C010)
_SCRATCH0 = const(0x4005800C)   # watchdog scratch registers: kept through a watchdog reset
_RETAIN_MAGIC = const(0x3A5)    # < 2**10: the header word stays a small int (no big int)
_DREQ_PIO0_TX0 = const(0)
_DREQ_ADC = const(36)




@micropython.viper
def _rd(addr: uint) -> int:
    return int(ptr32(addr)[0])


# The block path reads the DMA address registers through mem32: a subscript costs half a
# viper call (~2 us against ~5 us here), and SRAM addresses (0x2000_0000..) are small ints.
_M32 = machine.mem32


@micropython.viper
def _wr(addr: uint, value: uint):
    ptr32(addr)[0] = value


@micropython.viper
def _start_apart(pio_ctrl: uint, sm_bit: uint, adc_cs: uint, cs_value: uint, apart_us: int):
    # The PIO first, the ADC apart_us later (timer polled, +-1 us), with interrupts off:
    # that offset holds from then on (one crystal). Conversions then fall between the
    # latches, never on one: which sample a conversion at a latch sees is a race.
    timer = ptr32(_TIMERAWL)
    ptr32(pio_ctrl)[0] = int(ptr32(pio_ctrl)[0]) | sm_bit
    t0 = timer[0]
    while int(timer[0] - t0) < apart_us:
        pass
    ptr32(adc_cs)[0] = cs_value


def _rings():
    """(backing buffer, ADC ring, output ring): byte views, each aligned to its own size as
    a DMA ring must be, both inside one buffer of twice the larger (a 16 KiB buffer always
    holds an 8 KiB-aligned 8 KiB window, and a 2 KiB-aligned 2 KiB one beside it)."""
    big, small = 1 << ADC_BITS, 1 << OUT_BITS
    raw = bytearray(2 * big)
    a, o = blocks.ring_offsets(uctypes.addressof(raw), big, small)
    mv = memoryview(raw)
    return raw, mv[a:a + big], mv[o:o + small]


@micropython.viper
def _fill16(buf, n: int, even: int, odd: int):
    # The output ring's zero pattern: even halfwords channel A's word, odd ones `odd`.
    p = ptr16(buf)
    i = 0
    while i < n:
        p[i] = even
        p[i + 1] = odd
        i += 2


@micropython.viper
def _flush_tx(shiftctrl: uint):
    # Toggling FJOIN_TX (bit 30) empties the state machine's FIFOs.
    r = ptr32(shiftctrl)
    v = int(r[0])
    r[0] = v ^ (int(1) << 30)
    r[0] = v


def _chan(dma):
    """The DMA channel number (rp2.DMA.channel; the 1.29 stubs lack the attribute)."""
    return dma.channel  # pyright: ignore[reportAttributeAccessIssue]


# Not @micropython.native as a whole: native code is ~2.3x the size of bytecode, and a stock
# image holds every imported module in its RAM (rp2.mpy: 19.6 KB native, 8.4 KB not). The
# block path's methods (room, write, sense, zero, _cut) are native each.
class Rp2Hal(Hal):
    WDT_MAX_MS = 8388     # RP2040 watchdog counter limit
    # A pass checks every block sensed since the last one; its fixed cost (DMA positions,
    # sense calls, the sleep and wake) was a seventh of the CPU at one pass a millisecond.
    # Two: a hard fault is seen at most a millisecond later (the output is zeroed at once).
    PASS_MS = 2

    def __init__(self, board):
        super().__init__(board)
        # Output off before anything else is touched: the relay must be open at boot.
        self._en = machine.Pin(board["enable_pin"], machine.Pin.OUT, value=0)
        dac = board["dac"]
        self.words = dac.get("channels", 1)     # 2: channel B carries the fixed reference
        try:
            os.mkdir(STORAGE)
        except OSError:
            pass  # already there
        cal = calib.load_calibration(STORAGE)   # raises on a corrupt one: do not guess
        # Rings (allocated once: the block path allocates nothing).
        self._raw, self._adc, self._out = _rings()             # byte views; the kernels use ptr16
        self._out_h = (1 << OUT_BITS) // 2                    # halfwords
        # What each queued sample was set to, until it is sensed: the lead (up to 464 samples)
        # plus however far sensing lags (a tick, a garbage collection: tens of ms, 1000+
        # samples at 20 kS/s). It was the output ring's length (512): at 20 kS/s a slow tick
        # let writes overtake unsensed entries (a false dac-stuck).
        self._set = array("i", [0] * SET_LEN)
        self._adc_h = (1 << ADC_BITS) // 2
        chans = self._sources(board, cal)
        # The zero pattern Z copies: one 32-bit word = two halfwords of the ring.
        zw = self._zero_word if self.words == 1 else self._ref_word
        self._zpat = array("I", [self._zero_word | (zw << 16)])
        self._rr = 0
        for c in chans:
            self._rr |= 1 << c
            machine.ADC(c)               # pads to analog input
        self._ain0 = min(chans)
        # DMA channels, claimed for good; the PIO state machine.
        self._d = rp2.DMA()
        self._z = rp2.DMA()
        self._s = rp2.DMA()
        pins = dac["spi"]
        prog = dac1 if self.words == 1 else dac2
        self._sm = rp2.StateMachine(0, prog, freq=2000000, sideset_base=machine.Pin(pins["sck"]),
                                    set_base=machine.Pin(dac["ldac_pin"]), out_base=machine.Pin(pins["mosi"]))
        self._sm_bit = 1
        # Register addresses, computed once: on a board they are big ints, and making one
        # in the block path would allocate.
        self._r_d = _DMA_BASE + 0x40 * _chan(self._d)              # D READ_ADDR
        self._r_s = _DMA_BASE + 0x40 * _chan(self._s) + 4          # S WRITE_ADDR
        self._r_shift = _PIO0 + 0x0D0                               # SM0_SHIFTCTRL
        self._abort_dz = (1 << _chan(self._d)) | (1 << _chan(self._z))
        self._wdt = None
        self.fs = 0
        # The fast trip: a hard timer interrupt runs hal.blocks.trip_scan (viper) on the
        # newest ADC conversions, the timer calling it directly (no method, no lookups: on
        # a trip it calls _cut). Made and bound here: a bound method made in the interrupt
        # allocates (the heap is locked there), and so would a Timer.
        self._tim = machine.Timer(-1)       # (-1: rp2's only kind, on the SDK's alarm pool; not started)
        self._cut_cb = self._cut
        self._scan = self._bind_trip()
        q = self._q
        q[blocks.Q_W] = self.words
        q[blocks.Q_MASKO] = (1 << OUT_BITS) - 1
        q[blocks.Q_MASKA] = (1 << ADC_BITS) - 1
        q[blocks.Q_NCH] = self._nch
        q[blocks.Q_AWRAP] = self._nch * (K_MASK + 1)
        # Boot: channel B's word (the fixed reference, or source 2's zero), zero current on A,
        # then the PIO idles.
        self._sm.put(self._ref_word, 16)
        self._sm.put(self._zero_word, 16)
        self._sm.active(1)
        time.sleep_ms(1)


    def _sources(self, board, cal):
        """The current source's conversion, DAC words, kernel cfgs and queue state; the ADC
        inputs it converts (hal.rp2_multi: two sources)."""
        conv = calib.conversion(board, cal)
        self.conv = conv
        self._zero_word = mcp4922.word(conv["zero_code"])
        # Channel B's word: the pump's fixed reference (hal.rp2_multi: source 2's zero). Written
        # at boot (with one word a sample nothing writes B again) and beside every A word.
        self._ref_word = mcp4922.word(2048, mcp4922.CH_B)
        self._put = array("i", [0] * blocks.P_LEN)
        p = self._put
        p[blocks.P_Z] = conv["zero_code"]
        p[blocks.P_SC] = conv["span_code"]
        p[blocks.P_SU] = conv["span_uA"]
        p[blocks.P_HW] = conv["hw_limit_uA"]
        p[blocks.P_TOP] = conv["code_max"]
        p[blocks.P_BASE] = mcp4922.word(0)
        p[blocks.P_W] = self.words
        p[blocks.P_MASKW] = self._out_h - 1
        p[blocks.P_MASKS] = len(self._set) - 1
        p[blocks.P_WORDB] = self._ref_word
        adc = board["sense"]["adc"]
        sc = calib.sense_scales(board)
        g = self._get = array("i", [0] * blocks.G_LEN)
        g[blocks.G_MID], g[blocks.G_KI], g[blocks.G_SI] = sc["mid"], sc["ki"], sc["si"]
        g[blocks.G_KV], g[blocks.G_SV], g[blocks.G_KD], g[blocks.G_SD] = sc["kv"], sc["sv"], sc["kd"], sc["sd"]
        chans = (adc["current_channel"], adc["voltage_channel"], adc["readback_channel"])
        order = sorted(chans)            # round robin converts in channel-number order
        g[blocks.G_CI], g[blocks.G_CV], g[blocks.G_CD] = [order.index(c) for c in chans]
        lat = adc["latency_samples"]
        g[blocks.G_LI], g[blocks.G_LV], g[blocks.G_LD] = lat[0], lat[1], lat[2]
        q = self._q = array("i", [0] * blocks.Q_LEN)    # the queue's state (hal.blocks.queue_room)
        q[blocks.Q_LAT] = max(lat)
        g[blocks.G_MASKA] = self._adc_h - 1
        g[blocks.G_Z], g[blocks.G_SU], g[blocks.G_SC] = conv["zero_code"], conv["span_uA"], conv["span_code"]
        g[blocks.G_NCH] = 3
        g[blocks.G_MASKS] = len(self._set) - 1
        self._nch = 3
        return chans

    def _bind_trip(self):
        """Hand the fast trip its arrays (made here, not in the interrupt: the heap is locked
        there); returns the function the timer calls."""
        _kern.trip_bind(self._adc, self._q, self._get, uctypes.bytearray_at(self._r_s, 4), self._cut_cb)
        return _kern.trip_scan

    # ---- output ------------------------------------------------------------------------------
    def start(self, fs, channels=1):
        if not 1 <= channels <= self.channels:     # hal.base.Hal.channels
            raise ValueError("this board drives %d current source(s); the session needs %d" % (self.channels, channels))
        if fs <= 0 or fs > self.board["max_sample_rate_hz"]:
            raise ValueError("sample rate %d Hz: board allows 1..%d" % (fs, self.board["max_sample_rate_hz"]))
        pace = pacing(fs, self.words)
        adiv = adc_divider(fs, self._nch)
        if pace is None or adiv is None:
            raise ValueError("sample rate %d Hz cannot be paced exactly on this board" % fs)
        self.stop()
        self.fs = fs
        div, cycles = pace
        fixed = CYCLES_1 if self.words == 1 else CYCLES_2
        # Zero pattern everywhere, then the PIO: exact divider, delay count into ISR.
        self._fill_zero()
        sm = self._sm
        sm.active(0)
        _flush_tx(self._r_shift)
        smbase = _PIO0 + 0x0C8              # SM0_CLKDIV
        _wr(smbase, (div >> 8) << 16 | (div & 0xFF) << 8)
        sm.restart()                        # and back to the program's first instruction
        sm.put(cycles - fixed)
        sm.exec("pull()")
        sm.exec("mov(isr, osr)")
        # D: ring -> PIO TX FIFO in CHUNK halfwords, then Z clears that chunk, then D again.
        d, z = self._d, self._z
        out_addr = uctypes.addressof(self._out)
        txf = _PIO0 + 0x010
        d.config(read=out_addr, write=txf, count=CHUNK,
                 ctrl=d.pack_ctrl(size=1, inc_read=True, inc_write=False, ring_size=OUT_BITS, ring_sel=False,
                                  treq_sel=_DREQ_PIO0_TX0, chain_to=_chan(z), high_pri=True))
        z.config(read=self._zpat, write=out_addr, count=CHUNK // 2,
                 ctrl=z.pack_ctrl(size=2, inc_read=False, inc_write=True, ring_size=OUT_BITS, ring_sel=True,
                                  chain_to=_chan(d), high_pri=True))
        # S: ADC FIFO -> ADC ring, for as long as the session lasts.
        s = self._s
        s.config(read=_ADC_FIFO, write=uctypes.addressof(self._adc), count=0x7FFFFFFF,
                 ctrl=s.pack_ctrl(size=1, inc_read=False, inc_write=True, ring_size=ADC_BITS, ring_sel=True,
                                  treq_sel=_DREQ_ADC, high_pri=True))
        # Stop the ADC, let a conversion in flight finish (its result would shift the round
        # robin by one channel), then empty the FIFO.
        _wr(_ADC_CS, 1)
        while not (_rd(_ADC_CS) & 0x100):               # READY: no conversion running
            pass
        while not (_rd(_ADC_FCS) & 0x100):              # EMPTY
            _rd(_ADC_FIFO)
        _wr(_ADC_FCS, 1 | 8 | (1 << 24) | (3 << 10))     # FIFO on, DREQ on, threshold 1, clear flags
        _wr(_ADC_DIV, adiv)
        q = self._q
        for i in (blocks.Q_DPOS, blocks.Q_APOS, blocks.Q_UNDER, blocks.Q_DRAIN, blocks.Q_RUN,
                  blocks.Q_TRIP, blocks.Q_TAPOS, blocks.Q_TK, blocks.Q_THOLD, blocks.Q_TSRUN):
            q[i] = 0
        q[blocks.Q_THOLDN] = blocks.TRIP_HOLD_MS * fs // 1000     # the short rule's arming run
        q[blocks.Q_DLAST] = out_addr
        q[blocks.Q_ALAST] = q[blocks.Q_TALAST] = uctypes.addressof(self._adc)
        b = fs // 1000                      # tes.control.block_for(fs): 1 ms, 1..32 samples
        q[blocks.Q_TCAP] = TRIP_BLOCKS * (32 if b > 32 else b if b > 0 else 1)
        lead = LEAD_MS * fs // 1000
        cap = ((1 << OUT_BITS) // 2 - 3 * CHUNK) // self.words     # ring less the chunks D and Z hold
        if lead > cap:
            lead = cap
        if lead < 2 * CHUNK // self.words:
            lead = 2 * CHUNK // self.words
        q[blocks.Q_LEAD] = lead
        q[blocks.Q_CHUNK] = lead // 4       # refill once a quarter is free: the queue stays >= 3/4 full
        s.active(1)
        d.active(1)                       # fills the PIO FIFO with zero words at once
        cs = 1 | (self._ain0 << 12) | (self._rr << 16) | 8    # EN, AINSEL, RROBIN, START_MANY
        irq = machine.disable_irq()
        _start_apart(_PIO_CTRL, self._sm_bit, _ADC_CS, cs, adc_offset_us(fs, self._nch))
        machine.enable_irq(irq)
        q[blocks.Q_RUN] = 1
        # The first samples out are the ring's zeros; the session's first sample goes a
        # little after where the DMA is now (not an underrun: nothing was due yet).
        q[blocks.Q_KW] = q[blocks.Q_KS] = 0
        _qroom(q, _rd(self._r_d), _rd(self._r_s))      # the positions now (any "late" is not)
        q[blocks.Q_UNDER] = 0
        gap = GAP_MS * fs // 1000
        if gap < 2 * CHUNK // self.words:
            gap = 2 * CHUNK // self.words
        q[blocks.Q_KW] = q[blocks.Q_KS] = (q[blocks.Q_DPOS] // self.words + gap) & K_MASK
        if q[blocks.Q_TVCOMP] > 0:          # armed (arm_trip): from now to stop() or zero()
            self._tim.init(mode=machine.Timer.PERIODIC, freq=TRIP_HZ, hard=True,
                           callback=self._scan)  # pyright: ignore[reportArgumentType]  (its int is ignored)

    def arm_trip(self, iover_uA, vcomp_mV):
        q = self._q
        q[blocks.Q_TIOVER] = iover_uA
        q[blocks.Q_TVCOMP] = vcomp_mV
        blocks.trip_limits(q, self._get)    # as raw ADC code intervals: the scan compares codes

    def _fill_zero(self):
        zw = self._zero_word
        _fill16(self._out, self._out_h, zw, self._ref_word if self.words == 2 else zw)

    @micropython.native
    def room(self):
        # The DMA positions, read once a step (sense() uses them); -1 after an underrun.
        return _qroom(self._q, _M32[self._r_d], _M32[self._r_s])

    @micropython.native
    def write(self, buf, n):
        q = self._q
        k = q[_Q_KW]
        _kern.put_words(self._out, self._set, buf, n, k, self._put)
        # Too late? If the DMA has passed sample k, zero current went out where these
        # samples belonged: count it as an underrun now (the write position is still k),
        # so sense() never pairs them with readbacks of a level they never had (that
        # showed as dac-stuck instead of underrun). Conservative: the DMA reaching k just
        # after the store counts too, when the lead is spent anyway.
        _qroom(q, _M32[self._r_d], _M32[self._r_s])
        q[_Q_KW] = (k + n) & K_MASK

    @micropython.native
    def sense(self, set_out, i_out, v_out, d_out, n, b):
        q = self._q
        if q[_Q_UNDER]:
            return 0                    # the session ends as an underrun (room() < 0)
        m = _qblock(q, n, b)      # whole blocks of b (the last may be short)
        if m:
            k = q[_Q_KS]
            _kern.get_sense(self._adc, self._set, set_out, i_out, v_out, d_out, m, k, self._get)
            q[_Q_KS] = (k + m) & K_MASK
        return m

    def drain(self):
        self._q[blocks.Q_DRAIN] = 1

    def underruns(self):
        return self._q[blocks.Q_UNDER]

    def stop(self):
        self._tim.deinit()
        if self._q[blocks.Q_RUN]:
            _wr(_CHAN_ABORT, self._abort_dz | (1 << _chan(self._s)))
            self._q[blocks.Q_RUN] = 0
        _wr(_ADC_CS, 1)

    # ---- enable, zero, watchdog, time ------------------------------------------------------------
    def enable(self, on):
        self._en.value(1 if on else 0)

    @micropython.native
    def zero(self):
        self._cut()
        self._tim.deinit()                  # the fast trip, until the next start()

    @micropython.native
    def _cut(self):
        # Relay first (the subject is disconnected at once), then the DAC to zero current:
        # stop the ring, let the PIO shift out the zero word(s) on its own. Also the fast
        # trip's, from its hard interrupt (heap locked): nothing here allocates. room() then
        # reports the trip's code to the block loop (-1 - code), which writes nothing more.
        self._en.value(0)
        _wr(_CHAN_ABORT, self._abort_dz)
        self._q[_Q_RUN] = 0
        _flush_tx(self._r_shift)            # drop the queued samples, then zero
        self._sm.put(self._zero_word, 16)
        if self.words == 2:
            self._sm.put(self._ref_word, 16)

    def retain(self, sid, charge_uC, stim_ms):
        # SCRATCH0..3 (pico-sdk's watchdog_reboot uses 4..7): magic + sid, charge, stim
        # time, a check over all three.
        _wr(_SCRATCH0, (_RETAIN_MAGIC << 20) | (sid & 0xFFFFF))
        _wr(_SCRATCH0 + 4, charge_uC)
        _wr(_SCRATCH0 + 12, stim_ms)
        _wr(_SCRATCH0 + 8, (sid ^ charge_uC ^ stim_ms) & 0xFFFFFFF)

    def retained(self):
        head = _rd(_SCRATCH0)
        if (head >> 20) & 0x3FF != _RETAIN_MAGIC or head >> 30:
            return None
        sid = head & 0xFFFFF
        charge = _rd(_SCRATCH0 + 4)
        stim = _rd(_SCRATCH0 + 12)
        if (sid ^ charge ^ stim) & 0xFFFFFFF != _rd(_SCRATCH0 + 8):
            return None
        return sid, charge, stim

    # The builtins themselves, not methods around them: the block loop calls both every
    # pass, and a method would add a bytecode call and two lookups each (4 % of the busy
    # CPU on the chip). ticks_ms wraps like time.ticks_ms(): compare with time.ticks_diff.
    ticks_ms = staticmethod(time.ticks_ms)  # pyright: ignore[reportAssignmentType]  (called as the method is)
    # Sleep (WFE until the time is up, USB served meanwhile): the idle share of the CPU is
    # what is left here. Not machine.idle(): any interrupt (USB's 1 kHz SOF, say) sets the
    # event flag, so one WFE after it returns at once and the loop would spin.
    wait = staticmethod(time.sleep_ms)  # pyright: ignore[reportAssignmentType]

    def start_watchdog(self, ms):
        """Start the watchdog; once started it cannot be stopped (machine.WDT)."""
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=min(max(ms, 1), self.WDT_MAX_MS))

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def storage(self):
        return STORAGE


Hal = Rp2Hal
