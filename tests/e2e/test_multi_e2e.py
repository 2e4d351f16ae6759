"""Multi-electrode sessions end to end (issue 12): the ready protocols, shortened, run on
the simulated board's electrode network through the real CLI (`--fast`); the records are
per electrode and every row's currents sum to 0; a liftoff or a short on one electrode
ends the session naming it."""
import json
import math
import subprocess
import time

import pylsl
import pytest

from conftest import ROOT, TESCTL, tesctl
from session_checks import common

SUFFIXES = ("set_uA", "meas_uA", "v_mV", "z_ohm", "set_rms_uA", "meas_rms_uA", "v_rms_mV")
# Each row's currents sum to 0 up to rounding: every electrode's 20 ms mean is rounded on
# its own (the return's is minus the sum of the others' samples), so at most 1 uA each.
SUM_TOL_UA = 1


def shortened(tmp_path, name, duration_s, ramp_s):
    """A ready protocol with its plateau and ramps shortened (the dose otherwise as shipped)."""
    text = (ROOT / "protocols" / (name + ".toml")).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key == "duration_s":
            line = "duration_s = %d" % duration_s
        elif key in ("ramp_up_s", "ramp_down_s"):
            line = "%s = %d" % (key, ramp_s)
        out.append(line)
    p = tmp_path / (name + ".toml")
    p.write_text("\n".join(out) + "\n")
    return p


def electrodes(meta):
    return [e["name"] for e in meta["montage"]["electrodes"]]


def check_record(out):
    meta, rows, events = common(out)
    names = electrodes(meta)
    header = list(rows[0].keys())
    assert header[12:] == ["%s_%s" % (n, s) for n in names for s in SUFFIXES]
    stim = [r for r in rows if r["state"] in ("ramp-up", "plateau", "ramp-down") and r[names[0] + "_set_uA"]]
    assert len(stim) > 100
    for r in stim:
        assert abs(sum(int(r[n + "_set_uA"]) for n in names)) <= SUM_TOL_UA * len(names), r
        assert abs(sum(int(r[n + "_meas_uA"]) for n in names)) <= SUM_TOL_UA * len(names), r
        assert r[meta["montage"]["return"] + "_z_ohm"] == ""          # the return is ground
    return meta, rows, events, names


@pytest.mark.parametrize("name", ["tacs-theta-inphase-2site", "tacs-theta-antiphase-2site", "hd-tdcs-4x1"])
def test_multi_protocol_runs_with_records_per_electrode(name, tmp_path, cli_env):
    src = shortened(tmp_path, name, 4, 1)
    out = tmp_path / "session"
    p = tesctl(["run", src, "--port", "sim", "--fast", "--plain", "--out", out], cli_env, check=0)
    # The per-electrode check (tes.multicheck): a line per electrode, each fresh contact of the
    # simulated board (series 500 + skin 8000 ohm) near 8.5 kOhm, each path (a contact plus the
    # return's) near 17 kOhm; the same figures in session.json.
    assert "impedance check per electrode (limit 20000 ohm a path, test current 100 uA): pass" in p.stdout
    lines = p.stdout.splitlines()
    meta, rows, events, names = check_record(out)
    assert meta["outcome"] == "completed"
    assert meta["montage"]["return"] == meta["protocol"]["montage"]["return"]
    assert meta["montage"]["electrodes"] == meta["protocol"]["montage"]["electrodes"]
    figures = meta["pre_check"]["per_electrode"]
    assert [e["name"] for e in figures] == names and "electrodes" not in meta["pre_check"]
    for e in figures:
        assert abs(e["contact_ohm"] - 8500) <= 500, e
        if e["name"] == meta["montage"]["return"]:
            assert e["return"] is True and e["path_ohm"] is None
            line = "  %s contact %.1f kOhm (the return)" % (e["name"], e["contact_ohm"] / 1000.0)
        else:
            assert e["return"] is False and abs(e["path_ohm"] - 17000) <= 700, e
            line = "  %s contact %.1f kOhm, path %.1f kOhm" % (e["name"], e["contact_ohm"] / 1000.0,
                                                                e["path_ohm"] / 1000.0)
        assert line in lines, (line, lines)
    assert meta["pre_check"]["z_ohm"] == max(e["path_ohm"] for e in figures if not e["return"])
    plateau = [r for r in rows if r["state"] == "plateau"][10:]
    ret = meta["montage"]["return"]
    if name == "hd-tdcs-4x1":
        # The ring at -500 uA each, the centre (the return) at +2000 uA, measured.
        for r in plateau:
            for n in names:
                want = 2000 if n == ret else -500
                assert abs(int(r[n + "_meas_uA"]) - want) <= 20, (n, r)
                if n != ret:
                    assert int(r[n + "_z_ohm"]) > 0
        # The main columns carry the total: the driven electrodes' sum, minus the return's.
        assert int(plateau[-1]["meas_uA"]) == -int(plateau[-1][ret + "_meas_uA"])
    else:
        # In phase: F3 and P3 carry the same 1 mA-peak sine (about 707 uA RMS), Cz twice it;
        # anti-phase: Cz carries next to nothing, and each site's |Z| is its contact alone,
        # a third of the in-phase path's (docs/montages.md).
        anti = "anti" in name
        for r in plateau:
            for n, want in (("F3", 707), ("P3", 707), ("Cz", 0 if anti else 1414)):
                assert abs(int(r[n + "_meas_rms_uA"]) - want) <= max(20, 0.03 * want), (n, r)
        z = [int(r["F3_z_ohm"]) for r in plateau]
        assert (max(z) < 12000) if anti else (min(z) > 15000), z
    assert "F3" in p.stdout or "C1" in p.stdout          # the summary's line per electrode


