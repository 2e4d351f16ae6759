"""A multi-electrode session's TELEM rows (tes.multi.telem_rows and its viper twin
tes.multi_fast.telem_rows) and their frame (tes.link.Encoder.telem with ext):

- the rows are, byte for byte, what the tick built before them: each electrode's
  Supervisor.window() means, its period() figures, the return as minus the driven sums,
  struct-packed in montage order (TELEM_EL_FMT); the main figures (total set and measured,
  the voltage and v RMS of the driven electrode of largest |mean v|) too; every window read
  is cleared as window() clears it, an empty one is left alone; nothing is allocated;
- the plain kernel and the viper twin agree (where viper exists: the unix port);
- a TELEM frame with the extension written in place is the general encoder's frame of the
  same payload, also past COBS's 254-byte blocks (nine electrodes).

Plain asserts: runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port
(tools/wasm/mptest32.mjs) and CPython (pytest)."""
import struct
import sys
from array import array

from tes import link as L
from tes import multi
from tes import supervisor as S

from test_engine_multi import _Lcg

if sys.implementation.name == "micropython":
    import micropython
else:
    micropython = None

KITS = [multi]
try:
    from tes import multi_fast
    if multi_fast.AVAILABLE:
        KITS.append(multi_fast)
except (ImportError, SyntaxError):      # CPython, a port without viper
    pass

LIMITS = {"max_current_uA": 4000, "max_charge_uC": 10 ** 6, "max_stim_ms": 10 ** 8}


def supervisors(C, rng, tie=False):
    """C driven electrodes' and the return's supervisors in a random telemetry window (sums
    of up to 1000 samples of a few mA and tens of volts, some windows empty). tie: the
    second electrode's window is minus the first's (anti-phase sites: equal |mean v|, the
    first stays the top one)."""
    sups = [S.Supervisor(LIMITS, {"impedance_max_ohm": 20000}, 5000) for _ in range(C + 1)]
    for k, sp in enumerate(sups):
        st = sp.st
        n = 0 if (k < C and rng(0, 4) == 0) else rng(1, 1000)
        st[S.W_N] = n
        if n:
            st[S.W_SET] = rng(-4000, 4000) * n + rng(-999, 999)
            st[S.W_I] = rng(-4000, 4000) * n + rng(-999, 999)
            st[S.W_V] = rng(-30000, 30000) * n + rng(-999, 999)
            st[S.W_SPK] = rng(0, 4000)
            st[S.W_IPK] = rng(0, 4000)
            st[S.W_VPK] = rng(0, 30000)
    if tie and C >= 2:
        for k in range(S.W_N, S.W_END):
            sups[1].st[k] = sups[0].st[k] if k == S.W_N or k >= S.W_SPK else -sups[0].st[k]
        sups[0].st[S.W_N] = sups[1].st[S.W_N] = 500
    return sups


def figures(C, rng):
    """prow (tes.multi.TR_LEN a electrode): z (-1 unknown), set, meas and v RMS, meas peak."""
    prow = array("i", [0] * (multi.TR_LEN * (C + 1)))
    for c in range(C + 1):
        o = multi.TR_LEN * c
        prow[o] = -1 if rng(0, 2) == 0 else rng(0, 300000)
        for k in range(1, multi.TR_LEN):
            prow[o + k] = rng(0, 30000)
    return prow


def reference(sups, order, prow, C):
    """The rows as the tick built them before telem_rows: window() tuples, period() figures
    (here prow), the return minus the sums, struct-packed in montage order; and the main
    figures (total set, total measured, the top voltage, its v RMS)."""
    rows = []
    tset = tmeas = 0
    top = None
    for c in range(C):
        w = sups[c].window() or (0, 0, 0, 0, 0, 0, 0)
        o = multi.TR_LEN * c
        z = prow[o] if prow[o] >= 0 else None
        row = (w[1], w[3], w[5], z, prow[o + 1], prow[o + 2], prow[o + 3])
        tset += w[1]
        tmeas += w[3]
        if top is None or abs(w[5]) > abs(top[2]):
            top = row
        rows.append(row)
    sups[C].window()
    o = multi.TR_LEN * C
    rows.append((-tset, -tmeas, 0, None, prow[o + 1], prow[o + 2], 0))
    out = bytearray([C + 1])
    for k in order:
        r = rows[k]
        out += struct.pack(L.TELEM_EL_FMT, r[0], r[1], r[2], -1 if r[3] is None else r[3], r[4], r[5], r[6])
    return bytes(out), (tset, tmeas, top[2], top[6])


