"""The hardware interface the firmware's logic uses. It knows nothing of protocols.

Every driver (hal.rp2, hal.esp32, hal.sim) provides this class's methods. Currents are
integer microamps, voltages integer millivolts, times integer milliseconds. Converting
uA to DAC codes (through the board's calibration) and clamping to the board's
hw_current_limit_uA happen here, below the firmware's logic, so no caller ever handles a
raw DAC code.
"""

# Layout of the array('i', SENSE_LEN) that sense() fills, per block just written.
I_MEAN = 0       # mean measured current, uA
I_MIN = 1        # lowest measured current, uA
I_MAX = 2        # highest measured current, uA
V_MEAN = 3       # mean electrode voltage, mV (signed, anode minus cathode)
V_PEAK = 4       # largest |electrode voltage|, mV
ADC_MOVES = 5    # how many times the raw current ADC code changed within the block
DAC_BACK = 6     # DAC readback (uA the DAC was last set to, through calibration)
SENSE_LEN = 7


class Hal:
    def __init__(self, board):
        self.board = board

    def start(self, fs):
        """Prepare paced output at fs samples per second (output stays at zero)."""
        raise NotImplementedError

    def write(self, buf, n):
        """Output buf[0:n] (uA) at the sample rate; returns when the block is queued and
        the previous one consumed. Must not allocate."""
        raise NotImplementedError

    def sense(self, out):
        """Fill out (array('i', SENSE_LEN)) with the sense figures of the last block.
        Must not allocate."""
        raise NotImplementedError

    def enable(self, on):
        """Switch the output relay/enable. Off at boot."""
        raise NotImplementedError

    def zero(self):
        """Output to zero current and enable off, at once (fault path). Must not allocate."""
        raise NotImplementedError

    def ticks_ms(self):
        raise NotImplementedError

    def feed(self):
        """Feed the watchdog."""
        raise NotImplementedError

    def storage(self):
        """Directory (str) where the journal and calibration live."""
        raise NotImplementedError
