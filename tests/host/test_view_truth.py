"""Issue 11, the operator's side: what `tesctl run` shows live (--plain), what its summary
and `tesctl report` say, per waveform, through the real CLI on the simulated board (--fast).

tACS shows peak, RMS, frequency and |Z| with its phase (not the 20 ms mean of AC); tDCS its
level; tRNS its RMS. The summary's figures are the live view's, its peak and charge agree
with the device's, and report.png has a zoom of commanded vs measured current.
"""
import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tesctl.display import Display, amplitude_text, impedance_text, waveform_info
from tesctl.report import summarize, summary_text

ROOT = Path(__file__).resolve().parents[2]
TESCTL = str(Path(sys.executable).parent / "tesctl")


def short(tmp_path, name, plateau_s=5, ramp_s=1):
    """protocols/NAME with a short plateau and ramps."""
    text = (ROOT / "protocols" / name).read_text()
    text = re.sub(r"(?m)^duration_s = .*$", "duration_s = %d" % plateau_s, text)
    text = re.sub(r"(?m)^ramp_up_s = .*$", "ramp_up_s = %d" % ramp_s, text)
    text = re.sub(r"(?m)^ramp_down_s = .*$", "ramp_down_s = %d" % ramp_s, text)
    path = tmp_path / name
    path.write_text(text)
    return path


