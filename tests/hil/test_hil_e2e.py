"""End to end on an emulated RP2040 running a stock MicroPython RPI_PICO image, with the CLI
exactly as a hardware developer types it: `tesctl hil` -> mpremote -> `tesctl deploy` ->
power cycle -> `tesctl check` -> `tesctl run` of a short tDCS, tACS and tRNS protocol, each
ending with a complete session record whatever its outcome, the DAC log compared with
`tesctl preview`, and the emulated CPU load printed.

Each session starts from a power cycle: a session arms the device's 1 s watchdog, which
cannot be stopped, and LOAD + START of the tRNS protocol keeps the emulated RP2040 busy for
about a second without feeding it, so a tRNS run right after another session is reset by
the watchdog during START (a firmware finding of this harness; the host then keeps that
record incomplete). Each session's slice of the DAC log is compared with its preview.

Runs only when TESCTL_RP2_UF2 names an image (the repository holds none). Everything it
exercises is also tested without one (tests/hil/*, host/tesctl/hil/test/). Slow: rp2040js
runs the busy core at a fraction of real time, so every wait is minutes. The figures go to
stdout (pytest -s) and to $TESCTL_HIL_REPORT (JSON) if set.
"""
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

UF2 = os.environ.get("TESCTL_RP2_UF2")
pytestmark = pytest.mark.skipif(not UF2, reason="no RPI_PICO image: set TESCTL_RP2_UF2 to run")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TESCTL = str(BIN / "tesctl")
MPREMOTE = str(BIN / "mpremote")
BOARD = "pico-mcp4922"

PROTOCOLS = {
    "tdcs": ('waveform = "dc"\namplitude_uA = 1000\nduration_s = 5\nramp_up_s = 1\nramp_down_s = 1\n'),
    "tacs": ('waveform = "sine"\namplitude_uA = 1000\nfrequency_hz = 10.0\nphase_deg = 0\nduration_s = 4\n'
             'ramp_up_s = 1\nramp_down_s = 1\nramp_shape = "cosine"\n'),
    "trns": ('waveform = "noise"\namplitude_uA = 1000\nnoise_sd_uA = 333\nband_hz = [101, 450]\nseed = 7\n'
             'duration_s = 5\nramp_up_s = 1\nramp_down_s = 1\n'),
}


def protocol_text(kind):
    return ('schema = 1\nname = "hil e2e %s"\nsample_rate_hz = 1000\n[montage]\nanode = "F3"\ncathode = "Fp2"\n'
            'electrode_area_cm2 = 35\n[stimulation]\n%s[safety]\nimpedance_max_ohm = 20000\n' % (kind, PROTOCOLS[kind]))


def sh(args, env, timeout):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    return p


