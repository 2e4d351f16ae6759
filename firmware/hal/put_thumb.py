"""The two-source driver's DAC words in Thumb-1 machine code (RP2040, Cortex-M0+):
hal.blocks_multi.put_words_multi for one block per source (the multi block loop's
write_blocks), each set current (uA) to its DAC word as hal.calib.ua_to_code (nearest code,
the hardware limit, the DAC range) and into the set ring, ~100 cycles a sample and source
on rp2040js (16 of them its charge for the divider's two writes) against ~600 for its viper
twin (docs/hardware.md "Where the CPU goes").

put(f, n, k0), f the address of a frame hal.blocks_multi.put_frame filled (PF_* there: the
rings', the block's addresses, each source's conversion), converts samples k0..k0+n-1
(n >= 1) of every source as put_words_multi(ring, sring, buf, n, k0, cfg, stride, 1)
would, bit for bit. Its divisions go to the RP2040's SIO divider (unsigned: both dividends
are >= 0 on the reference's two branches; results readable from the 9th cycle after the
divisor's write, which the code waits as the pico-sdk's own sequence does; the pico-sdk saves
and restores the divider around an interrupt's use of it). Returns 0. It writes the frame's
scratch slots. Held to put_words_multi on rp2040js's core (tests/hil/test_put_thumb.py),
whose divider the test runner gives the chip's latency: a read before the 9th cycle fails.

Only for an armv6m build (mpy-cross -march=armv6m, the rp2 port): rp2 boards only
(host/tesctl/firmware.py).
"""
import micropython

# Byte offsets into the frame (hal.blocks_multi PF_*, x 4): 0 RING (halfwords), 4 MW,
# 8 SRING (words), 12 MS, 16 NC, 20 BUF (source 0's block), 24 CS (bytes from a source's
# block to the next's); scratch: 28 END (4 n), 32 X0, 36 CUR (this source's block); from 48
# one record of 32 bytes per source: +0 z, +4 sc, +8 su, +12 half, +16 hw, +20 top,
# +24 base (the word's channel bits), +28 lim (hw * sc).


@micropython.asm_thumb
def put(r0, r1, r2):
    lsl(r1, r1, 2)
    str(r1, [r0, 28])           # END: 4 n
    ldr(r3, [r0, 16])
    mul(r2, r3)
    str(r2, [r0, 32])           # X0 = k0 * nc: source 0's ring index
    ldr(r2, [r0, 20])
    str(r2, [r0, 36])           # CUR: source 0's block
    mov(r7, r0)
    add(r7, 48)                 # r7: source c's record
    label(SOURCE)
    ldr(r1, [r0, 32])           # r1: x, the rings' index
    ldr(r2, [r0, 36])           # r2: the sample's address
    ldr(r3, [r0, 28])
    add(r3, r2, r3)             # r3: the block's end
    label(SAMPLE)
    ldr(r4, [r2, 0])            # s
    ldr(r5, [r0, 12])
    and_(r5, r1)
    lsl(r5, r5, 2)
    ldr(r6, [r0, 8])
    add(r5, r6, r5)
    str(r4, [r5, 0])            # sring[x & ms] = s
    ldr(r5, [r7, 16])           # hw
    cmp(r4, r5)
    ble(NOTHW)
    mov(r4, r5)
    b(LIMITED)
    label(NOTHW)
    neg(r6, r5)
    cmp(r4, r6)
    bge(LIMITED)
    mov(r4, r6)
    label(LIMITED)
    ldr(r5, [r7, 4])
    mul(r4, r5)                 # p = s * sc
    ldr(r6, [r7, 12])           # half
    mov(r5, 0xD0)
    lsl(r5, r5, 24)             # r5: SIO (0xd0000000)
    cmp(r4, 0)
    blt(NEGATIVE)
    add(r4, r4, r6)
    str(r4, [r5, 0x60])         # DIV_UDIVIDEND = p + half
    ldr(r4, [r7, 8])
    str(r4, [r5, 0x64])         # DIV_UDIVISOR = su: the quotient in 8 cycles
    ldr(r6, [r7, 0])            # z (2 cycles), then three branches (6)
    b(W1)
    label(W1)
    b(W2)
    label(W2)
    b(W3)
    label(W3)
    ldr(r4, [r5, 0x70])
    add(r4, r6, r4)             # code = z + (p + half) // su
    b(CODE)
    label(NEGATIVE)
    sub(r4, r6, r4)
    str(r4, [r5, 0x60])         # DIV_UDIVIDEND = half - p
    ldr(r4, [r7, 8])
    str(r4, [r5, 0x64])
    ldr(r6, [r7, 0])
    b(W4)
    label(W4)
    b(W5)
    label(W5)
    b(W6)
    label(W6)
    ldr(r4, [r5, 0x70])
    sub(r4, r6, r4)             # code = z - (half - p) // su
    label(CODE)
    ldr(r5, [r7, 20])           # top
    cmp(r4, r5)
    ble(NOTTOP)
    mov(r4, r5)
    b(RANGED)
    label(NOTTOP)
    cmp(r4, 0)
    bge(RANGED)
    mov(r4, 0)
    label(RANGED)
    sub(r5, r4, r6)             # code - z (r6: z)
    ldr(r6, [r7, 8])
    mul(r5, r6)
    ldr(r6, [r7, 28])           # lim
    cmp(r5, r6)
    ble(NOTOVER)
    sub(r4, 1)                  # (code - z) * su > lim: one code back inside the limit
    b(INSIDE)
    label(NOTOVER)
    neg(r5, r5)
    cmp(r5, r6)
    ble(INSIDE)
    add(r4, 1)                  # (z - code) * su > lim
    label(INSIDE)
    ldr(r5, [r7, 24])
    orr(r4, r5)                 # base | code
    ldr(r5, [r0, 4])
    and_(r5, r1)
    lsl(r5, r5, 1)
    ldr(r6, [r0, 0])
    add(r5, r6, r5)
    strh(r4, [r5, 0])           # ring[x & mw]
    ldr(r4, [r0, 16])
    add(r1, r1, r4)             # x += nc
    add(r2, 4)
    cmp(r2, r3)
    blt(SAMPLE)
    ldr(r4, [r0, 32])
    add(r4, 1)
    str(r4, [r0, 32])           # the next source's first index
    ldr(r4, [r0, 36])
    ldr(r5, [r0, 24])
    add(r4, r4, r5)
    str(r4, [r0, 36])           # ...and its block
    add(r7, 32)
    ldr(r4, [r0, 16])
    lsl(r4, r4, 5)
    add(r4, r4, r0)
    add(r4, 48)
    cmp(r7, r4)
    blt(SOURCE)
    mov(r0, 0)
