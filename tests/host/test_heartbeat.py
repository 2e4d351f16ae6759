"""Issue 9: heartbeats paced by the device's clock (tesctl.heartbeat).

A simulated `tesctl run` loop (a pass every 20 ms of real time, and at once when a frame
arrives, as dev.pump(0.02) returns) against a device whose clock runs at `rate` x real
time and sends a TELEM frame every `period_ms` device ms, arriving `lat_s` later. What is
checked is what the device sees: heartbeats per device second and the longest device-time
gap between two arrivals (HEARTBEAT_LATE_MS = 1000 flags the host late).
"""
import random

from tesctl.heartbeat import STALL_S, T_MOD, Heartbeat

LATE_MS = 1000           # tes/app.py HEARTBEAT_LATE_MS


def simulate(rate, real_s, period_ms=20, lat_s=0.002, t0_ms=1000, stop_s=None, jitter_s=0.0, seed=1):
    """-> (device ms of each heartbeat's arrival, device ms at the end). Frames stop at
    real time stop_s (None: never); jitter_s adds a random 0..jitter_s to each delay."""
    rnd = random.Random(seed)
    frames = []          # (host arrival s, t_ms)
    k = 0
    while True:
        dev_ms = k * period_ms
        sent_s = dev_ms / 1000.0 / rate
        if sent_s > real_s or (stop_s is not None and sent_s > stop_s):
            break
        frames.append((sent_s + lat_s + rnd.uniform(0, jitter_s), (t0_ms + dev_ms) % T_MOD))
        k += 1
    frames.sort()
    passes = sorted(set([i * 0.02 for i in range(int(real_s / 0.02) + 1)] + [a for a, _ in frames]))
    beat = Heartbeat()
    latest = None
    arrivals = []
    i = 0
    for now in passes:
        while i < len(frames) and frames[i][0] <= now:
            latest = frames[i][1]
            i += 1
        if beat.due(now, latest):
            beat.sent(now)
            arrivals.append((now + lat_s) * rate * 1000.0)
    return arrivals, real_s * rate * 1000.0


def gaps(arrivals):
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def old_rule_count(real_s):
    """The real-time rule of before: one every 0.25 s of a 20 ms loop."""
    n, last = 0, None
    for i in range(int(real_s / 0.02) + 1):
        now = i * 0.02
        if last is None or now - last >= 0.25:
            n, last = n + 1, now
    return n


def test_real_time_board_gets_what_it_got():
    arr, _ = simulate(1.0, 60.0)
    per_s = (len(arr) - 1) / ((arr[-1] - arr[0]) / 1000.0)
    assert 3.7 <= per_s <= 4.0, per_s
    old = old_rule_count(60.0)
    assert abs(len(arr) - old) <= 0.05 * old, (len(arr), old)
    assert max(gaps(arr)) <= 290


def test_emulator_at_a_tenth_gets_four_a_device_second():
    # the old rule: 13-80 a device second here. 8 device seconds; the first heartbeat
    # goes before any frame is seen, the second then on real time (one extra).
    for rate in (0.1, 0.05, 0.3):
        arr, _ = simulate(rate, 8.0 / rate, jitter_s=0.02)
        arr = arr[1:]
        per_s = (len(arr) - 1) / ((arr[-1] - arr[0]) / 1000.0)
        assert 3.6 <= per_s <= 4.0, (rate, per_s)
        assert max(gaps(arr)) <= 300, (rate, max(gaps(arr)))


def test_stalled_telemetry_falls_back_to_real_time():
    # a real-time board whose frames stop at 5 s: heartbeats go on every 0.25 s
    arr, _ = simulate(1.0, 20.0, stop_s=5.0)
    after = [a for a in arr if a > 5000 + STALL_S * 1000 + 300]
    assert len(after) >= 52                          # ~14.2 s at one per 0.25-0.27 s
    assert max(gaps(arr)) <= 800                     # under LATE_MS with USB's margin
    assert all(250 <= g <= 270 for g in gaps(after))


def test_stalled_emulator_gets_more_not_fewer():
    # the emulator's frames stop (device busy): the real-time rule adds heartbeats
    arr, _ = simulate(0.1, 20.0, stop_s=8.0)
    late = [a for a in arr if a > 900]
    assert len(late) > 40 and max(gaps(arr)) <= 300


def test_idle_board_one_frame_a_second():
    # between sessions a board sends a frame a second: never LATE_MS without a heartbeat
    arr, dev_ms = simulate(1.0, 30.0, period_ms=1000)
    assert max(gaps(arr)) < LATE_MS - 150, max(gaps(arr))
    assert len(arr) / (dev_ms / 1000.0) >= 2.5


def test_repeated_t_ms_is_a_stall():
    beat = Heartbeat()
    assert beat.due(0.0, 5000)
    beat.sent(0.0)
    now, sent = 0.0, []
    while now < 3.0:
        now += 0.02
        if beat.due(now, 5000):                    # frames come, the clock does not move
            beat.sent(now)
            sent.append(now)
    assert sent and sent[0] - STALL_S <= 0.03 and len(sent) >= 9


def test_wrap_of_t_ms():
    # t_ms crosses 2**32 after 1 s: the cadence holds (no stop, no heartbeat every pass)
    arr, dev_ms = simulate(1.0, 4.0, t0_ms=T_MOD - 1000)
    assert 14 <= len(arr) <= 17
    assert max(gaps(arr)) <= 290 and min(gaps(arr)) >= 240


def test_each_rule_at_its_boundary():
    beat = Heartbeat()
    assert beat.due(10.0, 100)
    beat.sent(10.0)
    assert not beat.due(10.1, 349)                 # 249 device ms on
    assert beat.due(10.12, 350)                    # 250
    beat.sent(10.12)
    assert not beat.due(10.13, 350)
    assert not beat.due(10.12 + STALL_S - 0.01, 350)   # no new frame, not yet stalled
    assert beat.due(10.12 + STALL_S, 350)              # stalled, 0.25 s since the last
    beat.sent(11.0)
    assert not beat.due(11.2, 350)                 # stalled, 0.2 s since the last
    assert beat.due(11.25, 350)
    beat.sent(11.25)
    assert not beat.due(11.26, 351)                # a new frame: the device rule again
    assert beat.due(11.27, 600)


def test_device_reboot_sends_at_once():
    beat = Heartbeat()
    beat.due(0.0, 900_000)
    beat.sent(0.0)
    assert beat.due(0.02, 40)                      # t_ms went back: a long advance mod 2**32
