"""Multi-electrode sessions on the host (issue 12): fault specs naming an electrode, the
wide telemetry.csv, session.json montage and fault_electrode, events.tsv fault rows, the
display, LSL channels, the report and a record completed from the journal.

Frames are built with the firmware's own codec (tes.link.pack_telem, pack_telem_electrodes)
and go through tesctl.runner.Run.on_frame into real files, read back here."""
import csv
import json
import struct

import pytest

from click.testing import CliRunner

from tes import link as L

from tesctl import paths, protofile, reconcile
from tesctl.cli import main
from tesctl.device import Frame
from tesctl.display import Display, electrode_text
from tesctl.lsl import CHANNELS, channels_for
from tesctl.recorder import TELEMETRY_HEADER, Recorder, telemetry_header
from tesctl.report import load_telemetry, summarize, summary_text, write_report
from tesctl.runner import Run, SessionError, check_lines, per_electrode_record
from tesctl.simfaults import check_fault_specs

TWO_SITES = """schema = 1
name = "short two sites"
sample_rate_hz = 1000
[montage]
return = "Cz"
[montage.electrodes]
F3 = { area_cm2 = 25 }
Cz = { area_cm2 = 35 }
P3 = { area_cm2 = 25 }
[stimulation]
waveform = "sine"
amplitude_uA = 1000
frequency_hz = 6.0
duration_s = 2
ramp_up_s = 0.5
ramp_down_s = 0.5
"""
NAMES = ["F3", "Cz", "P3"]        # montage order: the return in the middle, as the file lists it


def loaded(tmp_path, text=TWO_SITES):
    p = tmp_path / "p.toml"
    p.write_text(text)
    lo = protofile.load(p)
    assert lo.ok, lo.problems
    return lo


def telem(t_ms, state, rows=None, set_uA=0, meas_uA=0, v_mV=0, q=0):
    """A TELEM payload as the device sends it; rows: the per-electrode extension."""
    buf = bytearray(L.TELEM_SIZE + (1 + len(rows) * L.TELEM_EL_SIZE if rows is not None else 0))
    L.pack_telem(buf, t_ms, L.STATE_NAMES.index(state), set_uA, meas_uA, v_mV, None, q, 0, 10, 11, 12, 13, None)
    if rows is not None:
        L.pack_telem_electrodes(buf, L.TELEM_SIZE, rows)
    return Frame(L.TELEM, 0, bytes(buf))


def event(obj):
    return Frame(L.EVENT, 0, json.dumps(obj).encode())


def session_run(tmp_path, text=TWO_SITES):
    lo = loaded(tmp_path, text)
    run = Run(lo, "sim", tmp_path / "s")
    meta = {"protocol": lo.canonical, "montage": protofile.montage_record(lo.canonical)}
    run.rec = Recorder(tmp_path / "s", meta, electrodes=run.electrodes)
    return run


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ---- fault specs --------------------------------------------------------------------------

def test_fault_specs_with_an_electrode(tmp_path):
    canon = loaded(tmp_path).canonical
    assert check_fault_specs(["liftoff:F3@60", "short:P3@1.5", "drift:Cz@5", "liftoff@3", "reset@2"], canon) == []
    assert check_fault_specs(["liftoff:C4@60"], canon) == [
        "--fault liftoff:C4@60: C4 is not an electrode of the protocol's montage (F3, Cz, P3)"]
    assert check_fault_specs(["short:Cz@10"], canon) == [
        "--fault short:Cz@10: Cz is the return, and the return is the board's ground: short a driven electrode "
        "(F3, P3)"]
    assert check_fault_specs(["dac-stuck:F3@3"], canon) == [
        "--fault dac-stuck:F3@3: dac-stuck is the board's, not an electrode's: give it without a name "
        "(dac-stuck@SECONDS)"]
    assert check_fault_specs(["liftoff:F3"], canon) == [
        "--fault liftoff:F3: give the time in seconds after START, e.g. liftoff@60"]
    assert check_fault_specs(["melt:F3@3"], canon)[0].startswith("--fault melt:F3@3: unknown fault 'melt'")
    # Without a protocol (tesctl sim) any name goes through: the board ignores an unknown one.
    assert check_fault_specs(["liftoff:X9@3"]) == []
    assert check_fault_specs(["liftoff:@3"]) == ["--fault liftoff:@3: give an electrode name after the colon"]
    # The two-electrode form names its anode and cathode; the cathode is the return.
    pair = protofile.load(paths.PROTOCOLS / "tdcs-anodal-dlpfc.toml").canonical
    anode, cathode = pair["montage"]["anode"], pair["montage"]["cathode"]
    assert check_fault_specs(["liftoff:%s@3" % anode, "liftoff:%s@3" % cathode], pair) == []
    assert "the return is the board's ground" in check_fault_specs(["short:%s@3" % cathode], pair)[0]


