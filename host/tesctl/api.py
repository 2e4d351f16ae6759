"""A session driven from a Python script (docs/api.md).

    from tesctl.api import Session

    with Session("protocols/tacs-alpha-10hz.toml", port="sim") as s:
        s.on_telemetry(lambda row: print(row["t_s"], row["meas_uA"]))
        s.start()                 # returns once the device has started the session
        s.mark("eyes closed")     # events.tsv: mark:eyes closed, at the device time asked
        result = s.wait()         # Result(outcome, reason, charge_uC, record_dir)

The session is the one `tesctl run` runs (tesctl.runner.Run): the same impedance check,
the same record, the same device limits. It runs in a thread of its own; the callbacks are
called in that thread, and one that raises is dropped with a warning (the session goes
on). Leaving the `with` block while the session runs asks the device to ramp down and
waits for the end, so a script that fails never leaves current flowing.
"""
import threading
from collections import namedtuple

from tesctl import protofile
from tesctl.boards import BoardError, resolve
from tesctl.errors import InputError, TesctlError, safe_text
from tesctl.runner import Run, reserve_out_dir

Result = namedtuple("Result", "outcome reason charge_uC record_dir")

MARK_MAX = 200


class Session:
    def __init__(self, protocol, port="sim", board=None, out_dir=None, subject=None, lsl=False, raw=False,
                 faults=(), fast=False, allow_mismatch=False, log=None, warn=None):
        """Load and validate the protocol against the board now (InputError lists its
        problems); nothing touches the device before start()."""
        board = board or "sim"
        if port != "sim" and (faults or fast):
            raise InputError("faults and fast work only with a simulated board (port='sim')")
        try:
            _, limits = resolve(board)
        except BoardError as e:
            raise InputError(str(e)) from None
        loaded = protofile.load(protocol, limits)
        if not loaded.ok:
            raise InputError("%s: %s" % (safe_text(protocol), "; ".join(loaded.problems)))
        from tesctl.simfaults import check_fault_specs
        problems = check_fault_specs(tuple(faults), loaded.canonical)
        if problems:
            raise InputError(problems[0])
        self.loaded = loaded
        self.warnings = list(loaded.warnings)
        self._args = dict(port=port, board=board, faults=tuple(faults), fast=fast, subject=subject, lsl=lsl,
                          raw=raw, allow_mismatch=allow_mismatch)
        self._out_dir = out_dir
        self._protocol = protocol
        self._log = log or (lambda m: None)
        self._warn = warn or self._log
        self._run = None
        self._thread = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._result = None
        self._error = None
        self._telemetry = None
        self._event = None

    # ---- callbacks (set before start) ---------------------------------------------------
    def on_telemetry(self, fn):
        """fn(row) for every telemetry frame (50 Hz): row is a dict with t_ms (device),
        t_s (session time), state, set_uA, meas_uA, v_mV, z_ohm (None: open), charge_uC."""
        self._telemetry = fn
        if self._run is not None:
            self._run.telemetry_hook = fn

    def on_event(self, fn):
        """fn(event) for every device event: a dict with ev ("state", "fault", "end", ...)
        and t_ms, as docs/wire.md lists them."""
        self._event = fn
        if self._run is not None:
            self._run.event_hook = fn

    # ---- the session --------------------------------------------------------------------
    def start(self, timeout=None):
        """Connect, check the impedance, start; return once the device has started (or
        raise the reason it did not: a failed check, a refused protocol, no device)."""
        if self._thread is not None:
            raise TesctlError("this session was already started (one Session runs one session)")
        out_dir, _ = reserve_out_dir(self._out_dir, self._protocol)
        run = Run(self.loaded, self._args["port"], out_dir, board=self._args["board"], faults=self._args["faults"],
                  fast=self._args["fast"], subject=self._args["subject"], lsl=self._args["lsl"],
                  raw=self._args["raw"], allow_mismatch=self._args["allow_mismatch"], plain=True)
        run.show = False
        run.telemetry_hook = self._telemetry
        run.event_hook = self._event
        run.started_hook = self._started.set
        self._run = run
        self._thread = threading.Thread(target=self._body, name="tesctl-session", daemon=True)
        self._thread.start()
        while not self._started.wait(0.05):
            if self._done.is_set():
                break
            if timeout is not None:
                timeout -= 0.05
                if timeout <= 0:
                    self.abort()
                    raise TesctlError("the session did not start in time: aborted")
        if not self._started.is_set():
            self._raise()
        return self

    def _body(self):
        try:
            outcome, reason, charge = self._run.execute(log=self._log, warn=self._warn)
            self._result = Result(outcome, reason, charge, self._run.record_dir())
        except BaseException as e:   # handed to the script's thread by wait()/start()
            self._error = e
        finally:
            self._done.set()

    def _raise(self):
        if self._error is not None:
            raise self._error

    def mark(self, text):
        """Record a marker now: a row `mark:TEXT` in events.tsv at the device time of this
        call (through the clock mapping, docs/records.md), and an LSL marker with lsl=True."""
        text = str(text)
        if not text or len(text) > MARK_MAX or any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise InputError("mark: 1 to %d printable characters, no tab or newline (events.tsv is "
                             "tab-separated): %r" % (MARK_MAX, text[:40]))
        self._need_running()
        self._run.mark(text)

    def change(self, param, value, at_ms=None, lsl_time=None, timeout=10.0):
        """An online change (docs/online.md): param one of amplitude_uA, offset_uA,
        frequency_mHz, phase_deg, burst (value 1 on, 0 off), within the protocol's [online]
        bounds. at_ms: the session time (ms from the first sample) it takes effect; or
        lsl_time: an LSL local_clock() time, mapped through the clock mapping; neither: as
        soon as the device can. -> {"at_ms", "at_sample"} as the device scheduled it.
        Raises DeviceError (code "refused", the reason in its message) for a change the
        device refuses: out-of-bounds, step, too-soon, ramping, late, outside-plateau..."""
        self._need_running()
        if lsl_time is not None:
            if at_ms is not None:
                raise InputError("change: give at_ms or lsl_time, not both")
            at_ms = self._run.session_ms_for_lsl(lsl_time)
            if at_ms is None:
                raise TesctlError("change: no clock mapping to LSL yet (wait for the session's first telemetry)")
        return self._run.change(param, value, at_ms, timeout)

    def stop(self):
        """Ramp down and end (a first Ctrl-C of tesctl run); wait() for the end."""
        self._need_running()
        self._run.request_stop()

    def abort(self):
        """Output to zero now (a second Ctrl-C)."""
        if self._run is not None:
            self._run.request_abort()

    def running(self):
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout=None):
        """The Result once the session has ended; None if timeout (s) passed first. Raises
        what ended the run abnormally (a lost link: tesctl.runner.SessionError)."""
        if self._thread is None:
            raise TesctlError("the session was not started")
        if not self._done.wait(timeout):
            return None
        self._raise()
        return self._result

    def _need_running(self):
        if not self.running():
            raise TesctlError("no session is running")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.running():
            self._run.request_stop()
            try:
                self._done.wait()
            except KeyboardInterrupt:     # Ctrl-C while it ramps down: zero now, as tesctl run does
                self._run.request_abort()
                self._done.wait()
        return False
