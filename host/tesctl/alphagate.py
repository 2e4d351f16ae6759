"""An example closed-loop controller: alpha-gated tACS (docs/online.md, "Alpha-gated tACS").

Reads one EEG channel from an LSL stream, estimates its alpha power online (a Butterworth
band-pass, its state kept from chunk to chunk, then the mean square over a sliding
window), and turns the protocol's bursts on while alpha is high (or low), off otherwise.
The stimulator's [online] section bounds what this may do (how often a burst may start,
its ramp); the device refuses anything else, so a controller bug cannot exceed them.

    from tesctl.api import Session
    from tesctl.alphagate import AlphaGate

    with Session("alpha-gated.toml", port="sim") as s:
        s.start()
        gate = AlphaGate(s, "EEG", channel=0, threshold_uV2=20.0, when="high").start()
        result = s.wait()
        gate.close()

Latency from alpha onset to the burst's first changed sample: the EEG's own transport,
the window (half of it, on average, for the power to cross the threshold), one chunk, the
link, and the device's output lead. docs/online.md gives the figures measured.
"""
import threading
import time

import numpy as np
from scipy import signal

from tesctl.device import DeviceError
from tesctl.errors import InputError
from tesctl.lsl import _pylsl


class AlphaPower:
    """Alpha power of a sample stream, sample by sample, in the input's units squared."""

    def __init__(self, fs, band=(8.0, 12.0), window_s=0.5, order=4):
        self.sos = signal.butter(order, band, btype="bandpass", fs=fs, output="sos")
        self.zi = np.zeros((self.sos.shape[0], 2))
        self.n = max(1, int(round(window_s * fs)))
        self.tail = np.zeros(self.n)          # the last n squared outputs

    def push(self, x):
        """The power after each sample of x (the window's mean square ending there)."""
        y, self.zi = signal.sosfilt(self.sos, np.asarray(x, dtype=float), zi=self.zi)
        sq = np.concatenate([self.tail, y * y])
        c = np.concatenate([[0.0], np.cumsum(sq)])
        power = (c[self.n + 1:] - c[1:len(sq) - self.n + 1]) / self.n
        self.tail = sq[-self.n:]
        return power


class AlphaGate:
    def __init__(self, target, stream, channel=0, threshold_uV2=20.0, when="high", band=(8.0, 12.0),
                 window_s=0.5, resolve_timeout=5.0, start_state=None):
        """target: a tesctl.api.Session or runner.Run (anything with change(param, value)).
        when: "high" stimulates while alpha power is above the threshold, "low" below.
        start_state: the burst state at the start (1 on, 0 off); None: the protocol's own
        ([online] burst start), read from the target's loaded protocol."""
        if when not in ("high", "low"):
            raise InputError("alpha gate: when is 'high' or 'low'")
        lsl = _pylsl()
        found = lsl.resolve_byprop("name", stream, minimum=1, timeout=resolve_timeout)
        if not found:
            raise InputError("alpha gate: no LSL stream %r found within %.0f s" % (stream, resolve_timeout))
        info = found[0]
        if channel >= info.channel_count():
            raise InputError("alpha gate: stream %r has %d channels" % (stream, info.channel_count()))
        self.fs = info.nominal_srate()
        if self.fs <= 0:
            raise InputError("alpha gate: stream %r has no regular sample rate" % stream)
        self.inlet = lsl.StreamInlet(info, max_buflen=10)
        self.target = target
        self.channel = channel
        self.threshold = threshold_uV2
        self.when = when
        self.power = AlphaPower(self.fs, band, window_s)
        self.want = 0                 # the burst state the EEG asks for
        if start_state is None:
            burst = ((getattr(target, "loaded", None) and target.loaded.canonical.get("online")) or {}).get("burst")
            if not burst:
                raise InputError("alpha gate: the protocol has no [online] burst: nothing to gate")
            start_state = 1 if burst["start"] == "on" else 0
        self.have = start_state       # the burst state the device accepted last
        self.log = []                 # (lsl time, power, wanted) at each decision
        self.changes = []             # (lsl time, value, device reply or refusal)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="tesctl-alpha-gate", daemon=True)

    def start(self):
        self.inlet.open_stream(timeout=5.0)
        self.thread.start()
        return self

    def close(self):
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(2.0)

    def _loop(self):
        while not self._stop.is_set():
            chunk, stamps = self.inlet.pull_chunk(timeout=0.05)
            if not stamps:
                continue
            x = np.asarray(chunk, dtype=float)[:, self.channel]
            p = self.power.push(x)
            high = p[-1] > self.threshold
            self.want = 1 if high == (self.when == "high") else 0
            self.log.append((stamps[-1], float(p[-1]), self.want))
            if self.want != self.have:
                self._send(stamps[-1])

    def _send(self, ts):
        try:
            reply = self.target.change("burst", self.want)
        except DeviceError as e:
            # too-soon or ramping: the bounds say not yet; asked again with the next chunk
            self.changes.append((ts, self.want, str(e)))
            time.sleep(0.01)
            return
        except Exception as e:    # the session ended: nothing more to gate
            self.changes.append((ts, self.want, str(e)))
            self._stop.set()
            return
        self.have = self.want
        self.changes.append((ts, self.want, reply))
