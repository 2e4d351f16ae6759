"""Run the engine under the unix port for `tesctl preview --engine micropython`.

Reads a canonical protocol (JSON) on stdin, writes every sample as int32 little-endian
on stdout. Errors go to stderr (the unix port would print a traceback to stdout,
which is the data channel here).

Two-electrode form: the samples, one after the other. With online changes, stdin is
{"protocol": ..., "changes": [[at_sample, code, value], ...]} (tes.online.fill_scheduled);
a refused change ends the run on stderr ("refused K: why", exit 4). Multi-electrode form (montage
electrodes): per block, n (int32), then the n samples of each of the engine's C + 1
outputs in turn (the driven electrodes in montage order, then the return).
"""
import json
import sys
from array import array

from tes import online
from tes.engine import Engine

BLOCK = 1024


def _multi(engine, out):
    width = engine.channels + 1
    bufs = [array("i", [0] * BLOCK) for _ in range(width)]
    views = [memoryview(b) for b in bufs]
    head = array("i", [0])
    while True:
        n = engine.fill_all(bufs, BLOCK)
        if not n:
            break
        head[0] = n
        out.write(head)
        for k in range(width):
            out.write(bytes(views[k][:n]) if n < BLOCK else bufs[k])


def main():
    try:
        doc = json.loads(sys.stdin.buffer.read())
        proto = doc["protocol"] if "changes" in doc else doc
        changes = doc["changes"] if "changes" in doc else []
        engine = Engine(proto)
        out = sys.stdout.buffer
        if "electrodes" in proto["montage"]:
            _multi(engine, out)
            out.flush()
            return
        buf = array("i", [0] * BLOCK)
        view = memoryview(buf)
        pos = 0
        while True:
            n, pos2, why = online.fill_scheduled(engine, buf, BLOCK, changes, pos)
            if why is not None:
                out.flush()
                sys.stderr.write("refused %d: %s\n" % (pos, why))
                sys.exit(4)
            if not n:
                if pos2 != pos:
                    pos = pos2
                    continue
                break
            out.write(bytes(view[:n]) if n < BLOCK else buf)
        out.flush()
    except Exception as e:  # report on stderr, never on the data channel
        sys.stderr.write("engine error: %s: %s\n" % (type(e).__name__, e))
        sys.exit(3)


main()
