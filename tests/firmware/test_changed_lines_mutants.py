"""Lines changed since a0f25bb where their mutation run (tools/mutate.py --lines) found the
module's guard silent:
- tes.supervisor.use_samples hands a driver's per-sample kernel (hal.base's optional
  check_samples, a board's Thumb code) to the viper check_run, and None gives the viper
  loop back. Without viper (CPython, the WebAssembly port) use_samples does nothing and
  check_run is the plain code: nothing to hand over.
- tes.engine: a driver's sine plateau kernel (Engine.use_sine_flat, hal.base's optional
  sine_flat: osc_sine then env_flat in one call) gives the engine's samples and runs for
  the sine plateau's samples only, its frame holding the table's address where the port
  has one; fill_driven is fill_all's driven samples, the return's array untouched, and
  fill_all itself for a two-electrode protocol. (tests/firmware/test_engine_multi.py holds
  the same over random montages; it is not in the engine's guard.)
- tes.link.Encoder.telem with a multi-electrode extension, on an encoder that has sent
  longer frames before (an EVENT, a longer extension): still the general encoder's frame,
  ending in its 0x00 delimiter.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
from array import array

from tes import engine as E
from tes import kernels as K
from tes import link as L
from tes import supervisor as S
from tes.tables import SINE

from engine_cases import proto, seg

from test_check_samples import F, Kernel, layout
from test_multicontrol import cur, mproto


def sup(lockin):
    lim = {"max_current_uA": 4000, "max_charge_uC": 7200000, "max_stim_ms": 2400000}
    return S.Supervisor(lim, {"impedance_max_ohm": 20000}, 5000, lockin=lockin)


def test_use_samples_hands_a_drivers_kernel_to_check_run_and_none_takes_it_back():
    cap = 16
    flat, (sb, ib, vb, db) = layout(cap)
    for j in range(cap):
        sb[j], ib[j], vb[j], db[j] = 1000, 1000 + j % 3, 2000 + j % 5, 1000     # no fault
    kern = Kernel(cap)
    plain = sup(False)
    fast = sup(False)
    S.use_samples(kern)
    try:
        a = S.check_run(plain.st, sb, ib, vb, db, cap, 0, 0, 5)
        c = fast.kernel_run(fast.st, sb, ib, vb, db, cap, 0, 0, 5)
    finally:
        S.use_samples(None)
    assert a == c == cap << 5, (a, c)
    assert [plain.st[k] for k in range(S.X_STRIDE)] == [fast.st[k] for k in range(S.X_STRIDE)]
    if F is None:
        assert kern.calls == 0          # no viper: the plain loop, whatever was handed over
        return
    assert kern.calls == 4, kern.calls  # 16 samples in blocks of 5: the driver's kernel did each
    fast.kernel_run(fast.st, sb, ib, vb, db, cap, 0, 0, 5)
    assert kern.calls == 4              # use_samples(None): the viper loop again


def test_an_extended_telem_after_longer_frames_is_the_general_frame():
    # The encoder's output buffer is reused: a frame shorter than the one before must
    # still end in its own delimiter (a stale byte there would join it to the next frame).
    enc = L.Encoder()
    long_event = bytes(range(1, 256)) * 3                      # no zero byte: COBS leaves none
    assert L.decode(bytes(enc.frame(L.EVENT, 5, long_event))) == (L.EVENT, 5, long_event)
    seq = 0
    for rows in (9, 2, 9, 3):                                   # longer, then shorter extensions
        ext = bytes([rows]) + bytes((k * 37 + rows) % 255 + 1 for k in range(rows * L.TELEM_EL_SIZE))
        enc.raw[L.EXT_AT:L.EXT_AT + len(ext)] = ext
        fields = (seq, 1000 + seq, L.PLATEAU, -1500, 1490, 2500, None, 77, 0x21, 1060, 1050, 1500, 1770, None)
        frame = bytes(enc.telem(*fields, ext=len(ext)))
        payload = bytearray(L.TELEM_SIZE)
        L.pack_telem(payload, *fields[1:])
        assert frame == L.encode(L.TELEM, seq, bytes(payload) + ext), (rows, seq)
        assert frame[-1] == 0 and 0 not in frame[:-1]
        assert L.decode(frame) == (L.TELEM, seq, bytes(payload) + ext)
        seq += 1


def engine_samples(p, sine_flat=None, reset=False):
    """Every sample of p by fill, in blocks of varying length (across the phases'
    boundaries); reset: the kernel given, then None again."""
    eng = E.Engine(p)
    eng.use_sine_flat(sine_flat)
    if reset:
        eng.use_sine_flat(None)
    out = array("i", [0] * 64)
    got = []
    n = 7
    while True:
        k = eng.fill(out, n)
        if not k:
            return got
        got.extend(out[:k])
        n = n % 61 + 3


def test_a_drivers_sine_plateau_kernel_gives_the_engines_samples_on_sine_plateaus_only():
    try:
        import uctypes
        table_at = uctypes.addressof(SINE) & 0xFFFFFFFF
    except ImportError:
        table_at = None             # CPython: the stand-in reads the table itself
    calls = []

    def sine_flat(out, st, f, n):
        assert table_at is None or f[0] & 0xFFFFFFFF == table_at
        calls.append(n)
        K.osc_sine(out, f[3], n, st, SINE)
        K.env_flat(out, f[3], n, f[1], f[2])
        return 0
    fs = 5000
    p = proto([seg(waveform="sine", amplitude_uA=1200, offset_uA=-300, frequency_mHz=10300, phase_deg=33,
                   ramp_up_ms=100, duration_ms=300, ramp_down_ms=100),
               seg(waveform="pulse", amplitude_uA=900, frequency_mHz=40000, pulse_width_us=3000,
                   ramp_up_ms=50, duration_ms=200, ramp_down_ms=50),
               seg(amplitude_uA=700, ramp_up_ms=50, duration_ms=100, ramp_down_ms=50),
               seg(waveform="sine", amplitude_uA=800, frequency_mHz=6000, ramp_shape="cosine",
                   ramp_up_ms=60, duration_ms=200, ramp_down_ms=60)], fs=fs)
    want = engine_samples(p)
    got = engine_samples(p, sine_flat)
    assert len(got) == len(want) == E.Engine(p).total
    assert got == want, [k for k in range(len(want)) if got[k] != want[k]][:5]
    assert sum(calls) == (300 + 200) * fs // 1000, sum(calls)      # the two sine plateaus, no more
    del calls[:]
    assert engine_samples(p, sine_flat, reset=True) == want and calls == []     # None: the two kernels


def test_fill_driven_is_fill_alls_driven_samples_and_leaves_the_return_alone():
    p = mproto([cur("F4", 1000, "sine", 6000), cur("P4", -700, "sine", 6000, 180), cur("T8", 300)])
    a = E.Engine(p)
    b = E.Engine(p)
    C = a.channels
    assert C == 3
    outs_a = [array("i", [0] * 64) for _ in range(C + 1)]
    outs_b = [array("i", [0] * 64) for _ in range(C + 1)]
    for j in range(64):
        outs_b[C][j] = 12345
    n = 5
    total = 0
    while True:
        k = a.fill_all(outs_a, n)
        assert b.fill_driven(outs_b, n) == k
        if not k:
            break
        for c in range(C):
            assert list(outs_b[c][:k]) == list(outs_a[c][:k]), (total, c)
        assert all(x == 12345 for x in outs_b[C]), total      # no DAC drives the return: not computed
        total += k
        n = n % 61 + 3
    assert total == a.total
    # a two-electrode protocol: fill_all itself (the anode's samples and their negation)
    p2 = proto([seg(waveform="sine", amplitude_uA=1500, frequency_mHz=10300, ramp_up_ms=50, duration_ms=100,
                    ramp_down_ms=50)], fs=2000)
    a = E.Engine(p2)
    b = E.Engine(p2)
    outs_a = [array("i", [0] * 64) for _ in range(2)]
    outs_b = [array("i", [0] * 64) for _ in range(2)]
    total = 0
    while True:
        k = a.fill_all(outs_a, 64)
        assert b.fill_driven(outs_b, 64) == k
        if not k:
            break
        assert list(outs_b[0][:k]) == list(outs_a[0][:k]) and list(outs_b[1][:k]) == list(outs_a[1][:k])
        total += k
    assert total == a.total > 0
