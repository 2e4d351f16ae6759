"""The hardware interface the firmware's logic uses. It knows nothing of protocols.

Every driver (hal.rp2, hal.esp32, hal.sim) subclasses Hal. Currents are integer microamps,
voltages integer millivolts, times integer milliseconds. Converting uA to DAC words
(through the board's calibration, hal.calib) and clamping to the board's
hw_current_limit_uA happen in the driver, below the firmware's logic, so no caller ever
handles a raw DAC code. Methods a driver need not provide have harmless defaults here
(as Pybricks' NOT_SUPPORTED does), so the app never asks what kind of board it runs on.

The block path. Output and sense are paced by the hardware (or by the simulated clock):
the control loop keeps the output queue full and checks what was measured:

    while hal.room() >= n:  engine.fill(buf, n); hal.write(buf, n)
    m = hal.sense(set_b, i_b, v_b, d_b, cap, n)  # aligned samples measured so far
    for each block of n in set_b[0:m]: supervisor.check(set_b, i_b, v_b, d_b, n, ..., j0)

sense() pairs every measured sample with the set sample it belongs to (the analog path's
latency, declared in the board file, is the driver's business), so the supervisor always
compares like with like. write(), sense() and zero() must not allocate: the control
path runs with the heap locked.

Several electrodes (issue 12): a driver with channels > 1 independent current sources runs a
session of C driven electrodes (start(fs, C)), the return tied to the board's ground.
Buffers are then interleaved, sample-major: word k*C + c is driven electrode c at sample k,
and every count (n, b, room(), sense()'s return) is in samples, not words. With C = 1
nothing changes.
"""


class Hal:
    SIMULATED = False          # the simulated board says so in telemetry (flag F_SIM)
    channels = 1               # independent current sources
    PASS_MS = 1                # the block loop sleeps this long after a pass that wrote nothing

    def __init__(self, board):
        self.board = board

    # ---- paced output and sense --------------------------------------------------------
    def electrodes(self, names):
        """The session's electrode names, driven first (driven order) then the return; called
        before every start() (a two-electrode session: [anode, cathode]). A driver that
        names things per electrode (the simulated board's faults) keeps them."""

    def start(self, fs, channels=1):
        """Prepare paced output at fs samples per second for channels driven electrodes
        (1 <= channels <= self.channels); the output stays at zero current until write()
        queues samples. Discards anything queued before."""
        raise NotImplementedError

    def room(self):
        """How many samples write() should take now (0: none yet; -1: the output has run
        dry since start(), see underruns(); -1 - code: the driver's fast trip found a hard
        fault, code, and already zeroed the output, see arm_trip()). A driver may hold back
        until a worthwhile chunk is free. Called first in every step: a driver reads its hardware positions
        here, once, and write()/sense() use them."""
        raise NotImplementedError

    def write(self, buf, n):
        """Queue n samples (uA, n <= room()) for output at the sample rate: buf[0:n], or with
        C channels buf[0:n*C] interleaved (buf[k*C + c]: electrode c at sample k). Never waits."""
        raise NotImplementedError

    def sense(self, set_out, i_out, v_out, d_out, n, b):
        """Fill up to n aligned samples measured since the last call: the set current
        (uA, as written), the measured current (uA), the electrode voltage (mV, anode minus
        cathode; with C channels: driven electrode c to the return, i.e. ground) and the DAC
        readback (uA, what the DAC actually puts out); with C channels each array gets
        m*C values interleaved as write()'s. Returns how many samples m (0: none yet). b is
        the supervisor's block: a driver that can should hand over whole blocks of b (the
        last one may be short); the caller checks them in blocks of b whatever comes."""
        raise NotImplementedError

    # write_blocks(buf, n, stride), optional (C >= 2): write() of the C channels' n samples
    # each at buf[c * stride + j] (one block per channel, as the multi engine fills them)
    # instead of interleaved: the multi block loop then skips its interleaving pass.
    # sense_split(sbs, ibs, vbs, dbs, n, b), optional (C >= 2): sense() with electrode c's
    # m samples in sbs[c], ibs[c], vbs[c], dbs[c] (c < C) and the return's at index C as
    # tes.multi.split gives them from sense()'s interleaved ones. A driver that offers it
    # saves the multi block loop a pass over every sample (hal.rp2_multi); without it the
    # loop splits what sense() gives.
    # check_samples(st_address, sample_address, n), optional: the supervisor's per-sample
    # loop in machine code (hal.check_thumb.samples' contract); the multi block loop hands it
    # to tes.supervisor.use_samples, and its supervisors' check_run call it for every block.
    # sine_flat(out, st, f, n), optional: a sine plateau's block in machine code
    # (hal.sine_thumb.sine_flat's contract: tes.kernels' osc_sine then env_flat); the multi
    # block loop hands it to its engine (tes.engine.Engine.use_sine_flat).

    def arm_trip(self, iover_uA, vcomp_mV):
        """The supervisor's per-sample HARD limits for this session (called before start()):
        a driver that can (hal.rp2) checks every sense sample against them between the
        block loop's passes, in an interrupt, and zeroes the output at once on one:
        |i| > iover_uA is overcurrent; |v| >= vcomp_mV is open-circuit where |v| > 1000 |i|
        of that sample, else compliance. It never trips on other drivers (the default)."""

    def tripped_source(self):
        """The driven electrode (index c) the fast trip found its hard fault on, or -1: none,
        or a driver whose trip does not tell (a board of one source)."""
        return -1

    def drain(self):
        """Nothing more will be written this session: the output running on past the last
        sample (zero current) is the end, not an underrun."""

    def underruns(self) -> int:
        """Samples the output ran dry since start() (it put out zero current for them)."""
        return 0

    def stop(self):
        """End paced output (after zero()); the output stays at zero."""

    # ---- output enable, zero, watchdog ----------------------------------------------------
    def enable(self, on):
        """Switch the output relay/enable. Off at boot."""
        raise NotImplementedError

    def zero(self):
        """Output to zero current (every source) and enable off, at once (fault path). Must
        not allocate."""
        raise NotImplementedError

    def start_watchdog(self, ms):
        """Start the hardware watchdog (once started, it cannot be stopped on a board)."""

    def feed(self):
        """Feed the watchdog. Called outside the block path, every few ms."""

    # ---- time, idling, storage -----------------------------------------------------------
    def ticks_ms(self):
        raise NotImplementedError

    def wait(self, ms):
        """Let up to ms pass with nothing to do (a board sleeps until an interrupt; the
        simulated board lets its clock run)."""

    def storage(self):
        """Directory (str) where the journal and calibration live."""
        raise NotImplementedError

    # ---- memory that survives a reset ---------------------------------------------------------
    def retain(self, sid, charge_uC, stim_ms):
        """Keep a running session's figures where a reset (watchdog, fault) leaves them, so
        the journal can close the session with them at boot: no flash write mid-session
        (one stalls the CPU for tens of ms). Called every tick; must be cheap."""

    def retained(self) -> "tuple[int, int, int] | None":
        """(sid, charge_uC, stim_ms) kept by retain() before the last reset, or None."""
        return None

    # ---- session notifications -------------------------------------------------------------
    def session_started(self):
        """A stimulation session (not a check or stream) has just started."""

    def session_ended(self):
        """The session ended; the output is already zero."""
