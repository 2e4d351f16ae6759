"""Link codec: framing, message types and payload packing for the host <-> device link.

One module, imported by the firmware (MicroPython on rp2/esp32 and the unix port) and by
the host (CPython); both must produce and accept the same bytes. See docs/wire.md.

Frame (before COBS):  type u8 | seq u16 LE | payload (0..MAX_PAYLOAD bytes) | crc32 u32 LE
where crc32 = binascii.crc32(type + seq + payload). The frame is COBS-encoded and followed
by a single 0x00 delimiter. Control payloads are small JSON objects (canonical: sorted keys,
no spaces, see dumps()); TELEM and RAW payloads are packed little-endian binary; LOAD
carries the canonical protocol's raw JSON bytes in chunks, so the device hashes exactly
the bytes the host hashed.

Rules for this file: it must run identically under MicroPython and CPython, so no typing,
no dataclasses, no f-strings; ints stay small on the per-byte paths (32-bit boards).
"""
import binascii
import json
import struct
import sys

try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

LINK_VERSION = 2                        # 2: TELEM carries RMS, peak and the impedance's phase

MAX_PAYLOAD = 1024                      # payload bytes, both directions
HEADER = 3                              # type u8 + seq u16
TRAILER = 4                             # crc32
MIN_RAW = HEADER + TRAILER              # 7: an empty payload
MAX_RAW = HEADER + MAX_PAYLOAD + TRAILER          # 1031
MAX_ENCODED = MAX_RAW + 1 + MAX_RAW // 254        # 1036: worst-case COBS length, no delimiter
SEQ_MASK = 0xFFFF
DEVICE_BIT = 0x80                       # set in every device -> host type

# --- message types ------------------------------------------------------------------
# host -> device (bit 7 clear)
HELLO = 0x01
LOAD = 0x02
CHECK = 0x03
START = 0x04
STOP = 0x05
ABORT = 0x06
STATUS = 0x07
JOURNAL = 0x08
HEARTBEAT = 0x09
EXIT = 0x0A
RAWREQ = 0x0B       # raw sample streaming on/off
STREAM = 0x0C       # telemetry without stimulation on/off
CHANGE = 0x0D       # an online change (tes.online) at a session sample
# device -> host (bit 7 set)
REPLY = 0x81
ERROR = 0x82
EVENT = 0x83
TELEM = 0x84
RAW = 0x85
LOG = 0x86

NAMES = {
    HELLO: "hello", LOAD: "load", CHECK: "check", START: "start", STOP: "stop",
    ABORT: "abort", STATUS: "status", JOURNAL: "journal", HEARTBEAT: "heartbeat",
    EXIT: "exit", RAWREQ: "rawreq", STREAM: "stream", CHANGE: "change",
    REPLY: "reply", ERROR: "error", EVENT: "event", TELEM: "telem", RAW: "raw", LOG: "log",
}
HOST_TYPES = (HELLO, LOAD, CHECK, START, STOP, ABORT, STATUS, JOURNAL, HEARTBEAT, EXIT,
              RAWREQ, STREAM, CHANGE)
DEVICE_TYPES = (REPLY, ERROR, EVENT, TELEM, RAW, LOG)
JSON_TYPES = (HELLO, CHECK, START, STOP, ABORT, STATUS, JOURNAL, HEARTBEAT, EXIT, RAWREQ,
              STREAM, CHANGE, REPLY, ERROR, EVENT, LOG)

# --- device states (the u8 in TELEM, the "state" string in JSON) ------------------------
IDLE = 0
LOADED = 1
CHECKING = 2
READY = 3
RAMP_UP = 4
PLATEAU = 5
RAMP_DOWN = 6
PAUSE = 7
SHAM_OFF = 8
FAULT = 9
STREAMING = 10
STATE_NAMES = ("idle", "loaded", "checking", "ready", "ramp-up", "plateau", "ramp-down",
               "pause", "sham-off", "fault", "streaming")
STIM_STATES = (RAMP_UP, PLATEAU, RAMP_DOWN, PAUSE, SHAM_OFF)

