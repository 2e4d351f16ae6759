"""Cost of the control path, per call and per millisecond of a session: run by tools/bench.py
under the unix port (simulated board), and on a board or the virtual RP2040 with
`mpremote connect PORT run tools/bench_blockcost_mp.py` (after `tesctl deploy`; the board's
own hal from board.json). Prints "name value unit" lines. Profiling aid; never asserts.

The session part runs the app's block loop (Control.step, then a sleep of hal.PASS_MS when
there is nothing to do) with the output disabled, and reports the share of time the loop spends
in step() versus asleep: the control path's CPU share without the link.

On a board the last part ("app ..." lines) runs the app itself (tes.app: its tick, telemetry
and block loop, output on, the fast trip armed) over a session of every current source the
board has at 5 kS/s (two: anti-phase 6 Hz tACS, tes.multicontrol's path), with a port that
keeps nothing, and says where the busy time goes: each call of the block path (room, write,
fill, sense, check) and the tick, timed by wrappers that allocate nothing (the block path runs
heap-locked). The wrappers cost a few us a call: the shares are a little high, "busy" more
(compare `tesctl hil`'s idle share of a real session). The session started the watchdog: the
board resets a few seconds after the script ends. A streaming session (no journal record).
"""
import json
import sys
import time
from array import array

import micropython

from tes import supervisor as S
from tes.board import check as board_check
from tes.limits import board_limits
from tes.session import STIM, Session

SECONDS = 2


def proto(fs, wave):
    s = {"kind": "stim", "waveform": wave, "amplitude_uA": 1000, "offset_uA": 0,
         "frequency_mHz": 10000 if wave == "sine" else 0, "phase_deg": 0,
         "band_mHz": [101000, 640000] if wave == "noise" else [0, 0], "seed": 1,
         "noise_sd_uA": 300 if wave == "noise" else 0, "pulse_width_us": 0, "biphasic": False,
         "duration_ms": 3600000, "ramp_up_ms": 100, "ramp_down_ms": 100, "ramp_shape": "linear"}
    return {"schema": 1, "name": "b", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500}, "segments": [s],
            "sham": None, "safety": {"impedance_max_ohm": 20000}}


def make():
    try:
        with open("board.json") as f:          # a board: its deployed board file and driver
            board = json.load(f)
        if board["mcu"] == "rp2" and board.get("current_sources", 1) > 1:  # as main.make_hal (importing
            from hal.rp2_multi import Rp2MultiHal as Hal                    # main starts the app)
        elif board["mcu"] == "rp2":
            from hal.rp2 import Rp2Hal as Hal
        else:
            from hal.esp32 import Esp32Hal as Hal
        return board, Hal(board)
    except OSError:                            # the unix port: the simulated board
        from hal.sim import SimHal
        with open("boards/sim.json") as f:
            board = json.load(f)
        return board, SimHal(board, storage="build/bench/blockcost-storage")


def per_call(name, fn, n=200):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    print("call %s %.1f us" % (name, time.ticks_diff(time.ticks_us(), t) / n))


def session(board, hal, limits, fs, wave):
    s = Session(STIM, proto(fs, wave), "0" * 64, hal, limits, board)
    ctl = s.control
    hal.start(fs)
    in_step = 0
    steps = 0
    t_end = time.ticks_add(time.ticks_ms(), SECONDS * 1000)
    t0 = time.ticks_us()
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        a = time.ticks_us()
        ctl.step(0)
        in_step += time.ticks_diff(time.ticks_us(), a)
        steps += 1
        if not ctl.busy:
            hal.wait(ctl.pause)     # as the app's loop: hal.PASS_MS (2 ms on rp2)
    wall = time.ticks_diff(time.ticks_us(), t0)
    hal.stop()
    hal.zero()
    print("session %s %d step_share %.1f %%" % (wave, fs, 100 * in_step / wall))
    print("session %s %d step %.1f us" % (wave, fs, in_step / steps))
    print("session %s %d checked %d of %d written, underruns %d" % (
        wave, fs, ctl.checked, ctl.written, hal.underruns()))


