"""ADS1115 16-bit I2C ADC: config-word packing and code conversion (pure parts).

Config register (ADS1115 datasheet SBAS444, table 8-3):
  bit 15     OS        write 1: start a single conversion
  bits 14-12 MUX       input pair
  bits 11-9  PGA       full-scale range
  bit 8      MODE      1 = single-shot, 0 = continuous
  bits 7-5   DR        data rate
  bits 4-0   comparator; 0b00011 disables it (the power-on default)
Power-on default: 0x8583 (AIN0-AIN1, +/-2.048 V, single-shot, 128 SPS, comparator off).
"""
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:
    def const(x):
        return x

REG_CONVERSION = const(0)
REG_CONFIG = const(1)
ADDR_DEFAULT = const(0x48)

MUX_0_1 = const(0)   # AIN0 - AIN1 (current sense: INA output against its reference)
MUX_0_3 = const(1)
MUX_1_3 = const(2)
MUX_2_3 = const(3)   # AIN2 - AIN3 (electrode voltage divider)
MUX_0_G = const(4)
MUX_1_G = const(5)
MUX_2_G = const(6)
MUX_3_G = const(7)

# full-scale range in mV -> PGA field
_PGA = {6144: 0, 4096: 1, 2048: 2, 1024: 3, 512: 4, 256: 5}
# samples per second -> DR field
_DR = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
CODE_FULL = const(32768)


def config(mux, fsr_mV=2048, rate_sps=860, single=True, start=True):
    """Config register word. Raises ValueError on a range or rate the chip lacks."""
    if mux < 0 or mux > 7:
        raise ValueError("ads1115: mux must be 0..7")
    if fsr_mV not in _PGA:
        raise ValueError("ads1115: no full-scale range of %d mV" % fsr_mV)
    if rate_sps not in _DR:
        raise ValueError("ads1115: no data rate of %d SPS" % rate_sps)
    w = (mux << 12) | (_PGA[fsr_mV] << 9) | (_DR[rate_sps] << 5) | 0b00011
    if single:
        w |= 0x0100
    if start:
        w |= 0x8000
    return w


def signed(hi, lo):
    """Conversion register bytes (MSB first) -> signed code -32768..32767."""
    c = (hi << 8) | lo
    if c & 0x8000:
        c -= 0x10000
    return c


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def ratio(num, den):
    """Reduce num/den so per-reading products stay small ints on a 32-bit board."""
    g = _gcd(num, den)
    return num // g, den // g


def current_scale(fsr_mV, shunt_ohm, gain):
    """(num, den): uA = code * num / den for a shunt + amplifier of that gain.
    uA = code * fsr_mV * 1000 / (32768 * shunt_ohm * gain)."""
    return ratio(fsr_mV * 1000, CODE_FULL * shunt_ohm * gain)


def voltage_scale(fsr_mV, divider):
    """(num, den): electrode mV = code * num / den behind a divider of that ratio."""
    return ratio(fsr_mV * divider, CODE_FULL)


def scaled(code, num, den):
    """code * num / den rounded to nearest, halves away from zero (symmetric in sign)."""
    p = code * num
    if p >= 0:
        return (p + den // 2) // den
    return -((-p + den // 2) // den)