# --- TELEM flags (u16) -----------------------------------------------------------------
F_OUTPUT = 0x0001       # output enable / relay closed
F_SHAM = 0x0002         # the running session is a sham (host may hide it)
F_COMPLIANCE = 0x0004   # drive voltage at the compliance limit
F_HW_LIMIT = 0x0008     # analog hardware current limit active
F_Z_HIGH = 0x0010       # impedance above the protocol/board limit
F_HOST_LATE = 0x0020    # more than 1 s since the last valid host frame
F_RAW = 0x0040          # raw streaming on
F_SIM = 0x0080          # simulated board
F_FAULT = 0x0100        # a fault is latched

# --- error codes (the "error" field of ERROR frames) -----------------------------------
E_BAD_COBS = "bad-cobs"
E_BAD_CRC = "bad-crc"
E_SHORT = "short"
E_OVERSIZE = "oversize"
E_UNKNOWN_TYPE = "unknown-type"
E_BAD_JSON = "bad-json"
E_BAD_FIELD = "bad-field"
E_OUT_OF_ORDER = "out-of-order"
E_BAD_STATE = "bad-state"
E_INVALID_PROTOCOL = "invalid-protocol"
E_HASH_MISMATCH = "hash-mismatch"
E_BUSY = "busy"
E_INTERNAL = "internal"
E_REFUSED = "refused"       # an online change outside the protocol's bounds (detail: why)
ERROR_CODES = (E_BAD_COBS, E_BAD_CRC, E_SHORT, E_OVERSIZE, E_UNKNOWN_TYPE, E_BAD_JSON,
               E_BAD_FIELD, E_OUT_OF_ORDER, E_BAD_STATE, E_INVALID_PROTOCOL,
               E_HASH_MISMATCH, E_BUSY, E_INTERNAL)

_MP = sys.implementation.name == "micropython"

if hasattr(binascii, "crc32"):
    crc32 = binascii.crc32
else:  # pragma: no cover - a port built without binascii.crc32: slow bitwise fallback
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF


# --- sequence numbers --------------------------------------------------------------------
def seq_next(seq):
    return (seq + 1) & SEQ_MASK


def seq_delta(prev, seq):
    """Signed distance from prev to seq in [-32768, 32767]: 1 is the next frame, n > 1
    means n - 1 frames were lost, <= 0 is a duplicate or an old frame."""
    d = (seq - prev) & SEQ_MASK
    return d - 0x10000 if d >= 0x8000 else d


# --- COBS ----------------------------------------------------------------------------------
def cobs_encode_into(src, n, out, pos=0):
    """COBS-encode src[:n] (bytes or bytearray) into out from index pos (no delimiter).
    Returns the end index; out must hold n + 1 + n // 254 bytes from pos."""
    mo = memoryview(out)
    ms = memoryview(src)
    w = pos
    i = 0
    while True:
        z = src.find(b"\x00", i, n)
        seg = n if z < 0 else z
        while seg - i >= 254:
            out[w] = 0xFF
            mo[w + 1:w + 255] = ms[i:i + 254]
            w += 255
            i += 254
        k = seg - i
        out[w] = k + 1
        mo[w + 1:w + 1 + k] = ms[i:seg]
        w += k + 1
        if z < 0:
            return w
        i = z + 1


_cobs_plain = cobs_encode_into
try:
    from tes.link_fast import cobs_encode_into  # noqa: F811 (viper twin on MicroPython)
except (ImportError, SyntaxError, NameError):    # CPython, or a port without viper
    pass


