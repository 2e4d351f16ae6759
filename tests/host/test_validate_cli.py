"""`tesctl validate` on bad protocol files, through the real command.

Each tests/host/bad_protocols/*.toml starts with `# expect: FRAGMENT` (the part of the
problem line it must print) and optionally `# board: NAME`. Files that cannot carry a
comment (empty, binary, oversize, a directory, non-UTF-8) are made at test time.
Every bad file: exit code 2, the fragment appears, no traceback, one line per problem.
"""
import subprocess
import sys
from pathlib import Path

import pytest

TESCTL = str(Path(sys.executable).parent / "tesctl")
BAD = Path(__file__).parent / "bad_protocols"
FILES = sorted(BAD.glob("*.toml"))


def header(path, key):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %s: " % key):
            return line[len("# %s: " % key):]
    return None


def validate(path, *extra):
    return subprocess.run([TESCTL, "validate", str(path), *extra], capture_output=True, text=True,
                          errors="replace")


def problem_lines(r):
    """The problem lines of a refusal: a 'FILE: N problem(s):' line, then one per problem."""
    lines = r.stderr.splitlines()
    assert lines, r
    head = lines[0]
    assert head.endswith(" problem:") or head.endswith(" problems:"), head
    count = int(head.rsplit(":", 1)[0].rsplit(" ", 2)[-2])
    body = lines[1:]
    assert len(body) == count, r.stderr   # every problem is exactly one line
    assert all(line.startswith("  ") and line.strip() for line in body), r.stderr
    return [line.strip() for line in body]


def assert_refused(r, fragment):
    assert "Traceback" not in r.stderr + r.stdout
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    problems = problem_lines(r)
    assert any(fragment in p for p in problems), (fragment, problems)
    assert r.stdout == ""
    return problems


def test_there_are_enough_distinct_bad_files():
    assert len(FILES) >= 30
    expects = [header(f, "expect") for f in FILES]
    assert all(expects), [f.name for f, e in zip(FILES, expects) if not e]
    assert len(set(expects)) == len(expects), "two files expect the same message"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_bad_file_refused_with_its_message(path):
    board = header(path, "board")
    r = validate(path, *(["--board", board] if board else []))
    assert_refused(r, header(path, "expect"))


def test_board_narrows_the_ceiling():
    # the board case is valid under the ceiling alone (50000 S/s) and the sim board
    path = BAD / "board-sample-rate.toml"
    assert validate(path).returncode == 0
    assert validate(path, "--board", "sim").returncode == 0


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


VALID = (b'schema = 1\nname = "ok"\n[montage]\nanode = "F3"\ncathode = "Fp2"\n'
         b'electrode_area_cm2 = 35\n[stimulation]\nwaveform = "dc"\namplitude_uA = 1000\nduration_s = 600\n')


@pytest.mark.parametrize("name,data,fragment", [
    ("empty.toml", b"", "empty.toml: file is empty"),
    ("blank.toml", b"  \n\t\n\r\n   ", "blank.toml: file is empty"),
    ("binary.toml", b"schema = 1\n\x00\x01\x02\xff", "binary file (contains NUL bytes), not TOML"),
    ("big.toml", VALID + b"# " + b"x" * (64 * 1024) + b"\n", "over the 65536-byte limit"),
    ("latin1.toml", VALID.replace(b'"ok"', b'"caf\xe9"'), "line 2: not UTF-8 text"),
    ("bad-bom.toml", b"\xff\xfe" + VALID, "line 1: not UTF-8 text"),
])
def test_generated_bad_files(tmp_path, name, data, fragment):
    assert_refused(validate(_write(tmp_path, name, data)), fragment)


def test_just_under_size_limit_is_read(tmp_path):
    data = VALID + b"# " + b"x" * (64 * 1024 - len(VALID) - 3) + b"\n"
    assert len(data) == 64 * 1024
    r = validate(_write(tmp_path, "edge.toml", data))
    assert r.returncode == 0, r.stderr


def test_directory_refused(tmp_path):
    d = tmp_path / "proto.toml"
    d.mkdir()
    assert_refused(validate(d), "is a directory, not a protocol file")


def test_missing_file_refused(tmp_path):
    assert_refused(validate(tmp_path / "nope.toml"), "cannot read")


def test_unknown_board_refused():
    r = validate(BAD.parent.parent.parent / "protocols" / "tdcs-anodal-dlpfc.toml", "--board", "no-such-board")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no board" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_several_problems_listed_together(tmp_path):
    data = (b'schema = 1\nname = "many"\nsample_rate_hz = 1000\n[montage]\nanode = "F3"\ncathode = "Fp2"\n'
            b'[stimulation]\nwaveform = "sine"\namplitude_uA = 3000\noffset_uA = 1500\nfrequency_hz = 200\n'
            b'phase_deg = 400\nduration_s = 600\nramp_up_s = 0.01\nramp_down_s = 400\n'
            b'[safety]\nimpedance_max_ohm = 99999\n')
    r = validate(_write(tmp_path, "many.toml", data))
    problems = assert_refused(r, "stimulation.amplitude_uA = 4500: must be <= 4000")
    for fragment in ("stimulation.frequency_hz = 200: must be <= 100",
                     "stimulation.phase_deg = 400: must be <= 359",
                     "stimulation.ramp_up_s = 0.01: must be >= 0.1",
                     "stimulation.ramp_down_s = 400: must be <= 300",
                     "safety.impedance_max_ohm = 99999: must be <= 50000"):
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == 6
    assert r.stderr.splitlines()[0].endswith("6 problems:")


def test_several_structural_problems_listed_together(tmp_path):
    data = (b'schema = 3\nnmae = "typo"\n[montage]\ncathode = "Fp2"\n'
            b'[stimulation]\nwaveform = "sine"\namplitude_ua = 1000\nduration_s = "long"\n')
    problems = assert_refused(validate(_write(tmp_path, "typos.toml", data)), "schema = 3: unsupported")
    for fragment in ("nmae: unknown field (did you mean 'name'?)", "name: missing",
                     "montage.anode: missing", "stimulation.amplitude_ua: unknown field (did you mean 'amplitude_uA'?)",
                     'stimulation.duration_s = "long": must be a number'):
        assert any(fragment in p for p in problems), (fragment, problems)


def test_high_current_density_warns_but_passes(tmp_path):
    data = VALID.replace(b"electrode_area_cm2 = 35", b"electrode_area_cm2 = 10").replace(
        b"amplitude_uA = 1000", b"amplitude_uA = 2000")
    r = validate(_write(tmp_path, "dense.toml", data))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warn = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1
    assert "current density 0.200 mA/cm^2" in warn[0] and "0.06 mA/cm^2" in warn[0]
    assert "valid" in r.stdout


def test_normal_density_no_warning(tmp_path):
    r = validate(_write(tmp_path, "ok.toml", VALID))
    assert r.returncode == 0 and r.stderr == ""
