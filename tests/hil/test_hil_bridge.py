"""HilServer's pty bridge and control channel against a stand-in harness (a small Python
program speaking the harness's protocol: serial bytes on two inherited fds, control lines
on stdin, JSON events on stdout). The real harness is tested under Node (make test-hil)."""
import json
import sys
import time

import pytest
import serial

from tesctl import hil

FAKE = r'''
import json, os, select, sys
args = sys.argv[1:]
fin = int(args[args.index("--serial-in") + 1])
fout = int(args[args.index("--serial-out") + 1])
def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n"); sys.stdout.flush()
emit(event="ready", blocks=1)
resets = 0
stdin = sys.stdin.fileno()
while True:
    r, _, _ = select.select([fin, stdin], [], [])
    if fin in r:
        data = os.read(fin, 4096)
        if data:
            os.write(fout, data.upper())
    if stdin in r:
        line = os.read(stdin, 4096).decode()
        if not line:
            break
        for cmd in line.split():
            if cmd == "reset":
                resets += 1
                emit(event="reset", reason="power cycle", t_s=1.0)
            elif cmd == "stats":
                emit(event="stats", stats={"label": "on request", "resets": resets})
            elif cmd == "quit":
                emit(event="stats", stats={"label": "end (quit)", "resets": resets})
                emit(event="exit", why="quit")
                sys.exit(0)
'''


class FakeServer(hil.HilServer):
    def __init__(self, script, **kw):
        super().__init__(**kw)
        self.script = script

    def argv(self, folder, ser_in, ser_out):
        return [sys.executable, str(self.script), "--serial-in", str(ser_in), "--serial-out", str(ser_out)]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_harness.py"
    script.write_text(FAKE)
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(hil.empty_uf2())
    monkeypatch.setattr(hil, "harness_dir", lambda log=None: tmp_path)
    return script, uf2


def read_until(port, want, timeout=10):
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        got += port.read(64)
    return got


def test_bytes_cross_the_pty_both_ways_and_survive_reopening(fake, tmp_path):
    script, uf2 = fake
    server = FakeServer(script, uf2=uf2, flash=tmp_path / "flash.bin")
    path = server.start_thread()
    try:
        assert path.startswith("/dev/")
        for _ in range(2):              # a client closes the port and opens it again
            with serial.Serial(path, timeout=0.2) as s:
                s.write(b"hello\n")
                assert b"HELLO\n" in read_until(s, b"HELLO\n")
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert server.proc.poll() == 0
    assert server.events[-1] == {"event": "exit", "why": "quit"}


def test_open_hil_power_cycle_and_stats_reach_the_harness(fake, tmp_path, monkeypatch):
    script, uf2 = fake
    monkeypatch.setattr(hil.HilServer, "argv", lambda self, folder, i, o: [
        sys.executable, str(script), "--serial-in", str(i), "--serial-out", str(o)])
    with hil.open_hil(uf2=uf2, flash=tmp_path / "flash.bin") as server:
        server.power_cycle()
        ev = server.wait_event("reset", 10)
        assert ev["reason"] == "power cycle"
        assert server.stats()["resets"] == 1
        with serial.Serial(server.path, timeout=0.2) as s:   # the pty outlives the power cycle
            s.write(b"x")
            assert b"X" in read_until(s, b"X")
    assert server.events[-2]["stats"]["label"] == "end (quit)"


def test_a_harness_that_fails_to_start_is_one_error(fake, tmp_path):
    script, uf2 = fake
    script.write_text("import json, sys\nprint(json.dumps({'event': 'error', 'message': 'bad image', 'code': 2}))\n"
                      "sys.exit(2)\n")
    server = FakeServer(script, uf2=uf2, flash=tmp_path / "flash.bin")
    with pytest.raises(hil.HilError) as e:
        server.start()
    assert str(e.value) == "bad image"
    assert e.value.code == 2


def test_stats_line_format():
    fig = {"emulated_s": 2.5, "wall_s": 10.0, "speed": 0.25, "idle_share": 0.4}
    line = hil.format_stats({"label": "on request", "run": fig, "interval": dict(fig, busy_speed=0.125),
                             "enabled_periods": [{"emulated_s": 0.17, "idle_share": 0.021}],
                             "resets": [{"reason": "watchdog timeout", "t_s": 1.25}]})
    assert line == ("hil stats (on request): run 2.500 s emulated in 10.0 s wall (0.250x), CPU idle 40.0%; "
                    "last interval 2.500 s emulated in 10.0 s wall (0.250x, 0.125x while busy), CPU idle 40.0%; "
                    "last output-enabled stretch 0.170 s, CPU idle 2.1%; resets: watchdog timeout at 1.250 s")
    assert json.dumps(fig)


def test_profile_lines_format():
    text = hil.format_profile({"samples": 400, "top": [{"name": "mp_map_lookup", "share": 0.25}],
                               "callers": [{"name": "gc_alloc < m_malloc", "share": 0.005}],
                               "python": [{"name": "tes_multicontrol_MultiControl_check_all", "share": 0.125}]})
    assert text.splitlines() == [
        "hil profile: 400 samples of the busy CPU since the last report",
        "   25.0%  mp_map_lookup",
        "  who called (stack scan, heuristic):",
        "    0.5%  gc_alloc < m_malloc",
        "  by frozen Python function, the runtime it calls included (stack scan, heuristic):",
        "   12.5%  tes_multicontrol_MultiControl_check_all"]
    assert hil.format_profile({"samples": 0, "top": [], "callers": [], "python": []}).splitlines() == [
        "hil profile: 0 samples of the busy CPU since the last report"]
