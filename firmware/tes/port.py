"""The device's end of the link: a byte stream (USB CDC on a board, a pipe or pty for the
simulated board), read without blocking so the control loop is never held up by it."""
import select


OUT_MAX = 8192          # queued bytes: more than tes.app's FLUSH_BYTES plus a largest frame
SEND_CHUNK = 4096       # a pipe that polls writable takes this much without blocking (PIPE_BUF)


def copy_into(dst, at, src, frm, k):
    """dst[at:at + k] = src[frm:frm + k], front to back (so dst may be src, at <= frm)."""
    dst[at:at + k] = src[frm:frm + k]


try:
    from tes.port_fast import copy_into  # noqa: F811 (viper twin: no slice assignment's tail move)
except (ImportError, SyntaxError, NameError):    # CPython, or a port without viper
    pass


class StreamPort:
    """Nothing here allocates while nothing arrives: the tick polls with ipoll (MicroPython:
    no result list) and queues output in one preallocated buffer (on an RP2040 every
    allocation in a full heap is a search: ~40% of the busy CPU during a session before)."""

    def __init__(self, rx, tx, drop=False, chunk=SEND_CHUNK):
        self.rx = rx
        self.tx = tx
        self.poller = select.poll()
        self.poller.register(rx, select.POLLIN)
        self._ipoll = getattr(self.poller, "ipoll", None)
        self.eof = False
        self.buf = bytearray(OUT_MAX)
        self.mv = memoryview(self.buf)
        self.n = 0
        # drop: a reader that stops reading never blocks the device. Bytes wait in the
        # buffer while the output is not writable; a frame that does not fit then is
        # dropped and counted (the host sees the sequence gap). Off: a full buffer is sent
        # and waits (the fast simulated clock's back-pressure). A board's USB CDC write
        # waits while its 256-byte FIFO is full (up to 500 ms: MicroPython's
        # mp_usbd_cdc_tx_strn), and a writable poll means one byte is free: a board uses
        # drop with a small chunk (main.py), so a host that pauses never stalls the loop.
        self.dropped = 0
        self.chunk = chunk                  # bytes sent after each writable poll
        self._out = None
        self._opoll = None
        if drop:
            self._out = select.poll()
            self._out.register(tx, select.POLLOUT)
            self._opoll = getattr(self._out, "ipoll", self._out.poll)   # found once

    def _ready(self, ms):
        if self._ipoll is None:
            return bool(self.poller.poll(ms))
        for _ in self._ipoll(ms):
            return True
        return False

    def read(self, limit=2048):
        """Whatever has arrived (up to limit bytes), b"" if nothing; sets eof on hang-up."""
        if not self._ready(0):
            return b""
        data = bytearray()
        while len(data) < limit and self._ready(0):
            b = self.rx.read(1)
            if not b:
                self.eof = True
                break
            data += b
        return data

    def wait(self, ms):
        """Block up to ms for input; True if some arrived."""
        return self._ready(ms) and not self.eof

    def write(self, data):
        """Queue bytes; flush() sends them. Batching spares the host a wake-up per frame."""
        k = len(data)
        if self.n + k > OUT_MAX:
            self.flush()
            if self.n + k > OUT_MAX and self._out is not None:
                self.dropped += 1          # the reader is not reading: drop, never block
                return
            if k > OUT_MAX:
                self._send(data)
                return
        copy_into(self.buf, self.n, data, 0, k)     # n + k <= OUT_MAX here: the viper copy checks no bound
        self.n += k

    @property
    def out(self):
        """The queued bytes (a copy: for tests and tools)."""
        return bytes(self.mv[:self.n])

    def pending(self):
        return self.n

    def flush(self):
        if not self.n:
            return
        if self._out is not None:
            return self._flush_writable()
        n = self.n
        self.n = 0
        self._send(self.mv[:n])

    def _writable(self):
        for _ in self._opoll(0):
            return True
        return False

    def _flush_writable(self):
        """Send what the output takes without blocking (SEND_CHUNK at a time, each after a
        writable poll); keep the rest, moved to the front of the buffer."""
        sent, n = 0, self.n
        while sent < n and self._writable():
            k = min(self.chunk, n - sent)
            self._send(self.mv[sent:sent + k])
            sent += k
            if self.eof:
                sent = n
        if sent:
            rest = n - sent
            if rest:
                copy_into(self.buf, 0, self.buf, sent, rest)
            self.n = rest

    def _send(self, data):
        try:
            self.tx.write(data)
        except OSError:  # host gone: the session goes on; the heartbeat rule stops it
            self.eof = True
