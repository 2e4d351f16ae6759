"""PIO programs that clock MCP4922 command words out and latch them (hal.rp2): one word
(channel A) or two (A, then B) per sample, LDAC, then a delay loop whose count, held in
ISR, pads the sample to an exact number of PIO cycles.

Pins: set pins bit 0 = LDAC, bit 1 = CS (consecutive GPIOs); side-set = SCK; out = MOSI,
MSB first. MCP4922 (DS21897) needs SCK <= 20 MHz (two PIO cycles per bit: PIO clock <=
40 MHz), LDAC low >= 100 ns (4 cycles at 40 MHz), CS high >= 15 ns.
"""
# pyright: reportUndefinedVariable=false, reportCallIssue=false, reportAttributeAccessIssue=false
# (the PIO assembler's names exist only inside @rp2.asm_pio functions)
import rp2

# PIO cycles per sample outside the pad loop: hal.rp2_pacing.CYCLES_1 and CYCLES_2 count
# the instructions below (kept there so the pacing arithmetic is testable off the board).
from hal.rp2_pacing import CYCLES_1, CYCLES_2  # noqa: F401 (re-exported for hal.rp2)


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW, set_init=[rp2.PIO.OUT_HIGH, rp2.PIO.OUT_HIGH],
             out_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_LEFT, fifo_join=rp2.PIO.JOIN_TX)
def dac1():
    pull(block)             .side(0)
    set(pins, 0b01)         .side(0)        # CS low (LDAC stays high)
    set(x, 15)              .side(0)
    label("bit")
    out(pins, 1)            .side(0)
    jmp(x_dec, "bit")       .side(1)        # SCK rises: the DAC takes the bit
    set(pins, 0b11)         .side(0) [1]    # CS high: the word is in
    set(pins, 0b10)         .side(0) [3]    # LDAC low for 4 cycles: the output changes
    set(pins, 0b11)         .side(0)
    mov(y, isr)             .side(0)
    label("pad")
    jmp(y_dec, "pad")       .side(0)


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW, set_init=[rp2.PIO.OUT_HIGH, rp2.PIO.OUT_HIGH],
             out_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_LEFT, fifo_join=rp2.PIO.JOIN_TX)
def dac2():
    pull(block)             .side(0)
    set(pins, 0b01)         .side(0)
    set(x, 15)              .side(0)
    label("bit_a")
    out(pins, 1)            .side(0)
    jmp(x_dec, "bit_a")     .side(1)
    set(pins, 0b11)         .side(0) [1]
    pull(block)             .side(0)
    set(pins, 0b01)         .side(0)
    set(x, 15)              .side(0)
    label("bit_b")
    out(pins, 1)            .side(0)
    jmp(x_dec, "bit_b")     .side(1)
    set(pins, 0b11)         .side(0) [1]
    set(pins, 0b10)         .side(0) [3]    # both channels change together
    set(pins, 0b11)         .side(0)
    mov(y, isr)             .side(0)
    label("pad")
    jmp(y_dec, "pad")       .side(0)
