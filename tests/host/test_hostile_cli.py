"""The CLI under hostile input (issue 10, causes 4 and 5): whatever a user or a file
gives, the answer is one line or a list of field-named problems and the documented exit
code, never a traceback, and everything is checked before any current flows.

Hypothesis generates malformed TOML, deep nesting and numeric extremes and feeds them
through the real CLI entry (tesctl.cli.main, the same object the `tesctl` script runs)."""
import json
import math
import os
import signal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from tesctl import cli, protofile

GOOD = """schema = 1
name = "t"
[montage]
anode = "F3"
cathode = "Fp2"
[stimulation]
waveform = "dc"
amplitude_uA = 1000
duration_s = 2
ramp_up_s = 0.5
ramp_down_s = 0.5
"""
FIELDS = ["waveform", "amplitude_uA", "offset_uA", "frequency_hz", "phase_deg", "band_hz", "seed", "noise_sd_uA",
          "pulse_width_us", "biphasic", "duration_s", "ramp_up_s", "ramp_down_s", "ramp_shape"]
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def invoke(args, **kw):
    r = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=True, **kw)
    # An exception that escaped the entry would be r.exception other than SystemExit.
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


def validate(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return invoke(["validate", p])


def problems(r):
    return [ln.strip() for ln in r.output.splitlines() if ln.startswith("  ")]


# ---- generated -------------------------------------------------------------------------------
toml_scalar = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.sampled_from(["1e306", "-1e307", "1e-320", "nan", "inf", "-inf", "0.0001", "1.0000000001", "5e-324",
                     "true", "false", '"x"', '""', "1979-05-27", "[]", "{}", "[1, [2]]", '"\\u001b[2J"']),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("nan", "nan").replace("inf", "inf")),
)


def nested(depth, table):
    return ("{a = " * depth + "1" + "}" * depth) if table else ("[" * depth + "]" * depth)


@SETTINGS
@given(field=st.sampled_from(FIELDS + ["electrode_area_cm2", "impedance_max_ohm", "sample_rate_hz", "name",
                                       "schema", "pause_s"]),
       value=toml_scalar)
def test_any_value_in_any_field_is_a_field_named_problem_or_valid(tmp_path, field, value):
    text = GOOD
    table = {"electrode_area_cm2": "[montage]", "impedance_max_ohm": "[safety]"}.get(field)
    if field in ("sample_rate_hz", "name", "schema"):
        text = "\n".join(ln for ln in GOOD.splitlines() if not ln.startswith(field + " ")) + "\n"
        text = "%s = %s\n" % (field, value) + text
    elif table:
        text = text + "%s\n%s = %s\n" % (table, field, value)
    else:
        lines = [ln for ln in GOOD.splitlines() if not ln.startswith(field + " ")]
        text = "\n".join(lines) + "\n%s = %s\n" % (field, value)
    r = validate(tmp_path, text)
    assert r.exit_code in (0, 2), r.output
    if r.exit_code == 2:
        ps = problems(r)
        assert ps or "not valid TOML" in r.output, r.output
        assert all("\x1b" not in p for p in ps)


@SETTINGS
@given(depth=st.integers(50, 5000), table=st.booleans(), where=st.sampled_from(["top", "stim", "band"]))
def test_deep_nesting_is_a_problem_not_a_crash(tmp_path, depth, table, where):
    v = nested(depth, table)
    text = {"top": GOOD + "x = %s\n" % v, "stim": GOOD + "seed = %s\n" % v,
            "band": GOOD.replace('waveform = "dc"', 'waveform = "noise"') + "band_hz = [%s, 1]\n" % v}[where]
    r = validate(tmp_path, text)
    assert r.exit_code == 2 and problems(r), r.output


@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_cleanly(tmp_path, data):
    r = validate(tmp_path, data)
    assert r.exit_code == 2 and problems(r), r.output


@SETTINGS
@given(shape=st.sampled_from(["[[stimulation]]", "stimulation = 1", "stimulation = []", "montage = 3",
                              "[[montage]]", "segments = {}", "[[segments]]\n[[segments]]", "sham = 1",
                              "[[sham]]", "safety = []"]))
def test_every_table_shape_is_a_field_named_problem(tmp_path, shape):
    head = shape.split()[0].strip("[]")
    body = GOOD.replace("[stimulation]", "[stimulation_x]") if head == "stimulation" else GOOD
    if head == "montage":
        body = body.replace("[montage]", "[montage_x]")
    r = validate(tmp_path, shape + "\n" + body)
    assert r.exit_code == 2, r.output
    assert any(p.startswith(head) or head in p for p in problems(r)), r.output


