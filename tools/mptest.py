"""Run the firmware tests under the MicroPython unix port.

Usage: micropython tools/mptest.py [MODULE[.FUNCTION_SUBSTRING]]
Imports every tests/firmware/test_*.py (or the one named) and calls each test_* function
(no arguments).
The same files are collected by pytest under CPython. Prints a closing
"N passed, N failed" line and exits non-zero on any failure.
"""
import gc
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = HERE + "/.."
sys.path[:0] = [ROOT + "/firmware", ROOT + "/tests/firmware"]
if ".frozen" not in sys.path:
    sys.path.append(".frozen")


def main():
    argv = getattr(sys, "argv", None) or [""]      # the WebAssembly port has no sys.argv
    pattern = globals().get("MPTEST_PATTERN") or (argv[1] if len(argv) > 1 else "")
    names = sorted(n[:-3] for n in os.listdir(ROOT + "/tests/firmware")
                   if n.startswith("test_") and n.endswith(".py"))
    passed = failed = 0
    only = pattern.split(".")[0]
    for name in names:
        if only and only != name:
            continue
        mod = __import__(name)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_") or pattern not in name + "." + attr:
                continue
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            gc.collect()     # tests build big arrays: start each one on a clean heap
            try:
                fn()
                passed += 1
            except Exception as e:  # report and go on: every test runs
                failed += 1
                print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
                sys.print_exception(e)
    print("micropython: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
