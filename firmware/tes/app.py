"""The device application: the session state machine and the main loop.

One loop, one thread. While current flows (a session, the impedance check or streaming),
the block loop (tes.control) runs with the heap locked until the next tick is due; every
LINK_POLL_MS the tick does what may allocate: watchdog, telemetry, raw samples, the
charge kept through a reset (hal.retain), and the link (tes.service). The same code runs on a board (main.py) and on
the simulated board under the unix port (simmain.py); it asks the HAL nothing that only
one of them can answer. See docs/wire.md for the messages.
"""
try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

import hashlib
import json
from array import array

from tes import VERSION
from tes import engine as E
from tes import journal as J
from tes import link as L
from tes import supervisor as S
from tes import validate as V
from tes.control import END
from tes.limits import board_limits
from tes.service import LinkService
from tes.session import (CHECK, STIM, STREAM, STREAM_MS, Session, test_current_protocol, ticks_add,
                         ticks_diff)

TELEM_MS = 20          # 50 telemetry frames a second while current flows
IDLE_TELEM_MS = 1000
LINK_POLL_MS = 20      # the tick (link, telemetry, watchdog) this often while current flows:
                       # a command waits at most this long (the lead of hal.rp2 is 100 ms)
HEARTBEAT_LATE_MS = 1000
CHECK_UA = 100         # impedance test current ceiling (uA): a "tickle", not stimulation
CHECK_MS = 500
MAX_LOAD = 16384       # largest canonical protocol the device accepts, bytes
FAULTS_KEPT = 8        # faults STATUS reports (the newest)
JOURNAL_MAX = 64       # records one JOURNAL may ask for (a reply holds what fits anyway)
WATCHDOG_MS = 1000
RETAIN_MS = 100        # the charge kept through a reset is this fresh
FLUSH_MS = 20          # telemetry leaves at least this often...
FLUSH_BYTES = 2048     # ...or once this much is queued (the fast clock fills it first)

# Engine phase -> link state byte.
CHANGES_KEPT = 64      # online changes the journal's record lists (events carry every one)
_LINK_STATE = (L.READY, L.RAMP_UP, L.PLATEAU, L.RAMP_DOWN, L.PAUSE, L.SHAM_OFF, L.RAMP_DOWN)
# Faults of the load (not of the device): a check that finds one fails, nothing latches.
_LOAD_FAULTS = (S.OPEN_CIRCUIT, S.SHORT, S.COMPLIANCE, S.IMPEDANCE_HIGH)

if hasattr(micropython, "heap_lock"):
    _lock = micropython.heap_lock
    _unlock = micropython.heap_unlock
else:  # CPython
    def _lock():
        pass

    def _unlock():
        pass


def _hex(digest):
    return "".join("%02x" % b for b in digest)


