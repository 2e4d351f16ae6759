"""The host's end of the link: requests and replies, and a stream of telemetry and
events, over any transport. Uses the firmware's own codec (tes.link)."""
import json
import time

from tes import link as L

from tesctl.errors import LinkError
from tesctl.transport import TransportError

# Reply timeouts (wall s), sized for a slow device: the virtual RP2040 runs at ~0.1x real time.
REQUEST_S = 20.0
CHECK_S = 120.0


class DeviceError(LinkError):
    """The device refused a command or the link failed; one sentence (exit 3). `code` is
    the device's error code (docs/wire.md), if it sent one, and `detail` its detail
    (a CHANGE refusal's reason)."""

    def __init__(self, message, code=None, detail=None):
        super().__init__(message)
        self.code = code
        self.detail = detail


class Frame:
    __slots__ = ("type", "seq", "payload", "obj", "rx_s")

    def __init__(self, typ, seq, payload, rx_s=None):
        self.rx_s = rx_s              # time.time() when the host read it (tesctl.clock)
        self.type = typ
        self.seq = seq
        self.payload = payload
        self.obj = None
        if typ in (L.REPLY, L.ERROR, L.EVENT, L.LOG):
            try:
                self.obj = json.loads(payload.decode())
            except ValueError:
                self.obj = {}


class Device:
    def __init__(self, transport, on_frame=None):
        self.t = transport
        self.dec = L.Decoder()
        self.seq = 0
        self.on_frame = on_frame      # called with every TELEM/EVENT/RAW/LOG frame
        self.rx_seq = None
        self.lost = 0                 # device frames missing (sequence gaps)
        self.bad = 0
        self.info = {}
        self.last_tx = 0.0
        self.events = []              # every EVENT received, in order

    # ---- frames -------------------------------------------------------------------
    def send(self, typ, payload=b""):
        self.t.write(L.encode(typ, self.seq, payload))
        self.last_tx = time.monotonic()
        seq = self.seq
        self.seq = L.seq_next(self.seq)
        return seq

    def pump(self, timeout=0.05):
        """Read what arrived; dispatch it; return the list of frames."""
        data = self.t.read(timeout)
        frames = []
        if not data:
            return frames
        rx_s = time.time()
        for item in self.dec.feed(data):
            if item[0] == L.BAD:
                self.bad += 1
                continue
            typ, seq, payload = item
            if self.rx_seq is not None:
                gap = L.seq_delta(self.rx_seq, seq)
                if gap > 1:
                    self.lost += gap - 1
            self.rx_seq = seq
            f = Frame(typ, seq, payload, rx_s)
            if f.type == L.EVENT and f.obj.get("ev") == "boot":
                self.rx_seq = None   # a reboot restarts the device's numbering
            frames.append(f)
            if typ == L.EVENT:
                self.events.append(f.obj)
            if self.on_frame is not None and typ != L.REPLY and typ != L.ERROR:
                self.on_frame(f)
        return frames

    def request(self, typ, obj=None, payload=None, timeout=REQUEST_S):
        """Send a command; return the REPLY object, or raise DeviceError on ERROR."""
        if payload is None:
            payload = L.dumps(obj or {}).encode()
        seq = self.send(typ, payload)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in self.pump(0.05):
                if f.type in (L.REPLY, L.ERROR) and f.obj.get("re") == seq:
                    if f.type == L.ERROR:
                        raise DeviceError("device refused %s: %s (%s)" % (L.NAMES.get(typ, typ), f.obj.get("error"),
                                                                          f.obj.get("detail")), f.obj.get("error"),
                                          f.obj.get("detail"))
                    return f.obj
        raise DeviceError("no reply from the device to %s within %.0f s" % (L.NAMES.get(typ, typ), timeout))

    def wait_event(self, kind, timeout=10.0, since=0):
        """The first EVENT of this kind (or of any of a tuple of kinds) received at or after
        index `since` of self.events."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[since:]:
                if ev.get("ev") in kinds:
                    return ev
            if time.monotonic() >= deadline:
                break
            self.pump(0.05)
        raise DeviceError("the device sent no %s event within %.0f s" % (" or ".join(kinds), timeout))

    # ---- commands -----------------------------------------------------------------
    def hello(self, timeout=REQUEST_S):
        self.t.write(b"\x00")          # flush any partial frame in the device's decoder
        self.seq = 0
        self.rx_seq = None
        self.info = self.request(L.HELLO, {"link": L.LINK_VERSION, "host": "tesctl"}, timeout=timeout)
        return self.info

    def load(self, data):
        reply = None
        for payload in L.load_payloads(data):
            reply = self.request(L.LOAD, payload=payload)
        return reply

    def check(self, current_uA=100, duration_ms=500):
        mark = len(self.events)
        self.request(L.CHECK, {"current_uA": current_uA, "duration_ms": duration_ms})
        ev = self.wait_event(("check", "end"), timeout=CHECK_S, since=mark)
        if ev["ev"] == "end":
            # A device fault ended the check and this firmware sent no result for it (ours
            # sends a failed check event first): say so now, not after CHECK_S.
            raise DeviceError("the impedance check ended without a result: %s %s"
                              % (ev.get("outcome"), ev.get("reason")))
        return ev

    def start(self, sha256):
        return self.request(L.START, {"sha256": sha256})

    def stop(self):
        return self.request(L.STOP, {})

    def abort(self, reason="operator-abort"):
        return self.request(L.ABORT, {"reason": reason})

    def status(self):
        return self.request(L.STATUS, {})

    def change(self, param, value, at_ms=None):
        """An online change (docs/online.md) at session time at_ms (None: as soon as the
        device can). -> {"at_ms", "at_sample"}; DeviceError code "refused" with the reason."""
        obj = {"param": param, "value": int(value)}
        if at_ms is not None:
            obj["at_ms"] = int(at_ms)
        return self.request(L.CHANGE, obj)

    def heartbeat(self):
        self.send(L.HEARTBEAT, b"")

    def raw(self, on):
        return self.request(L.RAWREQ, {"on": bool(on)})

    def stream(self, on, current_uA=100):
        return self.request(L.STREAM, {"on": bool(on), "current_uA": current_uA} if on else {"on": False})

    def journal(self):
        records, start = [], 0
        while start is not None:
            reply = self.request(L.JOURNAL, {"start": start, "count": 16})
            records += reply.get("records", [])
            start = reply.get("next")
        return records

    def close(self):
        try:
            self.t.close()
        except (OSError, TransportError):
            pass
