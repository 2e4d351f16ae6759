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


FAKED = ("hal.rp2", "hal.rp2_multi", "hal.pio_dac", "hal.blocks_fast", "hal.blocks_multi_fast", "hal.check_thumb",
         "hal.split_thumb", "hal.put_thumb", "hal.sine_thumb")


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


def _remembered_addresses(multi, monkeypatch):
    """{address: object} of every uctypes.addressof the driver takes from now on (a stand-in
    kernel reads its frame back through it)."""
    objs = {}
    fake_addressof = multi.uctypes.addressof

    def addressof(buf):
        a = fake_addressof(buf)
        objs[a] = buf
        return a
    monkeypatch.setattr(multi.uctypes, "addressof", addressof)
    return objs


def test_two_source_sense_split_hands_its_kernel_the_arrays_it_was_given(drivers, monkeypatch):
    # Rp2MultiHal.sense_split's glue around hal.split_thumb (the machine code itself is held
    # to get_sense_split on rp2040js, tests/hil/test_split_thumb.py): here a stand-in kernel
    # reads the frame back through the addresses the driver wrote and does get_sense_split
    # with what it finds; the arrays must be the session's, the scaling its sense cfg, the
    # samples the queue's, and the frame bound once a session, again for new arrays.
    from array import array

    from hal import blocks
    from hal import blocks_multi as M
    _, multi, _ = drivers
    hal = multi.Rp2MultiHal(board("pico2-mcp4922"))
    objs = _remembered_addresses(multi, monkeypatch)
    binds = []
    bind = M.split_frame
    monkeypatch.setattr(M, "split_frame", lambda *a: (binds.append(a[4]), bind(*a)))

    def kernel(at, n, k0):
        assert at == hal._frame_at
        fr = hal._frame
        nc = fr[M.SF_NC]
        assert fr[M.SF_HI] == 1 << (fr[M.SF_SI] - 1) and fr[M.SF_HV] == 1 << (fr[M.SF_SV] - 1)
        cfg = array("i", [0] * (M.N_HEAD + M.N_SRC * nc))
        for g, f in ((blocks.G_MID, M.SF_MID), (blocks.G_KI, M.SF_KI), (blocks.G_SI, M.SF_SI),
                     (blocks.G_KV, M.SF_KV), (blocks.G_SV, M.SF_SV), (M.N_C, M.SF_NC), (M.N_NCH, M.SF_NCH),
                     (M.N_MASKA, M.SF_MA), (M.N_MASKS, M.SF_MS)):
            cfg[g] = fr[f]
        rec = [M.SF_LEN + M.SF_REC * e for e in range(nc + 1)]
        for c in range(nc):
            cfg[M.N_HEAD + M.N_SRC * c + M.N_OI] = fr[rec[c] + 4]
            cfg[M.N_HEAD + M.N_SRC * c + M.N_OV] = fr[rec[c] + 5]
        bufs = [[objs[fr[r + t]] for r in rec] for t in range(4)]
        M.get_sense_split(memoryview(objs[fr[M.SF_ADC]]).cast("H"), objs[fr[M.SF_SRING]], *bufs, n, k0, cfg)
        return 0
    monkeypatch.setattr(multi, "_split", kernel)
    m = 7
    monkeypatch.setattr(multi, "_qblock", lambda q, n, b: m)
    for h in range(len(hal._adc) // 2):
        hal._adc[2 * h] = (h * 37) & 0xFF
        hal._adc[2 * h + 1] = (h * 11) & 0x0F
    for j in range(len(hal._set)):
        hal._set[j] = (j * 131) % 4001 - 2000
    hal._q[blocks.Q_KS] = k = 1000

    def arrays():
        return [[array("i", [9] * 20) for _ in range(3)] for _ in range(4)]
    sessions = [arrays(), arrays()]
    for call, got in enumerate((sessions[0], sessions[0], sessions[1])):
        want = arrays()
        assert hal.sense_split(*got, 20, 5) == m
        M.get_sense_split(memoryview(hal._adc).cast("H"), hal._set, *want, m, k, hal._sget)
        assert [[list(a) for a in t] for t in got] == [[list(a) for a in t] for t in want], call
        assert any(got[1][0]) and any(got[2][1])
        k = (k + m) & multi.K_MASK
        assert hal._q[blocks.Q_KS] == k
    # bound at the first call, not at the second (the same arrays), again for the new ones
    assert [id(b) for b in binds] == [id(sessions[0][0]), id(sessions[1][0])]
    hal._q[blocks.Q_UNDER] = 1
    assert hal.sense_split(*sessions[1], 20, 5) == 0              # after an underrun: nothing sensed


def test_two_source_write_blocks_hands_its_kernel_the_block_it_was_given(drivers, monkeypatch):
    # Rp2MultiHal.write_blocks' glue around hal.put_thumb (the machine code is held to
    # put_words_multi on rp2040js, tests/hil/test_put_thumb.py): a stand-in kernel reads the
    # frame back through the addresses the driver wrote; the block must be the one given,
    # the conversion each source's, the samples the queue's, the frame bound again for a new
    # block or stride.
    from array import array

    from hal import blocks
    from hal import blocks_multi as M
    _, multi, _ = drivers
    b = board("pico2-mcp4922")
    b["calibration"] = [dict(b["calibration"]), dict(b["calibration"], zero_code=2050, full_scale_code=3850)]
    hal = multi.Rp2MultiHal(b)
    objs = _remembered_addresses(multi, monkeypatch)
    binds = []
    bind = M.put_frame
    monkeypatch.setattr(M, "put_frame", lambda *a: (binds.append((objs[a[4]], a[5])), bind(*a)))

    def kernel(at, n, k0):
        assert at == hal._pframe_at
        fr = hal._pframe
        nc = fr[M.PF_NC]
        cfg = array("i", [0] * (M.M_HEAD + M.M_SRC * nc))
        cfg[M.M_C], cfg[M.M_MASKW], cfg[M.M_MASKS] = nc, fr[M.PF_MW], fr[M.PF_MS]
        for c in range(nc):
            r = M.PF_LEN + M.PF_REC * c
            o = M.M_HEAD + M.M_SRC * c
            z, sc, su, half, hw, top, base, lim = fr[r:r + 8]
            assert half == su >> 1 and lim == hw * sc
            cfg[o + blocks.P_Z], cfg[o + blocks.P_SC], cfg[o + blocks.P_SU] = z, sc, su
            cfg[o + blocks.P_HW], cfg[o + blocks.P_TOP], cfg[o + blocks.P_BASE] = hw, top, base
        assert fr[M.PF_CS] % 4 == 0
        M.put_words_multi(memoryview(objs[fr[M.PF_RING]]).cast("H"), objs[fr[M.PF_SRING]], objs[fr[M.PF_BUF]],
                          n, k0, cfg, fr[M.PF_CS] // 4, 1)
        return 0
    monkeypatch.setattr(multi, "_put", kernel)
    monkeypatch.setattr(multi, "_qroom", lambda q, d, s: None)
    monkeypatch.setattr(multi, "_M32", {hal._r_d: 0, hal._r_s: 0})
    hal._q[blocks.Q_KW] = k = multi.K_MASK - 3          # the counter wraps within the block
    flats = [array("i", [(j * 613) % 9001 - 4500 for j in range(2 * 64)]) for _ in range(2)]
    n = 9
    for flat, stride in ((flats[0], 64), (flats[0], 64), (flats[0], 50), (flats[1], 64)):
        want_out, want_set = array("H", memoryview(hal._out).cast("H")), array("i", hal._set)
        M.put_words_multi(want_out, want_set, flat, n, k, hal._put2, stride, 1)
        hal.write_blocks(flat, n, stride)
        assert list(memoryview(hal._out).cast("H")) == list(want_out) and list(hal._set) == list(want_set)
        k = (k + n) & multi.K_MASK
        assert hal._q[blocks.Q_KW] == k
    assert any(v & 0x8000 for v in memoryview(hal._out).cast("H"))     # channel B's words (source 2)
    assert [(id(f), s) for f, s in binds] == [(id(flats[0]), 64), (id(flats[0]), 50), (id(flats[1]), 64)]