# ---- numeric extremes, resolution, unused fields, size, noise power ----------------------------
@pytest.mark.parametrize("field,value", [("duration_s", "1e306"), ("ramp_up_s", "-1e306"),
                                         ("frequency_hz", "1e300"), ("amplitude_uA", "1e19"),
                                         ("seed", str(2**80))])
def test_huge_numbers_are_out_of_range_by_field(tmp_path, field, value):
    text = GOOD.replace('waveform = "dc"', 'waveform = "sine"\nfrequency_hz = 10') if field == "frequency_hz" else GOOD
    if field == "seed":
        text = GOOD.replace('waveform = "dc"', 'waveform = "noise"\nband_hz = [100, 640]')
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(field + " ")) + "\n%s = %s\n" % (field, value)
    r = validate(tmp_path, text)
    assert r.exit_code == 2 and any(p.startswith("stimulation." + field) for p in problems(r)), r.output


def test_electrode_area_extremes(tmp_path):
    for v in ("1e307", "-35", "-0.01", "100000"):
        r = validate(tmp_path, GOOD + "electrode_area_cm2 = %s\n" % v if False else
                     GOOD.replace("cathode = \"Fp2\"", "cathode = \"Fp2\"\nelectrode_area_cm2 = %s" % v))
        assert r.exit_code == 2 and any(p.startswith("montage.electrode_area_cm2") for p in problems(r)), (v, r.output)
    r = validate(tmp_path, GOOD.replace("cathode = \"Fp2\"", "cathode = \"Fp2\"\nelectrode_area_cm2 = 35"))
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("field,value", [("duration_s", "1200.0000001"), ("duration_s", "0.0015"),
                                         ("ramp_up_s", "30.0004"), ("frequency_hz", "10.0001"),
                                         ("frequency_hz", "10.00000001")])
def test_finer_than_the_resolution_is_refused_not_rounded(tmp_path, field, value):
    text = GOOD.replace('waveform = "dc"', 'waveform = "sine"') if field == "frequency_hz" else GOOD
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(field + " ")) + "\n%s = %s\n" % (field, value)
    r = validate(tmp_path, text)
    assert r.exit_code == 2 and any("finer than the resolution" in p and field in p for p in problems(r)), r.output


@pytest.mark.parametrize("wf,field,value", [("dc", "frequency_hz", "-5"), ("dc", "band_hz", "[1, 2]"),
                                            ("dc", "seed", "3"), ("sine", "pulse_width_us", "100"),
                                            ("noise", "phase_deg", "90"), ("pulse", "noise_sd_uA", "10")])
def test_fields_the_waveform_does_not_use_are_refused(tmp_path, wf, field, value):
    extra = {"dc": "", "sine": "frequency_hz = 10\n", "noise": "band_hz = [100, 640]\n",
             "pulse": "frequency_hz = 10\npulse_width_us = 1000\n"}[wf]
    text = GOOD.replace('waveform = "dc"', 'waveform = "%s"' % wf) + extra + "%s = %s\n" % (field, value)
    r = validate(tmp_path, text)
    assert r.exit_code == 2 and any(p.startswith("stimulation." + field) and "not used" in p
                                    for p in problems(r)), r.output


def test_canonical_form_over_the_device_limit_is_refused(tmp_path):
    for field in ("anode", "cathode"):
        r = validate(tmp_path, GOOD.replace('%s = "' % field, '%s = "%s' % (field, "A" * 60000)))
        assert r.exit_code == 2 and any("16384" in p for p in problems(r)), r.output
    # just under: valid, and the device would take it
    text = GOOD.replace('name = "t"', 'name = "%s"' % ("n" * 15000))
    r = validate(tmp_path, text)
    loaded = protofile.check_data(text.encode())
    assert r.exit_code == 0 and len(loaded.canonical_bytes()) <= 16384


@pytest.mark.parametrize("fs,band", [(50000, "[24999.999, 25000]"), (5000, "[0.001, 0.002]"),
                                     (5000, "[0, 0.001]")])
def test_a_noise_band_with_too_little_power_is_refused(tmp_path, fs, band):
    text = "sample_rate_hz = %d\n" % fs + GOOD.replace('waveform = "dc"', 'waveform = "noise"\nband_hz = %s' % band)
    r = validate(tmp_path, text)
    assert r.exit_code == 2 and any("too little power" in p for p in problems(r)), r.output


