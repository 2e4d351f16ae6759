"""MCP4922 dual 12-bit SPI DAC: command-word packing (pure, runs anywhere).

Write command (MCP4922 datasheet DS21897, register 5-1), sent MSB first, 16 bits:
  bit 15 A/B   0 = DAC A, 1 = DAC B
  bit 14 BUF   1 = VREF input buffered
  bit 13 GA    1 = 1x gain (VOUT = VREF * D / 4096), 0 = 2x
  bit 12 SHDN  1 = output active, 0 = channel shut down (output ~500 kOhm to ground)
  bits 11-0    D, the 12-bit code
The reference analog stage (docs/hardware.md) feeds channel A (signal) and channel B
(fixed mid-scale) into a differential Howland pump, so zero current is A == B.
Never shut down channel A alone: its output would fall to 0 V while B sits at mid-scale,
which the pump turns into full negative current. Zero is a mid-scale code, not SHDN.
"""
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:
    def const(x):
        return x

CH_A = const(0)
CH_B = const(1)
CODE_MAX = const(4095)
_BUF = const(0x4000)
_GA_1X = const(0x2000)
_ACTIVE = const(0x1000)


def word(code, channel=0, buffered=True, gain_1x=True, active=True):
    """12-bit code -> 16-bit command word. Codes outside 0..4095 are clamped, never
    wrapped: a wrapped code would jump from one end of the range to the other."""
    if code < 0:
        code = 0
    elif code > CODE_MAX:
        code = CODE_MAX
    w = code
    if channel:
        w |= 0x8000
    if buffered:
        w |= _BUF
    if gain_1x:
        w |= _GA_1X
    if active:
        w |= _ACTIVE
    return w


def pack(code, channel=0, buffered=True, gain_1x=True, active=True):
    """12-bit code -> the 2 bytes sent over SPI (MSB first)."""
    w = word(code, channel, buffered, gain_1x, active)
    return bytes((w >> 8, w & 0xFF))


def pack_into(buf, w):
    """Put command word w into buf[0:2] without allocating (for the pacing IRQ)."""
    buf[0] = w >> 8
    buf[1] = w & 0xFF