class App:
    def __init__(self, hal, board, port, fw_sha256="", boot_reason="power-on"):
        self.hal = hal
        self._ticks = hal.ticks_ms      # bound once: the block path runs heap-locked
        self._wait = hal.wait
        self.board = board
        self.fw_sha256 = fw_sha256
        self.limits, _ = board_limits(board)
        self.link = LinkService(port, hal)
        self.port = port
        # Each command's handler, bound once: getattr(self, "cmd_" + name) per frame made a new
        # string whose attribute lookup searched every qstr (~220,000 x86-64 instructions in
        # the valgrind proxy, ~3 ms on an RP2040, for each heartbeat: 4 a second).
        self._cmds = {t: getattr(self, "cmd_" + L.NAMES[t]) for t in L.COMMANDS}
        self.state = L.IDLE
        self.proto = None
        self.sha = None
        self.load_buf = None
        self.session = None
        self.faults = []
        self.running = True
        self.stream_return = L.IDLE
        now = hal.ticks_ms()     # every time mark starts here: the clock may be near its wrap
        self.last_telem = now
        self.next_tick = now
        # raw sample streaming (set current), copied in the block path, sent in the tick
        self.raw_on = False
        self.raw_vals = array("i", [0] * L.RAW_MAX)
        self.raw_n = 0
        self.raw_first = 0
        self.raw_index = 0
        self.raw_dropped = 0
        self._raw_tap = self.raw_append     # bound once: binding in the block path would allocate
        hal.zero()               # output off at boot, whatever came before
        self.storage = hal.storage()
        self.recovered = J.recover(self.storage, hal.ticks_ms(), hal.retained())
        try:
            J.compact(self.storage)             # checkpoints collapse to one record a session
        except OSError:
            pass                                # a full or failing flash: keep what is there
        self.next_sid = J.next_id(self.storage)   # read once at boot, counted on after
        self.unit_id = _unit_id(self.storage)
        self.boot_reason = boot_reason
        self.link.event("boot", reason=boot_reason, recovered=[r.get("id") for r in self.recovered])
        self.send_telem(0, 0, 0, None)          # first word after a (re)boot: output off

    # ---- compatibility with the tests' view ------------------------------------------------
    @property
    def last_rx(self):
        return self.link.last_rx

    @last_rx.setter
    def last_rx(self, ms):
        self.link.last_rx = ms

    # ---- state ---------------------------------------------------------------------------
    def set_state(self, state, reason=""):
        if state != self.state:
            self.link.event("state", state=L.STATE_NAMES[state], reason=reason,
                            **{"from": L.STATE_NAMES[self.state]})
            self.state = state

    # ---- the loop -----------------------------------------------------------------------------
    def run(self):
        while self.running:
            try:
                if self.session is not None:
                    self.control_step()
                else:
                    self.idle_step()
            except Exception as e:  # a board reset (SimReset) is not an Exception
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
            self.link.event("log", level="error", msg="internal: %s: %s" % (type(e).__name__, e))
            self.link.flush()
        except Exception:
            pass

    def idle_step(self):
        hal = self.hal
        self.service()
        if self.session is not None:
            # A command started a session: its queue was primed for LEAD_MS. Go to the block
            # loop now; a telemetry frame, a flush and a 10 ms wait here cost a 20 kS/s
            # session its first refill (an underrun 58 ms in, on the virtual RP2040).
            return
        if ticks_diff(hal.ticks_ms(), self.last_telem) >= IDLE_TELEM_MS:
            self.send_telem(0, 0, 0, None)
        self.link.flush()
        hal.feed()
        if self.port.eof:
            self.running = False     # the host hung up and nothing runs: end the process
        elif not self.port.wait(10):
            hal.wait(10)

    def control_step(self):
        """Run the block loop until the next tick is due (or something happened), then
        do the tick's work."""
        s = self.session
        if s is None:
            return
        code = self.blocks(s)
        t = self.hal.ticks_ms()
        if code:
            self.on_code(s, code)
        if self.session is not None and ticks_diff(self.hal.ticks_ms(), self.next_tick) >= 0:
            self.tick(self.session)     # (a check's next step may have replaced s)
        # The output queue must outlast this (hal.rp2 LEAD_MS): the margin, measured.
        t = ticks_diff(self.hal.ticks_ms(), t)
        if t > s.tick_max_ms:
            s.tick_max_ms = t

    @micropython.native
    def blocks(self, s):
        """The block path, heap locked: no garbage collection can delay a check. Returns a
        fault code, END, or 0 when the next tick is due."""
        code = 0
        ticks = self._ticks
        age = ticks_diff(ticks(), self.link.last_rx)     # once a tick: the rule's scale is seconds
        run = s.control.bound_run               # bound once (binding allocates)
        due = self.next_tick
        _lock()
        try:
            code = run(age, due, ticks, self._wait)
        except MemoryError:
            code = S.MEMORY
        finally:
            _unlock()
        return code

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def tick(self, s):
        hal = self.hal
        now = hal.ticks_ms()
        due = self.next_tick
        # Ticks on a grid, so telemetry goes out TELEM_MS apart however late a tick starts
        # (a pass ends up to PASS_MS late; ticks 20 ms after the previous start gave ~36
        # frames a second on the chip); a tick a whole period late starts the grid again.
        nxt = ticks_add(due, LINK_POLL_MS)
        self.next_tick = nxt if ticks_diff(nxt, now) > 0 else ticks_add(now, LINK_POLL_MS)
        # (Allocation happens only here, the block path being heap-locked: a garbage
        # collection, ~22 ms on an RP2040, falls in a tick, with the output queue >= 3/4
        # of its lead full: hal.rp2 LEAD_MS.)
        hal.feed()
        if hal.underruns():
            self.on_code(s, S.UNDERRUN)
            return
        if self.raw_n:
            self.raw_flush()
        st = s.engine.state
        if s.kind == STIM and st != s.prev_state and st != E.DONE:
            s.prev_state = st
            self.set_state(_LINK_STATE[st])
        if s.kind == STIM and s.engine.applied != s.reported:
            self.report_changes(s)
        if s.kind == CHECK:
            self.check_span(s)
        elif ticks_diff(due, self.last_telem) >= TELEM_MS:
            if s.channels > 1:
                if s.MC.telemetry(self, s):
                    self.last_telem = due
                w = None
            else:
                w = s.sup.window()
            if w is not None:
                p = s.sup.period()
                if p is None:
                    self.send_telem(w[1], w[3], w[5], None)
                else:
                    self.send_telem(w[1], w[3], w[5], p[6], p[1], p[2], p[3], p[4], p[7])
                self.last_telem = due   # the grid's time, not the send's: one frame a tick
        if self.link.pending() >= FLUSH_BYTES or ticks_diff(now, self.link.last_flush) >= FLUSH_MS:
            self.link.flush()
        if s.kind == STIM and ticks_diff(now, s.retained_ms) >= RETAIN_MS:
            # The charge so far, where a reset leaves it (not flash: a write stalls the CPU
            # for tens of ms while the output queue holds a few).
            s.retained_ms = now
            hal.retain(s.sid, s.sup.charge_uC, s.sup.stim_ms)
        self.service()

    def report_changes(self, s):
        """An event per online change the engine has applied (at its sample: the output
        lead ahead of the current), and the journal's list of them."""
        e = s.engine
        O = e.O                       # tes.online: loaded by the engine for a protocol with [online]
        if e.applied - s.reported > O.QUEUE:      # (cannot happen at one tick per 20 ms)
            lost = e.applied - s.reported - O.QUEUE
            self.link.event("log", level="error", msg="%d online change events lost" % lost)
            s.reported = e.applied - O.QUEUE
        while s.reported < e.applied:
            j = 3 * (s.reported % O.QUEUE)
            at, code, value = e.done[j], e.done[j + 1], e.done[j + 2]
            at_ms = at // s.fs * 1000 + at % s.fs * 1000 // s.fs
            self.link.event("change", param=O.NAMES[code], value=value, at_ms=at_ms, at_sample=at)
            if len(s.changes) < CHANGES_KEPT:
                s.changes.append([at_ms, O.NAMES[code], value, at])
            s.reported += 1

    def check_span(self, s):
        """The impedance check measures over the second half of its plateau."""
        if s.mcheck is not None:
            return s.mcheck.span(s)            # a step of the multi-electrode check
        done = s.control.checked
        if not s.span_open and done >= s.span[0]:
            s.sup.window()                     # discard what came before the span
            s.span_open = True
        elif s.span_open and s.z is None and done >= s.span[1]:
            w = s.sup.window()
            if w is not None:
                n, set_mean, _, meas_mean, _, v_mean, _ = w
                if meas_mean * 4 < set_mean:   # under a quarter of the test current: open
                    s.check_reason = "open-circuit"
                    s.z = -1
                else:
                    s.z = v_mean * 1000 // meas_mean

    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def send_telem(self, set_uA, meas_uA, v_mV, z_ohm, set_rms_uA=0, meas_rms_uA=0, meas_peak_uA=0, v_rms_mV=0,
                   z_phase_cdeg=None, ext=0):
        """One TELEM frame. In a session: the means of the supervisor's window() (set,
        measured, voltage), and from its period() the RMS, the peak, z_ohm (the RMS ratio
        over whole periods) and the lock-in phase; docs/wire.md says which is which.
        ext (a multi-electrode session): the length of the frame's extension, the rows
        per electrode that tes.multicontrol.telemetry wrote into the link's encoder
        (link.Encoder.raw from link.EXT_AT); 0: the frame as ever."""
        hal = self.hal
        now = hal.ticks_ms()
        self.last_telem = now
        flags = 0
        s = self.session
        charge = 0
        if s is not None:
            flags |= L.F_OUTPUT
            charge = s.sup.charge_uC
            if s.proto.get("sham"):
                flags |= L.F_SHAM
        if s is not None and ticks_diff(now, self.link.last_rx) > HEARTBEAT_LATE_MS:    # (link.heard_within)
            flags |= L.F_HOST_LATE
        if self.state == L.FAULT:
            flags |= L.F_FAULT
        if self.raw_on:
            flags |= L.F_RAW
        if hal.SIMULATED:
            flags |= L.F_SIM
        self.link.telemetry(self.state, set_uA, meas_uA, v_mV, z_ohm, charge, flags, set_rms_uA, meas_rms_uA,
                            meas_peak_uA, v_rms_mV, z_phase_cdeg, ext)

    def raw_append(self, buf, n):
        """Copy the block's set samples into the raw buffer (no allocation: the tick sends
        it). A full buffer drops samples; the host sees the gap in the sample index."""
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
            self.link.raw_samples(self.raw_first, self.raw_vals, self.raw_n)
            self.raw_n = 0

    def set_raw(self, on):
        self.raw_on = on
        s = self.session
        if s is not None:
            s.control.tap = self._raw_tap if on and s.kind == STIM else None
        if not on:
            self.raw_flush()

    # ---- sessions: begin, faults, endings -------------------------------------------------------
    def begin(self, kind, proto, sha):
        hal = self.hal
        hal.feed()                  # building a noise engine takes a while on a board
        s = Session(kind, proto, sha, hal, self.limits, self.board)
        if kind == STIM:            # the flash write first: pacing starts after it
            s.sid = J.begin(self.storage, sha, hal.ticks_ms(), sid=self.next_sid)
            s.opened = J.open_record(s.sid, sha, hal.ticks_ms())
            self.next_sid += 1
            hal.retain(s.sid, 0, 0)
        hal.start_watchdog(WATCHDOG_MS)
        hal.feed()
        st = s.sup.st               # the supervisor's per-sample HARD limits, for a HAL's fast trip
        hal.arm_trip(st[S.T_IOVER], st[S.T_VCOMP])
        hal.electrodes(s.names)     # driven first, the return last
        if s.channels > 1:
            hal.start(s.fs, s.channels)
        else:
            hal.start(s.fs)
        now = self.link.last_rx = hal.ticks_ms()
        s.t0_ms = now               # the device clock at the first sample (pacing starts here)
        # The first tick is due at once and, a whole period "late", starts the 20 ms grid
        # at its own time: telemetry rows then fall every 20 ms from the first one.
        self.next_tick = ticks_add(now, -LINK_POLL_MS)
        self.raw_index = 0
        self.raw_n = 0
        self.session = s
        if kind == STIM:
            hal.session_started()
            if self.raw_on:
                s.control.tap = self._raw_tap
        hal.enable(True)
        s.control.prime()
        return s

    def on_code(self, s, code):
        if code == END:
            if s.kind == CHECK:
                self.end_check(s, "")
            else:
                outcome = s.outcome or ("completed", "completed")
                self.end_session(*outcome, electrode=s.fault_electrode if outcome[0] == "fault" else None)
            return
        name = S.name(code)
        # A multi session's fault names an electrode (tes.multicontrol); the HAL's, never.
        el = None
        if s.channels > 1 and code != S.UNDERRUN and code != S.MEMORY:
            el = s.control.electrode_name(s.names)
            c = self.hal.tripped_source()    # a board's fast trip, ahead of the supervisor
            if el is None and c >= 0:
                el = s.names[c]
        named = {} if el is None else {"electrode": el}
        if S.is_hard(code):
            self.hal.zero()          # first: output zero and enable off, then report
            if s.kind == CHECK and code in _LOAD_FAULTS:
                self.end_check(s, name)
                return
            self.note_fault(name)
            self.link.event("fault", fault=name, detail="hard", block=self.evidence(s), **named)
            self.link.flush()
            self.end_session("fault", name, electrode=el)
        elif s.kind == CHECK:
            pass                     # soft rules (budgets, impedance) do not apply to a 0.5 s tickle
        elif not s.fault_stop:
            # Also after an operator STOP: a safety stop takes over with its own short ramp
            # (a protocol's ramp-down may be minutes) and the record names the fault.
            s.fault_stop = True
            s.outcome = ("fault", name)
            s.fault_electrode = el
            self.note_fault(name)
            s.engine.soft_stop(S.SOFT_RAMP_MS)
            self.link.event("fault", fault=name, detail="ramp-down", **named)

    def note_fault(self, name):
        """The last FAULTS_KEPT faults, for STATUS: a bounded list (a board up for months
        sees faults without end; every device queue drops its oldest, never grows)."""
        if len(self.faults) >= FAULTS_KEPT:
            del self.faults[0]
        self.faults.append(name)

    @staticmethod
    def evidence(s):
        """The samples of the block that tripped a hard fault (set, measured current,
        voltage, readback), so the operator can read why: after hal.zero(), heap unlocked."""
        c = s.control
        n = c.last_m
        if s.channels > 1:          # the named electrode's block (tes.multicontrol)
            sb, ib, vb, db, a = c.evidence()
        else:
            sb, ib, vb, db, a = c.sb, c.ib, c.vb, c.db, c.last_at
        return {"set_uA": list(sb[a:a + n]), "i_uA": list(ib[a:a + n]), "v_mV": list(vb[a:a + n]),
                "dac_uA": list(db[a:a + n]),
                "written": c.written, "checked": c.checked, "owed": c.owed, "engine_done": c.engine_done,
                "longest_tick_ms": s.tick_max_ms}

    def _close(self, s):
        hal = self.hal
        hal.zero()
        hal.stop()
        self.raw_flush()
        self.session = None
        if s.kind == STIM:
            hal.session_ended()

    def end_session(self, outcome, reason, electrode=None):
        """electrode: the electrode a fault named (a multi session), in the END event and
        the journal's record; None: neither carries the key."""
        s = self.session
        hal = self.hal
        self._close(s)
        self.raw_on = False
        charge = s.sup.charge_uC
        stim_ms = s.sup.stim_ms
        if s.kind == STIM and s.sid is not None:
            try:
                if s.kind == STIM and s.engine.applied != s.reported:
                    self.report_changes(s)
                if electrode is None:
                    J.finish(self.storage, s.sid, outcome, reason, charge, hal.ticks_ms(), opened=s.opened,
                             stim_ms=stim_ms, changes=s.changes)
                else:
                    s.MC.finish_named(self, s, outcome, reason, charge, stim_ms, electrode)
            except Exception as e:  # the output is already off; report the lost record
                self.link.event("log", level="error", msg="journal record failed: %s" % e)
        self.send_telem(0, 0, 0, None)
        named = {} if electrode is None else {"electrode": electrode}
        if s.kind == CHECK:
            # A device fault (or an internal error) ended the check: its EVENT check still
            # comes, failed for that reason, so a host waiting for it hears why at once.
            fields = self.check_fields(s, reason) if s.mcheck is None else s.mcheck.result(self, reason)
            fields.update(named)
            self.link.event("check", **fields)
        self.link.event("end", outcome=outcome, reason=reason, delivered_charge_uC=charge,
                        stim_duration_ms=stim_ms, sha256=s.sha, longest_tick_ms=s.tick_max_ms, **named)
        if outcome == "fault":
            self.set_state(L.FAULT, reason)
        elif s.kind == STREAM:   # streaming ends where it started, but a START needs a new CHECK
            self.set_state(L.LOADED if self.stream_return == L.READY else self.stream_return, reason)
        else:
            self.set_state(L.LOADED, reason)
        self.link.flush()

    def check_fields(self, s, reason):
        """The EVENT check's fields of a one-path check s, ended for reason ("": its course)."""
        z = s.z if s.z is not None and s.z >= 0 else None
        limit = self.proto["safety"]["impedance_max_ohm"] if self.proto else 20000
        ok = z is not None and not reason and S.SHORT_OHM <= z <= limit
        fields = {"z_ohm": z, "limit_ohm": limit, "current_uA": s.proto["segments"][0]["amplitude_uA"], "pass": ok}
        if reason:
            fields["reason"] = reason
        return fields

    def end_check(self, s, reason):
        self._close(s)
        if s.mcheck is not None:              # tes.multicheck: its next step, or its result
            fields = s.mcheck.end(self, s, reason)
            if fields is None:
                return
        else:
            fields = self.check_fields(s, reason or s.check_reason)
        ok = fields["pass"]
        self.link.event("check", **fields)
        if self.proto is None:
            self.set_state(L.IDLE, "check")
        else:
            self.set_state(L.READY if ok else L.LOADED, "check passed" if ok else "check failed")
        self.link.flush()

    # ---- link ----------------------------------------------------------------------------------
    @micropython.native   # no heap frame per call (bytecode calls allocate one)
    def service(self):
        if self.link.poll(self.handle):
            self.link.flush()        # replies go out at once

    def handle(self, typ, seq, payload):
        try:
            if typ == L.LOAD:
                return self.cmd_load(seq, payload)
            obj, code, detail = L.parse_command(typ, payload)
            if code:
                return self.link.error(seq, code, detail)
            self._cmds[typ](seq, obj)
        except Exception as e:  # never let a command take the loop down
            if self.session is not None:
                self.hal.zero()
                self.end_session("fault", "internal")
            self.link.error(seq, L.E_INTERNAL, "%s: %s" % (type(e).__name__, e))

    def stimulating(self):
        return self.session is not None

    def cmd_hello(self, seq, obj):
        link = self.link
        if obj["link"] != L.LINK_VERSION:
            return link.error(seq, L.E_BAD_FIELD, "link version %d not spoken" % obj["link"])
        link.tx_seq = 0
        self.set_raw(False)          # a new host asks for what it wants
        if self.state == L.READY:    # and checks the electrodes itself before any START
            self.set_state(L.LOADED, "new host")
        link.reply(seq, board=self.board.get("id", "?"), unit=self.unit_id, fw=VERSION, fw_sha256=self.fw_sha256,
                   link=L.LINK_VERSION, max_payload=L.MAX_PAYLOAD, state=L.STATE_NAMES[self.state],
                   boot=self.boot_reason)

    def cmd_load(self, seq, payload):
        link = self.link
        if self.stimulating() or self.state == L.CHECKING:
            return link.error(seq, L.E_BUSY, "stimulating")
        parts = L.unpack_load(payload)
        if parts is None:
            return link.error(seq, L.E_BAD_FIELD, "malformed LOAD")
        offset, total, chunk = parts
        if total > MAX_LOAD:
            return link.error(seq, L.E_OVERSIZE, "protocol of %d bytes, device holds %d" % (total, MAX_LOAD))
        if offset == 0:
            self.load_buf = bytearray()
            self.proto = self.sha = None
            self.set_state(L.IDLE, "load")
        if self.load_buf is None or offset != len(self.load_buf):
            return link.error(seq, L.E_OUT_OF_ORDER, "chunk at %d, expected %d" %
                              (offset, len(self.load_buf) if self.load_buf is not None else 0))
        self.load_buf += chunk
        if len(self.load_buf) < total:
            return link.reply(seq, have=len(self.load_buf))
        data = bytes(self.load_buf)
        self.load_buf = None
        try:
            proto = json.loads(data)
        except ValueError:
            return link.error(seq, L.E_BAD_JSON, "protocol is not JSON")
        problems = V.check(proto, self.limits)     # the device never trusts the host
        need = _sources(proto)
        have = self.hal.channels
        if self.board.get("current_sources", 1) < have:
            have = self.board.get("current_sources", 1)
        if need > 1 and need > have:
            # A source per driven electrode, or the montage is never half-driven (issue 12).
            return link.error(seq, L.E_INVALID_PROTOCOL, "this board drives %d current source(s); the montage needs %d"
                              % (have, need))
        if problems:
            p = problems[0]
            return link.error(seq, L.E_INVALID_PROTOCOL, "%s %s %s %s (%s)" % (p[0], p[1], p[2], p[3], p[4]))
        self.proto = proto
        self.sha = _hex(hashlib.sha256(data).digest())
        total_ms = 0
        for seg in proto["segments"]:
            total_ms += V.stim_ms(seg) if seg["kind"] == "stim" else seg["duration_ms"]
        self.set_state(L.LOADED, "load")
        link.reply(seq, sha256=self.sha, bytes=total, state="loaded", duration_ms=total_ms)

    def cmd_check(self, seq, obj):
        link = self.link
        if self.stimulating() or self.state in (L.CHECKING, L.FAULT, L.STREAMING):
            return link.error(seq, L.E_BUSY if self.state != L.FAULT else L.E_BAD_STATE, L.STATE_NAMES[self.state])
        current = obj.get("current_uA", CHECK_UA)
        duration = obj.get("duration_ms", CHECK_MS)
        if not 1 <= current <= CHECK_UA or not 50 <= duration <= 5000:
            return link.error(seq, L.E_BAD_FIELD, "current_uA 1..%d, duration_ms 50..5000" % CHECK_UA)
        self.set_state(L.CHECKING, "check")
        link.reply(seq, state="checking")
        if self.proto is not None and _sources(self.proto) > 1:
            from tes import multicheck        # a contact per electrode: steps of its own
            multicheck.begin(self, current, duration)
        else:
            self.begin(CHECK, test_current_protocol(current, duration), None)

    def cmd_start(self, seq, obj):
        link = self.link
        if self.state != L.READY or self.proto is None:
            return link.error(seq, L.E_BAD_STATE, "START needs a loaded protocol and a passed CHECK (state %s)"
                              % L.STATE_NAMES[self.state])
        if obj["sha256"] != self.sha:
            return link.error(seq, L.E_HASH_MISMATCH, "loaded protocol is %s" % self.sha)
        s = self.begin(STIM, self.proto, self.sha)
        link.reply(seq, state="ramp-up", sid=s.sid, t0_ms=s.t0_ms)

    def cmd_stop(self, seq, obj):
        s = self.session
        if s is not None and s.kind != CHECK and s.outcome is None:
            s.outcome = ("stopped", "operator-stop" if s.kind == STIM else "stream-off")
            seg = s.proto["segments"][s.engine.seg] if s.engine.seg >= 0 else None
            ramp = seg["ramp_down_ms"] if seg is not None and seg["kind"] == "stim" else 0
            s.engine.soft_stop(ramp or S.SOFT_RAMP_MS)   # the running segment's own ramp-down
        self.link.reply(seq, state=L.STATE_NAMES[self.state])

    def cmd_change(self, seq, obj):
        """An online change (tes.online, docs/online.md): accepted for its sample, or
        refused with the reason. The protocol's bounds hold whatever the host sends."""
        s = self.session
        if s is None or s.kind != STIM:
            return self.link.error(seq, L.E_BAD_STATE, "no session running")
        if s.outcome is not None:             # a stop is under way: nothing changes any more
            return self.link.error(seq, L.E_REFUSED, "stopping")
        name = obj["param"]
        O = s.engine.O
        if O is None:                         # the protocol declares no [online]: nothing may change
            return self.link.error(seq, L.E_REFUSED, "not-online")
        code = O.code_of(name)
        at_ms = obj.get("at_ms")
        fs = s.fs
        at = None
        if at_ms is not None:
            # sample of a session time, in small ints (at_ms * fs overflows 2**30)
            at = -1 if at_ms < 0 else at_ms // 1000 * fs + at_ms % 1000 * fs // 1000
        why, at = s.engine.change(code, obj["value"], at)
        if why:
            return self.link.error(seq, L.E_REFUSED, why)
        self.link.reply(seq, at_sample=at, at_ms=at // fs * 1000 + at % fs * 1000 // fs)

    def cmd_abort(self, seq, obj):
        s = self.session
        if s is not None:
            self.hal.zero()          # at once: abort does not wait for a ramp
            if s.kind == CHECK:
                self.end_check(s, "aborted")
            else:
                self.end_session("aborted", obj.get("reason", "operator-abort"))
        self.link.reply(seq, state=L.STATE_NAMES[self.state])

    def cmd_status(self, seq, obj):
        s = self.session
        self.link.reply(seq, state=L.STATE_NAMES[self.state], t_ms=self.hal.ticks_ms(), sha256=self.sha,
                        charge_uC=s.sup.charge_uC if s else 0,
                        elapsed_ms=s.engine.elapsed * 1000 // s.fs if s else 0,
                        remaining_ms=s.engine.remaining() * 1000 // s.fs if s else 0,
                        faults=self.faults, rx_lost=self.link.rx_lost, rx_errors=self.link.rx_errors,
                        tx_dropped=getattr(self.link.port, "dropped", 0))

    def cmd_journal(self, seq, obj):
        if self.session is not None:      # reading flash would hold up the control loop
            return self.link.error(seq, L.E_BUSY, "stimulating")
        start = obj.get("start", 0)
        count = obj.get("count", 8)
        if start < 0 or not 1 <= count <= JOURNAL_MAX:
            return self.link.error(seq, L.E_BAD_FIELD, "start >= 0, count 1..%d" % JOURNAL_MAX)
        records = J.sessions(self.storage)
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
        self.link.reply(seq, records=out, next=i if i < len(records) else None, total=len(records))

    def cmd_heartbeat(self, seq, obj):
        pass

    def cmd_exit(self, seq, obj):
        if self.stimulating() or self.state == L.CHECKING:
            return self.link.error(seq, L.E_BUSY, "stimulating")
        self.link.reply(seq, state="repl")
        self.running = False

    def cmd_rawreq(self, seq, obj):
        self.set_raw(obj["on"])
        self.link.reply(seq, raw=self.raw_on)

    def cmd_stream(self, seq, obj):
        link = self.link
        if obj["on"]:
            if self.stimulating() or self.state not in (L.IDLE, L.LOADED, L.READY):
                return link.error(seq, L.E_BUSY, L.STATE_NAMES[self.state])
            current = obj.get("current_uA", CHECK_UA)
            if not 1 <= current <= CHECK_UA:
                return link.error(seq, L.E_BAD_FIELD, "current_uA 1..%d" % CHECK_UA)
            self.stream_return = self.state
            self.begin(STREAM, test_current_protocol(current, STREAM_MS), None)
            self.set_state(L.STREAMING, "stream")
        elif self.session is not None and self.session.kind == STREAM:
            self.cmd_stop(seq, obj)
            return
        link.reply(seq, state=L.STATE_NAMES[self.state])


def _sources(proto):
    """Driven electrodes of a multi-electrode montage (its electrodes but the return), else 1."""
    m = proto.get("montage") if isinstance(proto, dict) else None
    e = m.get("electrodes") if isinstance(m, dict) else None
    return len(e) - 1 if isinstance(e, list) else 1


def _random_bytes(n):
    import os
    if hasattr(os, "urandom"):
        return os.urandom(n)
    import random                # a port without os.urandom (WebAssembly)
    return bytes([random.getrandbits(8) for _ in range(n)])


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
        raw = _random_bytes(8)
    uid = "".join("%02x" % b for b in raw)
    with open(path, "w") as f:
        f.write(uid)
    return uid