def test_run_refuses_a_bad_electrode_before_anything(tmp_path):
    src = tmp_path / "p.toml"
    src.write_text(TWO_SITES)
    for spec, words in (("liftoff:C4@1", "C4 is not an electrode"), ("short:Cz@1", "the board's ground"),
                        ("stall:F3@1", "stall is the board's")):
        out = tmp_path / ("out-" + spec.replace(":", "_"))
        r = CliRunner().invoke(main, ["run", str(src), "--port", "sim", "--fast", "--out", str(out), "--fault", spec])
        assert r.exit_code == 2, r.output
        assert len(r.output.strip().splitlines()) == 1 and words in r.output, r.output
        assert not out.exists()


# ---- records -------------------------------------------------------------------------------

def test_two_electrode_header_unchanged():
    assert telemetry_header() == TELEMETRY_HEADER
    assert telemetry_header([]) == TELEMETRY_HEADER


def test_wide_telemetry_events_and_session_json(tmp_path):
    run = session_run(tmp_path)
    assert run.electrodes == NAMES
    frames = [(1000, "ramp-up", [(500, 498, 2500, 5000, 353, 350, 1800), (-1000, -996, 0, None, 707, 700, 0),
                                  (500, 498, 2600, 5200, 353, 350, 1850)]),
              (1020, "plateau", [(1000, 995, 5000, 5010, 707, 705, 3500), (-2000, -1990, 0, None, 1414, 1400, 0),
                                 (1000, 995, 5100, 5110, 707, 705, 3600)]),
              (1040, "plateau", None)]           # a frame without the extension: empty cells
    for t, state, rows in frames:
        run.on_frame(telem(t, state, rows, set_uA=rows[1][0] if rows else 0))
    run.on_frame(event({"ev": "fault", "t_ms": 1050, "fault": "open-circuit", "detail": "F3: 0 uA at 30 V",
                        "electrode": "F3", "block": [[1, 2, 3]]}))
    run.on_frame(event({"ev": "end", "t_ms": 1060, "outcome": "fault", "reason": "open-circuit",
                        "electrode": "F3", "delivered_charge_uC": 5, "stim_duration_ms": 60}))
    assert run.result[0] == "end"
    run.rec.finish("fault", "open-circuit", 5, 60, 1060)
    d = tmp_path / "s"
    rows = read_csv(d / "telemetry.csv")
    want = list(TELEMETRY_HEADER) + ["%s_%s" % (n, s) for n in NAMES for s in
                                     ("set_uA", "meas_uA", "v_mV", "z_ohm", "set_rms_uA", "meas_rms_uA", "v_rms_mV")]
    assert rows[0] == want
    assert rows[1][12:] == ["500", "498", "2500", "5000", "353", "350", "1800",
                            "-1000", "-996", "0", "", "707", "700", "0",
                            "500", "498", "2600", "5200", "353", "350", "1850"]
    # Each row's measured currents sum to 0 (these frames were made so).
    for r in rows[1:3]:
        row = dict(zip(rows[0], r))
        assert sum(int(row[n + "_meas_uA"]) for n in NAMES) == 0
        assert sum(int(row[n + "_set_uA"]) for n in NAMES) == 0
    assert rows[3][12:] == [""] * 21 and len(rows[3]) == len(want)
    events = (d / "events.tsv").read_text().splitlines()
    assert "0.050\t0.000\tfault:open-circuit:F3" in events
    meta = json.loads((d / "session.json").read_text())
    assert meta["fault_electrode"] == "F3"
    assert meta["montage"] == {"electrodes": [{"name": "F3", "area_mm2": 2500}, {"name": "Cz", "area_mm2": 3500},
                                              {"name": "P3", "area_mm2": 2500}], "return": "Cz", "driven": ["F3", "P3"]}
    assert meta["fault_evidence"] == [{"t_ms": 1050, "fault": "open-circuit", "block": [[1, 2, 3]], "electrode": "F3"}]
    assert run.unsaid == ["FAULT: open-circuit at electrode F3 (F3: 0 uA at 30 V)"]
    # The report reads the record back: per-electrode lines, the electrode in the outcome.
    s = summarize(d)
    assert s["fault_electrode"] == "F3"
    text = summary_text(s)
    assert "outcome    fault (open-circuit) at electrode F3" in text
    assert "faults     fault:open-circuit:F3 at 0.05 s" in text
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines if ln.split()[0] in NAMES] == NAMES
    assert "Cz         RMS 1400 uA, the return (ground) (plateau)" in lines
    assert "F3         RMS 705 uA, |Z| mean 5010 ohm (plateau)" in lines
    png = write_report(d)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    tel = load_telemetry(d)
    assert tel[1]["P3_z_ohm"] == 5110 and tel[1]["Cz_z_ohm"] is None


