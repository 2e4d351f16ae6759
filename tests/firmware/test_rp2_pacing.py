"""The RP2040 driver's pacing arithmetic (hal.rp2_pacing): exact PIO and ADC dividers for
every rate the pico board accepts, and the ADC's offset that keeps each conversion away
from a DAC latch."""
from hal import rp2_pacing as P

PACE_HZ = 256000000          # boards/pico-mcp4922.json pace_hz
MAX_FS = 20000
LATCH_CYCLES_2 = 76          # hal.pio_dac.dac2: two words (pull, CS, 16 bits x 2, CS high) then LDAC
CONVERSION_US = 2            # the RP2040 ADC takes 96 cycles of 48 MHz


def board_rates():
    return [fs for fs in range(1, MAX_FS + 1) if PACE_HZ % fs == 0]


def test_every_accepted_rate_is_paced_exactly_with_sck_in_spec():
    for fs in board_rates():
        for words, fixed in ((1, P.CYCLES_1), (2, P.CYCLES_2)):
            d, cycles = P.pacing(fs, words)
            assert d * cycles * fs == P.SYS_HZ * 256, (fs, words)
            assert P.SYS_HZ * 256 // (2 * d) <= P.SCK_MAX_HZ, (fs, words)      # SCK <= 20 MHz
            assert cycles >= fixed, (fs, words)


def test_the_adc_divider_gives_exactly_three_conversions_a_sample():
    for fs in board_rates():
        div = P.adc_divider(fs, 3)
        period_256 = div + 256                   # the register holds period - 1 (16.8)
        assert period_256 * fs * 3 == P.ADC_HZ * 256, fs


def test_rates_that_cannot_be_paced_are_refused():
    assert P.pacing(3, 1) is None or P.SYS_HZ * 256 % 3 == 0
    assert P.pacing(7, 1) is None                # 125 MHz x 256 is not a multiple of 7
    assert P.adc_divider(7, 3) is None
    assert P.adc_divider(200000, 3) is None      # faster than the ADC converts


def test_no_conversion_falls_on_a_latch():
    # With the ADC started adc_offset_us after the PIO, each conversion (2 us) ends before
    # a latch or starts after it, with at least a microsecond to spare either way.
    for fs in board_rates():
        if fs < 500:
            continue
        d, cycles = P.pacing(fs, 2)
        period_ns = 10 ** 9 // fs
        latch_ns = LATCH_CYCLES_2 * d * 1000 // (256 * P.SYS_HZ // 1000000)   # PIO cycle = d / 256 sys
        off_ns = P.adc_offset_us(fs, 3) * 1000
        for j in range(3):
            start = (off_ns + j * period_ns // 3) % period_ns
            end = start + CONVERSION_US * 1000
            assert start >= latch_ns + 1000 or end + 1000 <= latch_ns, (fs, j, start, latch_ns)
            assert end + 1000 <= period_ns, (fs, j)          # ...and before the next sample's latch


def test_the_offset_is_half_a_conversion_interval():
    assert P.adc_offset_us(1000, 3) == 167
    assert P.adc_offset_us(5000, 3) == 33
    assert P.adc_offset_us(20000, 3) == 8
