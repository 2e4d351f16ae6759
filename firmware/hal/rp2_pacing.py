"""Exact pacing on the RP2040 (hal.rp2): the PIO clock divider and cycles per sample, the
ADC's divider, and the ADC's offset from the PIO. Pure integer arithmetic, tested off the
board (tests/firmware/test_rp2_pacing.py)."""
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

# PIO cycles per sample are this plus the delay count Y (the pad loop runs Y + 1 times),
# counted from hal.pio_dac's programs: one word: pull 1, set 2, 16 bits x 2, CS high 2,
# LDAC 4, set 1, mov 1, last jmp 1 = 44; two words: 81.
CYCLES_1 = const(44)
CYCLES_2 = const(81)
SYS_HZ = const(125000000)   # machine.freq() at boot on the RPI_PICO image
ADC_HZ = const(48000000)    # the ADC's clock: the USB PLL
SCK_MAX_HZ = const(20000000)


def pacing(fs, words, sys_hz=SYS_HZ):
    """(divider in 1/256 PIO steps, cycles per sample) with divider * cycles * fs exactly
    sys_hz * 256 and the SCK (half the PIO clock) at most SCK_MAX_HZ; None if fs cannot be
    paced exactly. Pure: tested off the board."""
    fixed = CYCLES_1 if words == 1 else CYCLES_2
    total = sys_hz * 256            # in 1/256 PIO steps: the divider's fraction is 8 bits
    if total % fs:
        return None
    per_sample = total // fs        # divider*256 x cycles
    # Smallest divider (fastest SCK) that is allowed and divides exactly.
    d = (sys_hz * 256 + 2 * SCK_MAX_HZ - 1) // (2 * SCK_MAX_HZ)     # SCK = sys / (2 div)
    while d <= 65535 * 256:
        if per_sample % d == 0:
            cycles = per_sample // d
            if cycles >= fixed and cycles - fixed < (1 << 31):
                return d, cycles
        d += 1
    return None


def adc_divider(fs, nch, adc_hz=ADC_HZ):
    """ADC DIV register for nch conversions per sample: one conversion every
    adc_hz / (fs * nch) cycles, exactly, in 16.8 fixed point; None if not exact or faster
    than the ADC (96 cycles a conversion)."""
    num = adc_hz * 256
    den = fs * nch
    if num % den:
        return None
    per = num // den                 # cycles * 256 between conversions
    if per < 96 * 256:
        return None
    per -= 256                       # the register holds (period - 1)
    return ((per >> 8) << 8) | (per & 0xFF)


def adc_offset_us(fs, nch):
    """How long after the PIO the ADC starts: half a conversion interval, so the nch
    conversions of a sample sit at 1/2nch, 3/2nch... of it, each at least that far from a
    latch (which comes ~1 us after the sample starts: 38 PIO cycles at 40 MHz)."""
    return (1000000 + nch * fs) // (2 * nch * fs)
