"""The record of a blinded session (docs/study.md): what anyone may read, and the sealed rest.

In the session folder, in clear: session.json (the same fields in every arm, padded to a
fixed size), events.tsv (one `blinded` phase, faults by name, the end) and sealed.bin: the
whole normal record (session.json with the protocol, telemetry.csv, events.tsv with the
real phases, raw samples) in a tar, padded to a size fixed by the study's duration and
sealed to the study public key.
"""
import io
import json
import os
import tarfile
from datetime import datetime, timedelta, timezone

from tesctl import seal as S
from tesctl.errors import safe_text
from tesctl.recorder import EVENTS_HEADER, now_iso, write_json_atomic

SEALED_FILE = "sealed.bin"
PHASE = "blinded"
JSON_PAD = 4096               # session.json: every session's the same size
FIXED_BYTES = 256 * 1024      # session.json, events, tar headers, fault evidence
TEL_ROW_BYTES = 80            # the longest telemetry.csv row (recorder.telemetry's format)
TEL_PER_S = 50                # the device's telemetry rate
RAW_SAMPLE_BYTES = 8          # "-99999\n" and then some


def sealed_size(duration_ms, sample_rate_hz, raw):
    """The padded size of every sealed record of a study: a bound from the study's length
    (the same for every arm) on what a record can hold, never from the record itself."""
    s = duration_ms / 1000.0 + 60            # a minute of slack: checks, the end, late frames
    size = FIXED_BYTES + int(s * TEL_PER_S * 1.25) * TEL_ROW_BYTES
    if raw:
        size += int(s * sample_rate_hz * 1.05) * RAW_SAMPLE_BYTES
    return size


class BlindRecord:
    """The clear part of a blinded record. Only arm-independent facts go in: the study,
    participant, devices, times, the pre-session check, faults by name, the outcome."""

    def __init__(self, out_dir, meta, warn=None):
        self.dir = str(out_dir)
        self.warn = warn or (lambda m: None)
        self.meta = dict(meta)
        self.meta.update({"blinded": True, "outcome": None, "reason": None, "complete": False,
                          "started_at": now_iso(), "ended_at": None, "t0_at": None,
                          "sealed": {"file": SEALED_FILE, "to": "study public key", "bytes": None}})
        self.rows = []
        self.open_at = None
        self.t0 = None
        self.failure = None
        self.save()

    def started(self, onset):
        if self.open_at is None and not self.rows:
            self.open_at = onset
            self.t0 = datetime.now(timezone.utc)
            self.meta["t0_at"] = self.t0.isoformat(timespec="milliseconds")

    def fault(self, onset, name):
        self.rows.append((onset, 0.0, "fault:%s" % name))

    def finish(self, outcome, reason, end_onset, sealed_bytes):
        if self.open_at is not None and end_onset is not None:
            self.rows.append((self.open_at, max(0.0, end_onset - self.open_at), PHASE))
            self.open_at = None
        if end_onset is not None:
            self.rows.append((end_onset, 0.0, "end:%s" % outcome))
        # The end on the device's clock from t0: how long the host took to compute, draw and
        # write (which could differ by arm) does not show in it.
        ended = (self.t0 + timedelta(seconds=end_onset)).isoformat(timespec="milliseconds") \
            if self.t0 is not None and end_onset is not None else now_iso()
        self.meta.update({"outcome": outcome, "reason": reason, "complete": True, "ended_at": ended})
        self.meta["sealed"]["bytes"] = sealed_bytes
        self.save()
        rows = sorted(self.rows, key=lambda r: r[0])
        text = EVENTS_HEADER + "".join("%.3f\t%.3f\t%s\n" % r for r in rows)
        self._guard(_write, os.path.join(self.dir, "events.tsv"), text.encode())

    def save(self):
        self._guard(write_padded_json, os.path.join(self.dir, "session.json"), self.meta)

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except OSError as e:
            if self.failure is None:
                self.failure = "%s" % (e.strerror or e)
                self.warn("warning: cannot write the blinded record in %s: %s" % (self.dir, self.failure))


def write_padded_json(path, meta):
    """session.json padded with spaces to JSON_PAD bytes: its size tells nothing (a session
    id or an impedance one digit longer, say)."""
    meta = dict(meta, padding="")
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    n = max(0, -(-len(text) // JSON_PAD) * JSON_PAD - len(text))
    meta["padding"] = " " * n
    write_json_atomic(path, meta)


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def pack(files):
    """{name: bytes} -> an uncompressed tar (compression would make the size depend on the
    content before padding; the padding hides it anyway, but there is nothing to gain)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def write_sealed(out_dir, files, public_key, size):
    """Seal the whole record into out_dir/sealed.bin; -> its size in bytes."""
    blob = S.seal(pack(files), public_key, size)
    _write(os.path.join(str(out_dir), SEALED_FILE), blob)
    return len(blob)


def open_sealed(session_dir, private_key, dest):
    """Write the normal record sealed in session_dir into dest (new); -> its session.json."""
    with open(os.path.join(str(session_dir), SEALED_FILE), "rb") as f:
        data = S.unseal(f.read(), private_key)
    os.makedirs(str(dest))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for m in tar.getmembers():
            if not m.isfile() or os.path.basename(m.name) != m.name or m.name.startswith("."):
                raise S.SealError("%s: unexpected entry %s in the sealed record" % (session_dir, safe_text(m.name)))
            with open(os.path.join(str(dest), m.name), "wb") as out:
                out.write(tar.extractfile(m).read())
    blinded = os.path.join(str(session_dir), "session.json")
    if os.path.exists(blinded):
        with open(blinded, "rb") as src, open(os.path.join(str(dest), "blinded_session.json"), "wb") as out:
            out.write(src.read())
    with open(os.path.join(str(dest), "session.json"), encoding="utf-8") as f:
        return json.load(f)