def test_an_ordinary_noise_band_is_valid(tmp_path):
    r = validate(tmp_path, GOOD.replace('waveform = "dc"', 'waveform = "noise"\nband_hz = [100, 640]'))
    assert r.exit_code == 0, r.output


def test_control_characters_in_names_are_escaped(tmp_path):
    r = validate(tmp_path, GOOD.replace('name = "t"', 'name = "a\\u001b[2J\\u0007b\\r"'))
    assert r.exit_code == 0 and "\x1b" not in r.output and "\x07" not in r.output and "\r" not in r.output
    assert "a\\x1b[2J\\x07b\\x0d" in r.output
    from tesctl.errors import safe_text
    assert safe_text("ok\u202eevil") == "ok\\u202eevil"


# ---- files that are not protocol files --------------------------------------------------------
def test_devices_fifos_directories_and_huge_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(10 * 1024 * 1024)         # sparse: its size is the problem, not its bytes
    for path in ("/dev/zero", "/dev/null", fifo, tmp_path, big, tmp_path / "missing.toml"):
        r = invoke(["validate", path])
        assert r.exit_code == 2 and len(problems(r)) == 1, (path, r.output)


# ---- options, checked before anything is done -------------------------------------------------
@pytest.mark.parametrize("args", [
    ["run", "P", "--port", "sim", "--fault", "liftoff@\uff11\uff10"],
    ["run", "P", "--port", "sim", "--fault", "liftoff@1_0"],
    ["run", "P", "--port", "sim", "--fault", "liftoff@"],
    ["run", "P", "--port", "sim", "--fault", "liftoff@nan"],
    ["run", "P", "--port", "sim", "--board", "nope"],
    ["run", "P", "--port", "sim", "--board", "/dev/zero"],
    ["run", "P", "--port", "sim", "--out", "/proc/x"],
    ["check", "--port", "sim", "--board", "nope"],
    ["stream", "--port", "sim", "--board", "nope"],
    ["stream", "--port", "sim", "--seconds", "nan"],
    ["stream", "--port", "sim", "--seconds", "inf"],
    ["sim", "--board", "nope"],
    ["sim", "--fault", "stall@\u0661"],
    ["preview", "P", "--csv", "MISSING/x.csv"],
    ["preview", "P", "--plot", "OUT/x.txt"],
    ["preview", "P", "--csv", "OUT"],
])
def test_bad_options_exit_2_before_anything_runs(tmp_path, monkeypatch, args):
    import tesctl.runner as R
    import tesctl.simpty as SP
    touched = []
    monkeypatch.setattr(R, "connect", lambda *a, **k: touched.append("connect"))
    monkeypatch.setattr(SP, "serve", lambda *a, **k: touched.append("serve") or 0)
    p = tmp_path / "p.toml"
    p.write_text(GOOD)
    (tmp_path / "OUT").mkdir()
    args = [str(p) if a == "P" else
            a.replace("MISSING", str(tmp_path / "missing")).replace("OUT", str(tmp_path / "OUT")) for a in args]
    r = invoke(args)
    assert r.exit_code == 2, r.output
    assert touched == [], "the device was touched before the options were checked"
    assert len([ln for ln in r.output.splitlines() if ln.startswith(("tesctl:", "Error:"))]) == 1, r.output


def test_an_existing_session_directory_is_never_overwritten(tmp_path, monkeypatch):
    import tesctl.runner as R
    monkeypatch.setattr(R, "connect", lambda *a, **k: pytest.fail("connected"))
    p = tmp_path / "p.toml"
    p.write_text(GOOD)
    out = tmp_path / "s"
    out.mkdir()
    (out / "session.json").write_text('{"outcome": "completed"}')
    r = invoke(["run", p, "--port", "sim", "--out", out])
    assert r.exit_code == 2 and "never overwritten" in r.output
    assert json.loads((out / "session.json").read_text()) == {"outcome": "completed"}


def test_default_session_names_never_collide(tmp_path, monkeypatch):
    import tesctl.runner as R
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(R, "default_out_dir", lambda proto: os.path.join("sessions", "20260101-000000-p"))
    made = [R.reserve_out_dir(None, "p.toml") for _ in range(5)]
    dirs = [d for d, chosen in made]
    assert len(set(dirs)) == 5 and all(chosen for _, chosen in made)
    assert all(os.path.isdir(d) and not os.listdir(d) for d in dirs)


# ---- the host's own state, and Ctrl-C ----------------------------------------------------------
@pytest.mark.parametrize("content", ['[1, "x", {"dir": 5}, {"dir": "/nonexistent", "unit": ["u"]}]',
                                     '{"a": ' * 3000, "\x00\x01", '[{"dir": "/x", "unit": "u", "sid": true}]'])
