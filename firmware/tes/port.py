"""The device's end of the link: a byte stream (USB CDC on a board, a pipe or pty for the
simulated board), read without blocking so the control loop is never held up by it."""
import select


OUT_MAX = 8192          # queued bytes: more than tes.app's FLUSH_BYTES plus a largest frame


class StreamPort:
    """Nothing here allocates while nothing arrives: the tick polls with ipoll (MicroPython:
    no result list) and queues output in one preallocated buffer (on an RP2040 every
    allocation in a full heap is a search: ~40% of the busy CPU during a session before)."""

    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx
        self.poller = select.poll()
        self.poller.register(rx, select.POLLIN)
        self._ipoll = getattr(self.poller, "ipoll", None)
        self.eof = False
        self.buf = bytearray(OUT_MAX)
        self.mv = memoryview(self.buf)
        self.n = 0

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
            if k > OUT_MAX:
                self._send(data)
                return
        self.mv[self.n:self.n + k] = data
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
        n = self.n
        self.n = 0
        self._send(self.mv[:n])

    def _send(self, data):
        try:
            self.tx.write(data)
        except OSError:  # host gone: the session goes on; the heartbeat rule stops it
            self.eof = True
