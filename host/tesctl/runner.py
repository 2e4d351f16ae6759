"""`tesctl run`: connect, check impedance, upload, start, watch, record, end.

The device owns safety: the host only asks (START, STOP, ABORT) and keeps it company with
heartbeats. Everything the device reports goes to the session directory as it arrives.
"""
import os
import queue
import signal
import threading
import time
from datetime import datetime

from tes import link as L
from tes import validate as V

from tesctl import firmware, reconcile
from tesctl.device import Device, DeviceError
from tesctl.errors import InputError, SessionEnded, TesctlError, safe_text
from tesctl.heartbeat import Heartbeat
from tesctl import blindrec
from tesctl.recorder import Recorder, RecordLost, fallback_dirs, fault_label
from tesctl.transport import TransportError, open_port

STIM_STATES = ("ramp-up", "plateau", "ramp-down", "pause", "sham-off")
SILENT_S = 10             # telemetry comes 50 times a second (5 a second of wall time on the
                          # virtual RP2040): 10 s of nothing is a dead link
HEARTBEAT_S = 0.25          # real time, when no telemetry paces it by the device's clock
FAST_HEARTBEAT_S = 0.005    # fast sim: answer its telemetry promptly so its clock runs on
SEAL_EVERY_S = 10           # a blinded record is sealed this often, so a killed host leaves it
STOP_MARGIN_MS = 1000       # blinded stop: the common end also covers the request's way to the device
CLOCK_POLL_S = 0.1          # blinded stop: how often the device clock is read while the end is held


class SessionError(TesctlError):
    """A run that could not go on; `code` is its exit code."""

    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


def _main_thread():
    return threading.current_thread() is threading.main_thread()


def firmware_hash(board_id="sim"):
    """The firmware hash a device reporting this board id holds if it runs this tesctl's
    firmware (tesctl.firmware), or None for a board this tesctl has no file for."""
    return firmware.expected_for_id(board_id)


def connect(port, board="sim", faults=(), fast=False, allow_mismatch=False, on_frame=None, log=print):
    """Open the port, say hello, refuse mismatched firmware, reconcile pending sessions."""
    try:
        transport = open_port(port, board=board, faults=faults, realtime=not fast)
    except Exception as e:  # TransportError, FileNotFoundError (no micropython)
        raise SessionError(str(e), 3) from None
    dev = Device(transport, on_frame)
    try:
        info = dev.hello()
        try:
            want = firmware_hash(info.get("board"))
        except firmware.FirmwareError as e:
            raise SessionError("cannot tell which firmware this tesctl expects: %s" % e, 3) from None
        if info.get("fw_sha256") != want and want is not None and info.get("fw_sha256") == firmware.frozen_sha256():
            log("note: board %s runs firmware frozen in its image (tesctl deploy --frozen): the hash covers its "
                "main.py, not the image's modules" % info.get("board"))
        elif info.get("fw_sha256") != want:
            msg = ("device firmware %s differs from this tesctl's %s for board %s (deploy it, or pass "
                   "--allow-mismatch)" % (str(info.get("fw_sha256"))[:12], (want or "none")[:12], info.get("board")))
            if not allow_mismatch:
                raise SessionError(msg, 3)
            log("warning: " + msg)
        reconcile.reconcile(dev, log=log)      # never raises for a record it cannot write
    except (DeviceError, OSError) as e:
        dev.close()
        raise SessionError(str(e), 3) from None
    except SessionError:
        dev.close()
        raise
    except Exception as e:  # TransportError and friends: one sentence, exit 3
        dev.close()
        raise SessionError(str(e), 3) from None
    return dev


def default_out_dir(protocol_path):
    stem = os.path.splitext(os.path.basename(str(protocol_path)))[0]
    return os.path.join("sessions", "%s-%s" % (datetime.now().strftime("%Y%m%d-%H%M%S"), stem))


def reserve_out_dir(out_dir, protocol_path):
    """Make the session directory now, before any current flows: (path, chosen by us).
    A directory given that holds anything is refused (no record is ever overwritten); the
    default name gets -2, -3, ... when taken (two runs in the same second each get their
    own, by an atomic mkdir). A directory that cannot be made or written is refused."""
    chosen = out_dir is None
    base = out_dir or default_out_dir(protocol_path)
    parent = os.path.dirname(os.path.abspath(base))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise InputError("--out %s: cannot make its parent directory: %s"
                         % (safe_text(base), e.strerror or e)) from None
    for n in range(1, 1000):
        path = base if n == 1 else "%s-%d" % (base, n)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not chosen:
                if os.path.isdir(path) and not os.listdir(path):
                    break                          # an empty directory made for this run
                raise InputError("--out %s: already exists and is not empty (a record is never overwritten: "
                                 "give a new directory)" % safe_text(path)) from None
            continue
        except OSError as e:
            raise InputError("--out %s: cannot make the session directory: %s" % (safe_text(path),
                                                                                  e.strerror or e)) from None
        break
    else:
        raise InputError("--out %s: no free name" % safe_text(base))
    probe = os.path.join(path, ".tesctl-write-test")
    try:
        with open(probe, "w") as f:
            f.write("x")
        os.remove(probe)
    except OSError as e:
        raise InputError("--out %s: cannot write there: %s" % (safe_text(path), e.strerror or e)) from None
    return path, chosen


