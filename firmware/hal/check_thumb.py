"""The supervisor's per-sample work in Thumb-1 machine code (RP2040, Cortex-M0+): the inner
loop of tes.supervisor_fast.check_run for a supervisor without lock-in (a multi session's),
~180 cycles a sample (tests/hil/test_check_thumb.py prints the figure); the viper loop keeps
its locals in memory, and three supervisors' checks took a sixth of the chip at 5 kS/s with
two sources (docs/hardware.md "Where the CPU goes").

samples(st, p, n), st the address of a supervisor's state and p that of sb[j], reads samples
j..j+n-1 (n >= 1) of the set, measured, voltage and readback buffers laid out at equal
distances in memory (ib = sb + X_STRIDE bytes, vb = ib + X_STRIDE, db = vb + X_STRIDE;
check_run makes sure of that and writes X_STRIDE). Addresses, not the arrays: an int
argument costs the call nothing, a buffer a lookup of its buffer protocol. It carries the state
slots S_PI, S_PV, S_PSET, S_HOLD, S_DAC, S_STILL, S_STIM as the viper loop does, and leaves
the block's sums, peaks and flags in st[X_DACBAD..X_WVSQ] (tes.supervisor X_*). S_PPI is
check_run's. The contract's plain reference is tests/firmware/check_samples_ref.py: this
code is held to it on rp2040js (tests/hil/test_check_thumb.py), check_run with the reference
in its place to the plain supervisor (tests/firmware/test_check_samples.py).

Only for an armv6m build (mpy-cross -march=armv6m, the rp2 port): the unix port and the
ESP32 have no Thumb assembler (rp2 boards only: host/tesctl/firmware.py).
"""
import micropython

# Byte offsets. From st: T_DACTOL 3, S_STIM 15, S_DAC 17, S_STILL 18, S_PI 19, S_PV 20,
# S_PSET 21, S_HOLD 22 (tes.supervisor). From r1 = st + 4 * X_STRIDE (X_STRIDE = 70):
# +0 X_STRIDE, +4 X_DACBAD, +8 X_STILLBAD, +12 X_SABS, +16 X_SDIF, +20 X_IABS, +24 X_QABS,
# +28 X_VABS, +32 X_EABS, +36 X_IPK, +40 X_VPK, +44 X_SPK, +48 X_WSET, +52 X_WI, +56 X_WV,
# +60 X_WSSQ, +64 X_WISQ, +68 X_WVSQ, +72 X_END (the end address, the loop's own).
# Thresholds as in tes.supervisor: DAC_SAMPLES 2, ADC_STUCK_SAMPLES 8, Q_FLOOR_uA 20.


