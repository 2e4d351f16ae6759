"""Remote control of a running session: JSON lines over TCP on this machine only
(docs/online.md, "Remote control"), for experiment software such as PsychoPy or MATLAB.

One JSON object per line each way. Requests and their replies:
    {"cmd": "status"}                      -> {"ok": true, "running": true, "row": {...last telemetry...}}
    {"cmd": "mark", "text": "cue"}         -> {"ok": true}             (events.tsv mark:cue)
    {"cmd": "change", "param": "burst", "value": 1, "at_ms": 5000}      (or "lsl_time": t, or neither)
                                           -> {"ok": true, "at_ms": 5000, "at_sample": 5000}
                                           or {"ok": false, "error": "refused", "reason": "step"}
    {"cmd": "subscribe"}                   -> {"ok": true}, then {"telemetry": {...}} per frame (50 Hz)
    {"cmd": "stop"} / {"cmd": "abort"}     -> {"ok": true}
Anything else: {"ok": false, "error": "bad-json" | "unknown-cmd" | "bad-field", "detail": ...}.
The device's own limits and the protocol's [online] bounds hold whatever is sent here.
"""
import json
import queue
import socketserver
import threading

from tes.online import NAMES

from tesctl.device import DeviceError
from tesctl.errors import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_LINE = 4096
SUB_QUEUE = 250              # telemetry rows a subscriber may fall behind (5 s): then rows are dropped
PARAMS = NAMES[1:]           # what CHANGE may name (tes.online)


def parse_address(text):
    """"[HOST:]PORT" -> (host, port), loopback hosts only (one line InputError otherwise)."""
    host, _, port = str(text).rpartition(":")
    host = host or "127.0.0.1"
    if host not in LOOPBACK:
        raise InputError("--control-tcp %s: only this machine may control a session (127.0.0.1, localhost)" % text)
    try:
        port = int(port)
    except ValueError:
        raise InputError("--control-tcp %s: give [HOST:]PORT, e.g. 127.0.0.1:7531" % text) from None
    if not 0 <= port <= 65535:
        raise InputError("--control-tcp %s: port 0-65535 (0: any free port)" % text)
    return host, port


def _int(obj, key, required=True):
    v = obj.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("%s must be a whole number" % key)
    return v


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        run = self.server.run
        lock = threading.Lock()

        def send(obj):
            data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
            with lock:
                self.wfile.write(data)
                self.wfile.flush()

        subscribed = None
        closed = threading.Event()

        def writer(rows):
            # A subscriber's rows go out from this connection's own thread: a client that
            # does not read blocks only this thread, never the session's.
            while not closed.is_set():
                try:
                    row = rows.get(timeout=0.5)
                except queue.Empty:
                    continue
                try:
                    send({"telemetry": row})
                except OSError:
                    return

        try:
            while True:
                line = self.rfile.readline(MAX_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_LINE:
                    send({"ok": False, "error": "bad-json", "detail": "line longer than %d bytes" % MAX_LINE})
                    break
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("a JSON object per line")
                except ValueError as e:
                    send({"ok": False, "error": "bad-json", "detail": str(e)[:200]})
                    continue
                cmd = req.get("cmd")
                if cmd == "subscribe":
                    if subscribed is None:
                        rows = queue.Queue(maxsize=SUB_QUEUE)

                        def subscribed(row, rows=rows):
                            try:
                                rows.put_nowait(row)
                            except queue.Full:      # a reader this far behind loses rows
                                pass
                        threading.Thread(target=writer, args=(rows,), daemon=True).start()
                        run.listeners.append(subscribed)
                    send({"ok": True})
                    continue
                send(self.server.dispatch(cmd, req))
        except OSError:
            pass                     # the client went away
        finally:
            closed.set()
            if subscribed is not None:
                try:
                    run.listeners.remove(subscribed)
                except ValueError:           # already dropped by the session
                    pass


class RemoteControl:
    """Serves a runner.Run (or tesctl.api.Session's run) on a loopback TCP port until closed."""

    def __init__(self, run, host="127.0.0.1", port=0, running=None):
        if host not in LOOPBACK:
            raise InputError("remote control listens on this machine only (127.0.0.1)")
        self.run = run
        self.running = running or (lambda: run.started and run.result is None)
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((host, port), _Handler, bind_and_activate=True)
        self.server.daemon_threads = True
        self.server.run = run
        self.server.dispatch = self.dispatch
        self.thread = threading.Thread(target=self.server.serve_forever, name="tesctl-remote", daemon=True)

    @property
    def address(self):
        return self.server.server_address[:2]

    def start(self):
        self.thread.start()
        return self

    def close(self):
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def dispatch(self, cmd, req):
        run = self.run
        try:
            if cmd == "status":
                return {"ok": True, "running": bool(self.running()), "row": run.last_row}
            if not self.running():
                return {"ok": False, "error": "not-running", "detail": "the session has ended"}
            if cmd == "mark":
                text = req.get("text")
                if not isinstance(text, str) or not text or len(text) > 200 or any(ord(c) < 32 for c in text):
                    return {"ok": False, "error": "bad-field", "detail": "text: 1-200 printable characters"}
                run.mark(text)
                return {"ok": True}
            if cmd == "change":
                param = req.get("param")
                if param not in PARAMS:
                    return {"ok": False, "error": "bad-field", "detail": "param: one of %s" % ", ".join(PARAMS)}
                value = _int(req, "value")
                at_ms = _int(req, "at_ms", required=False)
                lsl_time = req.get("lsl_time")
                if lsl_time is not None:
                    if at_ms is not None or isinstance(lsl_time, bool) or not isinstance(lsl_time, (int, float)):
                        return {"ok": False, "error": "bad-field", "detail": "lsl_time: a number, without at_ms"}
                    at_ms = run.session_ms_for_lsl(lsl_time)
                    if at_ms is None:
                        return {"ok": False, "error": "no-clock", "detail": "no clock mapping to LSL yet"}
                reply = run.change(param, value, at_ms)
                return {"ok": True, "at_ms": reply.get("at_ms"), "at_sample": reply.get("at_sample")}
            if cmd == "stop":
                run.request_stop()
                return {"ok": True}
            if cmd == "abort":
                run.request_abort()
                return {"ok": True}
            return {"ok": False, "error": "unknown-cmd",
                    "detail": "cmd: one of status, mark, change, subscribe, stop, abort"}
        except ValueError as e:
            return {"ok": False, "error": "bad-field", "detail": str(e)}
        except DeviceError as e:
            if e.code == "refused":
                return {"ok": False, "error": "refused", "reason": e.detail}
            return {"ok": False, "error": e.code or "device", "detail": str(e)}
