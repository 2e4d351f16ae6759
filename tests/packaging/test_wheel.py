"""tesctl as an operator installs it: `python -m build` makes the sdist and the wheel (the
wheel from the sdist), the wheel goes into a fresh virtual environment outside the checkout
with the [sim] extra (its dependencies from PyPI), and the installed `tesctl`, run from a
temporary folder with nothing of the checkout in sight, validates, previews and runs a
ready protocol by name on the simulated board and reports the session (issue 13)."""
import csv
import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = sorted(p.stem for p in (ROOT / "protocols").glob("*.toml"))
PROTOCOL = "tdcs-anodal-dlpfc"


def _version():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'(?m)^version = "([^"]+)"', text).group(1)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    wheels, sdists = list(out.glob("tesctl-*.whl")), list(out.glob("tesctl-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory):
    """(tesctl executable, venv python, environment, working folder): the wheel with
    [sim] in a fresh venv, none of it under the checkout."""
    wheel, _ = dist
    base = tmp_path_factory.mktemp("operator")
    assert ROOT not in base.parents
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bin_dir / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MICROPYTHON", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "%s[sim]" % wheel],
                       capture_output=True, text=True, timeout=900, env=env, cwd=str(base))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    env["TESCTL_STATE"] = str(base / "state")
    env["TESCTL_SIM_STORAGE"] = str(base / "sim-flash")
    env["XDG_STATE_HOME"] = str(base / "xdg-state")
    env["XDG_CACHE_HOME"] = str(base / "xdg-cache")
    return bin_dir / "tesctl", py, env, work


def run(installed, *args, timeout=600):
    exe, _py, env, work = installed
    p = subprocess.run([str(exe)] + [str(a) for a in args], capture_output=True, text=True, env=env, cwd=str(work),
                       timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def ok(p):
    assert p.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p


def test_the_wheel_has_one_top_level_package_and_its_run_time_files(dist):
    wheel, _ = dist
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"tesctl", "tesctl-%s.dist-info" % _version()}, top
    for rel in ("firmware/main.py", "firmware/simmain.py", "firmware/tes/app.py", "firmware/hal/sim.py",
                "boards/sim.json", "boards/pico-mcp4922.json", "protocols/schema.json"):
        assert "tesctl/data/" + rel in names, rel
    assert sorted(n[len("tesctl/data/protocols/"):-5] for n in names
                  if n.startswith("tesctl/data/protocols/") and n.endswith(".toml")) == READY
    # The firmware tree is the checkout's, file for file (deploy and the HELLO hash rely on it).
    shipped = sorted(n[len("tesctl/data/firmware/"):] for n in names if n.startswith("tesctl/data/firmware/"))
    tree = sorted(str(p.relative_to(ROOT / "firmware")) for p in (ROOT / "firmware").rglob("*.py")
                  if "__pycache__" not in p.parts)
    assert shipped == tree
    assert "tesctl/hil/harness.mjs" in names and "tesctl/hil/package-lock.json" in names
    assert not [n for n in names if "node_modules" in n or "/test/" in n]


def test_the_sdist_builds_from_the_checkouts_folders(dist):
    _, sdist = dist
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"pyproject.toml", "firmware/tes/app.py", "boards/sim.json", "protocols/schema.json",
            "host/tesctl/cli.py", "host/tesctl/hil/harness.mjs"} <= names
    assert not [n for n in names if "node_modules" in n]


def test_installed_tesctl_says_its_version(installed):
    assert ok(run(installed, "--version")).stdout.strip().endswith(_version())


def test_site_packages_has_no_generic_top_level_names(installed):
    _exe, py, env, work = installed
    code = ("import importlib.util, sys\n"
            "print(importlib.util.find_spec('tes'), importlib.util.find_spec('hal'))\n"
            "import tesctl, tes, hal\n"
            "print(tes.__file__)\nprint(hal.__file__)\n")
    p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=str(work), timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "None None"           # nothing named tes or hal until tesctl is imported
    for line, pkg in zip(lines[1:], ("tes", "hal")):
        assert Path(line).parts[-4:] == ("data", "firmware", pkg, "__init__.py"), line
        assert "site-packages" in Path(line).parts and ROOT not in Path(line).parents


