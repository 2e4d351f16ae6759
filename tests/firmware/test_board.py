"""Board files, uA<->code conversion, MCP4922 packing and calibration math.
Plain asserts: runs under the unix port (tools/mptest.py test_board) and CPython (pytest)."""
import json
import os

from hal import calib, mcp4922
from tes import board

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = _HERE + "/../.."
BOARDS = ("pico-mcp4922", "pico2-mcp4922", "esp32-mcp4922", "sim")


def _board(name="pico-mcp4922"):
    return board.load(ROOT + "/boards/" + name + ".json")


def _copy(b):
    return json.loads(json.dumps(b))


def _scratch():
    d = ROOT + "/build"
    for p in (d, d + "/test_board"):
        try:
            os.mkdir(p)
        except OSError:
            pass
    return d + "/test_board"


def _has(problems, *words):
    for p in problems:
        if all(w in p for w in words):
            return True
    return False


def test_board_files_load_and_pass_check():
    for name in BOARDS:
        b = board.load_checked(ROOT + "/boards/" + name + ".json")
        assert b["id"] == name, name
        assert board.check(b) == [], (name, board.check(b))


def test_malformed_boards_refused():
    good = _board()
    cases = [
        # (what to break, words the problem must contain)
        (lambda b: b["limits"].__setitem__("max_current_uA", 4500), ("limits.max_current_uA", "ceiling")),
        (lambda b: b["limits"].__setitem__("min_ramp_ms", 50), ("limits.min_ramp_ms", "floor")),
        (lambda b: b["limits"].__setitem__("max_volts", 5), ("limits.max_volts", "unknown")),
        (lambda b: b.__setitem__("hw_current_limit_uA", 6000), ("hw_current_limit_uA", "above 5000")),
        (lambda b: b.__setitem__("hw_current_limit_uA", True), ("hw_current_limit_uA", "integer")),
        (lambda b: b.pop("dac"), ("dac: missing",)),
        (lambda b: b["dac"].__setitem__("bits", "12"), ("dac.bits", "integer")),
        (lambda b: b["dac"].__setitem__("bits", 16), ("dac.bits = 16",)),
        (lambda b: b["dac"].pop("spi"), ("dac.spi: missing",)),
        (lambda b: b.__setitem__("mcu", "avr"), ("mcu",)),
        (lambda b: b.__setitem__("id", ""), ("id",)),
        (lambda b: b.pop("enable_pin"), ("enable_pin: missing",)),
        (lambda b: b.__setitem__("compliance_V", 100), ("compliance_V = 100",)),
        (lambda b: b.__setitem__("max_sample_rate_hz", 60000), ("max_sample_rate_hz", "ceiling")),
        (lambda b: b["calibration"].__setitem__("full_scale_code", 1000), ("monotonic",)),
        (lambda b: b["calibration"].__setitem__("full_scale_uA", -3960), ("monotonic",)),
        (lambda b: b["calibration"].__setitem__("full_scale_code", 5000), ("full_scale_code = 5000",)),
        (lambda b: b["calibration"].__setitem__("full_scale_uA", 3000), ("nA per code",)),
        (lambda b: b["current_source"].pop("nA_per_code"), ("current_source", "nA_per_code")),
        (lambda b: b["sense"].__setitem__("shunt_ohm", 0), ("sense.shunt_ohm",)),
        (lambda b: b["sense"]["adc"].__setitem__("kind", "internal"), ("sense.adc.kind",)),
        (lambda b: b["sense"]["adc"].pop("latency_samples"), ("sense.adc.latency_samples",)),
        (lambda b: b["sense"]["adc"].__setitem__("latency_samples", [1, 0, 9]), ("sense.adc.latency_samples",)),
        (lambda b: b["sense"]["adc"].__setitem__("voltage_channel", 0), ("channels must differ",)),
        (lambda b: b["sense"]["adc"].__setitem__("readback_channel", 4), ("sense.adc.readback_channel = 4",)),
        (lambda b: b["sense"]["adc"].__setitem__("mid_mV", 1600), ("sense.adc.mid_mV = 1600", "half")),
        (lambda b: b["sense"].__setitem__("readback_tol_uA", 0), ("sense.readback_tol_uA",)),
        (lambda b: b["dac"].__setitem__("channels", 3), ("dac.channels",)),
        (lambda b: b.__setitem__("pace_hz", 0), ("pace_hz",)),
        (lambda b: b.__setitem__("limits", [4000]), ("limits", "object")),
    ]
    for i in range(len(cases)):
        b = _copy(good)
        cases[i][0](b)
        problems = board.check(b)
        assert _has(problems, *cases[i][1]), (i, cases[i][1], problems)