def per_electrode_record(rows, names, ret):
    """session.json pre_check.per_electrode: the device's EVENT check `electrodes` (tes.multicheck)
    as [{name, contact_ohm, path_ohm, return}] in montage order (None: not measured; the return
    has no path of its own)."""
    got = {r.get("name"): r for r in rows if isinstance(r, dict)}
    out = []
    for n in names:
        r = got.get(n, {})
        out.append({"name": n, "contact_ohm": r.get("z_ohm"), "path_ohm": r.get("path_ohm"), "return": n == ret})
    return out


def _kohm(z):
    return "unknown" if z is None else "%.1f kOhm" % (z / 1000.0)


def check_lines(check):
    """The per-electrode check's lines: the verdict, then one per electrode ("C1 contact 8.5 kOhm,
    path 17.2 kOhm"); a path is a contact plus the return's, what the limit bounds."""
    why = ""
    if check.get("reason"):
        why = ": %s" % check["reason"] + (" at electrode %s" % check["electrode"] if check.get("electrode") else "")
    lines = ["impedance check per electrode (limit %d ohm a path, test current %d uA): %s%s" % (
        check.get("limit_ohm", 0), check.get("current_uA", 0), "pass" if check.get("pass") else "FAIL", why)]
    for e in check["per_electrode"]:
        if e["return"]:
            lines.append("  %s contact %s (the return)" % (e["name"], _kohm(e["contact_ohm"])))
        else:
            path = "open" if e["path_ohm"] is None else _kohm(e["path_ohm"])
            lines.append("  %s contact %s, path %s" % (e["name"], _kohm(e["contact_ohm"]), path))
    return lines


def total_ms(canon):
    return sum(V.stim_ms(s) if s["kind"] == "stim" else s["duration_ms"] for s in canon["segments"])


