"""ESP32 (classic) driver: the same rings and conversions as hal.rp2, paced by a timer.

Why not DMA here. The esp32 port has no PIO and no rp2.DMA. machine.I2S does stream 16-bit
words by DMA (WS can serve as the MCP4922's chip select), but when its buffers run dry the
ESP32's I2S sends zeros, and the MCP4922 reads 0x0000 as "channel A shut down": its output
falls to 0 V while channel B holds mid-scale, which the Howland pump turns into full
negative current. A starved DMA stream must put out zero current (docs/safety.md); on this
chip that needs the CPU. So a hardware timer schedules a callback every sample: it writes
the next word of the ring, or the zero-current word if the control loop has not written
one (an underrun, counted: the session stops), then reads the three sense channels
(current, voltage, DAC readback) of ADC1 into the sense ring. ESP32 timer callbacks are
soft (run by the scheduler between bytecodes): a collection or a flash write delays them,
so the pacing jitters by up to milliseconds and this board is narrowed to 1 kS/s
(boards/esp32-mcp4922.json). Nothing in the callback allocates.

Written for and type-checked against the official esp32 stubs, compiled with mpy-cross;
not run on silicon.
"""
import os
import time
from array import array

import machine
from micropython import const

from hal import blocks, calib, mcp4922
from hal.base import Hal

try:
    from hal import blocks_fast as _kern
except ImportError:  # a port without viper: the plain code
    _kern = blocks

STORAGE = "/data"
RING = const(256)          # samples (output and sense rings; a power of two)
K_MASK = const(0x3FFFFF)
K_HALF = const(0x200000)
LEAD_MS = const(8)
TIMER_ID = const(0)


def _diff(a, b):
    return ((a - b + K_HALF) & K_MASK) - K_HALF


