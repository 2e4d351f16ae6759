"""tes.port.copy_into, the port's byte copy into its output buffer: dst[at:at + k] =
src[frm:frm + k] and nothing else of dst changes, also from dst into itself towards the front
(the buffer's compaction), from bytes, bytearray and memoryview sources; on MicroPython the
viper twin (tes.port_fast) does it without allocating. Runs under the unix port, the 32-bit
port (plain code where viper is missing) and CPython."""
import sys

from tes import port as P

try:
    from tes import port_fast as F
except (ImportError, SyntaxError, NameError):     # CPython or a port without viper
    F = None


def rand(seed):
    x = seed
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        yield x >> 8


def test_the_copy_is_the_slice_assignment():
    if sys.implementation.name != "micropython":
        assert F is None
    elif F is not None:
        assert P.copy_into is F.copy_into
    r = rand(3)
    for case in range(300):
        size = 1 + next(r) % 600
        dst = bytearray(next(r) & 0xFF for _ in range(size))
        k = next(r) % (size + 1)
        at = next(r) % (size - k + 1)
        src_len = k + next(r) % 40
        frm = next(r) % (src_len - k + 1)
        raw = bytes(next(r) & 0xFF for _ in range(src_len))
        src = (raw, bytearray(raw), memoryview(raw))[case % 3]
        want = bytearray(dst)
        want[at:at + k] = raw[frm:frm + k]
        P.copy_into(dst, at, src, frm, k)
        assert dst == want, (case, size, at, frm, k)


def test_the_buffer_moves_its_own_bytes_to_the_front():
    r = rand(5)
    for _ in range(200):
        size = 2 + next(r) % 500
        buf = bytearray(next(r) & 0xFF for _ in range(size))
        sent = next(r) % size
        rest = next(r) % (size - sent + 1)
        want = bytearray(buf)
        want[0:rest] = bytes(buf[sent:sent + rest])
        P.copy_into(buf, 0, buf, sent, rest)
        assert buf == want, (size, sent, rest)


def test_the_viper_copy_allocates_nothing():
    try:
        import micropython
    except ImportError:
        return                                     # CPython: no heap to lock
    if F is None or not hasattr(micropython, "heap_lock"):
        return
    buf = bytearray(8192)
    frame = bytes(range(200))
    micropython.heap_lock()
    try:
        F.copy_into(buf, 7000, frame, 0, 200)
        F.copy_into(buf, 0, buf, 7000, 200)
    finally:
        micropython.heap_unlock()
    assert buf[0:200] == frame and buf[7000:7200] == frame
