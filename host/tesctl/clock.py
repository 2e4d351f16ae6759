"""The device's clock seen from the host: a mapping from device time (integer ms, the
telemetry frames' t_ms) to the host's wall clock and to LSL's local_clock(), estimated
online from the frames' arrival times (docs/records.md, "Clock"). Pure: no I/O, no clock
read here; the caller passes every time in.

Every observation is (device_ms, host_s, lsl_s): a frame stamped device_ms on the device
that the host read at host_s (and lsl_s on LSL's clock). Its delay, host_s - device_ms/1000,
is the clocks' offset plus a one-way delay that is never negative (the device's send, the
link, the host's scheduler) and often large (a busy host reads several frames in one go).

Why the lower envelope and not least squares: the delays are one-sided and skewed
(mostly a floor, with a long tail of late reads and spikes of tens of ms), so a
least-squares line through them sits an unknown, load-dependent amount above the floor
and its slope follows whatever the load did over the session. The floor is what is
stable: the fastest a frame ever gets through. The fit is the line that lies below every
observation with the least total excess above it (Moon, Skelly and Towsley 1999, the
linear-programming skew estimate; the same lower-hull idea as NTP's minimum filter).
That line is the supporting line of the observations' lower convex hull at their mean
device time, so only the hull (kept incrementally), n and sums are stored, and one late
read never moves it. The price: the mapping includes the link's minimum one-way delay
(unknowable from one direction alone), so to_host(t) is the earliest the host could have
seen device time t, not when it happened on the device.
"""
import math

METHOD = "lower-envelope"
METHOD_TEXT = ("line below every observation with the least total excess delay above it (lower convex hull of "
               "arrival minus device time, at the mean device time; Moon, Skelly, Towsley 1999)")
MIN_SPAN_S = 2.0          # below this much device time the drift is not estimated (0): 20 ms apart,
                          # two reads a 0.1 ms jitter apart would give a 5000 ppm slope
WINDOW_S = 1.0            # envelope check: the lowest delay per this much device time


def _cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


