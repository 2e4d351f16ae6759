"""The device app and a multi-electrode montage (issue 12) at LOAD: a montage of C driven
electrodes (every one but the return) loads where the board drives C current sources
(C <= min(hal.channels, the board's current_sources)), and is refused in one line
otherwise, whatever the host sent: never half-driven, never an internal error at START. A
two-electrode montage (one driven) loads on any board.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import link as L

from devrun import BOARD, DeviceRun


def _current(name, amp):
    return {"electrode": name, "waveform": "dc", "amplitude_uA": amp, "offset_uA": 0, "frequency_mHz": 0,
            "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0, "pulse_width_us": 0,
            "biphasic": False}


def montage(driven):
    names = ["C%d" % (k + 1) for k in range(len(driven))] + ["Cz"]
    seg = {"kind": "stim", "duration_ms": 1000, "ramp_up_ms": 200, "ramp_down_ms": 200, "ramp_shape": "linear",
           "currents": [_current(names[k], a) for k, a in enumerate(driven)]}
    return {"schema": 1, "name": "montage", "sample_rate_hz": 1000,
            "montage": {"electrodes": [{"name": n, "area_mm2": 2500} for n in names], "return": "Cz"},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


def _errors(d):
    frames = []
    dec = L.Decoder()
    d.port.write = lambda data: frames.extend(dec.feed(bytes(data)))
    return frames


def test_multi_electrode_protocols_load_where_the_board_drives_them():
    for driven in ([1500], [1000, -500], [500, 500, -250]):
        d = DeviceRun(montage(driven), "montage-%d" % len(driven), start=False)
        frames = _errors(d)
        d.load()
        assert d.app.state == L.LOADED, [L.decode_json(f[2])[0] for f in frames if f[0] == L.ERROR]
        assert d.app.proto["montage"]["return"] == "Cz"


def test_a_board_with_fewer_sources_refuses_in_one_line():
    board = dict(BOARD)
    board["current_sources"] = 2
    for channels, driven, have in ((1, [1000, -500], 1), (2, [500, 500, -250], 2), (8, [500, 500, -250], 2)):
        d = DeviceRun(montage(driven), "montage-r%d" % len(driven), board=board, start=False)
        d.hal.channels = channels       # a driver running fewer sources than the board has (hal.rp2: 1)
        frames = _errors(d)
        d.load()
        errs = [L.decode_json(f[2])[0] for f in frames if f[0] == L.ERROR]
        assert errs and errs[-1]["error"] == "invalid-protocol", errs
        assert errs[-1]["detail"] == "this board drives %d current source(s); the montage needs %d" % (
            have, len(driven)), errs
        assert d.app.proto is None and d.app.state == L.IDLE
        # the same device takes a montage of one driven electrode, and an anode/cathode one
        d.proto = montage([1500])
        d.load()
        assert d.app.state == L.LOADED
        from test_app_faults import protocol
        d.proto = protocol(1000, "dc", 500)
        d.load()
        assert d.app.state == L.LOADED
