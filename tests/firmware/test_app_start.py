"""The step from START to the block loop: the idle step that handles START returns at once,
with no wait on the port or the HAL (its queue was primed for a lead of a few tens of ms; a
10 ms port wait and a 10 ms sleep there cost a 20 kS/s session its first refill on the
virtual RP2040), and a session's end event carries the longest time the loop was away.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import json

from tes import link as L

from devrun import DeviceRun
from test_app_faults import protocol


def test_start_goes_to_the_block_loop_without_waiting():
    d = DeviceRun(protocol(5000, duration_ms=1000), "start", start=False)
    d.load()
    d.check()
    waits = []
    d.port.wait = lambda ms: waits.append(("port", ms)) or False
    hal_wait = d.hal.wait
    d.hal.wait = lambda ms: waits.append(("hal", ms)) or hal_wait(ms)
    d.port.inq += L.encode(L.START, d.seq, json.dumps({"sha256": d.app.sha}).encode())
    d.seq += 1
    d.app.idle_step()
    assert d.app.session is not None and d.app.session.control.written > 0    # primed, started
    assert waits == []
    # without a session the idle step does wait for input (the rule above is not vacuous)
    d2 = DeviceRun(protocol(5000, duration_ms=1000), "start2", start=False)
    waits2 = []
    d2.port.wait = lambda ms: waits2.append(ms) or False
    d2.app.idle_step()
    assert waits2 == [10]


def test_the_end_event_has_the_longest_time_away_from_the_loop():
    d = DeviceRun(protocol(5000, duration_ms=300), "tickmax")
    sent = []
    enc = d.app.link
    orig = enc.event
    enc.event = lambda kind, **f: sent.append((kind, f)) or orig(kind, **f)
    d.run_to_end()
    ends = [f for k, f in sent if k == "end"]
    assert len(ends) == 1
    t = ends[0]["longest_tick_ms"]
    assert isinstance(t, int) and 0 <= t < 1000