def test_a_hand_edited_state_file_is_skipped(tmp_path, monkeypatch, content):
    from tesctl import reconcile
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path))
    (tmp_path / "pending.json").write_text(content)

    class Dev:
        info = {"unit": "u"}

        def journal(self):
            return [{"id": 1, "outcome": "completed"}]
    assert reconcile.reconcile(Dev(), log=lambda m: None) == []
    reconcile.add(tmp_path / "s", "u", 1, "h")          # and the index works again
    assert [p["sid"] for p in reconcile._load()] == [1]


def test_ctrl_c_anywhere_is_one_line(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(protofile, "load", interrupted)
    p = tmp_path / "p.toml"
    p.write_text(GOOD)
    r = invoke(["validate", p])
    assert r.exit_code == 1 and r.output.strip() == "tesctl: interrupted (Ctrl-C)"


def test_ctrl_c_during_start_up_starts_nothing(tmp_path, monkeypatch, cli_state):
    """Ctrl-C during the impedance check: the run ends there, exit 1, and no START is sent."""
    from tesctl.device import Device
    sent = []
    real_check, real_start = Device.check, Device.start

    def check(self, *a, **k):
        ev = real_check(self, *a, **k)
        os.kill(os.getpid(), signal.SIGINT)      # the operator's Ctrl-C, mid start-up
        return ev
    monkeypatch.setattr(Device, "check", check)
    monkeypatch.setattr(Device, "start", lambda self, sha: sent.append(sha) or real_start(self, sha))
    p = tmp_path / "p.toml"
    p.write_text(GOOD)
    r = invoke(["run", p, "--port", "sim", "--fast", "--plain", "--out", tmp_path / "s"])
    assert r.exit_code == 1, r.output
    assert "interrupted (Ctrl-C) after the impedance check: no session was started" in r.output
    assert sent == []


@pytest.fixture
def cli_state(tmp_path, monkeypatch):
    monkeypatch.setenv("TESCTL_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TESCTL_SIM_STORAGE", str(tmp_path / "sim"))


def test_report_of_a_record_with_device_files(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "session.json").write_text(json.dumps({"outcome": "completed", "reason": "completed"}))
    (d / "telemetry.csv").symlink_to("/dev/zero")
    r = invoke(["report", d])
    assert r.exit_code == 2 and "not a regular file" in r.output
    (d / "telemetry.csv").unlink()
    os.mkfifo(d / "events.tsv")
    r = invoke(["report", d])
    assert r.exit_code == 2 and "not a regular file" in r.output
    (d / "events.tsv").unlink()
    (d / "session.json").write_text("[" * 100000)
    r = invoke(["report", d])
    assert r.exit_code == 2 and "session.json" in r.output


def test_report_escapes_what_a_record_holds(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "session.json").write_text(json.dumps({"outcome": "completed", "reason": "completed",
                                                "subject": "s\u001b]0;x\u0007", "protocol": {"name": "n\u001b[2J"}}))
    r = invoke(["report", d])
    assert "\x1b" not in r.output and "\x07" not in r.output and "n\\x1b[2J" in r.output, r.output


def test_safe_text_leaves_ordinary_text_alone():
    from tesctl.errors import safe_text
    assert safe_text("Anodal tDCS, F3-Fp2 µA ünïcode") == "Anodal tDCS, F3-Fp2 µA ünïcode"
    assert math.isclose(1.0, 1.0)


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=toml_scalar, depth=st.just(0) | st.integers(1, 5000))
def test_generated_files_through_the_installed_script(tmp_path, field, value, depth):
    """The same generated input through the `tesctl` script in its own process."""
    import subprocess
    import sys
    from pathlib import Path
    p = tmp_path / "p.toml"
    lines = [ln for ln in GOOD.splitlines() if not ln.startswith(field + " ")]
    text = "\n".join(lines) + "\n%s = %s\n" % (field, value)
    if depth:
        text += "deep = %s\n" % nested(depth, depth % 2 == 0)
    p.write_text(text)
    r = subprocess.run([str(Path(sys.executable).parent / "tesctl"), "validate", str(p)], capture_output=True,
                       text=True, timeout=120)
    assert "Traceback" not in r.stderr and "\x1b" not in r.stdout + r.stderr, r.stderr
    assert r.returncode in (0, 2), (r.returncode, r.stderr)
    if depth:
        assert r.returncode == 2 and "deep" in r.stderr, r.stderr      # an unknown field, or too deep
