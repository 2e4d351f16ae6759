"""The engine's sine plateau in Thumb-1 machine code (RP2040, Cortex-M0+): tes.kernels'
osc_sine then env_flat over one block in one pass, ~45 cycles a sample against ~290 for the
two viper twins (tes.kernels_fast), which kept their locals in memory: the two-source
driver's fill took ~4.5 % of the chip at 5 kS/s (docs/hardware.md "Where the CPU goes").

sine_flat(out, st, f, n): out and st the arrays themselves (their addresses come with the
call), f an array('i') of tes.kernels.SF_LEN words: f[0] the sine table's address (tes.tables.SINE,
int16), f[1] amp, f[2] off, f[3] start; f[4..7] the kernel's scratch. For n >= 1 it does
osc_sine(out, start, n, st, SINE); env_flat(out, start, n, amp, off), bit for bit (32-bit
words: every value fits, tes.kernels), and returns 0. Held to those two on rp2040js's core
(tests/hil/test_sine_thumb.py); tes.engine.Engine._block calls it where a driver offers it
(hal.base: optional sine_flat; hal.rp2_multi's).

Only for an armv6m build (mpy-cross -march=armv6m, the rp2 port): rp2 boards only
(host/tesctl/firmware.py).
"""
import micropython

# Byte offsets. st (tes.kernels): 0 PH, 4 FR, 8 IQ, 12 IR, 16 MOD. f: 0 table, 4 amp,
# 8 off, 12 start; scratch 16 q, 20 r, 24 m, 28 the end's address.


@micropython.asm_thumb
def sine_flat(r0, r1, r2, r3):
    ldr(r4, [r2, 12])
    lsl(r4, r4, 2)
    add(r0, r0, r4)             # r0: &out[start]
    lsl(r3, r3, 2)
    add(r3, r0, r3)
    str(r3, [r2, 28])           # the end
    ldr(r4, [r1, 8])
    str(r4, [r2, 16])           # q, r, m beside the table: one base register in the loop
    ldr(r4, [r1, 12])
    str(r4, [r2, 20])
    ldr(r4, [r1, 16])
    str(r4, [r2, 24])
    push({r1})                  # st, for the phase's write-back
    mov(r7, r2)                 # r7: f
    ldr(r2, [r1, 0])            # r2: ph
    ldr(r3, [r1, 4])            # r3: fr
    label(SAMPLE)
    lsr(r4, r2, 10)
    lsl(r4, r4, 1)
    ldr(r5, [r7, 0])
    add(r5, r5, r4)
    ldrh(r4, [r5, 0])
    ldrh(r5, [r5, 2])
    lsl(r4, r4, 16)
    asr(r4, r4, 16)             # a = tab[ph >> 10]
    lsl(r5, r5, 16)
    asr(r5, r5, 16)             # tab[(ph >> 10) + 1]
    sub(r5, r5, r4)
    lsl(r6, r2, 22)
    lsr(r6, r6, 22)             # ph & 1023
    mul(r5, r6)
    asr(r5, r5, 10)
    add(r4, r4, r5)             # osc_sine's sample
    ldr(r5, [r7, 4])
    mul(r4, r5)
    mov(r5, 1)
    lsl(r5, r5, 14)
    add(r4, r4, r5)
    asr(r4, r4, 15)
    ldr(r5, [r7, 8])
    add(r4, r4, r5)             # env_flat's: off + ((amp * y + 16384) >> 15)
    str(r4, [r0, 0])
    ldr(r5, [r7, 20])
    add(r3, r3, r5)             # fr += r
    ldr(r5, [r7, 16])
    add(r2, r2, r5)             # ph += q
    ldr(r5, [r7, 24])
    cmp(r3, r5)
    blt(NOCARRY)
    sub(r3, r3, r5)
    add(r2, 1)
    label(NOCARRY)
    lsl(r2, r2, 12)
    lsr(r2, r2, 12)             # ph &= 0xFFFFF
    add(r0, 4)
    ldr(r5, [r7, 28])
    cmp(r0, r5)
    blt(SAMPLE)
    pop({r1})
    str(r2, [r1, 0])
    str(r3, [r1, 4])
    mov(r0, 0)
