"""The device application: link service, session state machine and control loop.

One loop, one thread. While a session runs, each pass generates one block of at most 1 ms
(engine), writes it (hal), senses it, and lets the supervisor check it, with nothing in
between that can allocate; the link is serviced every LINK_POLL_MS and telemetry sent every
TELEM_MS, outside that block path. The same code runs on a board (main.py) and on the
simulated board under the unix port (simmain.py). See docs/wire.md for the messages.
"""
try:
    import micropython  # the native emitter: same semantics as bytecode, about 1.3x faster here
except ImportError:  # CPython
    from tes import compat as micropython

import hashlib
import json
from array import array

from hal.base import SENSE_LEN, I_MEAN, V_MEAN
from tes import VERSION
from tes import engine as E
from tes import journal as J
from tes import link as L
from tes import supervisor as S
from tes import validate as V
from tes.limits import board_limits

# A board's ticks_ms wraps every 2**30 ms (12.4 days): every time mark is compared through
# these, with that period on every platform (the simulated board's clock never nears it).
# Written so no intermediate leaves the 31-bit small ints of a board (no allocation).
def ticks_diff(a, b):
    d = (a - b) & 0x3FFFFFFF
    if d >= 0x20000000:
        d -= 0x20000000
        d -= 0x20000000
    return d


def ticks_add(a, b):
    if b >= 0 and a > 0x3FFFFFFF - b:
        return a - (0x3FFFFFFF - b) - 1
    return (a + b) & 0x3FFFFFFF

TELEM_MS = 20          # 50 telemetry frames a second while stimulating
IDLE_TELEM_MS = 1000
LINK_POLL_MS = 5
HEARTBEAT_LATE_MS = 1000
CHECK_UA = 100         # impedance test current ceiling (uA): a "tickle", not stimulation
CHECK_MS = 500
MAX_LOAD = 16384       # largest canonical protocol the device accepts, bytes
ERROR_GAP_MS = 100     # at most one framing ERROR per 100 ms
WATCHDOG_MS = 1000
FAST_GATE_MS = 2000    # fast sim: virtual time may run this far past the last host frame
FAST_WAIT_REAL_MS = 3000
CHECKPOINT_MS = 30000  # journal the charge so far this often, so a reset loses little
FLUSH_MS = 20          # telemetry leaves at least this often (virtual ms)...
FLUSH_BYTES = 2048     # ...or once this much is queued (the fast clock fills it first)

# Engine phase -> link state byte.
_LINK_STATE = (L.READY, L.RAMP_UP, L.PLATEAU, L.RAMP_DOWN, L.PAUSE, L.SHAM_OFF, L.RAMP_DOWN)


def _hex(digest):
    return "".join("%02x" % b for b in digest)


class Session:
    """What one running stimulation (or a streaming test current) needs."""

    def __init__(self, app, proto, sha, journal=True):
        self.proto = proto
        self.sha = sha
        self.fs = proto["sample_rate_hz"]
        self.block = self.fs // 1000 or 1
        self.engine = E.Engine(proto)
        safety = proto["safety"]
        self.sup = S.Supervisor(app.limits, safety, self.fs,
                                compliance_mV=app.board.get("compliance_V", 30) * 1000)
        self.buf = array("i", [0] * self.block)
        self.outcome = None       # (outcome, reason) once a stop is decided
        self.fault_stop = False   # a supervisor soft stop is under way
        self.journal = journal
        self.sid = None
        self.opened = None
        self.prev_state = -1
        self.checkpoint_ms = 0
        # telemetry window sums
        self.w_meas = 0
        self.w_v = 0
        self.w_n = 0


