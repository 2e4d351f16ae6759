"""Driver shared by the rp2 and esp32 ports: MCP4922 DAC on machine.SPI, ADS1115 sense
ADC on machine.I2C, output enable on a Pin, pacing by a machine.Timer, machine.WDT.

hal.rp2 and hal.esp32 subclass it with what differs per port (timer, SPI bus, watchdog
range, whether the pacing IRQ may be hard). Written for, type-checked against and compiled
for the boards; never run on silicon in this repository (docs/hardware.md).

Pacing. A periodic timer IRQ outputs one sample per tick from a pair of preallocated
blocks of ready-made MCP4922 command words (double buffering): write() converts uA to
words in thread context, the IRQ only copies two bytes to SPI. With an LDAC pin, each tick
first pulses LDAC, latching the word loaded on the previous tick, then loads the next
one: the output changes at IRQ entry, so SPI and interpreter time add no jitter. If a
block is not ready in time the IRQ outputs the zero-current word (underrun), never a
stale level.
"""
import os
import time
from array import array

import machine
import micropython
from micropython import const

from hal import ads1115, base, mcp4922
from tes import board as boardmod

BLOCK = const(512)            # samples per DAC buffer; write() splits longer blocks
STORAGE = "/data"
# Fixed channel-B word: mid-scale, the Howland pump's other input (zero = A equals B).
_MID = const(2048)

# Room for a traceback from inside the hard IRQ (the unix port, used in tests, lacks it).
if hasattr(micropython, "alloc_emergency_exception_buf"):
    micropython.alloc_emergency_exception_buf(100)


