"""The device's end of the link: a byte stream (USB CDC on a board, a pipe or pty for the
simulated board), read without blocking so the control loop is never held up by it."""
import select


class StreamPort:
    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx
        self.poller = select.poll()
        self.poller.register(rx, select.POLLIN)
        self.eof = False
        self.out = bytearray()

    def read(self, limit=2048):
        """Whatever has arrived (up to limit bytes), b"" if nothing; sets eof on hang-up."""
        data = bytearray()
        while len(data) < limit and self.poller.poll(0):
            b = self.rx.read(1)
            if not b:
                self.eof = True
                break
            data += b
        return data

    def wait(self, ms):
        """Block up to ms for input; True if some arrived."""
        return bool(self.poller.poll(ms)) and not self.eof

    def write(self, data):
        """Queue bytes; flush() sends them. Batching spares the host a wake-up per frame."""
        self.out += data

    def pending(self):
        return len(self.out)

    def flush(self):
        if not self.out:
            return
        try:
            self.tx.write(self.out)
        except OSError:  # host gone: the session goes on; the heartbeat rule stops it
            self.eof = True
        self.out = bytearray()
