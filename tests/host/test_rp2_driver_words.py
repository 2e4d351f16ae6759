"""hal.rp2 and hal.rp2_multi off the chip, under CPython with fake machine/rp2/uctypes modules:
what their boot and their cut put into the PIO. The one-source board's pump takes channel B
as its fixed reference: B must get mid-scale at boot, since nothing writes it again with one
word a sample (a refactor once left B at its power-up 0: the pump would drive ~-4.5 mA as
soon as the relay closed; the virtual RP2040 caught it as an impedance check that never
ended). The two-source board's B is source 2: its zero code at boot and at every cut.
The rest of both drivers (viper kernels, DMA, PIO timing) runs only on the virtual RP2040."""
import builtins
import importlib
import json
import sys
import time
import types

import pytest

from tesctl import paths


class FakeSM:
    def __init__(self, *a, **kw):
        self.puts = []

    def put(self, word, shift=0):
        self.puts.append(word)

    def active(self, *a):
        return 0

    def restart(self):
        pass

    def exec(self, ins):
        pass


def _fakes(monkeypatch):
    sms = []
    counter = iter(range(12))

    class DMA:
        def __init__(self):
            self.channel = next(counter)

    def state_machine(*a, **kw):
        sm = FakeSM()
        sms.append(sm)
        return sm

    class PIO:
        OUT_LOW = OUT_HIGH = SHIFT_LEFT = JOIN_TX = 0

    rp2 = types.SimpleNamespace(DMA=DMA, StateMachine=state_machine, PIO=PIO, asm_pio=lambda **kw: (lambda f: f))

    class Pin:
        OUT = 1

        def __init__(self, n, mode=None, value=None):
            self.v = value

        def value(self, v=None):
            self.v = v

    class Timer:
        PERIODIC = 1

        def __init__(self, n):
            pass

        def deinit(self):
            pass

    machine = types.SimpleNamespace(Pin=Pin, ADC=lambda c: None, Timer=Timer, mem32={}, WDT=None,
                                    disable_irq=lambda: 0, enable_irq=lambda s: None)
    addr = {}

    def addressof(buf):
        return addr.setdefault(id(buf), 0x20000000 + 0x8000 * len(addr))

    uctypes = types.SimpleNamespace(addressof=addressof, bytearray_at=lambda a, n: bytearray(n))
    mp = types.SimpleNamespace(const=lambda x: x, native=lambda f: f, viper=lambda f: f, asm_thumb=lambda f: f)
    for name, mod in (("rp2", rp2), ("machine", machine), ("uctypes", uctypes), ("micropython", mp)):
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ("uint", "ptr8", "ptr16", "ptr32"):          # viper's annotation names
        monkeypatch.setattr(builtins, name, int, raising=False)
    monkeypatch.setattr(time, "ticks_ms", lambda: 0, raising=False)
    monkeypatch.setattr(time, "sleep_ms", lambda ms: None, raising=False)
    for m in FAKED:
        monkeypatch.delitem(sys.modules, m, raising=False)
    return sms


FAKED = ("hal.rp2", "hal.rp2_multi", "hal.pio_dac", "hal.blocks_fast", "hal.blocks_multi_fast", "hal.check_thumb")


@pytest.fixture
def drivers(monkeypatch, tmp_path):
    sms = _fakes(monkeypatch)
    rp2 = importlib.import_module("hal.rp2")
    multi = importlib.import_module("hal.rp2_multi")
    monkeypatch.setattr(rp2, "STORAGE", str(tmp_path))
    monkeypatch.setattr(rp2, "_wr", lambda addr, value: None)        # (viper on the chip)
    monkeypatch.setattr(rp2, "_flush_tx", lambda reg: None)
    yield rp2, multi, sms
    import hal
    for m in FAKED:             # built on the fakes: no later test may find them
        sys.modules.pop(m, None)
        if hasattr(hal, m[4:]):
            delattr(hal, m[4:])


def board(name):
    return json.loads((paths.BOARDS / (name + ".json")).read_text())


def word(code, channel):
    from hal import mcp4922
    return mcp4922.word(code, channel)


def test_one_source_boot_sets_channel_b_to_the_reference(drivers):
    rp2, _, sms = drivers
    hal = rp2.Rp2Hal(board("pico-mcp4922"))
    assert sms[0].puts == [word(2048, 1), word(2048, 0)]      # B = mid reference, then A = zero
    assert hal._zpat[0] == word(2048, 0) | word(2048, 0) << 16     # one word a sample: A's zero twice
    sms[0].puts.clear()
    hal._cut()
    assert sms[0].puts == [word(2048, 0)]


def test_two_source_boot_and_cut_zero_both_channels(drivers):
    _, multi, sms = drivers
    b = board("pico2-mcp4922")
    b["calibration"] = [dict(b["calibration"]), dict(b["calibration"], zero_code=2050, full_scale_code=3850)]
    hal = multi.Rp2MultiHal(b)
    assert sms[0].puts == [word(2050, 1), word(2048, 0)]      # B = source 2's zero, then A = source 1's
    assert hal._zpat[0] == word(2048, 0) | word(2050, 1) << 16
    assert hal.channels == 2 and hal._nch == 4 and hal._rr == 0b1111
    sms[0].puts.clear()
    hal._cut()
    assert sms[0].puts == [word(2048, 0), word(2050, 1)]
    with pytest.raises(ValueError, match="drives 2 current source"):
        hal.start(5000, 3)