def test_two_electrode_session_unchanged_by_the_multi_path(tmp_path):
    """The two-electrode multi form (C = 1) records as the anode/cathode form: no columns
    added, the fault row without an electrode."""
    one = TWO_SITES.replace('P3 = { area_cm2 = 25 }\n', '')
    run = session_run(tmp_path, one)
    assert run.electrodes == []
    run.on_frame(telem(1000, "plateau", None, set_uA=5))
    run.on_frame(event({"ev": "fault", "t_ms": 1010, "fault": "short", "detail": "x", "electrode": "F3"}))
    run.rec.finish("fault", "short", 0, 10, 1010)
    rows = read_csv(tmp_path / "s" / "telemetry.csv")
    assert rows[0] == list(TELEMETRY_HEADER) and len(rows[1]) == len(TELEMETRY_HEADER)
    assert "fault:short" in (tmp_path / "s" / "events.tsv").read_text().split()
    assert "fault_electrode" not in json.loads((tmp_path / "s" / "session.json").read_text())


def test_truncated_extension_keeps_the_row(tmp_path):
    run = session_run(tmp_path)
    f = telem(1000, "plateau", [(1, 1, 1, 1, 1, 1, 1)] * 3)
    f.payload = f.payload[:-5]
    run.on_frame(f)
    run.rec.close()
    rows = read_csv(tmp_path / "s" / "telemetry.csv")
    assert rows[1][:3] == ["0.000", "plateau", "0"] and rows[1][12:] == [""] * 21


def test_record_completed_from_the_journal_names_the_electrode(tmp_path):
    run = session_run(tmp_path)
    run.rec.meta["device_t0_ms"] = 1000
    run.on_frame(telem(1000, "plateau", [(0, 0, 0, None, 0, 0, 0)] * 3))
    run.rec.close()
    rec = {"id": 3, "outcome": "fault", "reason": "open-circuit", "electrode": "P3", "delivered_charge_uC": 9,
           "stim_ms": 40, "start_ms": 1000, "end_ms": 1040}
    meta = reconcile.complete_from_journal(tmp_path / "s", rec, host_saw_end=True)
    assert meta["fault_electrode"] == "P3"
    assert "fault:open-circuit:P3" in (tmp_path / "s" / "events.tsv").read_text().split()


# ---- display and LSL ----------------------------------------------------------------------

def test_display_lines_per_electrode(capsys):
    fig = (1000, 995, 5000, 5010, 707, 705, 3500)
    assert electrode_text("F3", fig, "dc") == "995 uA (set 1000)  V 5.00 V  Z 5.01 kOhm"
    assert electrode_text("F3", fig, "sine") == "RMS 705 uA (set RMS 707)  V RMS 3.50 V  Z 5.01 kOhm"
    assert electrode_text("Cz", fig[:3] + (None,) + fig[4:], "sine", "Cz").endswith("return (ground)")
    assert electrode_text("P3", fig[:3] + (None,) + fig[4:], "sine", "Cz").endswith("Z unknown")
    d = Display("t", 10000, plain=True, wave=("sine", 6.0, False), electrodes=NAMES, ret="Cz")
    d.update(1000, "plateau", -2000, -1990, 5000, None, 12, (1414, 1410, 2000, 3500, None),
             [fig, (-2000, -1990, 0, None, 1414, 1410, 0), fig])
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["    F3       RMS 705 uA (set RMS 707)  V RMS 3.50 V  Z 5.01 kOhm",
                       "    Cz       RMS 1410 uA (set RMS 1414)  V RMS 0.00 V  return (ground)",
                       "    P3       RMS 705 uA (set RMS 707)  V RMS 3.50 V  Z 5.01 kOhm"]
    d.update(1020, "plateau", 0, 0, 0, None, 12, None, None)      # a frame without them: none shown
    assert d._electrode_rows() == []