class Envelope:
    """One mapping, device seconds -> one host clock, fitted on the lower envelope.
    Points are (x, d): x device seconds since the first observation, d the delay
    (host - host at the first observation) - x, so the numbers stay small (ms and drift
    times the session) and the sums stay exact enough for the residuals' RMS."""

    def __init__(self):
        self.ref_ms = 0           # device ms of the first observation
        self.ref_h = 0.0          # its host time
        self.n = 0
        self.last_x = None
        self.lower = []           # lower convex hull of (x, d), x increasing
        self.upper = []           # upper convex hull: the largest excess over any line is on it
        self.sx = self.sd = self.sxx = self.sxd = self.sdd = 0.0
        self.windows = []         # [window index, x, d] of the lowest delay per WINDOW_S of device time
        self.rejected = 0         # device time going back (a reboot): not this session's clock
        self.drift_estimated = False
        self._fit = None

    def observe(self, device_ms, host_s):
        if self.n == 0:
            self.ref_ms, self.ref_h = device_ms, host_s
        x = (device_ms - self.ref_ms) / 1000.0
        if self.last_x is not None and x < self.last_x:
            self.rejected += 1
            return False
        self.last_x = x
        d = (host_s - self.ref_h) - x
        p = (x, d)
        self.n += 1
        self.sx += x
        self.sd += d
        self.sxx += x * x
        self.sxd += x * d
        self.sdd += d * d
        self._push(self.lower, p, below=True)
        self._push(self.upper, p, below=False)
        w = int(x // WINDOW_S)
        if self.windows and self.windows[-1][0] == w:
            if d < self.windows[-1][2]:
                self.windows[-1][1:] = [x, d]
        else:
            self.windows.append([w, x, d])
        self._fit = None
        return True

    @staticmethod
    def _push(hull, p, below):
        if hull and hull[-1][0] == p[0]:          # the same device time: keep the extreme one
            if (p[1] < hull[-1][1]) == below and p[1] != hull[-1][1]:
                hull.pop()
            else:
                return
        while len(hull) >= 2:
            c = _cross(hull[-2], hull[-1], p)
            if (c <= 0) if below else (c >= 0):
                hull.pop()
            else:
                break
        hull.append(p)

    def fit(self):
        """(a, c): d = a + c x; c is the drift (host seconds per device second, minus 1)."""
        if self._fit is not None:
            return self._fit
        h = self.lower
        a, c = min(p[1] for p in h), 0.0
        self.drift_estimated = False
        if len(h) >= 2 and h[-1][0] - h[0][0] >= MIN_SPAN_S:
            xm = self.sx / self.n
            i = 1
            while i < len(h) - 1 and h[i][0] < xm:     # the edge over the mean device time
                i += 1
            p, q = h[i - 1], h[i]
            c = (q[1] - p[1]) / (q[0] - p[0])
            a = p[1] - c * p[0]
            self.drift_estimated = True
            if 1.0 + c <= 1e-6:                   # frames read in one go, same stamp: not a clock
                a, c = min(p[1] for p in h), 0.0
                self.drift_estimated = False
        self._fit = (a, c)
        return self._fit

    def to_host(self, device_ms):
        a, c = self.fit()
        x = (device_ms - self.ref_ms) / 1000.0
        return self.ref_h + x + a + c * x

    def to_device_ms(self, host_s):
        a, c = self.fit()
        x = (host_s - self.ref_h - a) / (1.0 + c)
        return self.ref_ms + int(math.floor(x * 1000.0 + 0.5))

    def excess(self):
        """(max, rms) of the observations' delay over the fit, seconds (both >= 0)."""
        a, c = self.fit()
        mx = max(p[1] - a - c * p[0] for p in self.upper)
        n = self.n
        ss = (self.sdd - 2 * a * self.sd - 2 * c * self.sxd + n * a * a + 2 * a * c * self.sx + c * c * self.sxx)
        return max(0.0, mx), math.sqrt(max(0.0, ss) / n)

    def envelope_gaps(self):
        """The lowest delay of each WINDOW_S of device time over the fit, seconds: how far
        the line is from the arrival times' lower envelope, window by window."""
        a, c = self.fit()
        return [d - a - c * x for _, x, d in self.windows]

    def summary(self):
        a, c = self.fit()
        mx, rms = self.excess()
        gaps = self.envelope_gaps()
        return {"offset_s": self.ref_h + a, "at_device_ms": self.ref_ms,
                "drift_ppm": round(c * 1e6, 3), "drift_estimated": self.drift_estimated,
                "excess_max_ms": round(mx * 1000, 4), "excess_rms_ms": round(rms * 1000, 4),
                "envelope_windows": len(gaps), "envelope_gap_max_ms": round(max(gaps) * 1000, 4),
                "envelope_gap_mean_ms": round(sum(gaps) / len(gaps) * 1000, 4),
                "hull_points": len(self.lower)}

    def span_s(self):
        return self.last_x if self.last_x is not None else 0.0


class Clock:
    """Device ms -> host wall-clock seconds (time.time()) and -> LSL local_clock() seconds.
    observe() every telemetry frame as it arrives; lsl_s None when LSL's clock is not
    available (then the LSL part stays empty and to_lsl raises)."""

    def __init__(self, host_clock="time.time", lsl_clock: "str | None" = "pylsl.local_clock"):
        self.host = Envelope()
        self.lsl = Envelope()
        self.host_clock = host_clock
        self.lsl_clock = lsl_clock

    def observe(self, device_ms, host_s, lsl_s=None):
        device_ms = int(device_ms)
        ok = self.host.observe(device_ms, float(host_s))
        if ok and lsl_s is not None:
            self.lsl.observe(device_ms, float(lsl_s))
        return ok

    @property
    def n(self):
        return self.host.n

    def ready(self):
        return self.host.n > 0

    def to_host(self, device_ms):
        self._need(self.host)
        return self.host.to_host(device_ms)

    def to_lsl(self, device_ms):
        self._need(self.lsl)
        return self.lsl.to_host(device_ms)

    def to_device_ms(self, lsl_time):
        """The device time (integer ms) that maps to lsl_time: when to schedule a change
        for that LSL time (it reaches the device, as an instruction, ahead of it)."""
        self._need(self.lsl)
        return self.lsl.to_device_ms(float(lsl_time))

    def host_to_device_ms(self, host_s):
        self._need(self.host)
        return self.host.to_device_ms(float(host_s))

    def residuals(self, which="host"):
        """{"max_ms", "rms_ms"}: the observations' excess delay over the fit."""
        env = self.host if which == "host" else self.lsl
        self._need(env)
        mx, rms = env.excess()
        return {"max_ms": mx * 1000.0, "rms_ms": rms * 1000.0}

    def summary(self):
        """For session.json "clock" (docs/records.md): null parts until observed."""
        h = self.host
        return {"method": METHOD, "method_text": METHOD_TEXT, "n": h.n, "rejected": h.rejected,
                "span_s": round(h.span_s(), 3), "min_span_s": MIN_SPAN_S, "window_s": WINDOW_S,
                "first_device_ms": h.ref_ms if h.n else None,
                "host": dict(h.summary(), clock=self.host_clock) if h.n else None,
                "lsl": dict(self.lsl.summary(), clock=self.lsl_clock) if self.lsl.n else None}

    @staticmethod
    def _need(env):
        if env.n == 0:
            raise ValueError("no observations for this clock mapping yet")
