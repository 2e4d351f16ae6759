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
SEQ_WINDOW = 32        # host frames within this distance of the last one count; farther are refused


class LinkService:
    def __init__(self, port, hal):
        self.port = port
        self.hal = hal
        self.enc = L.Encoder()
        self.dec = L.Decoder()
        self.tx_seq = 0
        self.rx_seq = None
        self.recent = [-1] * SEQ_WINDOW   # seqs of the last SEQ_WINDOW host frames accepted (a ring)
        self.recent_i = 0
        now = hal.ticks_ms()
        self.last_rx = now
        self.last_err = ticks_add(now, -ERROR_GAP_MS)
        self.last_flush = now
        self.rx_errors = 0
        self.rx_lost = 0
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
    def telemetry(self, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags, set_rms_uA=0, meas_rms_uA=0,
                  meas_peak_uA=0, v_rms_mV=0, z_phase_cdeg=None, ext=0):
        self.port.write(self.enc.telem(self.tx_seq, self.hal.ticks_ms(), state, set_uA, meas_uA,
                                       v_mV, z_ohm, charge_uC, flags, set_rms_uA, meas_rms_uA, meas_peak_uA,
                                       v_rms_mV, z_phase_cdeg, ext))
        self.tx_seq = (self.tx_seq + 1) & L.SEQ_MASK

    def raw_samples(self, first, vals, n):
        k = L.pack_raw(self.raw, first, vals, n, L.CH_SET)
        self.send(L.RAW, memoryview(self.raw)[:k])

    def pending(self):
        return self.port.pending()

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def flush(self):
        self.last_flush = self.hal.ticks_ms()
        self.port.flush()

    @micropython.native   # every TELEM frame
    def heard_within(self, ms):
        return ticks_diff(self.hal.ticks_ms(), self.last_rx) <= ms

    def host_age(self, now):
        return ticks_diff(now, self.last_rx)

    # ---- in -------------------------------------------------------------------------------
    def _remember(self, seq):
        self.recent[self.recent_i] = seq
        self.recent_i = (self.recent_i + 1) % SEQ_WINDOW

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def poll(self, handler):
        """Read what arrived and hand each good frame to handler(typ, seq, payload).
        Sequence rule (docs/wire.md): HELLO restarts numbering; STOP and ABORT are taken
        whatever their seq (the emergency stop is never filtered); any other frame is
        refused as out-of-order if its seq repeats one of the last SEQ_WINDOW accepted or
        lies more than SEQ_WINDOW from the newest. So no single frame, however numbered,
        can shut the real host out: it costs at most the one host frame of the same seq.
        Returns True if bytes came."""
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
                for i in range(SEQ_WINDOW):
                    self.recent[i] = -1
            elif self.rx_seq is not None:
                d = L.seq_delta(self.rx_seq, seq)
                fresh = -SEQ_WINDOW <= d <= SEQ_WINDOW and seq not in self.recent
                if not fresh and typ != L.STOP and typ != L.ABORT:
                    self.error(seq, L.E_OUT_OF_ORDER, "seq %d after %d" % (seq, self.rx_seq))
                    continue
                if fresh and d > 1:
                    self.rx_lost += d - 1
                if not fresh or d <= 0:
                    # Taken (a stop, or a frame behind a stray one), but the newest stays.
                    self._remember(seq)
                    self.last_rx = self.hal.ticks_ms()
                    handler(typ, seq, payload)
                    continue
            self.rx_seq = seq
            self._remember(seq)
            self.last_rx = self.hal.ticks_ms()
            handler(typ, seq, payload)
        return True