class App:
    def __init__(self, hal, board, port, fw_sha256="", fast=False, boot_reason="power-on", faults=()):
        self.hal = hal
        now = hal.ticks_ms()     # every time mark starts here: the clock may be near its wrap
        self.faults_due = list(faults)   # simulated board: (kind, ms after START)
        self.board = board
        self.port = port
        self.fw_sha256 = fw_sha256
        self.fast = fast
        self.limits, _ = board_limits(board)
        self.enc = L.Encoder()
        self.dec = L.Decoder()
        self.tx_seq = 0
        self.rx_seq = None
        self.state = L.IDLE
        self.proto = None
        self.proto_bytes = None
        self.sha = None
        self.load_buf = None
        self.session = None
        self.sense = array("i", [0] * SENSE_LEN)
        self.telem = bytearray(L.TELEM_SIZE)
        self.raw = bytearray(L.MAX_PAYLOAD)
        self.raw_on = False
        self.raw_vals = array("i", [0] * L.RAW_MAX)
        self.raw_n = 0
        self.raw_first = 0
        self.raw_index = 0
        self.raw_dropped = 0
        self.running = True
        self.last_rx = now
        self.last_telem = now
        self.last_err = ticks_add(hal.ticks_ms(), -ERROR_GAP_MS)
        self.last_flush = now
        self.next_tick = now
        self.faults = []
        self.rx_errors = 0
        self.rx_lost = 0
        hal.zero()               # output off at boot, whatever came before
        self.storage = hal.storage()
        self.recovered = J.recover(self.storage, hal.ticks_ms())
        try:
            J.compact(self.storage)             # checkpoints collapse to one record a session
        except OSError:
            pass                                # a full or failing flash: keep what is there
        self.next_sid = J.next_id(self.storage)   # read once at boot, counted on after
        self.unit_id = _unit_id(self.storage)
        self.boot_reason = boot_reason
        self.event("boot", reason=boot_reason,
                   recovered=[r.get("id") for r in self.recovered])
        self.send_telem(0, 0, 0, None, 0)      # first word after a (re)boot: output off

    # ---- sending ------------------------------------------------------------------
    def send(self, typ, payload=b""):
        self.port.write(self.enc.frame(typ, self.tx_seq, payload))
        self.tx_seq = (self.tx_seq + 1) & L.SEQ_MASK

    def flush(self):
        self.last_flush = self.hal.ticks_ms()
        self.port.flush()

    def send_json(self, typ, obj):
        self.send(typ, L.dumps(obj).encode())

    def reply(self, re, **fields):
        fields["re"] = re
        fields["ok"] = True
        self.send_json(L.REPLY, fields)

    def error(self, re, code, detail=""):
        self.send(L.ERROR, L.error_payload(re, code, detail))

    def event(self, kind, **fields):
        fields["ev"] = kind
        fields["t_ms"] = self.hal.ticks_ms()
        self.send_json(L.EVENT, fields)

    def set_state(self, state, reason=""):
        if state != self.state:
            self.event("state", state=L.STATE_NAMES[state], reason=reason,
                       **{"from": L.STATE_NAMES[self.state]})
            self.state = state

    # ---- the loop -----------------------------------------------------------------
    def run(self):
        while self.running:
            try:
                if self.session is not None:
                    self.control_step()
                else:
                    self.idle_step()
            except Exception as e:  # MemoryError included; a board reset (SimReset) is not an Exception
                self.internal_fault(e)

    def internal_fault(self, e):
        """A bug or exhausted memory in the loop: output off first, then record and go on."""
        self.hal.zero()
        if self.session is not None:
            try:
                self.end_session("fault", "internal")
            except Exception:  # even the record failed: the output is off, keep serving
                self.session = None
                self.state = L.FAULT
        try:
            self.event("log", level="error", msg="internal: %s: %s" % (type(e).__name__, e))
            self.flush()
        except Exception:
            pass

    def idle_step(self):
        hal = self.hal
        self.service()
        if ticks_diff(hal.ticks_ms(), self.last_telem) >= IDLE_TELEM_MS:
            self.send_telem(0, 0, 0, None, 0)
        self.flush()
        hal.feed()
        if self.port.eof:
            self.running = False     # the host hung up and nothing runs: end the process
        elif not self.port.wait(10) and hasattr(hal, "sleep_ms"):
            hal.sleep_ms(10)         # simulated board: let virtual time pass while idle

    @micropython.native
    def control_step(self):
        """One block: generate, write, sense, check. Everything slower than that (telemetry,
        link, journal checkpoint, watchdog) runs in tick() every LINK_POLL_MS."""
        s = self.session
        hal = self.hal
        buf = s.buf
        sense = self.sense
        n = s.engine.fill(buf, s.block)
        if n == 0:
            self.end_session(*(s.outcome or ("completed", "completed")))
            return
        hal.write(buf, n)
        hal.sense(sense)
        now = hal.ticks_ms()
        code = s.sup.check(buf, n, sense, ticks_diff(now, self.last_rx))
        s.w_meas += sense[I_MEAN]
        s.w_v += sense[V_MEAN]
        s.w_n += 1
        if self.raw_on:
            self.raw_append(buf, n)
        if code:
            self.on_fault(code)
            if self.session is None:
                return
        st = s.engine.state
        if st != s.prev_state and st != E.DONE and s.journal:     # streaming stays "streaming"
            s.prev_state = st
            self.set_state(_LINK_STATE[st])
        if ticks_diff(now, self.next_tick) >= 0:
            self.tick(s, now, buf[n - 1])

    def tick(self, s, now, last_set):
        self.next_tick = ticks_add(now, LINK_POLL_MS)
        self.hal.feed()
        if self.raw_n:
            self.raw_flush()
        if ticks_diff(now, self.last_telem) >= TELEM_MS:
            wn = s.w_n or 1
            self.send_telem(last_set, s.w_meas // wn, s.w_v // wn, s.sup.impedance_ohm(), s.sup.charge_uC)
            s.w_meas = s.w_v = s.w_n = 0
        if self.port.pending() >= FLUSH_BYTES or (not self.fast and ticks_diff(now, self.last_flush) >= FLUSH_MS):
            self.flush()
        if s.journal and ticks_diff(now, s.checkpoint_ms) >= CHECKPOINT_MS:
            s.checkpoint_ms = now
            try:
                J.checkpoint(self.storage, s.sid, s.sup.charge_uC, now, opened=s.opened)
            except Exception as e:  # storage full or failing: stimulation goes on, say so
                self.event("log", level="error", msg="journal checkpoint failed: %s" % e)
        self.service()
        if self.fast and self.session is not None:
            self.fast_gate()

    def fast_gate(self):
        """On the fast virtual clock, hold virtual time until the host has been heard
        recently, so a healthy host is never taken for a lost one; a host silent for
        FAST_WAIT_REAL_MS of real time (or gone) lets the clock run on."""
        hal = self.hal
        if self.port.eof or (hasattr(hal, "host_lost") and hal.host_lost()):
            return
        waited = 0
        if ticks_diff(hal.ticks_ms(), self.last_rx) > FAST_GATE_MS:
            self.flush()     # the host heartbeats when it hears from us
        while ticks_diff(hal.ticks_ms(), self.last_rx) > FAST_GATE_MS and waited < FAST_WAIT_REAL_MS:
            if self.port.wait(20):
                self.service()
            else:
                waited += 20
            if self.port.eof:
                return

    def send_telem(self, set_uA, meas_uA, v_mV, z_ohm, charge_uC):
        hal = self.hal
        now = hal.ticks_ms()
        self.last_telem = now
        flags = 0
        if self.session is not None:
            flags |= L.F_OUTPUT
            if self.session.proto.get("sham"):
                flags |= L.F_SHAM
            if ticks_diff(now, self.last_rx) > HEARTBEAT_LATE_MS:
                flags |= L.F_HOST_LATE
        if self.state == L.FAULT:
            flags |= L.F_FAULT
        if self.raw_on:
            flags |= L.F_RAW
        if self.board.get("mcu") == "sim":
            flags |= L.F_SIM
        n = L.pack_telem(self.telem, now, self.state, set_uA, meas_uA, v_mV,
                         z_ohm if z_ohm is not None and z_ohm >= 0 else None, charge_uC, flags)
        self.send(L.TELEM, self.telem if n == len(self.telem) else self.telem[:n])

    def raw_append(self, buf, n):
        """Copy the block into the raw buffer (no allocation: tick() sends it). A full
        buffer drops samples; the host sees the gap in the sample index."""
        k = self.raw_n
        if k == 0:
            self.raw_first = self.raw_index
        room = L.RAW_MAX - k
        m = n if n <= room else room
        vals = self.raw_vals
        for i in range(m):
            vals[k + i] = buf[i]
        self.raw_n = k + m
        self.raw_index += n
        if m < n:
            self.raw_dropped += n - m

    def raw_flush(self):
        if self.raw_n:
            k = L.pack_raw(self.raw, self.raw_first, self.raw_vals, self.raw_n, L.CH_SET)
            self.send(L.RAW, memoryview(self.raw)[:k])
            self.raw_n = 0

    # ---- faults and endings -----------------------------------------------------------
    def on_fault(self, code):
        s = self.session
        name = S.name(code)
        if S.is_hard(code):
            self.hal.zero()          # first: output zero and enable off, then report
            self.faults.append(name)
            self.event("fault", fault=name, detail="hard")
            self.flush()
            self.end_session("fault", name)
        elif not s.fault_stop:
            # Also after an operator STOP: a safety stop takes over with its own short ramp
            # (a protocol's ramp-down may be minutes) and the record names the fault.
            s.fault_stop = True
            s.outcome = ("fault", name)
            self.faults.append(name)
            s.engine.soft_stop(S.SOFT_RAMP_MS)
            self.event("fault", fault=name, detail="ramp-down")

    def end_session(self, outcome, reason):
        s = self.session
        hal = self.hal
        hal.zero()
        self.raw_flush()
        self.raw_on = False
        self.session = None
        charge = s.sup.charge_uC
        stim_ms = s.sup.stim_ms
        if s.journal and s.sid is not None:
            try:
                J.finish(self.storage, s.sid, outcome, reason, charge, hal.ticks_ms(), opened=s.opened)
            except Exception as e:  # the output is already off; report the lost record
                self.event("log", level="error", msg="journal record failed: %s" % e)
        self.send_telem(0, 0, 0, None, charge)
        self.event("end", outcome=outcome, reason=reason, delivered_charge_uC=charge,
                   stim_duration_ms=stim_ms, sha256=s.sha)
        if outcome == "fault":
            self.set_state(L.FAULT, reason)
        elif not s.journal:     # streaming ends where it started, but a START needs a new CHECK
            self.set_state(L.LOADED if self.stream_return == L.READY else self.stream_return, reason)
        else:
            self.set_state(L.LOADED, reason)
        self.flush()

    # ---- link ----------------------------------------------------------------------
    def service(self):
        hal = self.hal
        data = self.port.read()
        if not data:
            return
        if hasattr(hal, "host_lost") and hal.host_lost():
            return               # simulated dead link: bytes vanish
        for item in self.dec.feed(data):
            if item[0] == L.BAD:
                self.rx_errors += 1
                now = hal.ticks_ms()
                if ticks_diff(now, self.last_err) >= ERROR_GAP_MS:
                    self.last_err = now
                    self.error(None, item[1], "frame dropped")
                continue
            typ, seq, payload = item
            try:
                self.handle(typ, seq, payload)
            except Exception as e:  # never let a command take the loop down
                if self.session is not None:
                    self.hal.zero()
                    self.end_session("fault", "internal")
                self.error(seq, L.E_INTERNAL, "%s: %s" % (type(e).__name__, e))
        self.flush()        # replies go out at once

    def handle(self, typ, seq, payload):
        if typ == L.HELLO:
            self.rx_seq = None
        elif self.rx_seq is not None and L.seq_delta(self.rx_seq, seq) <= 0:
            self.error(seq, L.E_OUT_OF_ORDER, "seq %d after %d" % (seq, self.rx_seq))
            return
        if self.rx_seq is not None and L.seq_delta(self.rx_seq, seq) > 1:
            self.rx_lost += L.seq_delta(self.rx_seq, seq) - 1
        self.rx_seq = seq
        self.last_rx = self.hal.ticks_ms()
        if typ == L.LOAD:
            return self.cmd_load(seq, payload)
        obj, code, detail = L.parse_command(typ, payload)
        if code:
            return self.error(seq, code, detail)
        getattr(self, "cmd_" + L.NAMES[typ])(seq, obj)

    def stimulating(self):
        return self.session is not None

    def cmd_hello(self, seq, obj):
        if obj["link"] != L.LINK_VERSION:
            return self.error(seq, L.E_BAD_FIELD, "link version %d not spoken" % obj["link"])
        self.tx_seq = 0
        self.raw_on = False          # a new host asks for what it wants
        if self.state == L.READY:    # and checks the electrodes itself before any START
            self.set_state(L.LOADED, "new host")
        self.reply(seq, board=self.board.get("id", "?"), unit=self.unit_id, fw=VERSION, fw_sha256=self.fw_sha256,
                   link=L.LINK_VERSION, max_payload=L.MAX_PAYLOAD, state=L.STATE_NAMES[self.state],
                   boot=self.boot_reason)

    def cmd_load(self, seq, payload):
        if self.stimulating() or self.state == L.CHECKING:
            return self.error(seq, L.E_BUSY, "stimulating")
        parts = L.unpack_load(payload)
        if parts is None:
            return self.error(seq, L.E_BAD_FIELD, "malformed LOAD")
        offset, total, chunk = parts
        if total > MAX_LOAD:
            return self.error(seq, L.E_OVERSIZE, "protocol of %d bytes, device holds %d" % (total, MAX_LOAD))
        if offset == 0:
            self.load_buf = bytearray()
            self.proto = self.sha = None
            self.set_state(L.IDLE, "load")
        if self.load_buf is None or offset != len(self.load_buf):
            return self.error(seq, L.E_OUT_OF_ORDER, "chunk at %d, expected %d" %
                              (offset, len(self.load_buf) if self.load_buf is not None else 0))
        self.load_buf += chunk
        if len(self.load_buf) < total:
            return self.reply(seq, have=len(self.load_buf))
        data = bytes(self.load_buf)
        self.load_buf = None
        try:
            proto = json.loads(data)
        except ValueError:
            return self.error(seq, L.E_BAD_JSON, "protocol is not JSON")
        problems = V.check(proto, self.limits)     # the device never trusts the host
        if problems:
            p = problems[0]
            return self.error(seq, L.E_INVALID_PROTOCOL, "%s %s %s %s (%s)" % (p[0], p[1], p[2], p[3], p[4]))
        self.proto = proto
        self.sha = _hex(hashlib.sha256(data).digest())
        total_ms = 0
        for seg in proto["segments"]:
            total_ms += V.stim_ms(seg) if seg["kind"] == "stim" else seg["duration_ms"]
        self.set_state(L.LOADED, "load")
        self.reply(seq, sha256=self.sha, bytes=total, state="loaded", duration_ms=total_ms)

    def cmd_check(self, seq, obj):
        if self.stimulating() or self.state in (L.CHECKING, L.FAULT, L.STREAMING):
            return self.error(seq, L.E_BUSY if self.state != L.FAULT else L.E_BAD_STATE, L.STATE_NAMES[self.state])
        current = obj.get("current_uA", CHECK_UA)
        duration = obj.get("duration_ms", CHECK_MS)
        if not 1 <= current <= CHECK_UA or not 50 <= duration <= 5000:
            return self.error(seq, L.E_BAD_FIELD, "current_uA 1..%d, duration_ms 50..5000" % CHECK_UA)
        self.set_state(L.CHECKING, "check")
        self.reply(seq, state="checking")
        z = self.measure(current, duration)
        limit = self.proto["safety"]["impedance_max_ohm"] if self.proto else 20000
        ok = z is not None and S.SHORT_OHM <= z <= limit
        self.event("check", z_ohm=z, limit_ohm=limit, current_uA=current, **{"pass": ok})
        if self.proto is None:
            self.set_state(L.IDLE, "check")
        else:
            self.set_state(L.READY if ok else L.LOADED, "check passed" if ok else "check failed")

    def measure(self, current, duration):
        """Impedance with a small DC test current: mean V / mean I over the second half
        (after the skin capacitance has charged). None when no current flows (open)."""
        hal = self.hal
        fs = 1000
        hal.start(fs)
        buf = array("i", [current])
        v_sum = i_sum = count = 0
        hal.enable(True)
        try:
            for k in range(duration):
                hal.write(buf, 1)
                hal.sense(self.sense)
                hal.feed()
                if k >= duration // 2:
                    v_sum += self.sense[V_MEAN]
                    i_sum += self.sense[I_MEAN]
                    count += 1
        finally:
            hal.zero()
        if i_sum * 4 < current * count:     # under a quarter of the test current: open
            return None
        return v_sum * 1000 // i_sum

    def cmd_start(self, seq, obj):
        if self.state != L.READY or self.proto is None:
            return self.error(seq, L.E_BAD_STATE, "START needs a loaded protocol and a passed CHECK (state %s)"
                              % L.STATE_NAMES[self.state])
        if obj["sha256"] != self.sha:
            return self.error(seq, L.E_HASH_MISMATCH, "loaded protocol is %s" % self.sha)
        self.begin(self.proto, self.sha, journal=True)
        self.reply(seq, state="ramp-up", sid=self.session.sid)

    def begin(self, proto, sha, journal):
        hal = self.hal
        s = Session(self, proto, sha, journal)
        hal.start(s.fs)
        if journal:
            s.sid = J.begin(self.storage, sha, hal.ticks_ms(), sid=self.next_sid)
            s.opened = J.open_record(s.sid, sha, hal.ticks_ms())
            self.next_sid += 1
        if hasattr(hal, "start_watchdog"):
            hal.start_watchdog(WATCHDOG_MS)
        if journal:
            for kind, at_ms in self.faults_due:
                hal.inject(kind, hal.ticks_ms() + at_ms)
            self.faults_due = []
        s.checkpoint_ms = self.next_tick = self.last_rx = hal.ticks_ms()
        self.raw_index = 0
        self.raw_n = 0
        self.session = s
        hal.enable(True)

    def cmd_stop(self, seq, obj):
        s = self.session
        if s is not None and s.outcome is None:
            s.outcome = ("stopped", "operator-stop" if s.journal else "stream-off")
            seg = s.proto["segments"][s.engine.seg] if s.engine.seg >= 0 else None
            ramp = seg["ramp_down_ms"] if seg is not None and seg["kind"] == "stim" else 0
            s.engine.soft_stop(ramp or S.SOFT_RAMP_MS)   # the running segment's own ramp-down
        self.reply(seq, state=L.STATE_NAMES[self.state])

    def cmd_abort(self, seq, obj):
        if self.session is not None:
            self.hal.zero()          # at once: abort does not wait for a ramp
            self.end_session("aborted", obj.get("reason", "operator-abort"))
        self.reply(seq, state=L.STATE_NAMES[self.state])

    def cmd_status(self, seq, obj):
        s = self.session
        self.reply(seq, state=L.STATE_NAMES[self.state], t_ms=self.hal.ticks_ms(), sha256=self.sha,
                   charge_uC=s.sup.charge_uC if s else 0,
                   elapsed_ms=s.engine.elapsed * 1000 // s.fs if s else 0,
                   remaining_ms=s.engine.remaining() * 1000 // s.fs if s else 0,
                   faults=self.faults[-8:], rx_lost=self.rx_lost, rx_errors=self.rx_errors)

    def cmd_journal(self, seq, obj):
        if self.session is not None:      # reading flash would hold up the control loop
            return self.error(seq, L.E_BUSY, "stimulating")
        records = J.sessions(self.storage)
        start = obj.get("start", 0)
        count = obj.get("count", 8)
        out = []
        size = 64
        i = start
        while i < len(records) and len(out) < count:
            text = L.dumps(records[i])
            if size + len(text) + 1 > L.MAX_PAYLOAD:
                break
            size += len(text) + 1
            out.append(records[i])
            i += 1
        self.reply(seq, records=out, next=i if i < len(records) else None, total=len(records))

    def cmd_heartbeat(self, seq, obj):
        pass

    def cmd_exit(self, seq, obj):
        if self.stimulating() or self.state == L.CHECKING:
            return self.error(seq, L.E_BUSY, "stimulating")
        self.reply(seq, state="repl")
        self.running = False

    def cmd_rawreq(self, seq, obj):
        self.raw_on = obj["on"]
        if not self.raw_on:
            self.raw_flush()
        self.reply(seq, raw=self.raw_on)

    def cmd_stream(self, seq, obj):
        if obj["on"]:
            if self.stimulating() or self.state not in (L.IDLE, L.LOADED, L.READY):
                return self.error(seq, L.E_BUSY, L.STATE_NAMES[self.state])
            current = obj.get("current_uA", CHECK_UA)
            if not 1 <= current <= CHECK_UA:
                return self.error(seq, L.E_BAD_FIELD, "current_uA 1..%d" % CHECK_UA)
            self.stream_return = self.state
            self.begin(_stream_protocol(current), None, journal=False)
            self.set_state(L.STREAMING, "stream")
        elif self.session is not None and not self.session.journal:
            self.cmd_stop(seq, obj)
            return
        self.reply(seq, state=L.STATE_NAMES[self.state])


def _stream_protocol(current):
    """A test current held for up to an hour (STREAM off ends it): the same engine and
    supervisor as a session, so streaming is checked like stimulation."""
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": current, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0,
           "pulse_width_us": 0, "biphasic": False, "duration_ms": 3600000, "ramp_up_ms": 100,
           "ramp_down_ms": 100, "ramp_shape": "linear"}
    return {"schema": 1, "name": "stream", "sample_rate_hz": 1000,
            "montage": {"anode": "", "cathode": "", "electrode_area_mm2": 0},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 50000}}


def _unit_id(storage):
    """This unit's id (the chip's unique id, or random for a simulated board), kept in
    storage: the host matches journal records to this unit, not just to a board model."""
    path = storage + "/unit_id"
    try:
        with open(path) as f:
            uid = f.read().strip()
        if uid:
            return uid
    except OSError:
        pass
    try:
        import machine
        raw = machine.unique_id()
    except (ImportError, AttributeError):
        import os
        raw = os.urandom(8)
    uid = "".join("%02x" % b for b in raw)
    with open(path, "w") as f:
        f.write(uid)
    return uid
