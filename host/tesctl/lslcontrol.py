"""Online changes from an LSL stream (`tesctl run --control-lsl NAME`, docs/online.md).

Two kinds of stream, told apart by their channel format:
- strings (markers): each sample "PARAM=VALUE" (amplitude_uA=1500, frequency_mHz=10500,
  phase_deg=90, offset_uA=0, burst=1) or "burst=on"/"burst=off";
- one numeric channel: a gate, burst on while it is >= 0.5 and off below (a change is sent
  on each crossing only).
Each change is scheduled at the session time of the sample's LSL timestamp plus
`delay_ms` (through the clock mapping), or as soon as the device can when delay_ms is
None. The device judges every change against the protocol's [online] bounds; a refusal is
a warning in events.tsv (`change-refused:burst=1:too-soon`), never the end of the session.
"""
import threading
import time

from tes.online import NAMES

from tesctl.device import DeviceError
from tesctl.lsl import _pylsl
from tesctl.errors import InputError

PARAMS = NAMES[1:]          # what CHANGE may name (tes.online)


def parse_marker(text):
    """"PARAM=VALUE" -> (param, int value), or None for anything else."""
    param, sep, value = str(text).strip().partition("=")
    param = param.strip()
    if not sep or param not in PARAMS:
        return None
    value = value.strip().lower()
    if param == "burst" and value in ("on", "off"):
        return param, 1 if value == "on" else 0
    try:
        return param, int(value)
    except ValueError:
        return None


class LslControl:
    def __init__(self, run, name, delay_ms=None, resolve_timeout=5.0, warn=print):
        self.run = run
        self.name = name
        self.delay_ms = delay_ms
        self.warn = warn
        lsl = self.lsl = _pylsl()
        found = lsl.resolve_byprop("name", name, minimum=1, timeout=resolve_timeout)
        if not found:
            raise InputError("--control-lsl %s: no LSL stream of that name found within %.0f s"
                             % (name, resolve_timeout))
        info = found[0]
        self.numeric = info.channel_format() != lsl.cf_string
        if self.numeric and info.channel_count() != 1:
            raise InputError("--control-lsl %s: a numeric control stream has one channel (it has %d)"
                             % (name, info.channel_count()))
        self.inlet = lsl.StreamInlet(info, max_buflen=10)
        burst = ((getattr(run, "loaded", None) and run.loaded.canonical.get("online")) or {}).get("burst")
        self.gate = (1 if burst["start"] == "on" else 0) if burst else None   # the device's burst state
        self.offset = 0.0
        self.offset_at = 0.0
        self.applied = []            # (lsl_time, param, value, reply or refusal)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="tesctl-lsl-control", daemon=True)

    def start(self):
        self.inlet.open_stream(timeout=5.0)
        self.offset = self.inlet.time_correction(timeout=5.0)
        self.offset_at = time.monotonic()
        self.thread.start()
        return self

    def close(self):
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(2.0)

    def _loop(self):
        while not self._stop.is_set() and self.run.result is None:
            sample, ts = self.inlet.pull_sample(timeout=0.1)
            if sample is None:
                continue
            if time.monotonic() - self.offset_at > 5.0:
                # The sender's clock offset, refreshed now and then: asking for every
                # sample blocks the first few for hundreds of ms.
                self.offset = self.inlet.time_correction(timeout=1.0)
                self.offset_at = time.monotonic()
            ts += self.offset
            if self.numeric:
                on = 1 if sample[0] >= 0.5 else 0
                if on == self.gate:
                    continue
                change = ("burst", on)     # self.gate follows once the device accepts: a refusal is retried
            else:
                change = parse_marker(sample[0])
                if change is None:
                    self.warn("warning: --control-lsl %s: %r is not PARAM=VALUE: ignored" % (self.name, sample[0]))
                    continue
            self._send(ts, *change)

    def _send(self, ts, param, value):
        at_ms = None
        if self.delay_ms is not None:
            at = self.run.session_ms_for_lsl(ts)
            if at is None:
                self.run.note("change-refused:%s=%s:no-clock" % (param, value))
                return
            at_ms = at + self.delay_ms
        try:
            reply = self.run.change(param, value, at_ms)
            self.applied.append((ts, param, value, reply))
            if param == "burst":
                self.gate = value
        except DeviceError as e:
            why = e.detail if e.code == "refused" else str(e)
            self.applied.append((ts, param, value, why))
            self.run.note("change-refused:%s=%s:%s" % (param, value, why))