class Esp32Hal(Hal):
    WDT_MIN_MS = 1000     # ESP32 allows no watchdog timeout under 1 s

    def __init__(self, board):
        super().__init__(board)
        self._en = machine.Pin(board["enable_pin"], machine.Pin.OUT, value=0)
        dac = board["dac"]
        spi = dac["spi"]
        self._cs = machine.Pin(dac["cs_pin"], machine.Pin.OUT, value=1)
        self._spi = machine.SPI(spi["bus"], baudrate=spi["baudrate"], polarity=0, phase=0,
                                sck=machine.Pin(spi["sck"]), mosi=machine.Pin(spi["mosi"]))
        try:
            os.mkdir(STORAGE)
        except OSError:
            pass
        conv = calib.conversion(board, calib.load_calibration(STORAGE))
        self._zero_word = mcp4922.word(conv["zero_code"])
        self._out = array("H", [self._zero_word] * RING)
        self._set = array("i", [0] * RING)
        self._adc_ring = array("H", [0] * (4 * RING))     # 3 conversions a sample, padded to 4
        self._tx = bytearray(2)
        p = self._put = array("i", [0] * blocks.P_LEN)
        p[blocks.P_Z], p[blocks.P_SC], p[blocks.P_SU] = conv["zero_code"], conv["span_code"], conv["span_uA"]
        p[blocks.P_HW], p[blocks.P_TOP] = conv["hw_limit_uA"], conv["code_max"]
        p[blocks.P_BASE] = mcp4922.word(0)
        p[blocks.P_W] = 1
        p[blocks.P_MASKW] = RING - 1
        p[blocks.P_MASKS] = RING - 1
        adc = board["sense"]["adc"]
        sc = calib.sense_scales(board)
        g = self._get = array("i", [0] * blocks.G_LEN)
        g[blocks.G_MID], g[blocks.G_KI], g[blocks.G_SI] = sc["mid"], sc["ki"], sc["si"]
        g[blocks.G_KV], g[blocks.G_SV], g[blocks.G_KD], g[blocks.G_SD] = sc["kv"], sc["sv"], sc["kd"], sc["sd"]
        g[blocks.G_CI], g[blocks.G_CV], g[blocks.G_CD] = 0, 1, 2
        lat = adc["latency_samples"]
        g[blocks.G_LI], g[blocks.G_LV], g[blocks.G_LD] = lat[0], lat[1], lat[2]
        g[blocks.G_MASKA] = 4 * RING - 1
        g[blocks.G_Z], g[blocks.G_SU], g[blocks.G_SC] = conv["zero_code"], conv["span_uA"], conv["span_code"]
        g[blocks.G_NCH] = 4
        g[blocks.G_MASKS] = RING - 1
        self._adcs = [machine.ADC(machine.Pin(adc[k]), atten=machine.ADC.ATTN_11DB)
                      for k in ("current_channel", "voltage_channel", "readback_channel")]
        self._a0, self._a1, self._a2 = self._adcs
        self._timer = None
        self._wdt = None
        self._tick_ref = self._tick      # bound once: binding in the callback would allocate
        self.fs = 0
        self._k_out = 0       # next sample the callback puts out
        self._k_w = 0         # next sample the loop writes
        self._k_s = 0         # next sample the loop senses
        self._armed = False   # the loop has written its first sample
        self._under = 0
        self._draining = False
        self._lead = 0
        self._word(self._zero_word)

    def _word(self, w):
        tx = self._tx
        tx[0] = w >> 8
        tx[1] = w & 0xFF
        self._cs.value(0)
        self._spi.write(tx)
        self._cs.value(1)           # LDAC tied low: the output changes at CS rising

    def _tick(self, _t):
        # Scheduled timer callback: one sample out, its three readings in. No allocation.
        k = self._k_out
        if self._armed and _diff(self._k_w, k) > 0:
            w = self._out[k & (RING - 1)]
        else:
            w = self._zero_word
            if self._armed and not self._draining:
                self._under += 1
                self._set[k & (RING - 1)] = 0
        self._word(w)
        a = self._adc_ring
        i = (4 * k) & (4 * RING - 1)
        a[i] = self._a0.read_u16() >> 4
        a[i + 1] = self._a1.read_u16() >> 4
        a[i + 2] = self._a2.read_u16() >> 4
        self._k_out = (k + 1) & K_MASK

    def start(self, fs, channels=1):
        if channels != 1:     # one source this session (hal.base.Hal.channels)
            raise ValueError("this board drives 1 current source; the session needs %d" % channels)
        if fs <= 0 or fs > self.board["max_sample_rate_hz"]:
            raise ValueError("sample rate %d Hz: board allows 1..%d" % (fs, self.board["max_sample_rate_hz"]))
        self.stop()
        self.fs = fs
        self._k_out = self._k_w = self._k_s = 0
        self._armed = False
        self._under = 0
        self._draining = False
        self._lead = LEAD_MS * fs // 1000 or 1
        self._timer = machine.Timer(TIMER_ID)
        self._timer.init(mode=machine.Timer.PERIODIC, freq=fs, callback=self._tick_ref)

    def room(self):
        if self._timer is None:
            return 0
        if self._under:
            return -1
        r = _diff(self._k_out + self._lead, self._k_w)
        return r if r > 0 else 0

    def write(self, buf, n):
        if not self._armed:                  # the first sample goes just ahead of the timer
            self._k_w = self._k_s = (self._k_out + 1) & K_MASK
            self._armed = True
        _kern.put_words(self._out, self._set, buf, n, self._k_w, self._put)
        self._k_w = (self._k_w + n) & K_MASK

    def sense(self, set_out, i_out, v_out, d_out, n, b):
        ready = _diff(self._k_out, self._k_s)
        written = _diff(self._k_w, self._k_s)      # past the last sample (draining) is not a sample
        if written < ready:
            ready = written
        if not self._armed or ready <= 0:
            return 0
        m = ready if ready < n else n
        if b <= m < written:                # more to come: whole blocks only
            m = (m // b) * b
        _kern.get_sense(self._adc_ring, self._set, set_out, i_out, v_out, d_out, m, self._k_s, self._get)
        self._k_s = (self._k_s + m) & K_MASK
        return m

    def drain(self):
        self._draining = True

    def underruns(self):
        return self._under

    def stop(self):
        if self._timer is not None:
            self._timer.deinit()
            self._timer = None

    def enable(self, on):
        self._en.value(1 if on else 0)

    def zero(self):
        self._en.value(0)
        self.stop()
        self._word(self._zero_word)

    # the builtins: the block loop calls both every pass
    ticks_ms = staticmethod(time.ticks_ms)  # pyright: ignore[reportAssignmentType]
    wait = staticmethod(time.sleep_ms)  # pyright: ignore[reportAssignmentType]

    def start_watchdog(self, ms):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=max(ms, self.WDT_MIN_MS))

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def storage(self):
        return STORAGE


Hal = Esp32Hal
