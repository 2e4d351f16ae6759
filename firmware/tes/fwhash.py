"""Content hash of the firmware: the same files, hashed the same way, on the host (the
set deploy stages for that board) and on the device (from its filesystem root), so the
host can tell whether a board runs exactly the code it was built with. Sources (.py) and
compiled modules (.mpy) alike: the hash is of what the board runs."""
import hashlib
import os

PACKAGES = ("tes", "hal")
ENTRY = ("main.py",)


def _files(root):
    names = [n for n in ENTRY if _exists(root + "/" + n)]
    for pkg in PACKAGES:
        try:
            listing = os.listdir(root + "/" + pkg)
        except OSError:
            continue
        names += [pkg + "/" + n for n in listing if n.endswith(".py") or n.endswith(".mpy")]
    names.sort()
    return names


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def tree_sha256(root):
    """SHA-256 over (relative path, NUL, content, NUL) of every firmware file, sorted."""
    h = hashlib.sha256()
    buf = bytearray(512)
    for name in _files(root):
        h.update(name.encode())
        h.update(b"\x00")
        with open(root + "/" + name, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf if n == len(buf) else buf[:n])
        h.update(b"\x00")
    return "".join("%02x" % b for b in h.digest())
