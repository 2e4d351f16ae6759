"""Run the engine over a whole protocol: in this interpreter, or under the unix port."""
import struct
import subprocess
from array import array

from tes.engine import Engine

from tesctl import paths
from tesctl.protofile import canonical_bytes

BLOCK = 4096


def samples_cpython(canon):
    engine = Engine(canon)
    out = array("i")
    buf = array("i", [0] * BLOCK)
    while True:
        n = engine.fill(buf, BLOCK)
        if not n:
            break
        out.extend(buf[:n] if n < BLOCK else buf)
    return out


def _run_dump(canon):
    env = {"MICROPYPATH": paths.micropypath()}
    proc = subprocess.run([paths.micropython(), "-X", "heapsize=256K", "-m", "tes.dump"],
                          input=canonical_bytes(canon), capture_output=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython engine failed: %s" % proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def samples_micropython(canon):
    """The firmware engine under the MicroPython unix port (tes/dump.py)."""
    out = array("i")
    out.frombytes(_run_dump(canon))
    return out


ENGINES = {"cpython": samples_cpython, "micropython": samples_micropython}


# ---- the multi-electrode form -----------------------------------------------------------

def _montage_order(canon, outs):
    """The engine's outputs (driven electrodes in montage order, then the return) as
    [(electrode, samples)] in montage order."""
    m = canon["montage"]
    driven = iter(outs[:-1])
    return [(e["name"], outs[-1] if e["name"] == m["return"] else next(driven)) for e in m["electrodes"]]


def channels_cpython(canon):
    """Every electrode's samples, [(name, array('i'))] in montage order (multi form)."""
    engine = Engine(canon)
    width = engine.channels + 1
    outs = [array("i") for _ in range(width)]
    bufs = [array("i", [0] * BLOCK) for _ in range(width)]
    while True:
        n = engine.fill_all(bufs, BLOCK)
        if not n:
            break
        for out, buf in zip(outs, bufs):
            out.extend(buf[:n] if n < BLOCK else buf)
    return _montage_order(canon, outs)


def channels_micropython(canon):
    """The same under the unix port: tes/dump.py writes, per block, n (int32) then each of
    the C + 1 outputs' n samples (int32 little-endian)."""
    data = memoryview(_run_dump(canon))
    width = len(canon["montage"]["electrodes"])
    outs = [array("i") for _ in range(width)]
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        pos += 4
        for out in outs:
            out.frombytes(data[pos:pos + 4 * n])
            pos += 4 * n
    return _montage_order(canon, outs)


CHANNEL_ENGINES = {"cpython": channels_cpython, "micropython": channels_micropython}


def _time(k, fs):
    us = k * 1000000 // fs
    return "%d.%06d" % (us // 1000000, us % 1000000)


def write_csv(path, values, fs):
    """Columns t_s,current_uA; time from the integer sample index (exact, no float drift)."""
    with open(path, "w", newline="\n") as f:
        f.write("t_s,current_uA\n")
        chunk = []
        for k, v in enumerate(values):
            chunk.append("%s,%d\n" % (_time(k, fs), v))
            if len(chunk) >= 65536:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))


def write_csv_multi(path, columns, fs):
    """Columns t_s,<E1>_uA,...: one per electrode in montage order (columns: [(name,
    samples)] from channels_*), so every row sums to exactly 0."""
    names = [name for name, _ in columns]
    with open(path, "w", newline="\n") as f:
        f.write("t_s," + ",".join("%s_uA" % name for name in names) + "\n")
        chunk = []
        for k, row in enumerate(zip(*(values for _, values in columns))):
            chunk.append("%s,%s\n" % (_time(k, fs), ",".join(map(str, row))))
            if len(chunk) >= 65536:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