def test_lsl_channels_per_electrode():
    assert channels_for() == CHANNELS and channels_for([]) == CHANNELS
    ch = channels_for(["F3", "Cz"])
    assert ch[:len(CHANNELS)] == CHANNELS
    assert ch[len(CHANNELS):] == ("F3_set_uA", "F3_meas_uA", "F3_v_mV", "F3_z_ohm", "F3_set_rms_uA", "F3_meas_rms_uA",
                                  "F3_v_rms_mV", "Cz_set_uA", "Cz_meas_uA", "Cz_v_mV", "Cz_z_ohm", "Cz_set_rms_uA",
                                  "Cz_meas_rms_uA", "Cz_v_rms_mV")


def test_lsl_frames_of_a_multi_session_over_loopback(tmp_path):
    """The run's LSL values for a multi frame: the classic ten, then each electrode's seven
    (None -> NaN); a frame without the extension: NaN for them."""
    import math
    import uuid

    import pylsl

    from tesctl.lsl import LslOutlets
    sid = "tesctl-test-%s" % uuid.uuid4().hex
    run = session_run(tmp_path)
    run.lsl = out = LslOutlets("tesctl-test", sid, channels=channels_for(run.electrodes))
    try:
        found = []
        for _ in range(3):
            found = found or pylsl.resolve_byprop("source_id", out.telemetry_source_id, minimum=1, timeout=2.5)
        (info,) = found
        assert info.channel_count() == 10 + 7 * 3
        inlet = pylsl.StreamInlet(info)
        inlet.open_stream(timeout=5)
        assert out._telemetry.wait_for_consumers(5)      # the markers outlet has no inlet here
        import time
        time.sleep(0.2)
        rows = [(100, 99, 5000, 5010, 70, 69, 3500), (-200, -198, 0, None, 141, 139, 0),
                (100, 99, 5100, 5110, 70, 69, 3600)]
        run.on_frame(telem(1000, "plateau", rows, set_uA=-200))
        run.on_frame(telem(1020, "plateau", None))
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            sample, _ = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                got.append(sample)
        assert len(got) == 2
        assert got[0][10:17] == [100, 99, 5000, 5010, 70, 69, 3500]
        assert math.isnan(got[0][20]) and got[0][17] == -200
        assert all(math.isnan(v) for v in got[1][10:])
    finally:
        out.close()
        run.rec.close()


def test_the_codec_is_the_firmware_s():
    """One codec: the runner decodes with tes.link, whose layout is the contract's."""
    rows = [(1, -2, 3, None, 5, 6, 7)]
    buf = bytearray(L.TELEM_SIZE + 1 + L.TELEM_EL_SIZE)
    L.pack_telem(buf, 0, 0, 0, 0, 0, None, 0, 0)
    L.pack_telem_electrodes(buf, L.TELEM_SIZE, rows)
    assert buf[L.TELEM_SIZE] == 1
    assert struct.unpack_from("<iiiiiii", buf, L.TELEM_SIZE + 1) == (1, -2, 3, -1, 5, 6, 7)
    assert L.unpack_telem_electrodes(bytes(buf)) == rows


