"""`fault KIND` on tesctl hil's stdin: the line's parsing, the readable line printed for the
harness's fault event, and the whole path (stdin line -> harness -> event -> line) through
the real Node harness with an image that only sleeps (skipped without Node.js and the
harness's npm dependencies). The load model itself is tested under Node
(host/tesctl/hil/test/fault.test.mjs)."""
import re
import sys
import time

import pytest

from tesctl import hil


def test_fault_lines_parse():
    assert hil.parse_fault("fault liftoff") == "liftoff"
    assert hil.parse_fault("  fault   short ") == "short"
    assert hil.parse_fault("fault clear") == "clear"
    assert hil.parse_fault("stats") is None
    assert hil.parse_fault("faulty liftoff") is None
    assert hil.parse_fault("fault liftoff 2") == "liftoff 2"        # a board of two sources
    assert hil.parse_fault("fault clear 0") == "clear 0"
    for bad in ("fault", "fault dac-stuck", "fault liftoff now", "fault LIFTOFF", "fault short -1", "fault short 1 2"):
        with pytest.raises(hil.HilError) as e:
            hil.parse_fault(bad)
        assert e.value.code == 2
        assert "liftoff, short, clear" in str(e.value)


def test_fault_event_lines():
    ev = {"event": "fault", "kind": "liftoff", "was": None, "t_us": 9876543.21, "t_s": 9.87654321, "enabled": True,
          "series_ohm": 10000000, "i_uA": 1.6, "v_V": 30.0}
    assert hil.format_fault(ev) == ("hil fault liftoff at 9876543.210 us emulated (output enabled, load now 1.6 uA at "
                                    "30.000 V)")
    assert hil.format_fault({"event": "fault", "kind": "short", "t_us": 5, "enabled": False}) == \
        "hil fault short at 5.000 us emulated (output off)"
    assert hil.format_fault({"event": "fault", "kind": "clear", "was": "short", "t_us": 12.5}) == \
        "hil fault cleared at 12.500 us emulated (was short)"
    assert hil.format_fault({"event": "fault", "kind": "clear", "was": None}) == "hil fault cleared at ? emulated"
    two = {"event": "fault", "kind": "liftoff", "electrode": 0, "was": None, "t_us": 12.5, "enabled": True,
           "series_ohm": 10000000, "i_uA": [2.15, 1000.9], "v_V": [30.0, 17.035]}
    assert hil.format_fault(two) == ("hil fault liftoff at 12.500 us emulated on electrode 0 (output enabled, sources "
                                     "now 2.1 uA at 30.000 V, 1000.9 uA at 17.035 V)")
    assert hil.format_fault({"event": "fault", "kind": "clear", "electrode": 2, "was": "liftoff", "t_us": 1}) == \
        "hil fault cleared at 1.000 us emulated on electrode 2 (was liftoff)"


def test_server_refuses_an_unknown_kind_before_the_harness():
    server = hil.HilServer(uf2="none.uf2")
    with pytest.raises(hil.HilError) as e:
        server.fault("dac-stuck")
    assert e.value.code == 2


def _idle_uf2():
    """One RP2040 block at the start of flash (where boot2 runs): `wfi; b .-2`, a chip that
    sleeps for ever."""
    import struct
    data = struct.pack("<HH", 0xBF30, 0xE7FD) * 64
    block = bytearray(512)
    struct.pack_into("<IIIIIIII", block, 0, hil.UF2_MAGICS[0], hil.UF2_MAGICS[1], 0x2000, 0x10000000, 256, 0, 1,
                     0xE48BFF56)
    block[32:32 + 256] = data
    struct.pack_into("<I", block, 508, hil.UF2_MAGICS[2])
    return bytes(block)


def _harness_ready():
    try:
        hil.find_node()
    except hil.HilError:
        return False
    return hil._installed(hil.HIL_DIR)


@pytest.mark.skipif(not _harness_ready(), reason="needs Node.js and host/tesctl/hil/node_modules")
def test_a_fault_line_on_stdin_reaches_the_harness_and_comes_back_as_a_line(tmp_path, monkeypatch):
    uf2 = tmp_path / "idle.uf2"
    uf2.write_bytes(_idle_uf2())
    out, err = [], []
    lines = ["fault liftoff\n", "fault bogus\n", "fault short\n", "fault clear\n", "quit\n"]

    def typed():
        # As typed: after the bridge serves (a `quit` read before serve_forever starts
        # would race it: serve() starts reading stdin first).
        time.sleep(1.0)
        yield from lines
    monkeypatch.setattr(sys, "stdin", typed())
    rc = hil.serve(ready=lambda path, server: None, out=out.append, err=err.append, uf2=uf2,
                   flash=tmp_path / "flash.bin", fast=True)
    assert rc == 0
    faults = [line for line in out if line.startswith("hil fault")]
    assert len(faults) == 3, out
    times = []
    for line, kind in zip(faults, ("liftoff", "short", "cleared")):
        m = re.match(r"hil fault %s at (\d+\.\d{3}) us emulated" % kind, line)
        assert m, line
        times.append(float(m.group(1)))
    assert times == sorted(times)
    assert "load now" in faults[0] and "output off" in faults[0]
    assert faults[2].endswith("(was short)")
    assert any("fault: expected one of liftoff, short, clear" in line for line in err), err
