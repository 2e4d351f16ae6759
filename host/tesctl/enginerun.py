"""Run the engine over a whole protocol: in this interpreter, or under the unix port."""
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


def samples_micropython(canon):
    """The firmware engine under the MicroPython unix port (tes/dump.py)."""
    env = {"MICROPYPATH": paths.micropypath()}
    proc = subprocess.run([paths.micropython(), "-X", "heapsize=256K", "-m", "tes.dump"],
                          input=canonical_bytes(canon), capture_output=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython engine failed: %s" % proc.stderr.decode(errors="replace").strip())
    out = array("i")
    out.frombytes(proc.stdout)
    return out


ENGINES = {"cpython": samples_cpython, "micropython": samples_micropython}


def write_csv(path, values, fs):
    """Columns t_s,current_uA; time from the integer sample index (exact, no float drift)."""
    with open(path, "w", newline="\n") as f:
        f.write("t_s,current_uA\n")
        chunk = []
        for k, v in enumerate(values):
            us = k * 1000000 // fs
            chunk.append("%d.%06d,%d\n" % (us // 1000000, us % 1000000, v))
            if len(chunk) >= 65536:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