def test_two_source_board_checked():
    good = _board("pico2-mcp4922")
    assert good["current_sources"] == 2 and board.check(good) == []
    adc = lambda b: b["sense"]["adc"]     # noqa: E731
    cases = [
        (lambda b: adc(b).__setitem__("current_channels", [0]), ("sense.adc.current_channels", "2")),
        (lambda b: adc(b).__setitem__("voltage_channels", [1, 4]), ("sense.adc.voltage_channels", "0..3")),
        (lambda b: adc(b).__setitem__("voltage_channels", [1, 2]), ("every current and voltage input must differ",)),
        (lambda b: adc(b).__setitem__("readback_channel", 3), ("readback_channel", "several sources")),
        (lambda b: adc(b).__setitem__("latency_samples", [0, 0, 0]), ("latency_samples", "2 integers")),
        (lambda b: b["dac"].__setitem__("channels", 1), ("dac.channels = 1", "per current source")),
        (lambda b: b.__setitem__("current_sources", 3), ("current_channels", "current_sources = 3")),
    ]
    for i in range(len(cases)):
        b = _copy(good)
        cases[i][0](b)
        problems = board.check(b)
        assert _has(problems, *cases[i][1]), (i, cases[i][1], problems)
    # Two sources declared on a board whose ADC lists one source's inputs: refused (the driver
    # would not know what to sense for source 2); the simulated board models any count.
    b = _copy(_board())
    b["current_sources"] = 2
    assert _has(board.check(b), "current_sources = 2", "current_channels"), board.check(b)
    assert _board("sim")["current_sources"] > 1 and board.check(_board("sim")) == []


def test_dac_that_cannot_reach_the_limit_refused():
    b = _copy(_board())
    # A 0.9 uA/code stage spans only +/-1.8 mA: protocols up to 4 mA could not be delivered.
    b["current_source"]["nA_per_code"] = 900
    b["calibration"]["full_scale_uA"] = 1620
    assert _has(board.check(b), "cannot reach max_current_uA"), board.check(b)


def test_sim_model_checked():
    b = _copy(_board("sim"))
    b["model"]["skin_ohm_floor"] = b["model"]["skin_ohm"] + 1
    assert _has(board.check(b), "skin_ohm_floor"), board.check(b)
    b = _copy(_board("sim"))
    b["model"].pop("skin_nF")
    assert _has(board.check(b), "model.skin_nF: missing")
    b = _copy(_board("sim"))
    b.pop("model")
    assert _has(board.check(b), "model")


def test_load_checked_raises_with_every_problem():
    b = _copy(_board())
    b["limits"]["max_current_uA"] = 9000
    b["compliance_V"] = 500
    path = _scratch() + "/bad.json"
    with open(path, "w") as f:
        json.dump(b, f)
    try:
        board.load_checked(path)
    except ValueError as e:
        msg = str(e)
        assert "max_current_uA" in msg and "compliance_V" in msg, msg
    else:
        raise AssertionError("load_checked accepted a bad board")


def test_ua_code_round_trip():
    conv = calib.conversion(_board())
    assert calib.ua_to_code(conv, 0) == 2048
    assert calib.code_to_ua(conv, 2048) == 0
    for uA in range(-4000, 4001, 7):
        code = calib.ua_to_code(conv, uA)
        back = calib.code_to_ua(conv, code)
        assert abs(back - uA) <= 2, (uA, code, back)   # half a 2.2 uA step, plus truncation