class QuietPort:
    """A link port that reads nothing and keeps what is written (the tick's own cost)."""
    eof = False

    def __init__(self):
        self.n = 0              # bytes written since the last flush (kept as a count: no heap)

    def read(self, limit=2048):
        return b""

    def wait(self, ms):
        return False

    def write(self, data):
        self.n += len(data)

    def pending(self):
        return self.n

    def flush(self):
        self.n = 0


def tick_parts(board, hal):
    """The per-tick work of tes.app outside the block path, per call."""
    from tes.app import App
    app = App(hal, board, QuietPort())
    s = Session(STIM, proto(1000, "sine"), "0" * 64, hal, limits_of(board), board)
    per_call("tick: service (link poll)", app.service)
    per_call("tick: supervisor.window", s.sup.window)
    per_call("tick: send_telem", lambda: app.send_telem(1000, 990, 5000, 5000))
    per_call("tick: send_telem + flush", lambda: (app.send_telem(1000, 990, 5000, 5000), app.link.flush()))
    per_call("tick: hal.retain", lambda: hal.retain(1, 12345, 678))
    per_call("tick: hal.feed", hal.feed)


def limits_of(board):
    return board_limits(board)[0]


def main():
    board, hal = make()
    problems = board_check(board)
    if problems:
        print("board file:", problems)
        return
    if "--app" in getattr(sys, "argv", ()):     # the app part alone, the simulated board's too (a test)
        return app_part(board, hal)
    limits, _ = board_limits(board)
    hal.zero()
    hal.enable(False)
    fs = 1000
    s = Session(STIM, proto(fs, "sine"), "0" * 64, hal, limits, board)
    out = array("i", [0] * 32)
    sb, ib, vb, db = (array("i", [0] * 32) for _ in range(4))
    per_call("ticks_ms", hal.ticks_ms)
    per_call("room", hal.room)
    per_call("underruns", hal.underruns)
    per_call("sense(none ready)", lambda: hal.sense(sb, ib, vb, db, 1, 1))
    for n in (1, 16, 32):
        per_call("engine.fill(%d sine)" % n, lambda n=n: s.engine.fill(out, n))
    for n in (1, 5, 20):
        per_call("supervisor.check(%d)" % n, lambda n=n: s.sup.check(sb, ib, vb, db, n, 0))
    tick_parts(board, hal)
    for fs, wave in ((1000, "sine"), (5000, "dc"), (5000, "sine"), (5000, "noise"), (20000, "sine")):
        if fs <= board["max_sample_rate_hz"] and board.get("pace_hz", fs) % fs == 0:
            session(board, hal, limits, fs, wave)
    print("supervisor codes seen are not faults here: the output is disabled (%s)" % S.name(0))
    if not getattr(hal, "SIMULATED", False):     # the simulated board's clock is virtual: its shares say nothing
        app_part(board, hal)


def app_part(board, hal):
    sources = min(board.get("current_sources", 1), len(SITES))
    app_share(board, hal, proto_sources(5000, sources) if sources > 1 else proto(5000, "sine"))


SITES = ("F3", "P3", "C3", "C4")


