"""When `tesctl run` sends the device a heartbeat: every 250 ms of the DEVICE's clock.

The device counts heartbeats on its own clock (tes/app.py HEARTBEAT_LATE_MS = 1000 flags
the host late in telemetry; tes/supervisor.py HOST_LOST_MS = 3000 stops the session). A
board runs at real time, so 0.25 s of real time was 250 device ms; the virtual RP2040
(rp2040js) runs at 0.05-0.3x, so a real-time heartbeat landed 13-80 times a device second
there, each costing the device ~2.3 ms of CPU (issue 9): idle figures then depended on the
host's load. Paced by the t_ms of the telemetry frames, every board gets 4 a device second.

When frames stop coming (a board between sessions sends one a second; a stalled link or
emulator), the real-time rule of before takes over. STALL_S, why 0.5 s:
- a real-time board in a session sends a frame every 20 ms: the device rule fires on the
  first frame 250 ms after the last heartbeat's, every ~260 ms (the real-time rule of
  before: every 250-270 ms of its 20 ms loop), the same cadence;
- if its frames stop, the last one came at most ~0.27 s after the last heartbeat (a later
  one is >= 250 device ms on and would have sent one), so the fallback sends by
  0.27 + STALL_S + 0.02 (the loop) = 0.79 s after it: under HEARTBEAT_LATE_MS (1 s) with
  0.2 s for USB and scheduling, far under HOST_LOST_MS (3 s);
- on the emulator a frame every 20 device ms reaches the host every 0.07-0.4 s of real
  time, under STALL_S, so the device rule paces it; a longer stall adds at most one
  heartbeat per 0.25 s of real time: more per device second, never fewer, so neither
  device rule can fire from it.
"""

EVERY_MS = 250        # device ms between heartbeats while telemetry flows
EVERY_S = 0.25        # real s between heartbeats when it does not (as before)
STALL_S = 0.5         # real s without a new frame before the real-time rule takes over
T_MOD = 1 << 32       # TELEM t_ms is a u32 on the wire (tes/link.py TELEM_FMT)


class Heartbeat:
    """due(now, t_ms) each loop pass, with the host's monotonic seconds and the t_ms of
    the latest telemetry frame (None before any); sent(now) after sending one."""

    def __init__(self, every_ms=EVERY_MS, every_s=EVERY_S, stall_s=STALL_S):
        self.every_ms = every_ms
        self.every_s = every_s
        self.stall_s = stall_s
        self.last_s = None     # host time of the last heartbeat
        self.hb_ms = None      # the device time known when it was sent
        self.seen_ms = None    # the latest frame's t_ms...
        self.seen_s = None     # ...and when it was first seen here

    def due(self, now, t_ms):
        if t_ms is not None and t_ms != self.seen_ms:
            self.seen_ms, self.seen_s = t_ms, now
        if self.last_s is None:
            return True
        if self.hb_ms is not None and self.seen_s is not None and now - self.seen_s < self.stall_s:
            # A device clock going backwards (a reboot) looks like a long advance: sends.
            return (self.seen_ms - self.hb_ms) % T_MOD >= self.every_ms
        return now - self.last_s >= self.every_s

    def sent(self, now):
        self.last_s = now
        self.hb_ms = self.seen_ms
