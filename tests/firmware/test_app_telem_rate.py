"""Telemetry comes 50 times a second while current flows, however late each tick starts.

On a board a pass of the block loop ends up to hal.PASS_MS (2 ms on rp2) after the tick is
due, and the tick's own work takes time before the frame goes out. Ticks scheduled 20 ms
after the previous tick's start, and a frame sent only when 20 ms had passed since the last
send, gave ~36 frames a second on the virtual RP2040. The app runs its ticks on a grid and
sends a frame on every tick: here the simulated board's passes are 1 to 3 ms long and the
tick takes 0 to 2 ms of board time before it sends. Runs under the unix port
(tools/mptest.py) and CPython (pytest)."""
from tes import link as L

from devrun import DeviceRun
from test_app_faults import protocol


def frames_per_2_s(pass_ms, tick_ms):
    d = DeviceRun(protocol(5000, "dc", 6000), "telem-rate-%d-%d" % (pass_ms, tick_ms), start=False)
    d.hal.PASS_MS = pass_ms         # before the session's control loop reads it
    d.load()
    d.check()
    d.send(L.START, {"sha256": d.app.sha})
    assert d.app.session is not None
    assert d.app.session.control.pause == pass_ms
    sent = []
    real = d.app.send_telem

    def counting(*args):
        sent.append(d.hal.ticks_ms())
        return real(*args)
    d.app.send_telem = counting     # the tick calls self.send_telem
    feed = d.hal.feed

    def slow_feed():                # the tick's work before it sends: board time passes
        feed()
        if tick_ms:
            d.hal.wait(tick_ms)
    d.hal.feed = slow_feed
    t0 = d.hal.ticks_ms()
    d.run_until(t0 + 3000)
    return [t for t in sent if t0 + 1000 <= t < t0 + 3000]


def test_fifty_frames_a_second_whatever_the_pass_length():
    for pass_ms, tick_ms in ((1, 0), (2, 1), (3, 2), (2, 0)):
        times = frames_per_2_s(pass_ms, tick_ms)
        assert 99 <= len(times) <= 101, (pass_ms, tick_ms, len(times))
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) <= 20 + pass_ms + tick_ms, (pass_ms, tick_ms, max(gaps))     # no tick skipped


def test_telemetry_flags_a_host_late_after_a_second_of_silence():
    # F_HOST_LATE (docs/wire.md): set in every TELEM frame once more than HEARTBEAT_LATE_MS
    # (1 s) passed since the host's last frame, clear while it keeps talking; the
    # supervisor's host-lost rule (3 s) is another matter.
    from tes.app import HEARTBEAT_LATE_MS
    d = DeviceRun(protocol(5000, "dc", 9000), "telem-host-late", start=False)
    d.load()
    d.check()
    d.send(L.START, {"sha256": d.app.sha})
    flags = []
    real = d.app.link.telemetry

    def keep(state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, f, *rest):
        flags.append((d.hal.ticks_ms(), f))
        return real(state, set_uA, meas_uA, v_mV, z_ohm, charge_uC, f, *rest)
    d.app.link.telemetry = keep
    t0 = d.hal.ticks_ms()
    d.run_until(t0 + 1500)                              # a talking host
    assert flags and not any(f & L.F_HOST_LATE for _, f in flags)
    quiet = d.hal.ticks_ms()
    d.app.last_rx = quiet
    del flags[:]
    d.run_until(quiet + 2000, host_alive=False)         # silence
    assert d.app.session is not None
    late = [t - quiet for t, f in flags if f & L.F_HOST_LATE]
    on_time = [t - quiet for t, f in flags if not f & L.F_HOST_LATE]
    assert late and on_time and max(on_time) <= HEARTBEAT_LATE_MS + 1 and min(late) > HEARTBEAT_LATE_MS
    assert min(late) <= HEARTBEAT_LATE_MS + 40                # the next frame or the one after
