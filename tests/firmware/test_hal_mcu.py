"""hal.mcu (the rp2/esp32 driver) against a fake `machine`: word stream, double
buffering, underrun to zero, fault path, and no allocation in the per-sample/per-block
paths (heap locked under the unix port). Not a substitute for running on a board."""
import sys
from array import array

from hal import ads1115, base, mcp4922
from tes import board

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = _HERE + "/../.."


class _Pin:
    OUT = 1

    def __init__(self, id, mode=0, value=None):
        self.id = id
        self.v = value

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class _SPI:
    # Preallocated, so recording a word does not allocate under heap_lock.
    def __init__(self, *a, **k):
        self.buf = array("H", [0] * 64)
        self.n = 0

    def write(self, buf):
        self.buf[self.n] = (buf[0] << 8) | buf[1]
        self.n += 1

    @property
    def words(self):
        return list(self.buf[:self.n])


class _I2C:
    def __init__(self, *a, **k):
        self.raw = 0
        self.last_cfg = 0

    def writeto_mem(self, addr, reg, buf):
        self.last_cfg = (buf[0] << 8) | buf[1]

    def readfrom_mem_into(self, addr, reg, buf):
        r = self.raw & 0xFFFF
        buf[0] = r >> 8
        buf[1] = r & 0xFF


class _Timer:
    PERIODIC = 1

    def __init__(self, id):
        self.cb = None

    def init(self, mode=1, freq=0, callback=None, hard=False):
        self.cb = callback

    def deinit(self):
        self.cb = None


class _WDT:
    def __init__(self, timeout=0):
        self.timeout = timeout


class _Machine:
    Pin = _Pin
    SPI = _SPI
    I2C = _I2C
    Timer = _Timer
    WDT = _WDT

    @staticmethod
    def idle():
        pass

    @staticmethod
    def disable_irq():
        return 0

    @staticmethod
    def enable_irq(s):
        pass


def _hal():
    # Fakes go into sys.modules only while hal.mcu imports, so no other test sees them.
    added = ["machine"]
    sys.modules["machine"] = _Machine
    try:
        import micropython  # noqa: F401
    except ImportError:
        class _MP:
            @staticmethod
            def const(x):
                return x
        sys.modules["micropython"] = _MP
        added.append("micropython")
    try:
        from hal import mcu
    finally:
        for name in added:
            del sys.modules[name]
    mcu.STORAGE = ROOT + "/build/test_hal_mcu"   # no calibration there: board file's
    b = board.load_checked(ROOT + "/boards/pico-mcp4922.json")
    return mcu.McuHal(b)


def _lock():
    try:
        import micropython
        micropython.heap_lock()
        return micropython
    except (ImportError, AttributeError):
        return None


def test_driver_streams_words_and_fails_safe():
    h = _hal()
    assert h._en.v == 0, "output enable must be off at construction"
    spi = h._spi
    zero = mcp4922.word(2048)
    assert spi.words[:2] == [mcp4922.word(2048, mcp4922.CH_B), zero]
    h.start(1000)
    tick = h._timer.cb
    buf = array("i", [0, 1000, -1000, 4000, 9999])
    out = array("i", [0] * base.SENSE_LEN)
    h._i2c.raw = 4800            # 1000 uA at 5/24 uA per code
    mp = _lock()
    try:
        h.write(buf, 5)
        for _ in range(7):
            tick(None)
        h.sense(out)
        h.zero()
        tick(None)
    finally:
        if mp:
            mp.heap_unlock()
    conv = h.conv
    got = [w & 0xFFF for w in spi.words[2:]]
    want = [board.ua_to_code(conv, u) for u in (0, 1000, -1000, 4000, 9999)]
    assert got[:5] == want, (got, want)
    assert got[5:7] == [2048, 2048] and h.underruns == 2   # underrun: zero, not the last level
    assert got[7:] == [2048, 2048], got                     # zero() then halted ticks
    assert all(w >> 12 == 0x7 for w in spi.words[2:])        # DAC A, buffered, 1x, active
    assert out[base.I_MEAN] == 1000 and out[base.ADC_MOVES] == 1
    assert out[base.DAC_BACK] == 0
    assert h._en.v == 0
    assert h._i2c.last_cfg == ads1115.config(ads1115.MUX_2_3, 2048, 860)


def test_driver_sense_alternates_and_watchdog_bounds():
    h = _hal()
    out = array("i", [0] * base.SENSE_LEN)
    h._i2c.raw = -4800
    h.sense(out)                 # current
    h._i2c.raw = 8000            # 8000 * 1.25 mV = 10 V at the anode
    h.sense(out)                 # voltage, minus the shunt drop (-1000 uA * 100 ohm = -100 mV)
    assert out[base.I_MEAN] == -1000
    assert out[base.V_MEAN] == 10100 and out[base.V_PEAK] == 10100, list(out)
    try:
        h.start_watchdog(9000)
    except ValueError:
        pass
    else:
        raise AssertionError("rp2 watchdog above 8388 ms accepted")
    h.start_watchdog(2000)
    assert h._wdt.timeout == 2000
    for bad in (30000, 7):
        try:
            h.start(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)
