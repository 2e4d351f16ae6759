"""tesctl.report on synthetic session directories (the layout `tesctl run` writes)."""
import json

import pytest

from tesctl.report import ReportError, summarize, summary_text, write_report

FS = 50                      # telemetry frames per second
AMP = 1000                   # uA
RAMP_S, FLAT_S = 1.0, 8.0    # 1 s ramps around an 8 s plateau: 10 s of stimulation
PRE_S = 0.5                  # impedance check before the ramp starts
# Integral of |I| over the trapezoid: AMP * (FLAT + RAMP) uA*s.
CHARGE_UC = AMP * (FLAT_S + RAMP_S)

PROTOCOL = {
    "schema": 1, "name": "Test DC 1 mA, 10 s", "sample_rate_hz": 1000,
    "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 2500},
    "segments": [{
        "kind": "stim", "waveform": "dc", "amplitude_uA": AMP, "offset_uA": 0,
        "duration_ms": int(FLAT_S * 1000), "ramp_up_ms": int(RAMP_S * 1000), "ramp_down_ms": int(RAMP_S * 1000),
        "ramp_shape": "linear", "frequency_mHz": 0, "band_mHz": [0, 0], "pulse_width_us": 0,
        "phase_deg": 0, "seed": 1, "biphasic": False, "noise_sd_uA": 0,
    }],
    "sham": None,
    "safety": {"impedance_max_ohm": 20000},
}


def _current(t):
    """Set current at session time t (s): the trapezoid the protocol commands."""
    s = t - PRE_S
    if s <= 0 or s >= 2 * RAMP_S + FLAT_S:
        return 0.0
    if s < RAMP_S:
        return AMP * s / RAMP_S
    if s <= RAMP_S + FLAT_S:
        return AMP
    return AMP * (2 * RAMP_S + FLAT_S - s) / RAMP_S


def _state(t):
    s = t - PRE_S
    if s < 0:
        return "checking"
    if s < RAMP_S:
        return "ramp-up"
    if s < RAMP_S + FLAT_S:
        return "plateau"
    if s < 2 * RAMP_S + FLAT_S:
        return "ramp-down"
    return "idle"


def make_session(path, complete=True, rows=None, events=True, z_gap=True):
    end = PRE_S + 2 * RAMP_S + FLAT_S + 0.5
    n = int(round(end * FS)) + 1 if rows is None else rows
    lines = ["t_s,state,set_uA,meas_uA,v_mV,z_ohm,charge_uC"]
    q = 0.0
    for k in range(n):
        t = k / FS
        i = _current(t)
        z = 5000 + 500 * ((k % 10) - 5) / 5          # 4500..5400 ohm, mean 4950
        zcell = "" if (z_gap and 200 <= k < 205) or i == 0 else "%d" % z
        q += i / FS
        lines.append("%.3f,%s,%d,%d,%d,%s,%d" % (t, _state(t), round(i), round(i), round(i * z / 1000), zcell, q))
    (path / "telemetry.csv").write_text("\n".join(lines) + "\n")
    meta = {
        "outcome": "completed" if complete else None, "reason": "end of protocol" if complete else None,
        "complete": complete, "delivered_charge_uC": int(CHARGE_UC), "stim_duration_s": 10.0,
        "protocol_sha256": "ab" * 32, "protocol": PROTOCOL, "firmware_version": "0.1.0", "board": "sim",
        "started_at": "2024-05-01T10:00:00.000+00:00",
        "ended_at": "2024-05-01T10:00:11.000+00:00" if complete else None,
        "telemetry_rows": n, "lost_frames": 0,
    }
    (path / "session.json").write_text(json.dumps(meta))
    if events:
        ev = ["onset\tduration\ttrial_type",
              "%.3f\t%.3f\tramp-up" % (PRE_S, RAMP_S),
              "%.3f\t%.3f\tplateau" % (PRE_S + RAMP_S, FLAT_S),
              "%.3f\t%.3f\tramp-down" % (PRE_S + RAMP_S + FLAT_S, RAMP_S)]
        if complete:
            ev.append("%.3f\t0.000\tend:completed" % (PRE_S + 2 * RAMP_S + FLAT_S))
        (path / "events.tsv").write_text("\n".join(ev) + "\n")
    return path


def test_summary_of_completed_session(tmp_path):
    s = summarize(make_session(tmp_path))
    assert s["outcome"] == "completed" and s["complete"]
    assert s["telemetry_charge_uC"] == pytest.approx(CHARGE_UC, rel=0.01)
    assert s["delivered_charge_uC"] == CHARGE_UC
    assert s["peak_meas_uA"] == AMP
    z = s["plateau_z_ohm"]
    assert 4500 <= z["min"] <= z["mean"] <= z["max"] <= 5500
    assert s["faults"] == []
    text = summary_text(s)
    assert "Test DC 1 mA" in text and "abababababab" in text
    assert "%.3f mC delivered" % (CHARGE_UC / 1000) in text and "completed" in text
    assert "INCOMPLETE" not in text


def test_report_png(tmp_path):
    out = write_report(make_session(tmp_path))
    data = open(out, "rb").read()
    assert out == str(tmp_path / "report.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_incomplete_session_without_events(tmp_path):
    make_session(tmp_path, complete=False, rows=300, events=False)
    s = summarize(tmp_path)
    assert not s["complete"] and s["telemetry_rows"] == 300
    assert summary_text(s).startswith("INCOMPLETE (host stopped mid-session)")
    assert write_report(tmp_path).endswith("report.png")


def test_truncated_last_row_and_fault(tmp_path):
    make_session(tmp_path, complete=False)
    with open(tmp_path / "telemetry.csv", "a") as f:
        f.write("11.02")                                  # host killed mid-write
    with open(tmp_path / "events.tsv", "a") as f:
        f.write("3.000\t0.000\tfault:open-circuit\n")
    s = summarize(tmp_path)
    assert s["faults"] == [(3.0, "fault:open-circuit")]
    assert "fault:open-circuit at 3.00 s" in summary_text(s)
    write_report(tmp_path)


def test_empty_telemetry(tmp_path):
    make_session(tmp_path, rows=0)
    (tmp_path / "telemetry.csv").write_text("")
    s = summarize(tmp_path)
    assert s["telemetry_rows"] == 0 and s["telemetry_charge_uC"] == 0
    assert s["peak_meas_uA"] is None and s["plateau_z_ohm"] is None
    summary_text(s)
    assert (tmp_path / "report.png").exists() is False
    write_report(tmp_path)
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_not_a_session(tmp_path, content):
    if content is not None:
        (tmp_path / "session.json").write_text(content)
    with pytest.raises(ReportError) as e:
        summarize(tmp_path)
    assert "\n" not in str(e.value) and str(e.value)
    with pytest.raises(ReportError):
        write_report(tmp_path)