class Run:
    def __init__(self, loaded, port, out_dir, board="sim", faults=(), fast=False, subject=None,
                 lsl=False, raw=False, allow_mismatch=False, plain=None, blind=None):
        self.loaded = loaded
        self.blind = blind            # a tesctl.study Blinding: nothing shown or kept in clear tells the arm
        self.brec = None              # the clear part of a blinded record (tesctl.blindrec)
        self.blind_fallback = None
        self.last_seal = time.monotonic()
        self.port = port
        self.out_dir = out_dir
        self.board = board
        self.faults = faults
        self.fast = fast
        self.subject = subject
        self.lsl_on = lsl
        self.raw = raw
        self.allow_mismatch = allow_mismatch
        self.plain = plain
        self.rec = None
        self.display = None
        self.lsl = None
        self.result = None
        self.interrupts = 0
        self.started = False          # START sent: from then on Ctrl-C is stop, then abort
        self.last_raw_t = None        # device time of the telemetry when the last RAW came
        self.raw_restart = False      # the raw stream stopped mid-session: ask for it again
        self.last_tel_t = 0
        self.warn = print
        # A blinded operator stop (docs/study.md): device times of the requests, and the
        # device time until which the end is held, the same in every arm.
        self.stop_req_t = None
        self.abort_req_t = None
        self.hold_until = None
        self.dev_now = None
        # Hooks for scripts (tesctl.api): called in the thread that runs the session.
        self.show = True              # False: no live panel or progress lines
        self.telemetry_hook = None    # fn(dict) per telemetry frame (never when blinded)
        self.event_hook = None        # fn(dict) per device event
        self.started_hook = None      # fn() once START is acknowledged
        self.requests = queue.Queue()  # ("mark", text, host_s) / ("change", args, box) from other threads
        self.first_stim_t = None      # device ms of the session's first phase event: session time 0
        self.last_row = None          # the latest telemetry row (dict), for remote status
        self.unsaid = []              # messages from frames read before the display was up
        self._loop_thread = None      # the thread running the session loop (tesctl.api: not the main one)
        self._dev = None
        self.listeners = []           # more fn(row) per telemetry row (remote subscribers); dropped on error
        # A multi session (two or more driven electrodes): its electrodes in montage order,
        # whose figures each telemetry frame carries (tes.link.unpack_telem_electrodes).
        from tesctl.protofile import session_electrodes
        self.electrodes = (session_electrodes(loaded.canonical) if loaded is not None else None) or []

    # ---- frames from the device ---------------------------------------------------------
    def on_frame(self, f):
        if self.rec is None:
            return
        if f.type == L.TELEM:
            t_ms, state, set_uA, meas_uA, v_mV, z, q, flags = L.unpack_telem(f.payload)
            # The whole-period figures (RMS, peak, phase): recorded, shown and streamed in
            # clear only when not blinded (they tell a sham arm; blindrec's row bound has
            # no room for them either), so a blinded record keeps its link-1 columns.
            stats = None if self.blind else L.unpack_telem_stats(f.payload)
            elec = self._electrode_figures(f.payload)
            self.last_tel_t = t_ms
            rx_s = getattr(f, "rx_s", None)     # when the host read it: the clock mapping (tesctl.clock)
            name = L.STATE_NAMES[state] if state < len(L.STATE_NAMES) else str(state)
            if self.blind and self.hold_until is not None:
                # A blinded stop: the display runs on the clock the hold reads (the same in
                # every arm); the device's idle frames after its end are not the session's.
                if self.result is None:
                    self.rec.telemetry(t_ms, name, set_uA, meas_uA, v_mV, z, q, stats, rx_s)
                    self._seal_snapshot()
                return
            self.rec.telemetry(t_ms, name, set_uA, meas_uA, v_mV, z, q, stats, rx_s, elec)
            if self.blind:
                self._seal_snapshot()
            if self.display:
                self.display.update(t_ms - (self.rec.t0_ms or t_ms), name, set_uA, meas_uA, v_mV, z, q, stats, elec)
            if self.lsl and not self.blind:     # blinded: current, voltage and impedance stay sealed
                self.lsl.telemetry((set_uA, meas_uA, v_mV, -1 if z is None else z, q) + tuple(stats[:4])
                                   + (None if stats[4] is None else stats[4] / 100.0,)
                                   + tuple(v for row in (elec or ()) for v in row))
            if self.raw:
                self._watch_raw(t_ms, name)
            if not self.blind:
                row = self.last_row = {"t_ms": t_ms, "t_s": self.rec.t_s(t_ms), "state": name, "set_uA": set_uA,
                                       "meas_uA": meas_uA, "v_mV": v_mV, "z_ohm": z, "charge_uC": q}
                if elec:
                    row["electrodes"] = {n: dict(zip(L.TELEM_EL_FIELDS, fig)) for n, fig in zip(self.electrodes, elec)}
                if self.telemetry_hook is not None:
                    self._hook(self.telemetry_hook, row)
                for fn in list(self.listeners):
                    try:
                        fn(row)
                    except Exception:        # a remote subscriber gone: its connection, not the session
                        try:
                            self.listeners.remove(fn)
                        except ValueError:
                            pass
        elif f.type == L.RAW and self.raw:
            first, _, samples = L.unpack_raw(f.payload)
            if self.last_raw_t == float("inf") and self.rec.t0_ms is not None:
                # The device numbers only the samples it streamed: the ones it did not
                # while the stream was off leave no gap in the index, so say where.
                self.rec.raw_note("raw samples again from %.3f s of session time at sample %d: the samples "
                                  "between are not in raw_set_uA.txt" % (self.rec.t_s(self.last_tel_t), first))
            self.rec.raw(first, samples)
            self.last_raw_t = None
        elif f.type == L.EVENT:
            ev = f.obj
            kind = ev.get("ev")
            t = ev.get("t_ms", 0)
            if self.event_hook is not None and not self.blind:
                self._hook(self.event_hook, dict(ev))
            if kind == "change":
                self._record_change(ev)
            if kind == "state":
                # events.tsv lists the session's phases; the device's idle states after
                # the end (loaded, fault) are not phases of it.
                name = ev.get("state")
                if name in STIM_STATES and self.first_stim_t is None:
                    self.first_stim_t = t
                self.rec.state(t, name if name in STIM_STATES else None)
                if self.blind:
                    # One phase in every arm: the real phases are in the sealed record only.
                    if name in STIM_STATES and self.brec.open_at is None:
                        self.brec.started(self.rec.t_s(t))
                        self._marker(blindrec.PHASE)
                    return
                self._marker(ev.get("state"))
                if self.display:
                    self.display.state_change(safe_text("-> %s" % ev.get("state")))
            elif kind == "fault":
                where = ev.get("electrode") if self.electrodes else None   # a multi session's electrode
                if where and "fault_electrode" not in self.rec.meta:
                    self.rec.meta["fault_electrode"] = where
                self.rec.event(t, fault_label(ev.get("fault"), where))
                if ev.get("block"):     # the samples that tripped a hard fault
                    evidence = {"t_ms": t, "fault": ev.get("fault"), "block": ev["block"]}
                    if where:
                        evidence["electrode"] = where
                    self.rec.meta.setdefault("fault_evidence", []).append(evidence)
                self._marker(fault_label(ev.get("fault"), where))
                if self.blind:
                    # Named as in any arm; the detail (a measured current, a voltage) is sealed.
                    self.brec.fault(self.rec.t_s(t), ev.get("fault"))
                    self._say(safe_text("FAULT: %s" % ev.get("fault")))
                else:
                    self._say(safe_text("FAULT: %s%s (%s)" % (ev.get("fault"), " at electrode %s" % where if where
                                                             else "", ev.get("detail"))))
            elif kind == "end":
                if self.electrodes and ev.get("outcome") == "fault":
                    # The fault that ended the session names it (its reason is END's), not
                    # the first one: a soft stop on one electrode, then a hard fault on another.
                    if ev.get("electrode"):
                        self.rec.meta["fault_electrode"] = ev["electrode"]
                    else:
                        self.rec.meta.pop("fault_electrode", None)
                self.result = ("end", ev)
            elif kind == "boot":
                self.result = ("boot", ev)

    def _electrode_figures(self, payload):
        """A multi session's per-electrode figures of a TELEM payload (montage order), or
        None: not a multi session, blinded, or a frame without them (idle after the end)."""
        if not self.electrodes or self.blind:
            return None
        try:
            rows = L.unpack_telem_electrodes(payload)
        except ValueError:         # cut short: the frame's main figures still count
            return None
        return rows if len(rows) == len(self.electrodes) else None

    def _watch_raw(self, t_ms, state):
        """The raw stream stopping while current is set (another client's HELLO turns it
        off) is an interruption, written into session.json and said on screen."""
        if state not in STIM_STATES[:3]:
            return
        if self.last_raw_t is None:
            self.last_raw_t = t_ms
        elif t_ms - self.last_raw_t > 1000:
            self.rec.raw_note("no raw samples from %.3f s of session time" % self.rec.t_s(self.last_raw_t))
            self.warn("warning: the raw sample stream stopped (another client may have turned it off): asking "
                      "for it again; session.json records the interruption and the gap")
            self.last_raw_t = float("inf")
            self.raw_restart = True

    def _say(self, text):
        """A message for the operator's screen; kept until the display is up (with --fast
        the board can fault while START's reply is still being read)."""
        if self.display:
            self.display.message(text)
        else:
            self.unsaid.append(text)

    def _hook(self, fn, arg):
        """A script's callback: its error is the script's, never the session's. Said once,
        and the callback is dropped (the session goes on, the record is whole)."""
        try:
            fn(arg)
        except Exception as e:
            self.warn("warning: a script callback failed (%s: %s): it is not called again; the session "
                      "goes on" % (type(e).__name__, safe_text(e)))
            if fn is self.telemetry_hook:
                self.telemetry_hook = None
            if fn is self.event_hook:
                self.event_hook = None

    def mark(self, text):
        """An operator or script marker, from any thread: a row `mark:TEXT` in events.tsv at
        the device time it was asked (the clock mapping; before it has a frame, the last
        telemetry time), and an LSL marker. Handled by the session's own thread."""
        self.requests.put(("mark", text, time.time()))

    def _record_change(self, ev):
        """A change the device applied (EVENT change): a row change:PARAM=VALUE in
        events.tsv at its session time (the sample it took effect), and session.json."""
        at_ms = ev.get("at_ms", 0)
        t0 = self.first_stim_t if self.first_stim_t is not None else ev.get("t_ms", 0)
        text = "change:%s=%s" % (ev.get("param"), ev.get("value"))
        self.rec.event(t0 + at_ms, text)
        self.rec.meta.setdefault("changes", []).append(
            {"at_ms": at_ms, "at_sample": ev.get("at_sample"), "param": ev.get("param"), "value": ev.get("value")})
        self._marker(text)

    def session_ms_for_lsl(self, lsl_time):
        """The session time (ms from the first sample) of an LSL local_clock() time, through
        the clock mapping; None before the session's first frame. (Session time 0 is START's
        t0_ms, the device clock when the output started.)"""
        if self.rec is None or self.first_stim_t is None or not self.rec.clock.ready():
            return None
        try:
            return int(round(self.rec.clock.to_device_ms(lsl_time))) - self.first_stim_t
        except ValueError:          # no LSL clock observations (pylsl missing)
            return None

    def change(self, param, value, at_ms=None, timeout=10.0):
        """From any thread: ask the device for an online change; -> its reply, or raises
        DeviceError (code "refused": outside the protocol's [online] bounds)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError("change: value must be a whole number (%r)" % (value,))
        if at_ms is not None and (isinstance(at_ms, bool) or not isinstance(at_ms, int)):
            raise InputError("change: at_ms must be a whole number of ms or None (%r)" % (at_ms,))
        if threading.current_thread() is self._loop_thread:
            # a callback of this session (telemetry, event): the loop is here, ask directly
            return self._dev.change(param, value, at_ms)
        box = {"done": threading.Event()}
        self.requests.put(("change", (param, value, at_ms), box))
        if not box["done"].wait(timeout):
            raise DeviceError("no answer to the change within %.0f s" % timeout)
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _handle_requests(self):
        while True:
            try:
                kind, text, host_s = self.requests.get_nowait()
            except queue.Empty:
                return
            if kind == "change":
                box = host_s
                try:
                    box["reply"] = self._dev.change(*text)
                except Exception as e:     # handed to the asking thread; a link failure shows here too
                    box["error"] = e
                finally:
                    box["done"].set()
                continue
            if kind == "note" and self.rec is not None:
                self.rec.warning(self.last_tel_t, text)
                continue
            if kind == "mark" and self.rec is not None:
                clock = self.rec.clock
                t_ms = int(round(clock.host_to_device_ms(host_s))) if clock.ready() else self.last_tel_t
                self.rec.event(t_ms, "mark:%s" % text)
                self._marker("mark:%s" % text)

    def note(self, text):
        """From any thread: a warning row in events.tsv (and session.json "warnings") at
        the latest telemetry time, written by the session's thread."""
        self.requests.put(("note", text, None))

    def request_stop(self):
        """From any thread: what a first Ctrl-C does (ramp down)."""
        self.interrupts = max(self.interrupts, 1)

    def request_abort(self):
        """From any thread: what a second Ctrl-C does (zero now)."""
        self.interrupts = max(self.interrupts, 2)

    def _marker(self, text):
        if self.lsl:
            self.lsl.marker(text)

    def _contact_warning(self, t_ms, text):
        """recorder.ContactWatch's warning (events.tsv has it): on the screen and in LSL too."""
        self.warn("%s at %.1f s: the impedance has been rising steadily (check the electrodes)"
                  % (text, self.rec.t_s(t_ms)))
        self._marker(text)

    # ---- the run ------------------------------------------------------------------------
    def execute(self, log=print, warn=None):
        """Run the session; -> (outcome, reason, charge). Ctrl-C before START ends the run
        with nothing started (exit 1); after it, it asks the device to stop, then abort."""
        self.warn = warn or log
        old = signal.signal(signal.SIGINT, self._sigint) if _main_thread() else None
        try:
            return self._execute_connected(log)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def record_dir(self):
        if self.blind:
            return self.blind_fallback or self.out_dir
        return self.rec.record_dir() if self.rec is not None else self.out_dir

    def fell_back(self):
        if self.blind:
            return self.blind_fallback is not None
        return self.rec is not None and self.rec.fallback_dir is not None

    def _interrupted_before_start(self, what):
        if self.interrupts and not self.started:
            raise SessionEnded("interrupted (Ctrl-C) %s: no session was started" % what)

    def _execute_connected(self, log):
        loaded = self.loaded
        canon = loaded.canonical
        self._interrupted_before_start("before connecting")
        dev = connect(self.port, self.board, self.faults, self.fast, self.allow_mismatch, self.on_frame, log)
        try:
            return self._execute(dev, canon, log)
        except (DeviceError, TransportError) as e:
            # The link failed mid-session: ask the device to stop (it also stops by itself
            # once heartbeats cease), keep the record as incomplete for a later reconcile.
            if self.started:
                try:
                    dev.abort("link-lost")
                except Exception:  # the link is gone: nothing more to ask
                    pass
            if self.rec is not None:
                self.rec.meta["reason"] = "link-lost: %s" % e
                self._close_record()
                raise SessionError("lost the device mid-session: %s (the record in %s stays incomplete until "
                                   "the next connection reads the device journal)" % (e, self.record_dir()),
                                   3) from None
            raise
        except TesctlError:
            if self.rec is not None:
                self._close_record()
            raise
        finally:
            dev.close()
            if self.lsl:
                self.lsl.close()

    def _close_record(self):
        """Close the record; if it went to a fallback place, the pending index follows it."""
        if self.blind:
            self.rec.close()
            self._seal(None, self.rec.meta.get("reason"), None, complete=False)
            return
        before = self.rec.record_dir()
        self.rec.close()
        if self.rec.record_dir() != before:
            self._index(reconcile.move, before, self.rec.record_dir())

    def _index(self, fn, *args):
        """The pending index is a convenience for a later reconcile: failing to write it is
        a warning, never a reason to stop a session."""
        try:
            fn(*args)
        except (OSError, ValueError) as e:
            self.warn("warning: cannot update the pending-session index in %s: %s" % (
                reconcile.state_dir_name(), getattr(e, "strerror", None) or e))

    def _execute(self, dev, canon, log):
        try:
            reply = dev.load(self.loaded.canonical_bytes())
        except DeviceError as e:
            raise SessionError("the device refused the protocol: %s" % e,
                               2 if e.code == "invalid-protocol" else 3) from None
        if reply.get("sha256") != self.loaded.sha256():
            raise SessionError("device hashed the protocol as %s, host as %s" % (reply.get("sha256"),
                                                                                self.loaded.sha256()), 3)
        self._interrupted_before_start("before the impedance check")
        check = dev.check()
        z = check.get("z_ohm")
        if self.electrodes and isinstance(check.get("electrodes"), list):
            # The device's per-electrode check (tes.multicheck): a line per electrode, and the
            # figures in session.json's pre_check.per_electrode (montage order).
            check["per_electrode"] = per_electrode_record(check.pop("electrodes"), self.electrodes,
                                                          canon["montage"]["return"])
            for line in check_lines(check):
                log(line)
        elif self.electrodes:
            # A firmware without it: its CHECK drives one source, no electrode's contact, so
            # none is shown as one. It still gates START (the device refuses START without it).
            check["per_electrode"] = False
            log("impedance check: the per-electrode check is not built: no electrode's contact was "
                "measured; the device's one-source test current (%d uA) gates START: %s" % (
                    check.get("current_uA", 0), "pass" if check.get("pass") else "FAIL"))
        else:
            log("impedance check: %s (limit %d ohm, test current %d uA): %s" % (
                "open circuit" if z is None else "%d ohm" % z, check["limit_ohm"], check.get("current_uA", 0),
                "pass" if check.get("pass") else "FAIL"))
        if not check.get("pass"):
            raise SessionError("impedance check failed: not starting (check electrode contact and gel)", 1)
        self._interrupted_before_start("after the impedance check")
        if self.blind:
            self._blind_record(dev, check)
        meta = {"protocol_sha256": self.loaded.sha256(), "protocol": canon, "protocol_file": str(self.loaded.path),
                "firmware_version": dev.info.get("fw"), "firmware_sha256": dev.info.get("fw_sha256"),
                "board": dev.info.get("board"), "unit": dev.info.get("unit"), "port": self.port,
                "subject": self.subject,
                "pre_check": check, "faults_injected": list(self.faults), "fast": bool(self.fast)}
        if getattr(self.loaded, "provenance", None):
            meta["protocol_provenance"] = self.loaded.provenance      # [provenance]: tesctl iaf, titrate
        from tesctl.protofile import montage_record
        if montage_record(canon) is not None:
            meta["montage"] = montage_record(canon)                  # the multi form: electrodes, return
        if self.blind:
            meta.update(self.blind.sealed_meta())
        self.rec = Recorder(self.out_dir, meta, warn=self.warn, memory_only=bool(self.blind),
                            electrodes=self.electrodes)
        if not self.blind:      # a drying contact shows only where current flows: it would tell the arm
            self.rec.on_warning = self._contact_warning
        if self.lsl_on:
            from tesctl.lsl import LslOutlets, channels_for
            self.lsl = LslOutlets("tesctl", "tesctl-%s-%d" % (dev.info.get("board"), os.getpid()),
                                  channels=channels_for(self.electrodes))
        if self.raw:
            self.rec.open_raw()
            dev.raw(True)
        self._interrupted_before_start("before START")
        self.started = True
        start = dev.start(self.loaded.sha256())
        self.rec.meta["device_session_id"] = start.get("sid")
        if isinstance(start.get("t0_ms"), int):
            # session time 0 on the device's clock, to the ms: what at_ms and an LSL time
            # are counted from (older firmware: the first phase event, within a tick)
            self.first_stim_t = start["t0_ms"]
        self.rec.save()
        if self.started_hook is not None:
            self.started_hook()
        if self.blind:
            # Not in the pending index: it holds the protocol hash, and a later reconcile
            # would write the device journal's record in clear.
            self.brec.meta["device_session_id"] = start.get("sid")
            self.brec.save()
        else:
            self._index(reconcile.add, self.out_dir, dev.info.get("unit"), start.get("sid"), self.loaded.sha256())
        from tesctl.display import Display, Quiet, waveform_info
        title = self.blind.title() if self.blind else canon["name"]
        with (Display(safe_text(title), total_ms(canon), plain=self.plain, blind=bool(self.blind),
                      wave=None if self.blind else waveform_info(canon), electrodes=self.electrodes,
                      ret=V.return_name(canon)) if self.show else Quiet()) as disp:
            self.display = disp
            for text in self.unsaid:      # said before the display was up (a fast board's early fault)
                disp.message(text)
            self.unsaid = []
            self._loop(dev)
        return self._finish(dev)

    def _sigint(self, signum, frame):
        self.interrupts += 1
        if not self.started and self.interrupts > 1:
            raise KeyboardInterrupt   # a second Ctrl-C before START: do not wait for the step to end

    def _loop(self, dev):
        self._dev = dev
        self._loop_thread = threading.current_thread()
        handled = 0
        beat = Heartbeat(every_s=HEARTBEAT_S)   # a board: paced by its clock (tesctl.heartbeat)
        last_hb = 0.0
        last_rx = time.monotonic()
        last_poll = 0.0
        while self.result is None or self._holding():
            if self.interrupts > handled:
                handled = self.interrupts
                if handled == 1:
                    self.display.message("stopping: ramping down (Ctrl-C again to abort)")
                    self.display.note = "stopping"
                    if self.blind:
                        self._blind_request("stop")
                    dev.stop()
                else:
                    self.display.message("ABORT: output to zero now")
                    if self.blind:
                        self._blind_request("abort")
                    dev.abort()
            self._handle_requests()
            if self.blind and self.hold_until is not None and time.monotonic() - last_poll >= CLOCK_POLL_S:
                last_poll = time.monotonic()
                self._read_clock(dev)
            if self.raw_restart:
                self.raw_restart = False
                try:
                    dev.raw(True)
                except DeviceError as e:
                    if e.code is None:
                        raise          # no reply: the link, not the request
                    self.warn("warning: the device refused raw streaming again: %s" % e)
            got = dev.pump(0.02)
            now = time.monotonic()
            if got:
                last_rx = now
            elif now - last_rx > SILENT_S:
                raise DeviceError("the device sent nothing for %d s" % SILENT_S)
            if (now - last_hb >= FAST_HEARTBEAT_S and (got or now - last_hb > 0.1) if self.fast
                    else beat.due(now, self.last_tel_t)):
                dev.heartbeat()
                last_hb = now
                beat.sent(now)

    def _finish(self, dev):
        kind, ev = self.result
        # Drain what is still in flight (the last telemetry frame, the end state).
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            if not dev.pump(0.05):
                break
        if self.raw and self.rec.meta.get("raw") is not None:
            info = self.rec.meta["raw"]
            info["complete"] = not info.get("gaps") and not info.get("interruptions")
        if kind == "end":
            outcome, reason = ev["outcome"], ev["reason"]
            charge, stim_ms = ev["delivered_charge_uC"], ev["stim_duration_ms"]
            if isinstance(ev.get("longest_tick_ms"), int):
                # the device's timing margin: its output queue must outlast this
                self.rec.meta["device_longest_tick_ms"] = ev["longest_tick_ms"]
            before = self.rec.record_dir()
            if self.blind:
                clear_outcome, clear_reason, end_t = self._blind_end(outcome, reason, ev.get("t_ms"))
            self.rec.finish(outcome, reason, charge, stim_ms, ev.get("t_ms"), lost=dev.lost)
            if self.blind:
                self._seal(clear_outcome, clear_reason, self.rec.t_s(end_t) if end_t is not None else None)
                self._marker("end:%s" % clear_outcome)
                return clear_outcome, clear_reason, charge
            if self.rec.record_dir() != before:
                self._index(reconcile.move, before, self.rec.record_dir())
        elif self.blind:
            return self._finish_blind_boot(dev, ev)
        else:
            # The board rebooted mid-session: its journal closed the session at boot. The
            # record is completed from it as a later connection would (tesctl.reconcile),
            # with the boot's own reason (reset, watchdog).
            sid = self.rec.meta.get("device_session_id")
            recs = [r for r in dev.journal() if r.get("id") == sid]
            journal_rec = recs[-1] if recs else {"id": sid, "outcome": "fault", "reason": "reset",
                                                  "delivered_charge_uC": 0, "stim_ms": None,
                                                  "boot_ms": ev.get("t_ms")}
            self.rec.meta["lost_frames"] = dev.lost
            self._close_record()
            try:
                meta = reconcile.complete_from_journal(self.record_dir(), journal_rec, host_saw_end=True,
                                                       reason=ev.get("reason"))
            except (OSError, ValueError) as e:
                self.warn("warning: cannot complete the record in %s from the journal now (%s): the next "
                          "connection will" % (self.record_dir(), getattr(e, "strerror", None) or e))
                return journal_rec.get("outcome", "fault"), ev.get("reason"), journal_rec.get("delivered_charge_uC")
            outcome, reason, charge = meta["outcome"], meta["reason"], meta["delivered_charge_uC"]
        self._index(reconcile.remove, self.out_dir)
        self._marker("end:%s" % outcome)
        return outcome, reason, charge

    # ---- blinded study ------------------------------------------------------------------
    def _blind_request(self, what):
        """An operator stop or abort in a blinded run: each arm ends after its own ramp-down
        (a sham at zero at once), so the clear record, the screen and LSL take the end at a
        time common to every arm: the request, on the device's clock, plus the study's
        longest stop ramp (abort: no ramp) plus STOP_MARGIN_MS. The device's own end is sealed."""
        t = self.dev_now if self.dev_now is not None else self.last_tel_t
        if what == "stop":
            self.stop_req_t = t
            until = t + self.blind.stop_ramp_ms() + STOP_MARGIN_MS
        else:
            self.abort_req_t = t
            until = t + STOP_MARGIN_MS
        self.hold_until = until if self.hold_until is None else min(self.hold_until, until)

    def _read_clock(self, dev):
        """The device's clock (STATUS), read the same way in every arm while a stop is held;
        the blinded display shows the time from it."""
        t = dev.status().get("t_ms")
        if not isinstance(t, int):
            return
        self.dev_now = t
        if self.display and self.rec.t0_ms is not None:
            self.display.update(t - self.rec.t0_ms, blindrec.PHASE, 0, 0, 0, None, 0)

    def _holding(self):
        """The device has ended; hold the end of a blinded stop until the common time."""
        return (self.blind is not None and self.hold_until is not None and self.result[0] == "end"
                and (self.dev_now is None or self.dev_now < self.hold_until))

    def _blind_end(self, outcome, reason, end_t):
        """(clear outcome, clear reason, clear end onset) of a blinded session that the device
        ended at end_t (device ms). After an operator stop the clear end is the common time
        held to; its outcome is the operator's request (a sham that was at zero has ended
        "stopped" by the time a second Ctrl-C comes, the real arm "aborted"). A fault, or an
        end the request did not make, is left as the device said."""
        if self.hold_until is None or end_t is None or self.rec.t0_ms is None:
            return outcome, reason, end_t
        self.rec.meta["blind_stop"] = {
            "stop_requested_t_s": self.rec.t_s(self.stop_req_t) if self.stop_req_t is not None else None,
            "abort_requested_t_s": self.rec.t_s(self.abort_req_t) if self.abort_req_t is not None else None,
            "device_end_t_s": self.rec.t_s(end_t), "clear_end_t_s": self.rec.t_s(max(end_t, self.hold_until)),
            "stop_ramp_ms": self.blind.stop_ramp_ms(), "margin_ms": STOP_MARGIN_MS}
        if outcome in ("stopped", "aborted") and str(reason).startswith("operator-"):
            outcome, reason = ("aborted", "operator-abort") if self.abort_req_t is not None \
                else ("stopped", "operator-stop")
        return outcome, reason, max(end_t, self.hold_until)

    def _blind_record(self, dev, check):
        info = dev.info
        meta = self.blind.clear_meta()
        meta.update({"firmware_version": info.get("fw"), "firmware_sha256": info.get("fw_sha256"),
                     "board": info.get("board"), "unit": info.get("unit"), "port": self.port,
                     "faults_injected": list(self.faults), "fast": bool(self.fast), "raw": bool(self.raw),
                     "pre_check": {k: check.get(k) for k in ("z_ohm", "limit_ohm", "current_uA", "pass")}})
        self.brec = blindrec.BlindRecord(self.out_dir, meta, warn=self.warn)

    def _finish_blind_boot(self, dev, ev):
        """The board rebooted mid-session: the journal's record goes into the sealed part
        (it holds the protocol hash); the clear part has the outcome and the boot's reason."""
        sid = self.rec.meta.get("device_session_id")
        recs = [r for r in dev.journal() if r.get("id") == sid]
        jr = recs[-1] if recs else {"id": sid, "outcome": "fault", "delivered_charge_uC": 0, "stim_ms": None}
        self.rec.meta.update({"journal_record": jr, "reconciled_from_journal": True})
        outcome, reason = jr.get("outcome") or "fault", ev.get("reason") or jr.get("reason") or "reset"
        charge = max(jr.get("delivered_charge_uC") or 0, self.rec.meta.get("delivered_charge_uC") or 0)
        end = self.rec.t_s(self.last_tel_t) if self.rec.t0_ms is not None else None
        if end is not None:
            self.rec.event(self.last_tel_t, "fault:%s" % reason)
        self.rec.finish(outcome, reason, charge, jr.get("stim_ms") or 0, self.last_tel_t or None, lost=dev.lost)
        if end is not None:
            self.brec.fault(end, reason)           # as a record completed from the journal has it
        self._seal(outcome, reason, end)
        self._marker("end:%s" % outcome)
        return outcome, reason, charge

    def _seal_snapshot(self):
        """Every SEAL_EVERY_S of wall time (the same in every arm), the record so far is sealed
        over sealed.bin, the same size: a host killed mid-session leaves that much. A failure
        here is for the end to deal with (it tries fallback places)."""
        now = time.monotonic()
        if now - self.last_seal < SEAL_EVERY_S:
            return
        self.last_seal = now
        try:
            blindrec.write_sealed(self.out_dir, self.rec.files(), self.blind.public_key,
                                  self.blind.sealed_size(self.raw))
        except OSError:
            pass

    def _seal(self, outcome, reason, end_onset, complete=True):
        """Seal the whole record to the study key, here or in a fallback place, then close
        the clear part."""
        files = self.rec.files()
        size = self.blind.sealed_size(self.raw)
        for d in [self.out_dir] + fallback_dirs(self.out_dir):
            try:
                os.makedirs(d, exist_ok=True)
                n = blindrec.write_sealed(d, files, self.blind.public_key, size)
            except OSError:
                continue
            if d != self.out_dir:
                self.blind_fallback = d
                self.brec.dir = d
                self.brec.meta["recording_fallback"] = {"asked": os.path.abspath(self.out_dir), "written": d}
                self.warn("warning: the sealed record could not be written in %s: it is in %s" % (self.out_dir, d))
            break
        else:
            raise RecordLost("the sealed session record could not be written anywhere (tried %s)" % self.out_dir)
        self.brec.finish(outcome, reason, end_onset, n)
        if not complete:
            self.brec.meta["complete"] = False
            self.brec.save()