def run(tmp_path, proto, *extra):
    out = tmp_path / "session"
    r = subprocess.run([TESCTL, "run", str(proto), "--port", "sim", "--fast", "--plain", "--out", str(out)]
                       + list(extra), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def plateau_lines(stdout):
    """The live view's lines of the plateau (the one printed as it ends says its last figures)."""
    lines = [ln for ln in stdout.splitlines() if re.match(r"\d+:\d\d:\d\d / \d+:\d\d:\d\d  plateau ", ln)]
    assert lines, stdout
    return lines


def num(pattern, text):
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return float(m.group(1))


def test_tacs_live_view_summary_and_report(tmp_path):
    out, stdout = run(tmp_path, short(tmp_path, "tacs-alpha-10hz.toml"), "--raw")
    live = plateau_lines(stdout)[-1]
    # Not the 20 ms mean of AC ("set 0 uA measured -527 uA"): peak, RMS, frequency, |Z|, phase.
    assert "tACS 10 Hz" in live and " set " not in live.replace("set RMS", "")
    live_rms = num(r"RMS (\d+) uA \(set", live)
    live_peak = num(r"peak (\d+) uA", live)
    assert live_rms == pytest.approx(707, rel=0.02)
    assert live_peak == pytest.approx(1000, rel=0.02)
    assert num(r"Z (\d+\.\d+) kOhm", live) == pytest.approx(5.94, rel=0.05)   # the sim's |Z| at 10 Hz
    assert -50 < num(r"phase ([-+]\d+\.\d) deg", live) < -36
    assert "V RMS" in live

    summary = stdout[stdout.index("protocol   "):]
    stim = next(ln for ln in summary.splitlines() if ln.startswith("stimulus"))
    sum_rms, sum_peak = num(r"RMS (\d+) uA \(set", stim), num(r"peak (\d+) uA", stim)
    assert sum_rms == pytest.approx(707, rel=0.02) and sum_peak == pytest.approx(1000, rel=0.02)
    assert sum_rms == pytest.approx(live_rms, rel=0.02) and sum_peak == pytest.approx(live_peak, rel=0.02)
    # The issue: "peak |meas| 901 uA" for 1000 uA, and a telemetry charge 9 % under the device's.
    assert num(r"peak \|meas\| (\d+) uA \(device", summary) == pytest.approx(1000, rel=0.02)
    device_mC = num(r"charge     (\d+\.\d+) mC delivered \(the device's figure", summary)
    assert num(r"host check: (\d+\.\d+) mC", summary) == pytest.approx(device_mC, rel=0.01)
    assert "phase mean -" in summary

    rows = list(csv.DictReader(open(out / "telemetry.csv")))
    plateau = [r for r in rows if r["state"] == "plateau"]
    assert all(r["meas_rms_uA"] and r["meas_peak_uA"] for r in plateau)
    assert sum(1 for r in plateau if r["z_phase_deg"]) > 0.9 * len(plateau)
    png = out / "report.png"
    assert png.stat().st_size > 10_000
    # `tesctl report` on the folder prints the same summary.
    r = subprocess.run([TESCTL, "report", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and stim in r.stdout


def test_tdcs_shows_its_level(tmp_path):
    out, stdout = run(tmp_path, short(tmp_path, "tdcs-anodal-dlpfc.toml"))
    amp = int(re.search(r"(?m)^amplitude_uA = (\d+)", (ROOT / "protocols" / "tdcs-anodal-dlpfc.toml")
                        .read_text()).group(1))
    live = plateau_lines(stdout)[-1]
    assert num(r"tDCS level (-?\d+) uA", live) == pytest.approx(amp, rel=0.02)
    stim = next(ln for ln in stdout.splitlines() if ln.startswith("stimulus"))
    assert num(r"tDCS level (-?\d+) uA", stim) == pytest.approx(amp, rel=0.02)
    assert "RMS" not in live
    assert "integral of |meas_uA|" in stdout
    assert (out / "report.png").stat().st_size > 10_000


def test_trns_shows_rms_near_the_noise_sd(tmp_path):
    proto = short(tmp_path, "trns-hf.toml", plateau_s=4)
    sd = int(re.search(r"(?m)^noise_sd_uA = (\d+)", proto.read_text()).group(1))
    out, stdout = run(tmp_path, proto)
    live = plateau_lines(stdout)[-1]
    assert "tRNS RMS" in live
    assert num(r"RMS (\d+) uA", live) == pytest.approx(sd, rel=0.05)
    assert num(r"RMS (\d+) uA", live) == pytest.approx(num(r"set RMS (\d+) uA", live), rel=0.03)
    stim = next(ln for ln in stdout.splitlines() if ln.startswith("stimulus"))
    assert num(r"RMS (\d+) uA", stim) == pytest.approx(sd, rel=0.05)
    assert "host check: none" in stdout          # RMS is not mean |I| for noise: no false check
    assert (out / "report.png").stat().st_size > 10_000


def test_report_without_raw_says_so_and_old_records_fall_back(tmp_path):
    """An old telemetry.csv (link-1 columns only): the summary says its peak is a 20 ms mean."""
    out, _ = run(tmp_path, short(tmp_path, "tacs-alpha-10hz.toml", plateau_s=2))
    tel = out / "telemetry.csv"
    rows = list(csv.reader(open(tel)))
    with open(tel, "w", newline="") as f:
        csv.writer(f).writerows(r[:7] for r in rows)
    s = summarize(out)
    assert s["peak_source"] == "telemetry-means" and s["waveform"]["rms_uA"] is None
    text = summary_text(s)
    assert "largest 20 ms mean" in text and "no whole-period figures" in text


def test_display_text_per_waveform_and_blinded():
    sine = waveform_info({"segments": [{"kind": "stim", "waveform": "sine", "frequency_mHz": 10000,
                                        "offset_uA": 0}]})
    assert sine == ("sine", 10.0, False)
    stats = (707, 705, 1003, 4100, -4350)
    assert amplitude_text(*sine, -29, -527, stats) == "tACS 10 Hz peak 1003 uA RMS 705 uA (set RMS 707 uA)"
    assert impedance_text(5900, stats) == "5.90 kOhm phase -43.5 deg"
    assert impedance_text(5900, stats[:4] + (None,)) == "5.90 kOhm"
    dc = waveform_info({"segments": [{"kind": "stim", "waveform": "dc"}, {"kind": "pause"}]})
    assert amplitude_text(*dc, 2000, 1996, stats) == "tDCS level 1996 uA (set 2000 uA)"
    # Blinded: time only, whatever the frame carries.
    d = Display("blinded study", 10000, plain=True, blind=True)
    d.update(5000, "plateau", 1000, 990, 5000, 5000, 100, stats)
    line = d._line()
    assert "RMS" not in line and "peak" not in line and "uA" not in line and d.stats is None