def test_export_of_a_multi_session_is_per_electrode(tmp_path):
    """BIDS nibs rows per electrode (driven with its own current, the return with the sum)
    and the EDF+ with each electrode's signals, from a record read back from its files."""
    import edfio

    from tesctl.cli import TesctlGroup
    from tesctl.export import export_group
    run = session_run(tmp_path)
    rec = run.rec
    rec.meta.update({"started_at": "2026-11-26T10:00:00.000+00:00", "subject": "P01", "board": "sim"})
    rows = [(1000, 995, 5000, 5010, 707, 705, 3500), (-2000, -1990, 0, None, 1414, 1410, 0),
            (1000, 995, 5100, 5110, 707, 705, 3600)]
    for k in range(60):
        run.on_frame(telem(1000 + 20 * k, "plateau", rows, set_uA=2000, meas_uA=1990))
    rec.finish("completed", "completed", 100, 1200, 1000 + 20 * 60)
    root = TesctlGroup()
    root.add_command(export_group)
    r = CliRunner().invoke(root, ["export", "bids", str(tmp_path / "s"), "--to", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    (nibs,) = (tmp_path / "ds").glob("sub-P01/*/nibs/*_nibs.tsv")
    lines = nibs.read_text().splitlines()
    table = [dict(zip(lines[0].split("\t"), ln.split("\t"))) for ln in lines[1:]]
    got = [(t["channel_name"], t["channel_type"], t["current_intensity"], t["measured_current_intensity"],
            t["impedance"], t["current_density"]) for t in table]
    assert got == [("F3", "driven", "1", "0.995", "5.01", "0.04"), ("Cz", "return", "2", "1.99", "n/a", "0.057143"),
                   ("P3", "driven", "1", "0.995", "5.11", "0.04")]
    assert {t["waveform"] for t in table} == {"sine"}
    side = json.loads(nibs.with_suffix(".json").read_text())
    assert [e["ElectrodeID"] for e in side["ElectrodeSet"]] == ["el_F3", "el_Cz", "el_P3"]
    (edf,) = (tmp_path / "ds").glob("sub-P01/*/nibs/*_telemetry.edf")
    labels = [s.label for s in edfio.read_edf(edf).signals]
    assert labels[5:] == ["I_set_F3", "I_meas_F3", "V_F3", "Z_F3", "I_set_Cz", "I_meas_Cz", "V_Cz", "Z_Cz",
                          "I_set_P3", "I_meas_P3", "V_P3", "Z_P3"]
    z_cz = edfio.read_edf(edf).signals[labels.index("Z_Cz")].data
    assert abs(z_cz.max() + 1) < 0.01                 # the return's impedance: -1, never known


def test_report_draws_each_electrode_s_own_lockout():
    # the 4x1 ring reads its contact plus 4x the centre's: locked out at 20k x (1 + 4) / 2
    from tesctl.report import electrode_lockouts
    proto = protofile.load(paths.PROTOCOLS / "hd-tdcs-4x1.toml").canonical
    assert electrode_lockouts(proto, ["C1", "C5", "FC3", "CP3", "C3"], "C3") == {
        "C1": 50000, "C5": 50000, "FC3": 50000, "CP3": 50000}
    # two sites and a return carrying both: 20k x (1 + 2) / 2; no safety figure: none
    proto = protofile.load(paths.PROTOCOLS / "tacs-theta-inphase-2site.toml").canonical
    assert electrode_lockouts(proto, ["F3", "P3", "Cz"], "Cz") == {"F3": 30000, "P3": 30000}
    assert electrode_lockouts(dict(proto, safety={}), ["F3", "P3", "Cz"], "Cz") == {}
    # in anti-phase the return carries none: each site reads its own contact, the protocol's 20k
    proto = protofile.load(paths.PROTOCOLS / "tacs-theta-antiphase-2site.toml").canonical
    assert electrode_lockouts(proto, ["F3", "P3", "Cz"], "Cz") == {"F3": 20000, "P3": 20000}


# ---- the per-electrode impedance check (tes.multicheck) ---------------------------------------

class CheckDev:
    """The device as Run._execute sees it up to the check: LOAD accepted, CHECK's event."""

    def __init__(self, lo, check):
        self.lo = lo
        self.event = check

    def load(self, data):
        return {"sha256": self.lo.sha256()}

    def check(self):
        return dict(self.event)


def test_a_failed_per_electrode_check_prints_each_electrode_and_does_not_start(tmp_path):
    lo = loaded(tmp_path)
    run = Run(lo, "sim", tmp_path / "s")
    ev = {"ev": "check", "z_ohm": None, "limit_ohm": 20000, "current_uA": 100, "pass": False,
          "reason": "open-circuit", "electrode": "P3",
          "electrodes": [{"name": "F3", "z_ohm": None, "path_ohm": 17041},
                         {"name": "Cz", "z_ohm": None, "path_ohm": None},
                         {"name": "P3", "z_ohm": None, "path_ohm": None}]}
    out = []
    try:
        run._execute(CheckDev(lo, ev), lo.canonical, out.append)
        raise AssertionError("the run started")
    except SessionError as e:
        assert e.code == 1 and "impedance check failed" in str(e)
    assert out == ["impedance check per electrode (limit 20000 ohm a path, test current 100 uA): FAIL: "
                   "open-circuit at electrode P3",
                   "  F3 contact unknown, path 17.0 kOhm",
                   "  Cz contact unknown (the return)",
                   "  P3 contact unknown, path open"]
    assert run.rec is None and not (tmp_path / "s").exists()


def test_per_electrode_figures_for_session_json():
    rows = [{"name": "P3", "z_ohm": 8515, "path_ohm": 17218}, {"name": "F3", "z_ohm": 8338, "path_ohm": 17041},
            {"name": "Cz", "z_ohm": 8703, "path_ohm": None}]
    rec = per_electrode_record(rows, NAMES, "Cz")       # montage order whatever the device's
    assert rec == [{"name": "F3", "contact_ohm": 8338, "path_ohm": 17041, "return": False},
                   {"name": "Cz", "contact_ohm": 8703, "path_ohm": None, "return": True},
                   {"name": "P3", "contact_ohm": 8515, "path_ohm": 17218, "return": False}]
    lines = check_lines({"limit_ohm": 20000, "current_uA": 100, "pass": True, "per_electrode": rec})
    assert lines == ["impedance check per electrode (limit 20000 ohm a path, test current 100 uA): pass",
                     "  F3 contact 8.3 kOhm, path 17.0 kOhm", "  Cz contact 8.7 kOhm (the return)",
                     "  P3 contact 8.5 kOhm, path 17.2 kOhm"]


def test_the_fault_that_ends_the_session_names_the_electrode(tmp_path):
    # a soft stop on P3 (impedance-high, ramping down), then a liftoff on F3 zeroes the
    # output: the record's reason is END's (open-circuit) and so is its electrode
    run = session_run(tmp_path)
    run.on_frame(event({"ev": "fault", "t_ms": 1000, "fault": "impedance-high", "detail": "ramp-down",
                        "electrode": "P3"}))
    run.on_frame(event({"ev": "fault", "t_ms": 1100, "fault": "open-circuit", "detail": "hard", "electrode": "F3"}))
    run.on_frame(event({"ev": "end", "t_ms": 1110, "outcome": "fault", "reason": "open-circuit", "electrode": "F3",
                        "delivered_charge_uC": 5, "stim_duration_ms": 60}))
    assert run.rec.meta["fault_electrode"] == "F3"
    # a session-wide fault ends it (host-lost names none): no electrode in the record
    (tmp_path / "b").mkdir()
    run = session_run(tmp_path / "b")
    run.on_frame(event({"ev": "fault", "t_ms": 1000, "fault": "impedance-high", "detail": "ramp-down",
                        "electrode": "P3"}))
    run.on_frame(event({"ev": "end", "t_ms": 1110, "outcome": "fault", "reason": "host-lost",
                        "delivered_charge_uC": 5, "stim_duration_ms": 60}))
    assert "fault_electrode" not in run.rec.meta


def test_the_charge_check_of_a_multi_session_is_the_largest_electrode_s(tmp_path):
    # Anti-phase sites: the total (main columns) cancels, each electrode carries its own. The
    # device counts the largest electrode's charge; the host's check must too, not the total's 0.
    run = session_run(tmp_path)
    for k in range(51):                  # 1 s of plateau frames, 20 ms apart: F3 707 uA RMS, P3 the same
        run.on_frame(telem(1000 + 20 * k, "plateau", [(0, 0, 5000, 5000, 707, 700, 3500), (0, 0, 0, None, 0, 10, 0),
                                                       (0, 0, 5000, 5000, 707, 700, 3500)]))
    run.rec.finish("completed", "completed", 630, 1000, 2020)
    s = summarize(tmp_path / "s")
    assert s["charge_check_uC"] == pytest.approx(700 * 1.0 * 2 * 2 ** 0.5 / 3.141592653589793, rel=1e-6)
    assert "largest electrode" in s["charge_check_how"]
    assert "host check: 0.630 mC" in summary_text(s)
