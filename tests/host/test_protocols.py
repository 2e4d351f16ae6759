"""The ready protocols in protocols/: each validates, previews (CSV and PNG) through the
real `tesctl` command, and the CPython and MicroPython engines write byte-identical CSV.
Plus random short protocols (TOML, through protofile) on both engines."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tesctl import enginerun, paths, protofile

TESCTL = str(Path(sys.executable).parent / "tesctl")
PROTOCOLS = sorted(paths.PROTOCOLS.glob("*.toml"))


def tesctl(*args):
    return subprocess.run([TESCTL, *map(str, args)], capture_output=True, text=True)


def test_there_are_ready_protocols():
    names = {p.stem for p in PROTOCOLS}
    assert len(PROTOCOLS) >= 8
    for kind in ("tdcs", "tacs", "trns", "tpcs", "sham", "hybrid"):
        assert any(kind in n for n in names), kind


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_protocol_validates(path):
    r = tesctl("validate", path)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and "sha256" in r.stdout
    assert "Traceback" not in r.stderr
    # also against every board it is meant to run on; a multi-electrode montage needs a
    # source per electrode but its return: more than 2 electrodes is the sim board's only
    # (pico-mcp4922 has one source: docs/hardware.md)
    electrodes = protofile.electrode_names(protofile.load(path).canonical)
    for board in ("sim", "pico-mcp4922"):
        r = tesctl("validate", path, "--board", board)
        if board == "pico-mcp4922" and len(electrodes) > 2:
            assert r.returncode == 2 and "current sources" in r.stderr, r.stderr
            continue
        assert r.returncode == 0, (board, r.stderr)


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    """Run every preview once, two at a time (the trns file takes ~20 s on CPython)."""
    out = tmp_path_factory.mktemp("previews")
    jobs = []
    for p in PROTOCOLS:
        jobs.append((p.stem, "cpython", ["preview", p, "--engine", "cpython", "--csv", out / (p.stem + ".py.csv"),
                                         "--plot", out / (p.stem + ".png")]))
        jobs.append((p.stem, "micropython", ["preview", p, "--engine", "micropython",
                                             "--csv", out / (p.stem + ".mp.csv")]))
    # longest first so the pool stays busy
    jobs.sort(key=lambda j: ("trns" not in j[0], j[1] != "cpython"))
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        results = dict(zip([(j[0], j[1]) for j in jobs], pool.map(lambda j: tesctl(*j[2]), jobs)))
    return out, results


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_preview_plot_and_engines_identical(path, previews):
    out, results = previews
    for engine in ("cpython", "micropython"):
        r = results[(path.stem, engine)]
        assert r.returncode == 0, (engine, r.stderr)
        assert "Traceback" not in r.stderr
    png = out / (path.stem + ".png")
    assert png.exists() and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    a = out / (path.stem + ".py.csv")
    b = out / (path.stem + ".mp.csv")
    size = a.stat().st_size
    assert size == b.stat().st_size
    loaded = protofile.load(path)
    header = "t_s,current_uA\n"
    if protofile.is_multi(loaded.canonical):      # one column per electrode (docs/montages.md)
        header = "t_s,%s\n" % ",".join(n + "_uA" for n in protofile.electrode_names(loaded.canonical))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.readline() == header.encode()
        fa.seek(0)
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            assert ca == cb, "CSV files differ"
            if not ca:
                break
    # the number of rows is the session length in samples
    fs = loaded.canonical["sample_rate_hz"]
    with open(a, "rb") as fa:
        rows = sum(buf.count(b"\n") for buf in iter(lambda: fa.read(1 << 20), b"")) - 1
    from tes.engine import build_phases
    assert rows == sum(n for _, n, _ in build_phases(loaded.canonical))
    assert rows >= 60 * fs


# --- random short protocols, both engines ------------------------------------------

def _num(x):
    return ("%.3f" % x).rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


@st.composite
def stim_tables(draw, fs):
    wf = draw(st.sampled_from(["dc", "sine", "pulse", "noise"]))
    amp = draw(st.integers(1, 3000))
    lines = ['waveform = "%s"' % wf, "amplitude_uA = %d" % amp,
             "duration_s = %s" % _num(draw(st.integers(1, 800)) / 1000),
             "ramp_up_s = %s" % _num(draw(st.integers(100, 400)) / 1000),
             "ramp_down_s = %s" % _num(draw(st.integers(100, 400)) / 1000),
             'ramp_shape = "%s"' % draw(st.sampled_from(["linear", "cosine"]))]
    off = 0 if wf == "dc" else draw(st.integers(-(4000 - amp), 4000 - amp))
    lines.append("offset_uA = %d" % off)
    if wf == "sine":
        lines.append("frequency_hz = %s" % _num(draw(st.integers(100, fs * 100)) / 1000))
        lines.append("phase_deg = %d" % draw(st.integers(0, 359)))
    elif wf == "pulse":
        period_us = 1000000 // 40
        lines += ["frequency_hz = %s" % _num(draw(st.sampled_from([1.0, 7.5, 10.0, 40.0]))),
                  "pulse_width_us = %d" % draw(st.integers(1000000 // fs + 1, period_us // 2 - 1)),
                  "biphasic = %s" % draw(st.sampled_from(["true", "false"]))]
    elif wf == "noise":
        high = draw(st.integers(2, fs // 2))
        low = draw(st.sampled_from([0.1, 1.0, high / 2, 0]))
        lines += ["band_hz = [%s, %d]" % (_num(float(low)), high),
                  "seed = %d" % draw(st.integers(0, (1 << 30) - 1)),
                  "noise_sd_uA = %d" % draw(st.integers(1, amp))]
    return "\n".join(lines) + "\n"


@st.composite
def toml_protocols(draw):
    fs = draw(st.sampled_from([500, 1000, 1280, 2000, 5000]))
    head = 'schema = 1\nname = "random"\nsample_rate_hz = %d\n[montage]\nanode = "F3"\ncathode = "Fp2"\n' % fs
    if draw(st.booleans()):
        body = "[stimulation]\n" + draw(stim_tables(fs))
    else:
        body = "[stimulation]\n" + draw(stim_tables(fs))
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                body += "[[segments]]\npause_s = %s\n" % _num(draw(st.integers(1, 500)) / 1000)
            elif draw(st.booleans()):
                body += "[[segments]]\n"   # inherits [stimulation]
            else:
                body += "[[segments]]\n" + draw(stim_tables(fs))
        body += "[[segments]]\n"
    if draw(st.booleans()):
        body += "[sham]\nramp_up_s = 0.1\nramp_down_s = 0.1\nplateau_s = %s\ndouble = %s\n" % (
            _num(draw(st.integers(0, 50)) / 1000), draw(st.sampled_from(["true", "false"])))
    return head + body


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toml_protocols())
def test_random_protocols_both_engines_identical(text):
    loaded = protofile.check_data(text.encode(), name="random.toml")
    event("valid" if loaded.ok else "refused")
    if not loaded.ok:
        # only limit problems the generator cannot see ahead are allowed (a narrow noise band
        # at a low rate can carry too little power: protofile.host_checks)
        assert all("sham" in p or "must be" in p or "carries too little power" in p
                   for p in loaded.problems), (text, loaded.problems)
        return
    canon = loaded.canonical
    a = enginerun.samples_cpython(canon)
    b = enginerun.samples_micropython(canon)
    assert len(a) == len(b) > 0
    assert a == b
    peak = max(abs(s.get("offset_uA", 0)) + s.get("amplitude_uA", 0) for s in canon["segments"])
    assert max(abs(v) for v in a) <= peak