class McuHal(base.Hal):
    TIMER_ID = -1
    HARD_IRQ = True
    WDT_MAX_MS = 8388
    WDT_MIN_MS = 1

    def __init__(self, board):
        super().__init__(board)
        # Output off before anything else is touched: the relay must be open at boot.
        self._en = machine.Pin(board["enable_pin"], machine.Pin.OUT, value=0)
        dac = board["dac"]
        spi = dac["spi"]
        self._cs = machine.Pin(dac["cs_pin"], machine.Pin.OUT, value=1)
        ldac = dac.get("ldac_pin")
        # No LDAC pin: it is tied low on the board and the DAC updates at CS rising.
        self._ldac = None if ldac is None else machine.Pin(ldac, machine.Pin.OUT, value=1)
        self._spi = self._make_spi(spi)
        self._wdt = None
        try:
            os.mkdir(STORAGE)
        except OSError:
            pass  # already there
        cal = boardmod.load_calibration(STORAGE)  # raises on a corrupt one: do not guess
        self.conv = boardmod.conversion(board, cal)
        self._zero_word = mcp4922.word(self.conv["zero_code"])
        self._tx = bytearray(2)
        # Two blocks of command words; the IRQ plays one while write() fills the other.
        self._bufs = (array("H", [self._zero_word] * BLOCK), array("H", [self._zero_word] * BLOCK))
        self._play = self._bufs[0]
        self._back = 1
        self._n_play = 0
        self._n_back = 0
        self._i = 0
        self._ready = 0          # 1: the back block is filled and waits for the IRQ
        self._halt = 1           # 1: the IRQ outputs zero whatever is queued
        self.last_code = self.conv["zero_code"]
        self.underruns = 0
        self._timer = None
        # Bound once here: taking a bound method inside the IRQ would allocate.
        self._tick_ref = self._tick

        sense = board["sense"]
        adc = sense["adc"]
        i2c = adc["i2c"]
        self._i2c = self._make_i2c(i2c)
        self._addr = i2c["addr"]
        fsr = adc["ref_mV"]
        rate = adc.get("rate_sps", 860)
        self._shunt = sense["shunt_ohm"]
        self._cfg_i = bytearray(2)
        self._cfg_v = bytearray(2)
        w = ads1115.config(ads1115.MUX_0_1, fsr, rate)
        self._cfg_i[0] = w >> 8
        self._cfg_i[1] = w & 0xFF
        w = ads1115.config(ads1115.MUX_2_3, fsr, rate)
        self._cfg_v[0] = w >> 8
        self._cfg_v[1] = w & 0xFF
        self._i_num, self._i_den = ads1115.current_scale(fsr, self._shunt, sense["current_gain"])
        self._v_num, self._v_den = ads1115.voltage_scale(fsr, sense["voltage_divider"])
        self._rx = bytearray(2)
        self._chan = 0            # channel whose conversion is running: 0 current, 1 voltage
        self._raw_i = 0
        self._i_uA = 0
        self._v_mV = 0
        self._moves = 0
        self._i2c.writeto_mem(self._addr, ads1115.REG_CONFIG, self._cfg_i)
        self._write_word(mcp4922.word(_MID, mcp4922.CH_B))
        self._write_word(self._zero_word)
        self._latch()

    # -- port specifics (subclasses) -------------------------------------------------
    def _make_spi(self, spi):
        return machine.SPI(spi["bus"], baudrate=spi["baudrate"], polarity=0, phase=0,
                           sck=machine.Pin(spi["sck"]), mosi=machine.Pin(spi["mosi"]))

    def _make_i2c(self, i2c):
        return machine.I2C(i2c["bus"], scl=machine.Pin(i2c["scl"]), sda=machine.Pin(i2c["sda"]),
                           freq=i2c["freq"])

    # -- DAC --------------------------------------------------------------------------
    def _write_word(self, w):
        tx = self._tx
        tx[0] = w >> 8
        tx[1] = w & 0xFF
        self._cs.value(0)
        self._spi.write(tx)
        self._cs.value(1)

    def _latch(self):
        if self._ldac is not None:
            self._ldac.value(0)
            self._ldac.value(1)

    def _tick(self, _t):
        # Timer IRQ, hard on rp2: no allocation, only integer and attribute work.
        self._latch()
        if self._halt:
            w = self._zero_word
        else:
            i = self._i
            if i >= self._n_play:
                if self._ready:
                    k = self._back
                    self._play = self._bufs[k]
                    self._n_play = self._n_back
                    self._back = 1 - k
                    self._ready = 0
                    i = 0
                else:
                    self._n_play = 0
                    self.underruns += 1
                    i = -1
            if i < 0:
                w = self._zero_word
            else:
                w = self._play[i]
                self._i = i + 1
        self.last_code = w & 0x0FFF
        self._write_word(w)

    # -- hal.base.Hal ------------------------------------------------------------------
    def start(self, fs):
        if fs <= 0 or fs > self.board["max_sample_rate_hz"]:
            raise ValueError("sample rate %d Hz: board allows 1..%d" % (fs, self.board["max_sample_rate_hz"]))
        if 1000000 % fs:
            # The timer counts whole microseconds: any other rate would silently drift.
            raise ValueError("sample rate %d Hz: must divide 1000000 (timer has 1 us steps)" % fs)
        self._stop_timer()
        self._halt = 1
        self._ready = 0
        self._n_play = 0
        self._i = 0
        self._n_back = 0
        self._timer = machine.Timer(self.TIMER_ID)
        self._timer.init(mode=machine.Timer.PERIODIC, freq=fs, callback=self._tick_ref,
                         hard=self.HARD_IRQ)
        self._halt = 0

    def _stop_timer(self):
        if self._timer is not None:
            self._timer.deinit()
            self._timer = None

    def write(self, buf, n):
        conv = self.conv
        z = conv["zero_code"]
        sc = conv["span_code"]
        su = conv["span_uA"]
        half = su // 2
        hw = conv["hw_limit_uA"]
        top = conv["code_max"]
        lim = hw * sc
        base_word = mcp4922.word(0)
        off = 0
        while off < n:
            while self._ready:          # the IRQ has not taken the last block yet
                machine.idle()
            m = n - off
            if m > BLOCK:
                m = BLOCK
            back = self._bufs[self._back]
            # Inline copy of tes.board.ua_to_code (tested there): a call per sample would
            # cost more than the sample period allows at 20 kHz.
            for j in range(m):
                uA = buf[off + j]
                if uA > hw:
                    uA = hw
                elif uA < -hw:
                    uA = -hw
                p = uA * sc
                if p >= 0:
                    code = z + (p + half) // su
                else:
                    code = z - ((half - p) // su)
                if code > top:
                    code = top
                elif code < 0:
                    code = 0
                if (code - z) * su > lim:
                    code -= 1
                elif (z - code) * su > lim:
                    code += 1
                back[j] = base_word | code
            self._n_back = m
            self._ready = 1             # last: the IRQ may take the block from here on
            off += m

    def sense(self, out):
        # One ADS1115 conversion per call, alternating current and voltage: a figure is
        # at most two blocks old and the call never waits for the ADC (860 SPS = 1.2 ms).
        rx = self._rx
        self._i2c.readfrom_mem_into(self._addr, ads1115.REG_CONVERSION, rx)
        raw = ads1115.signed(rx[0], rx[1])
        if self._chan == 0:
            self._moves = 1 if raw != self._raw_i else 0
            self._raw_i = raw
            self._i_uA = ads1115.scaled(raw, self._i_num, self._i_den)
            self._chan = 1
            self._i2c.writeto_mem(self._addr, ads1115.REG_CONFIG, self._cfg_v)
        else:
            # The divider sees anode to ground; the cathode sits on the shunt: subtract it.
            mv = ads1115.scaled(raw, self._v_num, self._v_den)
            self._v_mV = mv - self._i_uA * self._shunt // 1000
            self._chan = 0
            self._i2c.writeto_mem(self._addr, ads1115.REG_CONFIG, self._cfg_i)
        out[base.I_MEAN] = self._i_uA
        out[base.I_MIN] = self._i_uA
        out[base.I_MAX] = self._i_uA
        out[base.V_MEAN] = self._v_mV
        out[base.V_PEAK] = -self._v_mV if self._v_mV < 0 else self._v_mV
        out[base.ADC_MOVES] = self._moves
        out[base.DAC_BACK] = boardmod.code_to_ua(self.conv, self.last_code)

    def enable(self, on):
        self._en.value(1 if on else 0)

    def zero(self):
        # Relay first (the subject is disconnected at once), then the DAC to zero current.
        self._en.value(0)
        self._halt = 1
        self._ready = 0
        state = machine.disable_irq()   # keep the IRQ off the SPI bus for this one word
        self._write_word(self._zero_word)
        self._latch()
        self.last_code = self.conv["zero_code"]
        machine.enable_irq(state)

    def ticks_ms(self):
        # Wraps like time.ticks_ms(): compare with time.ticks_diff.
        return time.ticks_ms()

    def start_watchdog(self, ms):
        """Start the watchdog; once started it cannot be stopped (machine.WDT)."""
        if ms < self.WDT_MIN_MS or ms > self.WDT_MAX_MS:
            raise ValueError("watchdog %d ms: this port allows %d..%d"
                             % (ms, self.WDT_MIN_MS, self.WDT_MAX_MS))
        self._wdt = machine.WDT(timeout=ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def storage(self):
        return STORAGE
