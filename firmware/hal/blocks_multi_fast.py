"""Viper twin of hal.blocks_multi (put_words_multi, get_sense_multi): the same arithmetic,
statement for statement, on machine words; bit-exact to the plain code
(tests/firmware/test_blocks_multi.py). Signed words are read as (w ^ 2**31) - 2**31, as in
hal.blocks_fast. Imported only where the viper emitter exists, and only by a driver of a
board with several sources (never at boot)."""
import micropython
from micropython import const

# hal.blocks' P_* and G_* and hal.blocks_multi's M_* and N_* (a viper body needs literals)
_P_Z = const(0)
_P_SC = const(1)
_P_SU = const(2)
_P_HW = const(3)
_P_TOP = const(4)
_P_BASE = const(5)
_M_C = const(0)
_M_MASKW = const(1)
_M_MASKS = const(2)
_M_HEAD = const(3)
_M_SRC = const(6)
_G_MID = const(0)
_G_KI = const(1)
_G_SI = const(2)
_G_KV = const(3)
_G_SV = const(4)
_N_C = const(5)
_N_NCH = const(6)
_N_MASKA = const(7)
_N_MASKS = const(8)
_N_HEAD = const(9)
_N_CI = const(0)
_N_CV = const(1)
_N_LI = const(2)
_N_LV = const(3)
_N_SRC = const(4)


@micropython.viper
def put_words_multi(ring_obj, sring_obj, buf_obj, n: int, k0: int, cfg_obj):
    ring = ptr16(ring_obj)
    sring = ptr32(sring_obj)
    buf = ptr32(buf_obj)
    cfg = ptr32(cfg_obj)
    sg = int(1) << 31
    nc = int(cfg[_M_C])
    mw = int(cfg[_M_MASKW])
    ms = int(cfg[_M_MASKS])
    c = 0
    while c < nc:
        o = _M_HEAD + _M_SRC * c
        z = int(cfg[o + _P_Z])
        sc = int(cfg[o + _P_SC])
        su = int(cfg[o + _P_SU])
        half = su >> 1
        hw = int(cfg[o + _P_HW])
        top = int(cfg[o + _P_TOP])
        base = int(cfg[o + _P_BASE])
        lim = hw * sc
        i = c
        x = k0 * nc + c
        end = n * nc
        while i < end:
            s = (buf[i] ^ sg) - sg
            sring[x & ms] = s
            if s > hw:
                s = hw
            elif s < 0 - hw:
                s = 0 - hw
            p = s * sc
            if p >= 0:
                code = z + (p + half) // su
            else:
                code = z - ((half - p) // su)
            if code > top:
                code = top
            elif code < 0:
                code = 0
            if (code - z) * su > lim:
                code -= 1
            elif (z - code) * su > lim:
                code += 1
            ring[x & mw] = base | code
            i += nc
            x += nc
        c += 1


@micropython.viper
def get_sense_multi(adc_obj, sring_obj, sb_obj, ib_obj, vb_obj, db_obj, n: int, k0: int, cfg_obj):
    adc = ptr16(adc_obj)
    sring = ptr32(sring_obj)
    sb = ptr32(sb_obj)
    ib = ptr32(ib_obj)
    vb = ptr32(vb_obj)
    db = ptr32(db_obj)
    cfg = ptr32(cfg_obj)
    mid = int(cfg[_G_MID])
    ki = int(cfg[_G_KI])
    si = int(cfg[_G_SI])
    hi = int(1) << (si - 1)
    kv = int(cfg[_G_KV])
    sv = int(cfg[_G_SV])
    hv = int(1) << (sv - 1)
    nc = int(cfg[_N_C])
    nch = int(cfg[_N_NCH])
    ma = int(cfg[_N_MASKA])
    ms = int(cfg[_N_MASKS])
    c = 0
    while c < nc:
        o = _N_HEAD + _N_SRC * c
        ci = int(cfg[o + _N_CI]) + nch * int(cfg[o + _N_LI])
        cv = int(cfg[o + _N_CV]) + nch * int(cfg[o + _N_LV])
        i = c
        x = k0 * nc + c
        a = nch * k0
        end = n * nc
        while i < end:
            s = sring[x & ms]
            sb[i] = s
            db[i] = s
            ib[i] = ((int(adc[(a + ci) & ma]) - mid) * ki + hi) >> si
            vb[i] = ((int(adc[(a + cv) & ma]) - mid) * kv + hv) >> sv
            i += nc
            x += nc
            a += nch
        c += 1
