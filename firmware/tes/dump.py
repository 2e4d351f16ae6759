"""Run the engine under the unix port for `tesctl preview --engine micropython`.

Reads a canonical protocol (JSON) on stdin, writes every sample as int32 little-endian
on stdout. Errors go to stderr (the unix port would print a traceback to stdout,
which is the data channel here).
"""
import json
import sys
from array import array

from tes.engine import Engine

BLOCK = 1024


def main():
    try:
        proto = json.loads(sys.stdin.buffer.read())
        engine = Engine(proto)
        buf = array("i", [0] * BLOCK)
        out = sys.stdout.buffer
        view = memoryview(buf)
        while True:
            n = engine.fill(buf, BLOCK)
            if not n:
                break
            out.write(bytes(view[:n]) if n < BLOCK else buf)
        out.flush()
    except Exception as e:  # report on stderr, never on the data channel
        sys.stderr.write("engine error: %s: %s\n" % (type(e).__name__, e))
        sys.exit(3)


main()
