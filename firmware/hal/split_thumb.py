"""The two-source driver's sense in Thumb-1 machine code (RP2040, Cortex-M0+):
hal.blocks_multi.get_sense_split (each electrode's set, current, voltage and readback
straight into its own arrays, the return's from the sources' sums), ~100 cycles a sample and
source against ~800 for its viper twin, which kept its locals in memory: the sense took ~7 %
of the chip at 5 kS/s with two sources (docs/hardware.md "Where the CPU goes").

split(f, n, k0), f the address of a frame that hal.blocks_multi.split_frame filled (the
rings' and the electrodes' addresses, the sense scaling; SF_* there), senses samples
k0..k0+n-1 (n >= 1) as get_sense_split(adc, sring, sbs, ibs, vbs, dbs, n, k0, cfg) would,
bit for bit (32-bit words: every value fits, hal.blocks_multi). Addresses in a frame, not
arrays: a buffer argument costs a call a lookup of its buffer protocol. Returns 0.
It writes the frame's scratch slots (SF_END .. SF_X0). Held to get_sense_split on rp2040js's
core (tests/hil/test_split_thumb.py).

Only for an armv6m build (mpy-cross -march=armv6m, the rp2 port): the unix port and the
ESP32 have no Thumb assembler (rp2 boards only: host/tesctl/firmware.py).
"""
import micropython

# Byte offsets into the frame (hal.blocks_multi SF_*, x 4): 0 ADC, 4 MA, 8 SRING, 12 MS,
# 16 NC, 20 NCH, 24 MID, 28 KI, 32 SI, 36 HI, 40 KV, 44 SV, 48 HV; scratch: 52 END (4 n),
# 56 RET (the return's record), 60 K0, 64 X0 (the source's first set-ring index); from 80
# one record of 32 bytes per electrode, the return last: +0 s, +4 i, +8 v, +12 d (array
# addresses), +16 ci, +20 cv (ADC ring offsets).


@micropython.asm_thumb
def split(r0, r1, r2):
    lsl(r1, r1, 2)
    str(r1, [r0, 52])           # END: 4 n, the samples' byte offset bound
    str(r2, [r0, 60])           # K0
    ldr(r3, [r0, 16])           # nc
    mul(r2, r3)
    str(r2, [r0, 64])           # X0 = k0 * nc: source 0's first set-ring index
    lsl(r3, r3, 5)
    add(r3, r3, r0)
    add(r3, 80)
    str(r3, [r0, 56])           # RET: the return's record, after the sources'
    ldr(r4, [r3, 0])            # the return's set and current from zero: each source's
    ldr(r5, [r3, 4])            #   are subtracted (get_sense_split: -y, then -= y)
    mov(r6, 0)
    mov(r2, 0)
    label(ZERO)
    add(r7, r4, r2)
    str(r6, [r7, 0])
    add(r7, r5, r2)
    str(r6, [r7, 0])
    add(r2, 4)
    cmp(r2, r1)
    blt(ZERO)
    mov(r7, r0)
    add(r7, 80)                 # r7: source c's record
    label(SOURCE)
    ldr(r1, [r0, 64])           # r1: x, the set ring's index
    ldr(r2, [r0, 60])
    ldr(r3, [r0, 20])
    mul(r2, r3)                 # r2: a = nch * k0, the sample's first conversion
    mov(r3, 0)                  # r3: 4 k
    label(SAMPLE)
    ldr(r4, [r0, 12])
    and_(r4, r1)
    lsl(r4, r4, 2)
    ldr(r5, [r0, 8])
    add(r4, r5, r4)
    ldr(r4, [r4, 0])            # y = sring[x & ms]
    ldr(r5, [r7, 0])
    add(r5, r5, r3)
    str(r4, [r5, 0])            # s[k] = y
    ldr(r5, [r7, 12])
    add(r5, r5, r3)
    str(r4, [r5, 0])            # d[k] = y: no readback channel, the readback is the set
    ldr(r6, [r0, 56])
    ldr(r6, [r6, 0])
    add(r6, r6, r3)
    ldr(r5, [r6, 0])
    sub(r5, r5, r4)
    str(r5, [r6, 0])            # rs[k] -= y
    ldr(r4, [r7, 16])
    add(r4, r2, r4)
    ldr(r5, [r0, 4])
    and_(r4, r5)
    lsl(r4, r4, 1)
    ldr(r5, [r0, 0])
    add(r4, r5, r4)
    ldrh(r4, [r4, 0])           # adc[(a + ci) & ma]
    ldr(r5, [r0, 24])
    sub(r4, r4, r5)
    ldr(r5, [r0, 28])
    mul(r4, r5)
    ldr(r5, [r0, 36])
    add(r4, r4, r5)
    ldr(r5, [r0, 32])
    asr(r4, r5)                 # z = ((code - mid) * ki + hi) >> si
    ldr(r5, [r7, 4])
    add(r5, r5, r3)
    str(r4, [r5, 0])            # i[k] = z
    ldr(r6, [r0, 56])
    ldr(r6, [r6, 4])
    add(r6, r6, r3)
    ldr(r5, [r6, 0])
    sub(r5, r5, r4)
    str(r5, [r6, 0])            # ri[k] -= z
    ldr(r4, [r7, 20])
    add(r4, r2, r4)
    ldr(r5, [r0, 4])
    and_(r4, r5)
    lsl(r4, r4, 1)
    ldr(r5, [r0, 0])
    add(r4, r5, r4)
    ldrh(r4, [r4, 0])           # adc[(a + cv) & ma]
    ldr(r5, [r0, 24])
    sub(r4, r4, r5)
    ldr(r5, [r0, 40])
    mul(r4, r5)
    ldr(r5, [r0, 48])
    add(r4, r4, r5)
    ldr(r5, [r0, 44])
    asr(r4, r5)
    ldr(r5, [r7, 8])
    add(r5, r5, r3)
    str(r4, [r5, 0])            # v[k] = ((code - mid) * kv + hv) >> sv
    ldr(r4, [r0, 16])
    add(r1, r1, r4)             # x += nc
    ldr(r4, [r0, 20])
    add(r2, r2, r4)             # a += nch
    add(r3, 4)
    ldr(r4, [r0, 52])
    cmp(r3, r4)
    blt(SAMPLE)
    ldr(r4, [r0, 64])
    add(r4, 1)
    str(r4, [r0, 64])           # the next source's first index
    add(r7, 32)
    ldr(r4, [r0, 56])
    cmp(r7, r4)
    blt(SOURCE)
    ldr(r1, [r0, 52])           # the return (r7 = its record): readback = set, voltage =
    ldr(r4, [r7, 0])            #   current, as get_sense_split gives them
    ldr(r5, [r7, 4])
    ldr(r6, [r7, 8])
    ldr(r7, [r7, 12])
    mov(r3, 0)
    label(COPY)
    add(r2, r4, r3)
    ldr(r2, [r2, 0])
    add(r0, r7, r3)
    str(r2, [r0, 0])
    add(r2, r5, r3)
    ldr(r2, [r2, 0])
    add(r0, r6, r3)
    str(r2, [r0, 0])
    add(r3, 4)
    cmp(r3, r1)
    blt(COPY)
    mov(r0, 0)
