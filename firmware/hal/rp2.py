"""RP2040 (Raspberry Pi Pico) driver: see hal.mcu for the shared design.

Pacing: a hard machine.Timer IRQ (virtual timer -1, 1 us resolution). A hard IRQ runs
even during a garbage collection, so GC adds no jitter; it must not allocate, which
hal.mcu's _tick respects. rp2 SPI writes poll the FIFO, so they are safe in a hard IRQ.
The jitter-free upgrade is rp2.PIO + rp2.DMA clocking words out without the CPU; not
done here because it could not be run on a board to verify.
"""
from hal.mcu import McuHal


class Rp2Hal(McuHal):
    TIMER_ID = -1
    HARD_IRQ = True
    WDT_MAX_MS = 8388     # RP2040 watchdog counter limit
    WDT_MIN_MS = 1


Hal = Rp2Hal
