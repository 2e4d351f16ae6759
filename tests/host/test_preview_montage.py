"""`tesctl preview` of the multi-electrode form (docs/montages.md): one column per
electrode in montage order, every row summing to exactly 0, each column's peak as its
protocol says, in-phase sites equal and anti-phase sites opposite sample for sample; both
engines byte-identical; the commands that do not run a multi-electrode montage yet refuse
it in one line."""
from array import array

import pytest
from click.testing import CliRunner

from tes.engine import build_phases
from tesctl import enginerun, paths, protofile
from tesctl.cli import main

READY = {
    # name: {electrode: (lowest, highest) sample of the whole session}
    "hd-tdcs-4x1": {"C1": (-500, 0), "C5": (-500, 0), "FC3": (-500, 0), "CP3": (-500, 0), "C3": (0, 2000)},
    "tdcs-bilateral": {"C4": (0, 1000), "C3": (-1000, 0)},
    "tacs-theta-inphase-2site": None,     # sine: checked below
    "tacs-theta-antiphase-2site": None,
}


def rows_of(path):
    """(header, [columns as array('i')]) of a preview CSV."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
        cols = [array("i") for _ in header[1:]]
        for line in f:
            cells = line.split(",")
            for col, cell in zip(cols, cells[1:]):
                col.append(int(cell))
    return header, cols


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    out = tmp_path_factory.mktemp("montage")
    got = {}
    for name in READY:
        csv = out / (name + ".csv")
        r = CliRunner().invoke(main, ["preview", str(paths.PROTOCOLS / (name + ".toml")), "--csv", str(csv)])
        assert r.exit_code == 0, r.output
        got[name] = (r.output, rows_of(csv))
    return got


@pytest.mark.parametrize("name", READY)
def test_ready_multi_protocols_are_valid_multi_protocols(name):
    loaded = protofile.load(paths.PROTOCOLS / (name + ".toml"))
    assert loaded.ok, loaded.problems
    assert loaded.warnings == []
    assert protofile.is_multi(loaded.canonical)


@pytest.mark.parametrize("name", READY)
def test_one_column_per_electrode_every_row_sums_to_zero(name, previews):
    output, (header, cols) = previews[name]
    canon = protofile.load(paths.PROTOCOLS / (name + ".toml")).canonical
    names = protofile.electrode_names(canon)
    assert header == ["t_s"] + ["%s_uA" % n for n in names]
    n = sum(k for _, k, _ in build_phases(canon))
    assert all(len(c) == n for c in cols)
    assert "%d samples x %d electrodes" % (n, len(names)) in output
    assert all(sum(row) == 0 for row in zip(*cols))
    # the return is minus the sum of the others, and the montage lists it last here
    assert names[-1] == canon["montage"]["return"]


@pytest.mark.parametrize("name", [n for n, want in READY.items() if want])
def test_dc_columns_reach_exactly_their_levels(name, previews):
    _, (header, cols) = previews[name]
    for h, col in zip(header[1:], cols):
        assert (min(col), max(col)) == READY[name][h[:-3]], h


def test_in_phase_sites_are_equal_sample_for_sample(previews):
    _, (header, (f3, p3, cz)) = previews["tacs-theta-inphase-2site"]
    assert header == ["t_s", "F3_uA", "P3_uA", "Cz_uA"]
    assert f3 == p3
    assert all(c == -2 * f for f, c in zip(f3, cz))
    # 6 Hz at 1000 S/s never samples the crest exactly: the peak is within cos(pi * 6 / 1000)
    assert 999 <= max(f3) <= 1000 and -1000 <= min(f3) <= -999
    assert max(abs(v) for v in cz) == 2 * max(abs(v) for v in f3)


def test_anti_phase_sites_are_opposite_to_one_microamp(previews):
    """180 degrees is exactly half the phase circle (2**19 of 2**20), but the engine's
    rounding is not symmetric about zero: the sine table's linear interpolation shifts
    right (floors) and the amplitude scaling rounds half up, so the sample half a cycle
    later is -x rounded down, not -(x rounded). The two sites therefore sum to 0 or -1,
    never anything else, and the return carries 0 or +1 uA: minus that sum, exactly."""
    _, (header, (f3, p3, cz)) = previews["tacs-theta-antiphase-2site"]
    assert header == ["t_s", "F3_uA", "P3_uA", "Cz_uA"]
    sums = {f + p for f, p in zip(f3, p3)}
    assert sums <= {0, -1}
    assert set(cz) <= {0, 1}
    assert all(c == -(f + p) for f, p, c in zip(f3, p3, cz))
    assert 999 <= max(f3) <= 1000 and 999 <= max(p3) <= 1000


def test_a_two_electrode_multi_montage_is_the_anode_cathode_form():
    """tdcs-bilateral (C4 driven at +1 mA, C3 the return) gives the samples of the same
    dose written as anode C4, cathode C3."""
    text = (paths.PROTOCOLS / "tdcs-bilateral.toml").read_text()
    pair = text.replace('[montage]\nreturn = "C3"\n\n[montage.electrodes]\nC4 = { area_cm2 = 25 }\n'
                        'C3 = { area_cm2 = 25 }\n', '[montage]\nanode = "C4"\ncathode = "C3"\n'
                        'electrode_area_cm2 = 25\n')
    pair = pair.replace('[stimulation.currents]\nC4 = { amplitude_uA = 1000 }', 'amplitude_uA = 1000')
    pair_canon = protofile.check_data(pair.encode()).canonical
    assert pair_canon["montage"] == {"anode": "C4", "cathode": "C3", "electrode_area_mm2": 2500}
    multi = protofile.load(paths.PROTOCOLS / "tdcs-bilateral.toml").canonical
    (c4_name, c4), (c3_name, c3) = enginerun.channels_cpython(multi)
    assert (c4_name, c3_name) == ("C4", "C3")
    anode = enginerun.samples_cpython(pair_canon)
    assert c4 == anode
    assert all(a == -b for a, b in zip(c3, anode))


SHORT = """schema = 1
name = "short two sites"
sample_rate_hz = 2000
[montage]
return = "Cz"
[montage.electrodes]
F3 = { area_cm2 = 25 }
P3 = { area_cm2 = 25 }
Cz = { area_cm2 = 35 }
[stimulation]
waveform = "sine"
amplitude_uA = 1000
frequency_hz = 7.0
duration_s = 2
ramp_up_s = 0.5
ramp_down_s = 0.5
[stimulation.currents]
P3 = { frequency_hz = 6.0, phase_deg = 90, offset_uA = -200, amplitude_uA = -800 }
"""


def test_cli_preview_both_engines_identical_and_the_plot(tmp_path):
    src = tmp_path / "short.toml"
    src.write_text(SHORT)
    a, b, png = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "p.png"
    r = CliRunner().invoke(main, ["preview", str(src), "--csv", str(a), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "wrote %s: 6000 samples x 3 electrodes, 3.0 s at 2000 S/s (cpython engine)" % a
    r = CliRunner().invoke(main, ["preview", str(src), "--csv", str(b), "--engine", "micropython"])
    assert r.exit_code == 0, r.output
    assert a.read_bytes() == b.read_bytes()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, cols = rows_of(a)
    assert header == ["t_s", "F3_uA", "P3_uA", "Cz_uA"]
    assert all(sum(row) == 0 for row in zip(*cols))
    assert max(cols[0]) == 1000 and min(cols[1]) == -1000   # 7 Hz crest sampled; P3: -200 - 800
    lines = a.read_text().splitlines()
    assert lines[1] == "0.000000,0,0,0" and lines[-1].startswith("2.999500,")


def test_cli_validate_lists_the_electrodes():
    r = CliRunner().invoke(main, ["validate", str(paths.PROTOCOLS / "hd-tdcs-4x1.toml"), "--board", "sim"])
    assert r.exit_code == 0, r.output
    assert ("  electrodes (peak bound, charge bound): C1 500 uA 0.615 C, C5 500 uA 0.615 C, FC3 500 uA 0.615 C, "
            "CP3 500 uA 0.615 C, C3 (return) 2000 uA 2.460 C") in r.output.splitlines()


def test_a_one_source_board_runs_two_electrodes_only():
    # pico-mcp4922 drives one source (its DAC's channel B is the pump's reference)
    for name in ("hd-tdcs-4x1", "tacs-theta-inphase-2site", "tacs-theta-antiphase-2site"):
        r = CliRunner().invoke(main, ["validate", str(paths.PROTOCOLS / (name + ".toml")), "--board", "pico-mcp4922"])
        assert r.exit_code == 2, (name, r.output)
        assert "current sources" in r.output
    r = CliRunner().invoke(main, ["validate", str(paths.PROTOCOLS / "tdcs-bilateral.toml"), "--board", "pico-mcp4922"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["validate", str(paths.PROTOCOLS / "tacs-theta-inphase-2site.toml"), "--board", "sim"])
    assert r.exit_code == 0, r.output


def test_titrate_and_iaf_refuse_a_multi_base(tmp_path):
    base = str(paths.PROTOCOLS / "tacs-theta-antiphase-2site.toml")
    r = CliRunner().invoke(main, ["titrate", base, "--port", "sim", "--out", str(tmp_path / "t.toml")])
    assert r.exit_code == 2
    assert "titrate does not take a multi-electrode montage (F3, P3, Cz) yet" in r.output
    from tesctl import protowrite
    with pytest.raises(protowrite.InputError, match="iaf does not take a multi-electrode montage"):
        protowrite.read_base(base, "iaf")


def test_a_multi_sham_fades_every_electrode_together():
    text = SHORT.replace("duration_s = 2\n", "duration_s = 20\n") + "[sham]\nramp_up_s = 0.5\nramp_down_s = 0.5\n"
    loaded = protofile.check_data(text.encode(), name="sham.toml")
    assert loaded.ok, loaded.problems
    assert loaded.canonical["sham"] == {"ramp_up_ms": 500, "plateau_ms": 0, "ramp_down_ms": 500, "double": False}
    cols = [v for _, v in enginerun.channels_cpython(loaded.canonical)]
    assert all(sum(row) == 0 for row in zip(*cols))
    fade = 2000    # 0.5 s up, 0.5 s down at 2000 S/s, then zero for the rest of the block
    assert all(any(c[:fade]) for c in cols)
    assert all(not any(c[fade:]) for c in cols)
