"""ESP32 driver: see hal.mcu for the shared design. MCP4922 on SPI(2) (VSPI).

Pacing: hardware machine.Timer(0), soft (scheduled) callbacks: the ESP32 SPI driver takes
FreeRTOS locks and must not be called from a hard ISR. Soft callbacks are delayed by a
garbage collection; the control path does not allocate, so collections are rare, but
jitter is not bounded as on rp2. Watchdog: ESP32 allows no timeout under 1 s.
"""
from hal.mcu import McuHal


class Esp32Hal(McuHal):
    TIMER_ID = 0
    HARD_IRQ = False
    WDT_MAX_MS = 3600000
    WDT_MIN_MS = 1000


Hal = Esp32Hal
