"""tesctl.hil's launcher pieces: finding Node.js, installing the harness's npm dependencies
(in place, or in a per-user cache when the package folder is read-only), input checks."""
import json
import os
import stat

import pytest

from tesctl import hil


def fake_install(calls):
    def npm_ci(npm, env, folder, log):
        calls.append(str(folder))
        pkg = folder / "node_modules" / "rp2040js"
        pkg.mkdir(parents=True)
        (pkg / "package.json").write_text(json.dumps({"version": hil.RP2040JS_VERSION}))
    return npm_ci


def harness_copy(tmp_path):
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    for f in hil.HARNESS_FILES:
        (src / f).write_text("// %s\n" % f)
    (src / "lib" / "board.mjs").write_text("// lib\n")
    return src


def test_no_node_is_one_sentence_with_exit_code_3(monkeypatch):
    monkeypatch.setattr(hil, "_node_dirs", lambda: [])
    with pytest.raises(hil.HilError) as e:
        hil.find_node()
    assert e.value.code == 3
    assert "Node.js 18 or newer" in str(e.value)
    assert "\n" not in str(e.value)


def test_too_old_node_is_refused(monkeypatch, tmp_path):
    for name in ("node", "npm"):
        p = tmp_path / name
        p.write_text("#!/bin/sh\necho v16.20.0\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(hil, "_node_dirs", lambda: [str(tmp_path)])
    with pytest.raises(hil.HilError, match="v16.20.0"):
        hil.find_node()


def test_dependencies_install_in_place_once(monkeypatch, tmp_path):
    src = harness_copy(tmp_path)
    calls = []
    monkeypatch.setattr(hil, "_npm_ci", fake_install(calls))
    assert hil.harness_dir(source=src) == src
    assert hil.harness_dir(source=src) == src
    assert calls == [str(src)]


def test_cache_path_when_not_writable(monkeypatch, tmp_path):
    # The package folder is read-only (an installed package): a copy of the harness goes to
    # the user's cache and npm installs there. (Permissions are faked: root ignores them.)
    src = harness_copy(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setattr(hil, "cache_dir", lambda: cache)
    real = os.access
    monkeypatch.setattr(hil.os, "access", lambda p, mode: False if str(p) == str(src) else real(p, mode))
    calls = []
    monkeypatch.setattr(hil, "_npm_ci", fake_install(calls))
    dest = hil.harness_dir(source=src)
    assert str(dest).startswith(str(cache))
    assert calls == [str(dest)]
    (src / "harness.mjs").write_text("// changed\n")     # new sources: a new cache entry
    dest2 = hil.harness_dir(source=src)
    assert dest2 != dest and (dest2 / "harness.mjs").read_text() == "// changed\n"


def test_inputs_are_checked_before_anything_starts(tmp_path):
    with pytest.raises(hil.HilError) as e:
        hil.HilServer(uf2=tmp_path / "missing.uf2")._check_inputs()
    assert e.value.code == 2 and "no firmware image" in str(e.value)
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(b"")
    with pytest.raises(hil.HilError) as e:
        hil.HilServer(uf2=uf2, board="no-such-board")._check_inputs()
    assert e.value.code == 2 and "known boards" in str(e.value)
    with pytest.raises(hil.HilError):
        hil.HilServer(uf2=uf2, cpu_mhz=0)._check_inputs()


def test_argv_carries_every_option(tmp_path, monkeypatch):
    monkeypatch.setattr(hil, "find_node", lambda: ("/usr/bin/node", "/usr/bin/npm", {}))
    s = hil.HilServer(uf2=tmp_path / "fw.uf2", model=["series_ohm=1000"], dac_log=tmp_path / "d.csv", cpu_mhz=133,
                      flash=tmp_path / "f.bin", erase=True, stats_file=tmp_path / "s.json")
    argv = s.argv(tmp_path, 7, 8)
    assert argv[:2] == ["/usr/bin/node", str(tmp_path / "harness.mjs")]
    joined = " ".join(argv)
    for part in ("--serial-in 7", "--serial-out 8", "--model series_ohm=1000", "--cpu-mhz 133", "--erase",
                 "--dac-log %s" % (tmp_path / "d.csv"), "--stats %s" % (tmp_path / "s.json"),
                 "pico-mcp4922.json", "sim.json"):
        assert part in joined


def test_a_non_uf2_file_is_refused_before_node_or_npm_is_touched(tmp_path, monkeypatch):
    def no_node():
        raise AssertionError("looked for Node before checking the image")
    monkeypatch.setattr(hil, "find_node", no_node)
    uf2 = tmp_path / "fw.uf2"
    good = hil.empty_uf2()
    for data, text in ((b"not an image", "whole number of 512-byte blocks"),
                       (good + b"\0" * 512, "bad magic in block 1"),
                       (good[:508] + b"\0\0\0\0", "bad magic in block 0")):
        uf2.write_bytes(data)
        with pytest.raises(hil.HilError) as e:
            hil.HilServer(uf2=uf2).start()
        assert e.value.code == 2 and text in str(e.value)
    uf2.write_bytes(good + good)
    hil.HilServer(uf2=uf2)._check_inputs()          # well-formed: accepted