def cobs_encode(data):
    """COBS-encode bytes (no delimiter)."""
    data = bytes(data)
    n = len(data)
    out = bytearray(n + 1 + n // 254)
    w = cobs_encode_into(data, n, out, 0)
    return bytes(out[:w])


def cobs_decode_into(src, n, out):
    """Decode the COBS block src[:n] (bytes or bytearray, no delimiter) into out. Returns
    the decoded length, or -1 if it is malformed (a 0x00 inside, a block running past the
    end) or does not fit in out."""
    if src.find(b"\x00", 0, n) >= 0:
        return -1
    mo = memoryview(out)
    ms = memoryview(src)
    cap = len(out)
    i = 0
    w = 0
    while i < n:
        code = src[i]
        end = i + code
        if end > n:
            return -1
        k = code - 1
        if w + k > cap:
            return -1
        mo[w:w + k] = ms[i + 1:end]
        w += k
        i = end
        if code != 0xFF and i < n:
            if w >= cap:
                return -1
            out[w] = 0
            w += 1
    return w


_cobs_decode_plain = cobs_decode_into
try:
    from tes.link_fast import cobs_decode_into  # noqa: F811 (viper twin on MicroPython)
except (ImportError, SyntaxError, NameError):    # CPython, or a port without viper
    pass


def cobs_decode(data):
    """Decode a COBS block (no delimiter). Raises ValueError if malformed."""
    data = bytes(data)
    out = bytearray(len(data))
    n = cobs_decode_into(data, len(data), out)
    if n < 0:
        raise ValueError("bad COBS")
    return bytes(out[:n])


# --- frames ---------------------------------------------------------------------------------
class Encoder:
    """Frame encoder with reusable buffers (for the device). frame() returns a memoryview
    valid until the next call."""

    def __init__(self):
        self.raw = bytearray(MAX_RAW)
        self._out = bytearray(MAX_ENCODED + 1)
        self._mv = memoryview(self._out)
        # TELEM, 50 a second: its frame is built in place, always TELEM_FRAME bytes (COBS
        # of n < 254 bytes is n + 1 long), from views made once here.
        self._telem_crc = memoryview(self.raw)[:EXT_AT]
        self._telem_out = self._mv[:TELEM_FRAME]
        self._ext_n = 0
        self._ext_crc = None

    @micropython.native     # every frame but the single-source TELEM: no heap frame per call
    def frame(self, typ, seq, payload=b""):
        n = _build_raw(self.raw, typ, seq, payload)
        w = cobs_encode_into(self.raw, n, self._out, 0)
        self._out[w] = 0
        return self._mv[:w + 1]

    @micropython.native     # 50 frames a second
    def telem(self, seq, t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags, set_rms_uA=0,
              meas_rms_uA=0, meas_peak_uA=0, v_rms_mV=0, z_phase_cdeg=None, ext=0):
        """frame(TELEM, seq, a pack_telem payload), byte for byte, with no copy and no
        allocation (on an RP2040 the general path cost ~0.3 ms a frame). ext: the length of
        a multi-electrode extension already written at raw[EXT_AT:] (tes.multi.telem_rows),
        sent after the fields (tes.multicontrol.telemetry; no other frame in between)."""
        raw = self.raw
        raw[0] = TELEM
        raw[1] = seq & 0xFF
        raw[2] = (seq >> 8) & 0xFF
        pack_telem(raw, t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags, set_rms_uA, meas_rms_uA,
                   meas_peak_uA, v_rms_mV, z_phase_cdeg, HEADER)
        if ext:
            n = EXT_AT + ext
            if n != self._ext_n:           # one length a session: its view made once
                self._ext_n = n
                self._ext_crc = memoryview(raw)[:n]
            struct.pack_into("<I", raw, n, crc32(self._ext_crc))
            w = cobs_encode_into(raw, n + TRAILER, self._out, 0)
            self._out[w] = 0
            return self._mv[:w + 1]
        struct.pack_into("<I", raw, EXT_AT, crc32(self._telem_crc))
        cobs_encode_into(raw, EXT_AT + TRAILER, self._out, 0)
        self._out[TELEM_FRAME - 1] = 0
        return self._telem_out


@micropython.native
def _build_raw(raw, typ, seq, payload):
    if typ < 0 or typ > 0xFF:
        raise ValueError("type out of range")
    lp = len(payload)
    if lp > MAX_PAYLOAD:
        raise ValueError("payload too long")
    raw[0] = typ
    raw[1] = seq & 0xFF
    raw[2] = (seq >> 8) & 0xFF
    raw[HEADER:HEADER + lp] = payload
    crc = crc32(memoryview(raw)[:HEADER + lp])
    struct.pack_into("<I", raw, HEADER + lp, crc)     # crc32 is unsigned 32-bit: no mask (a big int op on a board)
    return HEADER + lp + TRAILER


def encode(typ, seq, payload=b""):
    """One complete frame: COBS(type, seq, payload, crc32) + 0x00."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    raw = bytearray(HEADER + len(payload) + TRAILER)
    n = _build_raw(raw, typ, seq & SEQ_MASK, payload)
    out = bytearray(n + 2 + n // 254)
    w = cobs_encode_into(raw, n, out, 0)
    out[w] = 0
    return bytes(out[:w + 1])


def decode(frame):
    """Decode one frame (with or without its trailing 0x00). Returns (type, seq, payload)
    or raises ValueError whose argument is an error code (bad-cobs, short, oversize,
    bad-crc)."""
    frame = bytes(frame)
    if len(frame) and frame[-1] == 0:
        frame = frame[:-1]
    if len(frame) > MAX_ENCODED:
        raise ValueError(E_OVERSIZE)
    out = bytearray(MAX_ENCODED)
    n = cobs_decode_into(frame, len(frame), out)
    code = _check_raw(out, n)
    if code:
        raise ValueError(code)
    return out[0], out[1] | (out[2] << 8), bytes(out[HEADER:n - TRAILER])


def _check_raw(raw, n):
    if n < 0:
        return E_BAD_COBS
    if n < MIN_RAW:
        return E_SHORT
    if n > MAX_RAW:
        return E_OVERSIZE
    got = struct.unpack_from("<I", raw, n - TRAILER)[0]
    if (crc32(memoryview(raw)[:n - TRAILER]) & 0xFFFFFFFF) != got:
        return E_BAD_CRC
    return None


BAD = -1    # first element of a Decoder error item


class Decoder:
    """Streaming frame decoder. feed(data) returns a list of items, in stream order:
        (type, seq, payload)  for a frame whose CRC checked (type is 0..255)
        (BAD, code, nbytes)   for an error; code is one of bad-cobs, short, oversize,
                              bad-crc; nbytes the length of the dropped frame including
                              its 0x00, or MAX_ENCODED + 1 for an overflow.
    Buffers are fixed: an undelimited run longer than MAX_ENCODED is dropped and reported
    once as oversize as soon as it overflows (before its 0x00 arrives, if ever); the
    decoder resynchronises at the next 0x00. The items do not depend on how the stream
    is split into feed() calls.
    Empty frames (0x00 0x00) are ignored: a sender may send 0x00 to flush/sync."""

    def __init__(self):
        self._buf = bytearray(MAX_ENCODED)
        self._mv = memoryview(self._buf)
        self._raw = bytearray(MAX_ENCODED)
        self._n = 0
        self._skip = False      # dropping an oversize run until the next 0x00
        self.frames = 0
        self.errors = 0

    def reset(self):
        """Forget a partial frame (the next byte starts a new one)."""
        self._n = 0
        self._skip = False

    def feed(self, data):
        items = []
        if isinstance(data, memoryview):
            data = bytes(data)
        end = len(data)
        pos = 0
        while pos < end:
            z = data.find(b"\x00", pos)
            stop = end if z < 0 else z
            k = stop - pos
            if not self._skip and self._n + k > MAX_ENCODED:
                self._skip = True
                self._n = 0
                self.errors += 1
                items.append((BAD, E_OVERSIZE, MAX_ENCODED + 1))
            elif not self._skip and k:
                self._mv[self._n:self._n + k] = data[pos:stop]
                self._n += k
            if z < 0:
                break
            # delimiter
            if self._skip:
                self._skip = False
            elif self._n:
                n = self._n
                self._n = 0
                items.append(self._frame(n))
            pos = z + 1
        return items

    def _frame(self, n):
        raw = self._raw
        m = cobs_decode_into(self._buf, n, raw)
        code = _check_raw(raw, m)
        if code:
            self.errors += 1
            return (BAD, code, n + 1)
        self.frames += 1
        return (raw[0], raw[1] | (raw[2] << 8), bytes(raw[HEADER:m - TRAILER]))



# --- canonical JSON -------------------------------------------------------------------------
def dumps(obj):
    """Canonical JSON text: sorted keys, no whitespace. Identical under MicroPython and
    CPython for dict/list/str/int/bool/None (strings as UTF-8, not \\u-escaped). Floats are
    not canonical across ports: the wire uses integers."""
    if isinstance(obj, dict):
        keys = sorted(obj)
        return "{" + ",".join([_dumps_str(k) + ":" + dumps(obj[k]) for k in keys]) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join([dumps(v) for v in obj]) + "]"
    if isinstance(obj, str):
        return _dumps_str(obj)
    return json.dumps(obj)


def _dumps_str(s):
    if not isinstance(s, str):
        raise TypeError("JSON keys must be strings")
    if _MP:
        return json.dumps(s)
    return json.dumps(s, ensure_ascii=False)


def encode_json(typ, seq, obj):
    """A frame whose payload is dumps(obj) as UTF-8."""
    return encode(typ, seq, dumps(obj).encode())


def error_payload(re, code, detail=""):
    """Payload of an ERROR frame: {"detail": ..., "error": code, "re": seq or None}."""
    return dumps({"re": re, "error": code, "detail": detail}).encode()


def decode_json(payload):
    """Parse a JSON object payload. An empty payload is {}. Returns (obj, code, detail):
    code is None on success, else bad-json."""
    if not len(payload):
        return {}, None, ""
    try:
        obj = json.loads(bytes(payload).decode())
    except Exception:  # ValueError, UnicodeError (CPython) / ValueError (MicroPython)
        return None, E_BAD_JSON, "not JSON"
    if not isinstance(obj, dict):
        return None, E_BAD_JSON, "not an object"
    return obj, None, ""


# Command fields: name -> (kind, required). kind: "int" (|v| < 2**30, not bool), "bool",
# "str" (<= STR_MAX chars). Unknown keys are rejected.
STR_MAX = 96
INT_MAX = (1 << 30) - 1
COMMANDS = {
    HELLO: {"link": ("int", True), "host": ("str", False)},
    CHECK: {"current_uA": ("int", False), "duration_ms": ("int", False)},
    START: {"sha256": ("str", True)},
    STOP: {},
    ABORT: {"reason": ("str", False)},
    STATUS: {},
    JOURNAL: {"start": ("int", False), "count": ("int", False)},
    HEARTBEAT: {},
    EXIT: {},
    RAWREQ: {"on": ("bool", True), "decim": ("int", False)},
    STREAM: {"on": ("bool", True), "current_uA": ("int", False)},
    CHANGE: {"param": ("str", True), "value": ("int", True), "at_ms": ("int", False)},
}


def parse_command(typ, payload):
    """Device side: check a host -> device control payload against COMMANDS.
    Returns (obj, code, detail); code is None when valid, else unknown-type, bad-json or
    bad-field (detail names the field). LOAD is binary: use unpack_load()."""
    spec = COMMANDS.get(typ)
    if spec is None:
        return None, E_UNKNOWN_TYPE, "type 0x%02x" % typ
    obj, code, detail = decode_json(payload)
    if code:
        return None, code, detail
    for key in obj:
        if key not in spec:
            return None, E_BAD_FIELD, "unknown field " + key
    for key in spec:
        kind, required = spec[key]
        if key not in obj:
            if required:
                return None, E_BAD_FIELD, "missing " + key
            continue
        v = obj[key]
        isbool = v is True or v is False
        if kind == "bool":
            ok = isbool
        elif kind == "int":
            ok = not isbool and isinstance(v, int) and -INT_MAX <= v <= INT_MAX
        else:
            ok = isinstance(v, str) and len(v) <= STR_MAX
        if not ok:
            return None, E_BAD_FIELD, key + " must be " + kind
    return obj, None, ""


# --- LOAD chunks ------------------------------------------------------------------------------
LOAD_HEADER = 8                         # offset u32 + total u32
LOAD_CHUNK = MAX_PAYLOAD - LOAD_HEADER


def pack_load(offset, total, chunk):
    """LOAD payload: offset u32, total u32, then the raw bytes of the canonical protocol
    JSON from offset (at most LOAD_CHUNK bytes)."""
    if len(chunk) > LOAD_CHUNK or offset + len(chunk) > total:
        raise ValueError("bad LOAD chunk")
    return struct.pack("<II", offset, total) + bytes(chunk)


def load_payloads(data):
    """Split the canonical protocol bytes into the LOAD payloads that carry it."""
    total = len(data)
    out = []
    off = 0
    while True:
        chunk = data[off:off + LOAD_CHUNK]
        out.append(pack_load(off, total, chunk))
        off += len(chunk)
        if off >= total:
            return out


def unpack_load(payload):
    """Returns (offset, total, chunk bytes) or None if the payload is malformed."""
    if len(payload) < LOAD_HEADER:
        return None
    offset, total = struct.unpack_from("<II", payload, 0)
    chunk = bytes(payload[LOAD_HEADER:])
    if offset + len(chunk) > total:
        return None
    return offset, total, chunk


# --- TELEM ------------------------------------------------------------------------------------
# Link 2: the link-1 fields, then the RMS and peak figures and the impedance's phase.
TELEM_FMT = "<IBiiiIiHiiiih"
TELEM_SIZE = struct.calcsize(TELEM_FMT)        # 45
TELEM_FIELDS = ("t_ms", "state", "set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC", "flags")
TELEM_STATS = ("set_rms_uA", "meas_rms_uA", "meas_peak_uA", "v_rms_mV", "z_phase_cdeg")
Z_UNKNOWN = 0xFFFFFFFF
PHASE_UNKNOWN = -32768                          # z_phase_cdeg: no phase estimate
PHASE_MAX = 18000                               # centidegrees


TELEM_FRAME = HEADER + TELEM_SIZE + TRAILER + 2  # COBS adds 1 byte, then the 0x00: 54
EXT_AT = HEADER + TELEM_SIZE                    # a TELEM frame's extension, in Encoder.raw


@micropython.native     # 50 TELEM frames a second
def pack_telem(buf, t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags, set_rms_uA=0, meas_rms_uA=0,
               meas_peak_uA=0, v_rms_mV=0, z_phase_cdeg=None, at=0):
    """Pack a TELEM payload into buf[at:] (>= TELEM_SIZE bytes, reused). Returns TELEM_SIZE.
    z_ohm < 0 or None means unknown/open (Z_UNKNOWN); t_ms wraps at 2**32; z_phase_cdeg
    (V relative to I, centidegrees) None means unknown and is clamped to +/-PHASE_MAX."""
    if z_ohm is None or z_ohm < 0 or z_ohm > Z_UNKNOWN:
        z_ohm = Z_UNKNOWN
    if t_ms < 0 or t_ms > 0x3FFFFFFF:     # a board's ticks never are: no big int on the way
        t_ms &= 0xFFFFFFFF
    if z_phase_cdeg is None:
        z_phase_cdeg = PHASE_UNKNOWN
    elif z_phase_cdeg > PHASE_MAX:
        z_phase_cdeg = PHASE_MAX
    elif z_phase_cdeg < -PHASE_MAX:
        z_phase_cdeg = -PHASE_MAX
    struct.pack_into(TELEM_FMT, buf, at, t_ms, state, set_uA, meas_uA, v_mV,
                     z_ohm, charge_uC, flags, set_rms_uA, meas_rms_uA, meas_peak_uA, v_rms_mV, z_phase_cdeg)
    return TELEM_SIZE


def unpack_telem(payload):
    """(t_ms, state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, flags); z_ohm is None when
    unknown/open. The figures after them: unpack_telem_stats. Extra trailing bytes (later
    versions) are ignored; too short -> ValueError."""
    if len(payload) < TELEM_SIZE:
        raise ValueError("short TELEM")
    t = struct.unpack_from(TELEM_FMT, payload, 0)
    z = t[5]
    if z == Z_UNKNOWN:
        z = None
    return (t[0], t[1], t[2], t[3], t[4], z, t[6], t[7])


def unpack_telem_stats(payload):
    """(set_rms_uA, meas_rms_uA, meas_peak_uA, v_rms_mV, z_phase_cdeg) of a TELEM payload;
    z_phase_cdeg is None when unknown. Too short -> ValueError."""
    if len(payload) < TELEM_SIZE:
        raise ValueError("short TELEM")
    t = struct.unpack_from(TELEM_FMT, payload, 0)
    ph = t[12]
    if ph == PHASE_UNKNOWN:
        ph = None
    return (t[8], t[9], t[10], t[11], ph)


# A multi-electrode session (issue 12) appends, after the TELEM_SIZE bytes, a count u8 E
# and E rows of TELEM_EL_FMT, one per electrode in montage order (the return where the
# montage lists it). A session of two electrodes sends none: its frames stay as they were.
TELEM_EL_FMT = "<iiiiiii"      # set, meas, v means; z; set, meas, v RMS
TELEM_EL_SIZE = struct.calcsize(TELEM_EL_FMT)   # 28
TELEM_EL_MAX = 9               # electrodes: 8 sources and the return
TELEM_EL_FIELDS = ("set_uA", "meas_uA", "v_mV", "z_ohm", "set_rms_uA", "meas_rms_uA", "v_rms_mV")


def pack_telem_electrodes(buf, at, rows):
    """Pack the per-electrode extension into buf[at:] (1 + len(rows) * TELEM_EL_SIZE bytes)
    and return its length. rows: (set_mean_uA, meas_mean_uA, v_mean_mV, z_ohm, set_rms_uA,
    meas_rms_uA, v_rms_mV) per electrode, montage order; z_ohm None or < 0 is unknown (the
    bytes of Z_UNKNOWN: -1 as an i32). The codec's packer (tests, a scripted device); the
    device writes its rows from its supervisors' states (tes.multi.telem_rows)."""
    e = len(rows)
    if e > TELEM_EL_MAX:
        raise ValueError("too many electrodes")
    buf[at] = e
    o = at + 1
    for r in rows:
        z = r[3]
        if z is None or z < 0 or z > 0x7FFFFFFF:
            z = -1
        struct.pack_into(TELEM_EL_FMT, buf, o, r[0], r[1], r[2], z, r[4], r[5], r[6])
        o += TELEM_EL_SIZE
    return o - at


def unpack_telem_electrodes(payload):
    """The extension's rows, montage order, as 7-tuples (z_ohm None when unknown, as in
    unpack_telem); [] for a TELEM payload without one. Truncated -> ValueError."""
    n = len(payload)
    if n < TELEM_SIZE:
        raise ValueError("short TELEM")
    if n == TELEM_SIZE:
        return []
    e = payload[TELEM_SIZE]
    if n < TELEM_SIZE + 1 + e * TELEM_EL_SIZE:
        raise ValueError("short TELEM electrodes")
    out = []
    o = TELEM_SIZE + 1
    for _ in range(e):
        r = struct.unpack_from(TELEM_EL_FMT, payload, o)
        out.append((r[0], r[1], r[2], None if r[3] < 0 else r[3], r[4], r[5], r[6]))
        o += TELEM_EL_SIZE
    return out


# --- RAW --------------------------------------------------------------------------------------
RAW_FMT = "<IHB"                       # first sample index, count, channel
RAW_HEADER = struct.calcsize(RAW_FMT)  # 7
RAW_MAX = (MAX_PAYLOAD - RAW_HEADER) // 2       # 508 samples per frame
CH_MEAS = 0                            # measured current, uA
CH_SET = 1                             # commanded current, uA


def pack_raw(buf, first, samples, count=None, chan=CH_MEAS):
    """Pack a RAW payload into buf: first index u32, count u16, channel u8, count int16 LE
    samples (clamped to +/-32767). Returns the payload length."""
    if count is None:
        count = len(samples)
    if count > RAW_MAX:
        raise ValueError("too many samples")
    struct.pack_into(RAW_FMT, buf, 0, first & 0xFFFFFFFF, count, chan)
    o = RAW_HEADER
    for i in range(count):
        v = samples[i]
        if v > 32767:
            v = 32767
        elif v < -32767:
            v = -32767
        buf[o] = v & 0xFF
        buf[o + 1] = (v >> 8) & 0xFF
        o += 2
    return o


def unpack_raw(payload):
    """(first, chan, samples list). ValueError if the length does not match count."""
    if len(payload) < RAW_HEADER:
        raise ValueError("short RAW")
    first, count, chan = struct.unpack_from(RAW_FMT, payload, 0)
    if len(payload) != RAW_HEADER + 2 * count:
        raise ValueError("RAW length mismatch")
    out = []
    o = RAW_HEADER
    for _ in range(count):
        v = payload[o] | (payload[o + 1] << 8)
        if v >= 0x8000:
            v -= 0x10000
        out.append(v)
        o += 2
    return first, chan, out
