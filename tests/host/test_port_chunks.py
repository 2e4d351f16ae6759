"""tes.port.StreamPort in drop mode with a small chunk (what a board's main.py uses on its
USB CDC): each write is at most the chunk and follows a writable poll, nothing is lost while
the reader reads, and a reader that stops leaves bytes queued, never a blocked writer."""
import os

from tes import port as P


class Recorder:
    """A pipe's write end that records the size of every write."""

    def __init__(self, f):
        self.f = f
        self.sizes = []

    def fileno(self):
        return self.f.fileno()

    def write(self, data):
        self.sizes.append(len(data))
        return self.f.write(data)


def test_writes_are_chunked_and_whole():
    r, w = os.pipe()
    try:
        rx = os.fdopen(os.dup(r), "rb", buffering=0)
        tx = Recorder(os.fdopen(w, "wb", buffering=0))
        port = P.StreamPort(rx, tx, drop=True, chunk=32)
        frames = [bytes([k]) * (20 + k) for k in range(1, 30)]
        for f in frames:
            port.write(f)
        port.flush()
        assert port.pending() == 0
        assert max(tx.sizes) <= 32 and len(tx.sizes) >= sum(map(len, frames)) // 32
        got = os.read(r, 1 << 16)
        assert got == b"".join(frames)
        rx.close()
    finally:
        os.close(r)


def test_a_reader_that_stops_leaves_bytes_queued_and_the_writer_free():
    r, w = os.pipe()
    try:
        rx = os.fdopen(os.dup(r), "rb", buffering=0)
        tx = Recorder(os.fdopen(w, "wb", buffering=0))
        port = P.StreamPort(rx, tx, drop=True, chunk=32)
        for _k in range(20000):             # far more than the pipe holds (64 KiB)
            port.write(b"x" * 36)
            port.flush()                    # returns: never blocks on the full pipe
        sent = sum(tx.sizes)
        assert sent < 20000 * 36            # the pipe filled; the rest waits or was dropped
        assert port.pending() > 0 and port.dropped > 0
        assert max(tx.sizes) <= 32
        rx.close()
    finally:
        os.close(r)