@micropython.asm_thumb
def samples(r0, r1, r2):
    lsl(r2, r2, 2)
    add(r3, r1, r2)             # the end's address
    mov(r2, r1)                 # r2: the sample's
    mov(r1, 70)
    lsl(r1, r1, 2)
    add(r1, r0, r1)             # r1: &st[X_STRIDE]
    str(r3, [r1, 72])
    mov(r3, 0)                  # this block's flags and sums from zero
    str(r3, [r1, 4])
    str(r3, [r1, 8])
    str(r3, [r1, 12])
    str(r3, [r1, 16])
    str(r3, [r1, 20])
    str(r3, [r1, 24])
    str(r3, [r1, 28])
    str(r3, [r1, 32])
    str(r3, [r1, 36])
    str(r3, [r1, 40])
    str(r3, [r1, 44])
    str(r3, [r1, 48])
    str(r3, [r1, 52])
    str(r3, [r1, 56])
    str(r3, [r1, 60])
    str(r3, [r1, 64])
    str(r3, [r1, 68])
    label(LOOP)
    ldr(r3, [r2, 0])            # s
    ldr(r7, [r1, 0])
    add(r6, r2, r7)
    ldr(r4, [r6, 0])            # i
    add(r6, r6, r7)
    ldr(r5, [r6, 0])            # v
    add(r6, r6, r7)
    ldr(r6, [r6, 0])            # d
    # readback: |d - s| > dtol (the same as d - s > dtol or < -dtol, any dtol)
    sub(r6, r6, r3)
    bpl(DABS)
    neg(r6, r6)
    label(DABS)
    ldr(r7, [r0, 12])
    cmp(r6, r7)
    ble(DOK)
    ldr(r6, [r0, 68])
    add(r6, r6, 1)
    str(r6, [r0, 68])
    cmp(r6, 2)
    blt(DEND)
    mov(r6, 1)
    str(r6, [r1, 4])
    b(DEND)
    label(DOK)
    mov(r6, 0)
    str(r6, [r0, 68])
    label(DEND)
    # |s|: its sum and peak; the stimulation count
    mov(r6, r3)
    cmp(r6, 0)
    bge(SABS)
    neg(r6, r6)
    label(SABS)
    ldr(r7, [r1, 12])
    add(r7, r7, r6)
    str(r7, [r1, 12])
    ldr(r7, [r1, 44])
    cmp(r6, r7)
    ble(SPK)
    str(r6, [r1, 44])
    label(SPK)
    cmp(r3, 0)
    beq(STIM)
    ldr(r7, [r0, 60])
    add(r7, r7, 1)
    str(r7, [r0, 60])
    label(STIM)
    # the sign held: s and the previous set both non-zero, of one sign
    ldr(r7, [r0, 84])           # ps
    cmp(r3, 0)
    beq(HOLD0)
    cmp(r7, 0)
    beq(HOLD0)
    mov(r6, r3)
    eor(r6, r7)
    bmi(HOLD0)
    ldr(r6, [r0, 88])
    add(r6, r6, 1)
    str(r6, [r0, 88])
    b(HOLD1)
    label(HOLD0)
    mov(r6, 0)
    str(r6, [r0, 88])
    label(HOLD1)
    sub(r6, r3, r7)             # |s - ps|
    bpl(SDIF)
    neg(r6, r6)
    label(SDIF)
    ldr(r7, [r1, 16])
    add(r7, r7, r6)
    str(r7, [r1, 16])
    str(r3, [r0, 84])           # ps = s
    # |i|: its sum, the charge's (set non-zero or |i| above the floor), its peak
    mov(r6, r4)
    cmp(r6, 0)
    bge(IABS)
    neg(r6, r6)
    label(IABS)
    ldr(r7, [r1, 20])
    add(r7, r7, r6)
    str(r7, [r1, 20])
    cmp(r3, 0)
    bne(QADD)
    cmp(r6, 20)
    ble(QEND)
    label(QADD)
    ldr(r7, [r1, 24])
    add(r7, r7, r6)
    str(r7, [r1, 24])
    label(QEND)
    ldr(r7, [r1, 36])
    cmp(r6, r7)
    ble(IPK)
    str(r6, [r1, 36])
    label(IPK)
    # |v|: its sum and peak
    mov(r6, r5)
    cmp(r6, 0)
    bge(VABS)
    neg(r6, r6)
    label(VABS)
    ldr(r7, [r1, 28])
    add(r7, r7, r6)
    str(r7, [r1, 28])
    ldr(r7, [r1, 40])
    cmp(r6, r7)
    ble(VPK)
    str(r6, [r1, 40])
    label(VPK)
    sub(r6, r4, r3)             # |i - s|
    bpl(EABS)
    neg(r6, r6)
    label(EABS)
    ldr(r7, [r1, 32])
    add(r7, r7, r6)
    str(r7, [r1, 32])
    # the ADC still: i and v both as the sample before
    ldr(r6, [r0, 76])
    cmp(r4, r6)
    bne(STILL0)
    ldr(r6, [r0, 80])
    cmp(r5, r6)
    bne(STILL0)
    ldr(r6, [r0, 72])
    add(r6, r6, 1)
    str(r6, [r0, 72])
    cmp(r6, 8)
    blt(STILL1)
    mov(r6, 1)
    str(r6, [r1, 8])
    b(STILL1)
    label(STILL0)
    mov(r6, 0)
    str(r6, [r0, 72])
    label(STILL1)
    str(r4, [r0, 76])           # pi = i
    str(r5, [r0, 80])           # pv = v
    # the telemetry window's sums and squares
    ldr(r6, [r1, 48])
    add(r6, r6, r3)
    str(r6, [r1, 48])
    ldr(r6, [r1, 52])
    add(r6, r6, r4)
    str(r6, [r1, 52])
    ldr(r6, [r1, 56])
    add(r6, r6, r5)
    str(r6, [r1, 56])
    mov(r6, r3)
    mul(r6, r3)
    asr(r6, r6, 6)
    ldr(r7, [r1, 60])
    add(r7, r7, r6)
    str(r7, [r1, 60])
    mov(r6, r4)
    mul(r6, r4)
    asr(r6, r6, 6)
    ldr(r7, [r1, 64])
    add(r7, r7, r6)
    str(r7, [r1, 64])
    mov(r6, r5)
    mul(r6, r5)
    asr(r6, r6, 10)
    ldr(r7, [r1, 68])
    add(r7, r7, r6)
    str(r7, [r1, 68])
    add(r2, r2, 4)
    ldr(r7, [r1, 72])
    cmp(r2, r7)
    bcs(DONE)
    b(LOOP)
    label(DONE)
    mov(r0, 0)                  # a small int: the call allocates nothing
