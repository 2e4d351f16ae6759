"""Checks every recorded session must pass (used by the end-to-end tests)."""
import csv
import json
import os


def dc_protocol(amplitude_uA, duration_s, ramp_up_s=10, ramp_down_s=10, sample_rate_hz=None, name="e2e DC"):
    """A DC protocol file's text for the end-to-end tests (F3-Fp2, 35 cm^2)."""
    rate = "sample_rate_hz = %d\n" % sample_rate_hz if sample_rate_hz else ""
    return ('schema = 1\nname = "%s"\n%s[montage]\nanode = "F3"\ncathode = "Fp2"\nelectrode_area_cm2 = 35\n'
            '[stimulation]\nwaveform = "dc"\namplitude_uA = %d\nduration_s = %d\nramp_up_s = %d\nramp_down_s = %d\n'
            % (name, rate, amplitude_uA, duration_s, ramp_up_s, ramp_down_s))


def load(session_dir):
    with open(os.path.join(session_dir, "session.json")) as f:
        meta = json.load(f)
    with open(os.path.join(session_dir, "telemetry.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(session_dir, "events.tsv")) as f:
        lines = f.read().splitlines()
    events = [dict(zip(lines[0].split("\t"), ln.split("\t"))) for ln in lines[1:]]
    return meta, rows, events


def measured_integral_uC(rows):
    """Integral of the measured current over telemetry rows (rectangle rule on 20 ms windows)."""
    total = 0.0
    prev_t = None
    for r in rows:
        t = float(r["t_s"])
        if prev_t is not None:
            total += abs(int(r["meas_uA"])) * (t - prev_t)
        prev_t = t
    return total


def common(session_dir):
    meta, rows, events = load(session_dir)
    assert meta["complete"] is True
    assert meta["outcome"] in ("completed", "stopped", "aborted", "fault")
    assert meta["reason"]
    assert meta["lost_frames"] == 0, "device frames lost: sequence gap"
    assert meta["telemetry_rows"] == len(rows) > 0
    # The contract's seven first; columns may be added after them (docs/cli.md).
    assert list(rows[0].keys())[:7] == ["t_s", "state", "set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC"]
    ts = [float(r["t_s"]) for r in rows]
    assert all(b >= a for a, b in zip(ts, ts[1:])), "telemetry time goes backwards"
    assert os.path.getsize(os.path.join(session_dir, "report.png")) > 10000
    assert any(e["trial_type"] == "end:" + meta["outcome"] for e in events)
    for key in ("protocol_sha256", "protocol", "firmware_version", "board", "started_at", "ended_at",
                "delivered_charge_uC", "stim_duration_s"):
        assert key in meta
    if meta["reason"] not in ("reset", "watchdog"):      # the device said when it ended
        assert isinstance(meta["device_longest_tick_ms"], int) and meta["device_longest_tick_ms"] >= 0
    return meta, rows, events
