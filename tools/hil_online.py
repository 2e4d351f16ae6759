"""Online changes on the virtual RP2040 (issue 15): one session under `tesctl hil`.

Starts `tesctl hil` (stdin from a fifo in DIR), deploys this checkout's firmware, resets,
runs one session of PROTOCOL through tesctl.api.Session with changes scheduled for exact
session times (--at) and changes asked as soon as possible later in the plateau (--asap),
then asks hil for its stats, and writes DIR/changes.json: each reply (at_ms, at_sample),
and for an asap change the session time of the latest telemetry row received before the
call (its lead = at_ms / 1000 - that t_s; telemetry rows are 20 ms apart).

    python tools/hil_online.py --uf2 firmware.uf2 --dir /tmp/hilon --protocol P.toml \
        --at 4000:amplitude_uA=1500 --at 5000:burst=0 --asap-from 10 --asap amplitude_uA=1000 ...

--port PTY: a hil already running (its stdin the fifo DIR/ctl) with the app up: no hil, deploy
or reset here. --at-from/--at-every pace the --at requests by session time (five CHANGEs back
to back during the ramp-up preceded an underrun once; not isolated). --allow-mismatch: the
device's firmware may differ from this checkout's working tree (someone editing firmware/).

The emulator runs slower than real time on a loaded host: every wait here is long.
Afterwards: tesctl preview P --changes DIR/sess/session.json --csv p.csv;
tesctl dac-compare DIR/dac.csv p.csv.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESCTL = os.path.join(REPO, ".venv", "bin", "tesctl")
BOARD = "pico-mcp4922"


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def parse_change(text):
    """'PARAM=VALUE' -> (param, int value)."""
    param, _, value = text.partition("=")
    return param, int(value)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uf2", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--at", action="append", default=[], help="MS:PARAM=VALUE, a change at session time MS")
    ap.add_argument("--asap", action="append", default=[], help="PARAM=VALUE, asked as soon as possible, in order")
    ap.add_argument("--asap-from", type=float, default=10.0, help="session time (s) of the first asap change")
    ap.add_argument("--asap-every", type=float, default=0.5, help="session time (s) between asap changes")
    ap.add_argument("--at-from", type=float, default=0.0, help="session time (s) to send the first --at change")
    ap.add_argument("--at-every", type=float, default=0.0, help="session time (s) between --at requests")
    ap.add_argument("--timeout", type=float, default=60.0, help="per change request (s)")
    ap.add_argument("--settle", type=float, default=60.0, help="wait after reset (s)")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="the device's firmware may differ from this checkout's")
    ap.add_argument("--port", help="a hil already running with its app up on this pty (its stdin: DIR/ctl)")
    args = ap.parse_args(argv)

    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    ctl = os.path.join(d, "ctl")
    if args.port:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)

        def send(line):
            log("ctl> " + line)
            os.write(fd, (line + "\n").encode())

        send("stats")
        return _session(args, d, args.port, send, "", "")
    if os.path.exists(ctl):
        os.unlink(ctl)
    os.mkfifo(ctl)
    fd = os.open(ctl, os.O_RDWR)

    def send(line):
        log("ctl> " + line)
        os.write(fd, (line + "\n").encode())

    hil_out = os.path.join(d, "hil.out")
    hil = subprocess.Popen(
        ["nice", "-n", "5", TESCTL, "hil", "--uf2", args.uf2, "--board", BOARD,
         "--flash", os.path.join(d, "flash.bin"), "--dac-log", os.path.join(d, "dac.csv")],
        stdin=fd, stdout=open(hil_out, "w"), stderr=open(os.path.join(d, "hil.err"), "w"), cwd=d)
    with open(os.path.join(d, "hil.pid"), "w") as f:
        f.write(str(hil.pid))
    log("hil pid %d" % hil.pid)
    try:
        return _measure(args, d, hil_out, send)
    finally:
        send("quit")
        try:
            hil.wait(60)
        except subprocess.TimeoutExpired:
            hil.kill()
        log("hil rc %s" % hil.returncode)


def _ended(events):
    return any(ev.get("ev") in ("end", "fault") for _, ev in events)


def _hello(pty, d, tries=6):
    """Wait until the device answers (tesctl stream's first frame would be slower): try the
    repl's prompt too, to log what a firmware that did not boot prints."""
    for _ in range(tries):
        r = subprocess.run(["nice", "-n", "5", TESCTL, "stream", "--port", pty, "--board", BOARD, "--seconds", "1"],
                           capture_output=True, text=True, cwd=d)
        log("stream rc %d: %s" % (r.returncode, (r.stdout + r.stderr)[-400:]))
        if r.returncode == 0:
            return True
        time.sleep(20)
    return False


def _measure(args, d, hil_out, send):
    pty = None
    for _ in range(180):
        time.sleep(1)
        m = re.search(r"(/dev/pts/\d+)", open(hil_out).read())
        if m:
            pty = m.group(1)
            break
    if pty is None:
        log("no pty from hil")
        return 2
    log("pty " + pty)
    time.sleep(20)
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--short", "--", "firmware"],
                           capture_output=True, text=True).stdout
    log("deploying %s; firmware/ changes: %r" % (sha, dirty))
    for _ in range(5):
        r = subprocess.run(["nice", "-n", "5", TESCTL, "deploy", "--port", pty, "--board", BOARD],
                           capture_output=True, text=True, cwd=d)
        log("deploy rc %d: %s" % (r.returncode, (r.stdout + r.stderr)[-600:]))
        if r.returncode == 0:
            break
        send("reset")
        time.sleep(40)
    else:
        return 2
    send("reset")
    time.sleep(args.settle)
    send("stats")
    if not _hello(pty, d):
        return 3
    return _session(args, d, pty, send, sha, dirty)