def test_ua_to_code_clamps():
    conv = calib.conversion(_board())
    hw = conv["hw_limit_uA"]
    for uA in (hw, hw + 1, 100000, -hw, -hw - 1, -100000):
        code = calib.ua_to_code(conv, uA)
        assert 0 <= code <= 4095
        # exact current of the code, compared without division
        assert abs((code - conv["zero_code"]) * conv["span_uA"]) <= hw * conv["span_code"], (uA, code)
        assert abs(calib.code_to_ua(conv, code)) <= hw
    assert calib.ua_to_code(conv, 100000) == calib.ua_to_code(conv, hw)
    prev = -1
    for uA in range(-5000, 5001, 3):
        code = calib.ua_to_code(conv, uA)
        assert code >= prev
        prev = code


def test_mcp4922_words():
    # DS21897 register 5-1: A/B, BUF, GA (1 = 1x), SHDN (1 = active), D11..D0.
    assert mcp4922.word(2048) == 0x7800          # DAC A, buffered, 1x, active, mid-scale
    assert mcp4922.word(0) == 0x7000
    assert mcp4922.word(4095, mcp4922.CH_B) == 0xFFFF
    assert mcp4922.word(0x123, 1, False, True, True) == 0xB123
    assert mcp4922.word(0x5A5, 0, False, False, True) == 0x15A5
    assert mcp4922.word(7, 0, True, True, False) == 0x6007   # channel shut down
    assert mcp4922.word(5000) == 0x7FFF and mcp4922.word(-3) == 0x7000   # clamped, not wrapped
    assert mcp4922.pack(2048) == b"\x78\x00"
    assert mcp4922.pack(0xABC, 1) == b"\xfa\xbc"
    buf = bytearray(2)
    mcp4922.pack_into(buf, 0xF123)
    assert buf == bytearray(b"\xf1\x23")


def test_calibration_math():
    # A stage whose true zero is code 2051 and whose slope is 2.25 uA/code.
    def stage(code):
        p = (code - 2051) * 9
        return (p + 2) // 4 if p >= 0 else -((2 - p) // 4)
    z_read = stage(2048)
    f_read = stage(3848)
    assert z_read == -7 and f_read == 4043
    cal = calib.calibrate(z_read, f_read, 2048, 3848, load_ohm=1000)
    assert cal["zero_code"] == 2051, cal
    assert cal["full_scale_code"] == 3848 and cal["full_scale_uA"] == 4043
    assert board.check_calibration(cal, 4095) == []
    conv = calib.conversion(_board(), cal)
    assert calib.ua_to_code(conv, 0) == 2051
    c = calib.ua_to_code(conv, 2000)
    assert abs(stage(c) - 2000) <= 2, (c, stage(c))
    # Readings that fall as the code rises: wiring reversed; refuse.
    try:
        calib.calibrate(10, -3900, 2048, 3848)
    except ValueError:
        pass
    else:
        raise AssertionError()
    # Across a 1 kOhm load, mV read equals uA.
    assert calib.load_uA(3960, 1000) == 3960
    assert calib.load_uA(-1981, 500) == -3962


def test_calibration_storage():
    d = _scratch()
    try:
        os.remove(d + "/" + calib.CAL_FILE)
    except OSError:
        pass
    assert calib.load_calibration(d) is None
    cal = calib.calibrate(-7, 4043, 2048, 3848, 1000)
    calib.save_calibration(d, cal)
    assert calib.load_calibration(d) == cal
    with open(d + "/" + calib.CAL_FILE, "w") as f:
        json.dump({"zero_code": 3000, "full_scale_code": 2000, "full_scale_uA": 1}, f)
    try:
        calib.load_calibration(d)
    except ValueError as e:
        assert "monotonic" in str(e)
    else:
        raise AssertionError("a bad stored calibration was accepted")