def test_the_window_layout_is_the_one_the_kernels_name():
    # tes.multi and its viper twin read the window at these literals (a viper body needs them)
    assert (S.W_N, S.W_SET, S.W_I, S.W_V, S.W_END) == (31, 32, 33, 34, 38)


def test_telem_rows_are_the_window_and_period_rows_of_before():
    rng = _Lcg(5)
    for C in (1, 2, 3, 8):
        for trial in range(6):
            seed = rng(0, 1 << 20)
            order = list(range(C + 1))
            for k in range(C, 0, -1):        # a montage order: a random permutation
                j = rng(0, k)
                order[k], order[j] = order[j], order[k]
            want = None
            for mk in KITS:
                r = _Lcg(seed)
                sups = supervisors(C, r, trial < 2)
                prow = figures(C, r)
                ref_sups = supervisors(C, _Lcg(seed), trial < 2)
                ref, main = reference(ref_sups, order, prow, C)
                buf = bytearray(L.EXT_AT + 1 + L.TELEM_EL_MAX * L.TELEM_EL_SIZE + 8)
                fig = array("i", [0] * (4 + 3 * (C + 1) + 7))
                sts = [sp.st for sp in sups]
                torder = array("i", order)
                if micropython is not None:
                    micropython.heap_lock()
                try:
                    n = mk.telem_rows(buf, L.EXT_AT, sts, torder, prow, fig, C)
                finally:
                    if micropython is not None:
                        micropython.heap_unlock()
                assert n == 1 + (C + 1) * L.TELEM_EL_SIZE, (C, n)
                assert bytes(buf[L.EXT_AT:L.EXT_AT + n]) == ref, (mk, C, trial)
                assert tuple(fig[:4]) == main, (mk, C, trial, list(fig[:4]), main)
                assert bytes(buf[:L.EXT_AT]) == bytes(L.EXT_AT), "wrote before its offset"
                assert not any(buf[L.EXT_AT + n:]), "wrote past its rows"
                # the windows: cleared as window() clears them (an empty one untouched)
                for c in range(C + 1):
                    assert list(sups[c].st) == list(ref_sups[c].st), (mk, C, c)
                rows = L.unpack_telem_electrodes(bytes(L.TELEM_SIZE) + bytes(buf[L.EXT_AT:L.EXT_AT + n]))
                assert sum(x[0] for x in rows) == 0 and sum(x[1] for x in rows) == 0
                if want is None:
                    want = bytes(buf)
                assert bytes(buf) == want, (mk, C, trial)      # the twins agree


def test_a_frame_with_its_extension_in_place_is_the_general_frame():
    rng = _Lcg(9)
    for E in (2, 3, 9):             # 9 electrodes: 305 bytes, past one COBS block
        enc = L.Encoder()
        for seq in (0, 1, 0x1234):
            ext = bytes([E]) + bytes(rng(0, 255) if k % 5 else 0 for k in range(E * L.TELEM_EL_SIZE))
            enc.raw[L.EXT_AT:L.EXT_AT + len(ext)] = ext
            fields = (seq, 123456, L.PLATEAU, -1500, 1490, 2500, None, 77, 0x21, 1060, 1050, 1500, 1770, None)
            frame = bytes(enc.telem(*fields, ext=len(ext)))
            payload = bytearray(L.TELEM_SIZE)
            L.pack_telem(payload, *fields[1:])
            assert frame == L.encode(L.TELEM, seq, bytes(payload) + ext), (E, seq)
            assert L.decode(frame) == (L.TELEM, seq, bytes(payload) + ext)
        # and the frame without one, after them, is the plain TELEM again
        plain = bytes(enc.telem(7, 1, L.PLATEAU, 1, 2, 3, 4, 5, 6))
        payload = bytearray(L.TELEM_SIZE)
        L.pack_telem(payload, 1, L.PLATEAU, 1, 2, 3, 4, 5, 6)
        assert plain == L.encode(L.TELEM, 7, bytes(payload)) and len(plain) == L.TELEM_FRAME