def _session(args, d, pty, send, sha, dirty):
    from tesctl.api import Session

    last = {"row": None, "wall": None}
    lock = threading.Lock()
    events = []

    def on_row(row):
        with lock:
            last["row"] = row
            last["wall"] = time.time()

    def on_event(ev):
        events.append((time.time(), ev))

    def t_s():
        with lock:
            return None if last["row"] is None else last["row"]["t_s"]

    results = {"firmware": sha, "firmware_dirty": dirty, "at": [], "asap": []}
    with Session(args.protocol, port=pty, board=BOARD, out_dir=os.path.join(d, "sess"), raw=False,
                 allow_mismatch=args.allow_mismatch, log=lambda s: log("run| " + s),
                 warn=lambda s: log("warn| " + s)) as s:
        s.on_telemetry(on_row)
        s.on_event(on_event)
        s.start(timeout=300)
        log("started")
        for k, spec in enumerate(args.at):
            while (t_s() or 0.0) < args.at_from + k * args.at_every and not _ended(events):
                time.sleep(0.005)
            ms, _, ch = spec.partition(":")
            param, value = parse_change(ch)
            rec = {"param": param, "value": value, "asked_ms": int(ms), "t_s_before": t_s()}
            w0 = time.time()
            try:
                rec["reply"] = s.change(param, value, at_ms=int(ms), timeout=args.timeout)
            except Exception as e:  # a refusal is a figure too
                rec["error"] = "%s: %s" % (type(e).__name__, e)
            rec["wall_s"] = round(time.time() - w0, 3)
            log("at %s" % rec)
            results["at"].append(rec)
        due = args.asap_from
        for ch in args.asap:
            param, value = parse_change(ch)
            while (t_s() or 0.0) < due and not _ended(events):
                time.sleep(0.005)
            if _ended(events):
                log("session ended before asap change %s" % ch)
                break
            with lock:
                row_t, row_wall = last["row"]["t_s"], last["wall"]
            rec = {"param": param, "value": value, "t_s_before": row_t}
            w0 = time.time()
            rec["row_age_wall_s"] = round(w0 - row_wall, 4)
            try:
                rec["reply"] = s.change(param, value, timeout=args.timeout)
                rec["lead_s"] = round(rec["reply"]["at_ms"] / 1000 - row_t, 4)
            except Exception as e:
                rec["error"] = "%s: %s" % (type(e).__name__, e)
            rec["wall_s"] = round(time.time() - w0, 3)
            log("asap %s" % rec)
            results["asap"].append(rec)
            due = max(due, row_t) + args.asap_every
        res = s.wait(timeout=600)
        log("result %s" % (res,))
        results["result"] = repr(res)
    results["events"] = [[round(w, 3), ev] for w, ev in events if ev.get("ev") not in ("state",)]
    time.sleep(3)
    send("stats")
    time.sleep(5)
    with open(os.path.join(d, "changes.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
