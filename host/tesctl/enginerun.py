"""Run the engine over a whole protocol: in this interpreter, or under the unix port."""
import json
import struct
import subprocess
from array import array
from pathlib import Path

from tes import online

from tes.engine import Engine

from tesctl import paths
from tesctl.protofile import canonical_bytes

BLOCK = 4096


class ChangeRefused(Exception):
    """A change of a --changes list that the engine refuses (as the device would)."""

    def __init__(self, index, why):
        super().__init__("change %d refused: %s" % (index + 1, why))
        self.index, self.why = index, why


def samples_cpython(canon, changes=()):
    """Every sample; changes: [(at_sample, code, value)] in time order (tes.online)."""
    engine = Engine(canon)
    out = array("i")
    buf = array("i", [0] * BLOCK)
    changes = list(changes)
    pos = 0
    while True:
        n, pos2, why = online.fill_scheduled(engine, buf, BLOCK, changes, pos)
        if why is not None:
            raise ChangeRefused(pos, why)
        if not n:
            if pos2 != pos:
                pos = pos2
                continue
            break
        out.extend(buf[:n] if n < BLOCK else buf)
    return out


def _run_dump(canon, changes=()):
    env = {"MICROPYPATH": paths.micropypath()}
    data = canonical_bytes(canon)
    if changes:
        data = b'{"changes":%s,"protocol":%s}' % (json.dumps([list(c) for c in changes]).encode(), data)
    proc = subprocess.run([paths.micropython(), "-X", "heapsize=256K", "-m", "tes.dump"],
                          input=data, capture_output=True, env=env)
    if proc.returncode == 4:
        text = proc.stderr.decode(errors="replace").strip()
        index, _, why = text[len("refused "):].partition(": ")
        raise ChangeRefused(int(index), why)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython engine failed: %s" % proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def samples_micropython(canon, changes=()):
    """The firmware engine under the MicroPython unix port (tes/dump.py)."""
    out = array("i")
    out.frombytes(_run_dump(canon, changes))
    return out


def read_changes(path, canon):
    """A --changes file -> [(at_sample, code, value)] in time order. CSV with the header
    at_ms,param,value (param as CHANGE names it: amplitude_uA, offset_uA, frequency_mHz,
    phase_deg, burst), or a session.json whose "changes" the device applied. ValueError
    with the line for anything else."""
    import csv
    fs = canon["sample_rate_hz"]
    rows = []
    text = Path(path).read_text()
    if text.lstrip().startswith("{"):
        for i, c in enumerate(json.loads(text).get("changes") or []):
            # the device's own sample when recorded (at_ms is rounded down to the ms)
            rows.append((i + 1, c.get("at_ms"), c.get("param"), c.get("value"), c.get("at_sample")))
    else:
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if header != ["at_ms", "param", "value"]:
            raise ValueError("%s: the first line must be at_ms,param,value" % path)
        for i, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 3:
                raise ValueError("%s line %d: three fields: at_ms,param,value" % (path, i))
            try:
                rows.append((i, int(row[0]), row[1], int(row[2]), None))
            except ValueError:
                raise ValueError("%s line %d: at_ms and value are whole numbers" % (path, i)) from None
    out = []
    for line, at_ms, name, value, at_sample in rows:
        code = online.code_of(name) if isinstance(name, str) else 0
        if code == 0:
            raise ValueError("%s line %d: %r is not a parameter (one of %s)"
                             % (path, line, name, ", ".join(online.NAMES[1:])))
        if not isinstance(at_ms, int) or at_ms < 0 or not isinstance(value, int):
            raise ValueError("%s line %d: at_ms >= 0 and value whole numbers" % (path, line))
        if isinstance(at_sample, int) and not isinstance(at_sample, bool) and at_sample >= 0:
            out.append((at_sample, code, value))
        else:
            out.append((at_ms // 1000 * fs + at_ms % 1000 * fs // 1000, code, value))
    if any(out[k][0] > out[k + 1][0] for k in range(len(out) - 1)):
        raise ValueError("%s: changes must be in time order" % path)
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