def test_the_installed_hil_harness_is_the_checkouts(installed):
    # tesctl hil copies/installs its Node harness from the package: the same sources.
    from tesctl import hil
    _exe, py, env, work = installed
    code = "from tesctl import hil; print(hil.HIL_DIR); print(hil._sources_digest(hil.HIL_DIR))"
    p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=str(work), timeout=120)
    assert p.returncode == 0, p.stderr
    where, digest = p.stdout.split()
    assert ROOT not in Path(where).parents and not (Path(where) / "node_modules").exists()
    assert digest == hil._sources_digest(ROOT / "host" / "tesctl" / "hil")


def test_protocols_lists_and_copies_the_ready_protocols(installed):
    listed = ok(run(installed, "protocols")).stdout.splitlines()
    assert [line.split()[0] for line in listed] == READY
    work = installed[3]
    ok(run(installed, "protocols", "--copy", PROTOCOL, "mine"))
    copied = work / "mine" / (PROTOCOL + ".toml")
    assert copied.read_bytes() == (ROOT / "protocols" / (PROTOCOL + ".toml")).read_bytes()
    assert (work / "mine" / "schema.json").read_bytes() == (ROOT / "protocols" / "schema.json").read_bytes()
    # The copy is a path like any other: it validates.
    assert ok(run(installed, "validate", copied)).stdout.startswith(str(copied) + ": valid")


def test_validate_and_preview_a_ready_protocol_by_name(installed):
    p = ok(run(installed, "validate", PROTOCOL, "--board", "pico-mcp4922"))
    path = Path(p.stdout.split(": valid")[0])
    assert path.parts[-4:] == ("tesctl", "data", "protocols", PROTOCOL + ".toml") and ROOT not in path.parents
    ok(run(installed, "preview", PROTOCOL, "--csv", "preview.csv"))
    with open(installed[3] / "preview.csv", newline="") as f:
        rows = list(csv.reader(f))
    # 20 min plateau + 30 s ramps each way at 1 kS/s, one header row.
    assert len(rows) == 1 + 1260 * 1000
    assert max(float(r[1]) for r in rows[1:]) == 2000


def test_a_fast_session_on_the_simulated_board_and_its_report(installed):
    work = installed[3]
    p = ok(run(installed, "run", PROTOCOL, "--port", "sim", "--fast", "--plain", "--out", "session",
               "--subject", "pkg"))
    assert "outcome    completed" in p.stdout
    meta = json.loads((work / "session" / "session.json").read_text())
    assert meta["outcome"] == "completed" and meta["subject"] == "pkg"
    (work / "session" / "report.png").unlink()
    r = ok(run(installed, "report", "session"))
    assert "report: session/report.png" in r.stdout
    assert (work / "session" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_name_is_refused_in_one_line(installed):
    p = run(installed, "validate", "no-such-protocol")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "tesctl: no-such-protocol: no such file, and no ready protocol of that name (tesctl protocols lists them)"]


def test_a_missing_extra_is_named_in_one_line(installed):
    # The venv has [sim] but not [lsl]: pylsl is absent.
    p = run(installed, "run", "tdcs-sham", "--port", "sim", "--fast", "--plain", "--lsl", "--out", "lsl-session")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["tesctl: --lsl needs pylsl: pip install 'tesctl[lsl]'"]
    assert p.stdout == "" and not (installed[3] / "lsl-session").exists()     # refused before the board


def test_iaf_without_the_eeg_extra_names_it_and_ngvs_protocols_ship(installed):
    # The venv has [sim] but not [eeg]: MNE is absent.
    p = run(installed, "iaf", "rest.edf")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["tesctl: tesctl iaf needs mne: pip install 'tesctl[eeg]'"]
    for name in ("ngvs-200ua", "ngvs-400ua", "ngvs-sham"):
        first = ok(run(installed, "validate", name)).stdout.splitlines()[0]
        assert first.endswith(".toml: valid: %snGVS 0-30 Hz noise, mastoids (M1-M2), %s uA peak, 20 min" % (
            "Sham " if name == "ngvs-sham" else "", {"ngvs-400ua": "400"}.get(name, "200"))), first
