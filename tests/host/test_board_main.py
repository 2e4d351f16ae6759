"""firmware/main.py, the board entry, with fake board modules: EXIT reboots once into the
REPL (a watchdog a session started cannot be stopped), and that boot skips the app."""
import sys
import types

import pytest

from tesctl import paths

SOURCE = (paths.FIRMWARE / "main.py").read_text()


class Fakes:
    def __init__(self):
        self.resets = 0
        self.apps_run = 0
        self.kbd = []
        self.zeroed = 0
        self.hals = []


@pytest.fixture
def board_env(tmp_path, monkeypatch):
    fk = Fakes()
    machine = types.ModuleType("machine")
    machine.reset = lambda: setattr(fk, "resets", fk.resets + 1)
    mp = types.ModuleType("micropython")
    mp.kbd_intr = fk.kbd.append

    class Hal:
        def __init__(self, board):
            fk.hals.append(type(self).__name__)

        def zero(self):
            fk.zeroed += 1

    class App:
        def __init__(self, *a):
            pass

        def run(self):
            fk.apps_run += 1      # returns: the host sent EXIT

    mods = {"machine": machine, "micropython": mp,
            "hal.rp2": types.SimpleNamespace(Rp2Hal=type("Rp2Hal", (Hal,), {})),
            "hal.rp2_multi": types.SimpleNamespace(Rp2MultiHal=type("Rp2MultiHal", (Hal,), {})),
            "tes.app": types.SimpleNamespace(App=App),
            "tes.board": FAKE_BOARD,
            "tes.fwhash": types.SimpleNamespace(tree_sha256=lambda r: "0" * 64),
            "tes.port": types.SimpleNamespace(StreamPort=lambda i, o, **kw: None)}
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=None))
    monkeypatch.chdir(tmp_path)
    return fk, tmp_path


FAKE_BOARD = types.SimpleNamespace(load_checked=lambda p: {"mcu": "rp2"})


def boot():
    sys.modules["tes.board"] = FAKE_BOARD   # main drops it once the board file is read
    exec(compile(SOURCE, "main.py", "exec"), {"__name__": "__main__"})


def test_exit_reboots_once_into_the_repl(board_env):
    fk, folder = board_env
    boot()                                   # power-on: the app runs, then EXIT
    assert fk.apps_run == 1 and fk.resets == 1
    # the board file's checker is dropped after boot (its RAM is the app's on an RP2040)
    assert "tes.board" not in sys.modules
    assert fk.kbd == [-1, 3] and fk.zeroed >= 2
    assert (folder / "skip_app").exists()
    boot()                                   # the reboot after EXIT: REPL, no app
    assert fk.apps_run == 1 and fk.resets == 1
    assert not (folder / "skip_app").exists()
    boot()                                   # the next power cycle runs the app again
    assert fk.apps_run == 2


def test_the_driver_follows_the_board_files_current_sources(board_env, monkeypatch):
    fk, folder = board_env
    boot()
    assert fk.hals == ["Rp2Hal"]
    monkeypatch.setattr(sys.modules[__name__], "FAKE_BOARD",
                        types.SimpleNamespace(load_checked=lambda p: {"mcu": "rp2", "current_sources": 2}))
    (folder / "skip_app").unlink()       # the next power cycle, with the two-source board file
    boot()
    assert fk.hals == ["Rp2Hal", "Rp2MultiHal"]