def proto_sources(fs, C):
    """C driven sites of 1 mA 6 Hz tACS, phases spread over the cycle, and a return (Cz)."""
    cur = [{"electrode": SITES[c], "waveform": "sine", "amplitude_uA": 1000, "offset_uA": 0, "frequency_mHz": 6000,
            "phase_deg": 360 * c // C, "band_mHz": [0, 0], "seed": 1, "noise_sd_uA": 0, "pulse_width_us": 0,
            "biphasic": False} for c in range(C)]
    seg = {"kind": "stim", "currents": cur, "duration_ms": 3600000, "ramp_up_ms": 100, "ramp_down_ms": 100,
           "ramp_shape": "linear"}
    els = [{"name": SITES[c], "area_mm2": 2500} for c in range(C)] + [{"name": "Cz", "area_mm2": 3500}]
    return {"schema": 1, "name": "b", "sample_rate_hz": fs, "montage": {"electrodes": els, "return": "Cz"},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


# The wrappers: module functions over globals (a closure's call allocates its cells' array
# on MicroPython: the heap-locked block path would fail with MemoryError).
_t = array("i", [0] * 14)     # [2k]: us in part k, [2k + 1]: its calls
_f = [None] * 7               # the wrapped calls, by part


@micropython.native
def _w_wait(ms):
    a = time.ticks_us()
    _f[0](ms)
    _t[0] += time.ticks_diff(time.ticks_us(), a)
    _t[1] += 1


@micropython.native
def _w_tick(s):
    a = time.ticks_us()
    _f[1](s)
    _t[2] += time.ticks_diff(time.ticks_us(), a)
    _t[3] += 1


@micropython.native
def _w_room():
    a = time.ticks_us()
    r = _f[2]()
    _t[4] += time.ticks_diff(time.ticks_us(), a)
    _t[5] += 1
    return r


@micropython.native
def _w_write(buf, n):
    a = time.ticks_us()
    r = _f[3](buf, n)
    _t[6] += time.ticks_diff(time.ticks_us(), a)
    _t[7] += 1
    return r


@micropython.native
def _w_fill(out, n):
    a = time.ticks_us()
    r = _f[4](out, n)
    _t[8] += time.ticks_diff(time.ticks_us(), a)
    _t[9] += 1
    return r


@micropython.native
def _w_sense(sb, ib, vb, db, cap, b):
    a = time.ticks_us()
    r = _f[5](sb, ib, vb, db, cap, b)
    _t[10] += time.ticks_diff(time.ticks_us(), a)
    _t[11] += 1
    return r


@micropython.native
def _w_check(st, sb, ib, vb, db, m, age, j0, b):
    a = time.ticks_us()
    r = _f[6](st, sb, ib, vb, db, m, age, j0, b)
    _t[12] += time.ticks_diff(time.ticks_us(), a)
    _t[13] += 1
    return r


def app_share(board, hal, p, seconds=3):
    import gc

    from tes.app import App
    from tes.session import STREAM
    app = App(hal, board, QuietPort())
    t = _t
    us = time.ticks_us
    diff = time.ticks_diff
    _f[0] = hal.wait
    _f[1] = app.tick
    app._wait = _w_wait
    app.tick = _w_tick
    gc.collect()
    s = app.begin(STREAM, p, "0" * 64)
    ctl = s.control
    _f[2:] = [ctl._room, ctl._write, ctl._fill, ctl._sense, ctl._check]
    ctl._room = _w_room
    ctl._write = _w_write
    ctl._fill = _w_fill
    ctl._sense = _w_sense
    ctl._check = _w_check
    end = time.ticks_add(time.ticks_ms(), seconds * 1000)
    t0 = us()
    while time.ticks_diff(end, time.ticks_ms()) > 0 and app.session is not None:
        app.link.last_rx = hal.ticks_ms()           # a live host's heartbeats
        app.control_step()
    wall = diff(us(), t0)
    outcome = s.outcome or (app.faults[-1] if app.faults else None)
    if app.session is not None:
        app.end_session("aborted", "bench")
    hal.zero()
    tag = "app %d sources %d S/s:" % (s.channels, s.fs)
    print("%s busy %.1f %% of %.1f s (outcome %s, underruns %d)" % (tag, 100 - 100 * t[0] / wall, wall / 1e6,
                                                                    outcome, hal.underruns()))
    parts = 0
    for k, name in ((2, "tick"), (4, "room"), (6, "write"), (8, "fill"), (10, "sense"), (12, "check")):
        if name != "tick":
            parts += t[k]
        print("%s %s %.1f %% (%d calls, %.0f us each)" % (tag, name, 100 * t[k] / wall, t[k + 1],
                                                          t[k] / max(1, t[k + 1])))
    rest = wall - t[0] - t[2] - parts
    print("%s the block loop's own %.1f %% (control.run, the fast trip's interrupts, USB)" % (tag, 100 * rest / wall))


main()
