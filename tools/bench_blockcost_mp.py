"""Cost of the control path, per call and per millisecond of a session: run by tools/bench.py
under the unix port (simulated board), and on a board or the virtual RP2040 with
`mpremote connect PORT run tools/bench_blockcost_mp.py` (after `tesctl deploy`; the board's
own hal from board.json). Prints "name value unit" lines. Profiling aid; never asserts.

The session part runs the app's block loop (Control.step, then a sleep of hal.PASS_MS when
there is nothing to do) with the output disabled, and reports the share of time the loop spends
in step() versus asleep: the control path's CPU share without the link.
"""
import json
import time
from array import array

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
    return {"schema": 1, "name": "b", "sample_rate_hz": fs, "montage": {}, "segments": [s],
            "sham": None, "safety": {"impedance_max_ohm": 20000}}


def make():
    try:
        with open("board.json") as f:          # a board: its deployed board file and driver
            board = json.load(f)
        if board["mcu"] == "rp2":              # as main.make_hal (importing main starts the app)
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


main()