class Hil:
    """`tesctl hil` as a child: its first stdout line is the pty; `stats` lines come back."""

    def __init__(self, tmp, env):
        self.tmp = tmp
        self.dac_log = tmp / "dac.csv"
        self.err = open(tmp / "hil.log", "w")
        self.proc = subprocess.Popen(
            [TESCTL, "hil", "--uf2", UF2, "--board", BOARD, "--flash", tmp / "flash.bin", "--erase",
             "--dac-log", self.dac_log, "--stats", tmp / "stats.json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env, cwd=ROOT)
        self.path = self.proc.stdout.readline().strip()
        assert self.path.startswith("/dev/"), "tesctl hil printed %r" % self.path

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stats(self, timeout=120):
        """Ask for statistics: -> (the printed line, the JSON the harness wrote)."""
        self.command("stats")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1)
            if r:
                line = self.proc.stdout.readline()
                if line.startswith("hil stats"):
                    return line.strip(), json.loads((self.tmp / "stats.json").read_text())["latest"]
        raise AssertionError("no statistics from tesctl hil within %d s" % timeout)

    def close(self):
        if self.proc.poll() is None:
            self.command("quit")
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def wait_for_repl(path, env, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = sh([MPREMOTE, "connect", path, "fs", "ls"], env, timeout=120)
        if p.returncode == 0:
            return p.stdout
        time.sleep(2)
    raise AssertionError("mpremote fs ls never worked on %s" % path)


def check_record(out_dir):
    meta = json.loads((out_dir / "session.json").read_text())
    assert meta["complete"] is True
    assert meta["outcome"] in ("completed", "stopped", "aborted", "fault")
    assert meta["reason"]
    for key in ("protocol_sha256", "protocol", "firmware_version", "board", "started_at", "ended_at",
                "delivered_charge_uC", "stim_duration_s"):
        assert key in meta
    assert meta["board"] == BOARD
    rows = (out_dir / "telemetry.csv").read_text().splitlines()
    assert rows[0].startswith("t_s,state,set_uA,meas_uA,v_mV,z_ohm,charge_uC")
    assert (out_dir / "events.tsv").exists() and (out_dir / "report.png").exists()
    return meta, len(rows) - 1


def test_stock_image_deploy_check_and_three_sessions(tmp_path):
    env = dict(os.environ, TESCTL_STATE=str(tmp_path / "state"))
    hil = Hil(tmp_path, env)
    report = {"image": UF2}
    try:
        t0 = time.monotonic()
        listing = wait_for_repl(hil.path, env)
        report["repl_wall_s"] = round(time.monotonic() - t0, 1)
        assert "ls :" in listing
        line, st = hil.stats()
        report["boot"] = st["boots"][-1]
        report["repl_idle"] = st["interval"]
        print("\n" + line)

        p = sh([TESCTL, "deploy", "--port", hil.path, "--board", BOARD], env, timeout=1800)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "deployed and verified" in p.stdout
        hil.command("reset")                       # power cycle: boots into the deployed firmware
        p = sh([TESCTL, "check", "--port", hil.path, "--board", BOARD], env, timeout=1800)
        assert p.returncode in (0, 1), p.stdout + p.stderr
        assert "impedance:" in p.stdout
        report["check"] = p.stdout.strip()
        line, st = hil.stats()
        report["after_check"] = st["interval"]
        print(p.stdout.strip() + "\n" + line)

        report["sessions"] = {}
        for kind in ("tdcs", "tacs", "trns"):
            proto = tmp_path / ("%s.toml" % kind)
            proto.write_text(protocol_text(kind))
            preview = tmp_path / ("%s-preview.csv" % kind)
            p = sh([TESCTL, "preview", proto, "--board", BOARD, "--csv", preview], env, timeout=600)
            assert p.returncode == 0, p.stderr
            out = tmp_path / ("session-" + kind)
            hil.command("reset")                   # a fresh boot: no watchdog armed (see above)
            hil.stats()                            # the next interval is this session
            n0 = len(hil.dac_log.read_text().splitlines())
            p = sh([TESCTL, "run", proto, "--port", hil.path, "--board", BOARD, "--out", out, "--plain"], env,
                   timeout=3600)
            assert p.returncode in (0, 1), p.stdout + p.stderr
            meta, rows = check_record(out)
            line, st = hil.stats()
            lines = hil.dac_log.read_text().splitlines()
            dac = tmp_path / ("%s-dac.csv" % kind)
            dac.write_text("\n".join(lines[:1] + lines[n0:]) + "\n")
            cmp = sh([TESCTL, "dac-compare", dac, preview, "--board", BOARD], env, timeout=600)
            assert cmp.returncode in (0, 1), cmp.stderr
            assert "compared" in cmp.stdout
            report["sessions"][kind] = {"outcome": meta["outcome"], "reason": meta["reason"],
                                        "stim_duration_s": meta["stim_duration_s"], "telemetry_rows": rows,
                                        "cpu": st["interval"], "dac_compare": cmp.stdout.strip().splitlines()}
            print("%s: %s (%s), %d telemetry rows\n%s\n%s" % (kind, meta["outcome"], meta["reason"], rows, line,
                                                               cmp.stdout.strip()))
            assert st["interval"]["idle_share"] is not None
    finally:
        hil.close()
        dest = os.environ.get("TESCTL_HIL_REPORT")
        if dest:
            Path(dest).write_text(json.dumps(report, indent=1) + "\n")
