"""The device's end of the link: frames in and out, and nothing else touches the port.

Out: replies, errors, events, telemetry and raw samples, batched and flushed by the app.
In: bytes from the port are decoded into frames; a frame that fails its checks gets one
ERROR (at most one per ERROR_GAP_MS), a good one goes to the app's handler with its
sequence number judged (see poll). See docs/wire.md for the messages.
"""
from tes import link as L
from tes.session import ticks_add, ticks_diff

try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

ERROR_GAP_MS = 100     # at most one framing ERROR per 100 ms


class LinkService:
    def __init__(self, port, hal):
        self.port = port
        self.hal = hal
        self.enc = L.Encoder()
        self.dec = L.Decoder()
        self.tx_seq = 0
        self.rx_seq = None
        now = hal.ticks_ms()
        self.last_rx = now
        self.last_err = ticks_add(now, -ERROR_GAP_MS)
        self.last_flush = now
        self.rx_errors = 0
        self.rx_lost = 0
        self.telem = bytearray(L.TELEM_SIZE)
        self.raw = bytearray(L.MAX_PAYLOAD)

    # ---- out ------------------------------------------------------------------------------
    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def send(self, typ, payload=b""):
        self.port.write(self.enc.frame(typ, self.tx_seq, payload))
        self.tx_seq = (self.tx_seq + 1) & L.SEQ_MASK

    def send_json(self, typ, obj):
        self.send(typ, L.dumps(obj).encode())

    def reply(self, re, **fields):
        fields["re"] = re
        fields["ok"] = True
        self.send_json(L.REPLY, fields)

    def error(self, re, code, detail=""):
        self.send(L.ERROR, L.error_payload(re, code, detail))

    def event(self, kind, **fields):
        fields["ev"] = kind
        fields["t_ms"] = self.hal.ticks_ms()
        self.send_json(L.EVENT, fields)

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def telemetry(self, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags):
        n = L.pack_telem(self.telem, self.hal.ticks_ms(), state, set_uA, meas_uA, v_mV,
                         z_ohm if z_ohm is not None and z_ohm >= 0 else None, charge_uC, flags)
        self.send(L.TELEM, self.telem if n == len(self.telem) else self.telem[:n])

    def raw_samples(self, first, vals, n):
        k = L.pack_raw(self.raw, first, vals, n, L.CH_SET)
        self.send(L.RAW, memoryview(self.raw)[:k])

    def pending(self):
        return self.port.pending()

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def flush(self):
        self.last_flush = self.hal.ticks_ms()
        self.port.flush()

    def heard_within(self, ms):
        return ticks_diff(self.hal.ticks_ms(), self.last_rx) <= ms

    def host_age(self, now):
        return ticks_diff(now, self.last_rx)

    # ---- in -------------------------------------------------------------------------------
    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def poll(self, handler):
        """Read what arrived and hand each good frame to handler(typ, seq, payload).
        Sequence rule: HELLO restarts numbering; any other frame must come after the last
        one (a duplicate or an old frame gets out-of-order). Returns True if bytes came."""
        data = self.port.read()
        if not data:
            return False
        for item in self.dec.feed(data):
            if item[0] == L.BAD:
                self.rx_errors += 1
                now = self.hal.ticks_ms()
                if ticks_diff(now, self.last_err) >= ERROR_GAP_MS:
                    self.last_err = now
                    self.error(None, item[1], "frame dropped")
                continue
            typ, seq, payload = item
            if typ == L.HELLO:
                self.rx_seq = None
            elif self.rx_seq is not None and L.seq_delta(self.rx_seq, seq) <= 0:
                self.error(seq, L.E_OUT_OF_ORDER, "seq %d after %d" % (seq, self.rx_seq))
                continue
            if self.rx_seq is not None and L.seq_delta(self.rx_seq, seq) > 1:
                self.rx_lost += L.seq_delta(self.rx_seq, seq) - 1
            self.rx_seq = seq
            self.last_rx = self.hal.ticks_ms()
            handler(typ, seq, payload)
        return True