@pytest.mark.parametrize("name, spec, reason", [("tacs-theta-inphase-2site", "liftoff:F3@3", "open-circuit"),
                                                ("hd-tdcs-4x1", "short:C1@3", "short")])
def test_a_fault_on_one_electrode_ends_the_session_naming_it(name, spec, reason, tmp_path, cli_env):
    src = shortened(tmp_path, name, 6, 1)
    out = tmp_path / "session"
    where = spec.split(":")[1].split("@")[0]
    p = tesctl(["run", src, "--port", "sim", "--fast", "--plain", "--out", out, "--fault", spec], cli_env, check=1)
    meta, rows, events, names = check_record(out)
    assert (meta["outcome"], meta["reason"], meta["fault_electrode"]) == ("fault", reason, where)
    assert p.stdout.strip().splitlines()[-1] == "fault: %s at electrode %s" % (reason, where)
    faults = [e["trial_type"] for e in events if e["trial_type"].startswith("fault:")]
    assert faults == ["fault:%s:%s" % (reason, where)]
    assert 2.9 <= float([e for e in events if e["trial_type"].startswith("fault:")][0]["onset"]) <= 3.2
    # The output is at zero on every electrode at the end.
    last = rows[-1]
    assert all(abs(int(last[n + "_meas_uA"] or 0)) < 20 for n in names)
    with open(out / "session.json") as f:
        assert json.load(f)["faults_injected"] == [spec]


def test_fault_on_an_electrode_not_in_the_montage_is_refused(tmp_path, cli_env):
    src = shortened(tmp_path, "hd-tdcs-4x1", 4, 1)
    out = tmp_path / "session"
    p = tesctl(["run", src, "--port", "sim", "--fast", "--out", out, "--fault", "liftoff:F3@2"], cli_env, check=2)
    assert p.stderr.strip() == ("tesctl: --fault liftoff:F3@2: F3 is not an electrode of the protocol's montage "
                                "(C1, C5, FC3, CP3, C3)")
    assert not out.exists()


def test_lsl_telemetry_per_electrode_reaches_an_inlet(tmp_path, cli_env):
    """--lsl in a multi session (real time): the telemetry stream has the ten channels, then
    seven per electrode labelled as telemetry.csv's columns; an inlet sees the ring at
    -500 uA, the centre at +2000 uA, the return's impedance NaN."""
    src = shortened(tmp_path, "hd-tdcs-4x1", 3, 1)
    out = tmp_path / "session"
    p = subprocess.Popen([TESCTL, "run", str(src), "--port", "sim", "--plain", "--lsl", "--out", str(out)],
                         env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    names = ["C1", "C5", "FC3", "CP3", "C3"]
    try:
        width = 10 + 7 * len(names)
        mine = []
        deadline = time.monotonic() + 30
        while not mine and time.monotonic() < deadline:     # other runs may publish tES streams too
            mine = [s for s in pylsl.resolve_byprop("type", "tES", minimum=1, timeout=2)
                    if s.channel_count() == width]
        assert mine, "no multi-electrode telemetry stream"
        inlet = pylsl.StreamInlet(mine[0])
        info = inlet.info(timeout=10)
        ch = info.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        samples = []
        deadline = time.monotonic() + 40
        while p.poll() is None and time.monotonic() < deadline:
            chunk, _ = inlet.pull_chunk(timeout=0.2)
            samples += chunk
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, p.stderr.read()
    assert labels[10:] == ["%s_%s" % (n, s) for n in names for s in SUFFIXES]
    col = {label: k for k, label in enumerate(labels)}
    plateau = [s for s in samples if not math.isnan(s[col["C3_meas_uA"]]) and s[col["C3_meas_uA"]] > 1950]
    assert len(plateau) > 50, len(samples)
    for s in plateau:
        assert all(abs(s[col[n + "_meas_uA"]] + 500) <= 20 for n in names[:4]), s
        assert math.isnan(s[col["C3_z_ohm"]]) and s[col["C1_z_ohm"]] > 0
