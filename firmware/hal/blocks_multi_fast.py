"""Viper twin of hal.blocks_multi (put_words_multi, get_sense_multi, trip_scan_multi): the same arithmetic,
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
_N_OI = const(0)
_N_OV = const(1)
_N_SRC = const(2)


@micropython.viper
def put_words_multi(ring_obj, sring_obj, buf_obj, n: int, k0: int, cfg_obj, cs: int, st: int):
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
        i = c * cs
        x = k0 * nc + c
        end = i + n * st
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
            i += st
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
        ci = int(cfg[o + _N_OI])
        cv = int(cfg[o + _N_OV])
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


# hal.blocks' K_*, Q_* and TRIP_* (and hal.blocks_multi's Q_TSRC)
_K_MASK = const(0x3FFFFF)
_K_HALF = const(0x200000)
_Q_RUN = const(0)
_Q_MASKA = const(14)
_Q_NCH = const(15)
_Q_AWRAP = const(16)
_Q_LAT = const(12)
_Q_TRIP = const(17)
_Q_TALAST = const(18)
_Q_TAPOS = const(19)
_Q_TK = const(20)
_Q_TCAP = const(21)
_Q_TILO = const(24)
_Q_TIHI = const(25)
_Q_TVLO = const(26)
_Q_TVHI = const(27)
_Q_TSRC = const(33)
_Q_THOLDS = const(34)
_Q_TSLO = const(28)
_Q_TSHI = const(29)
_Q_THOLDN = const(30)
_TRIP_OPEN = const(1)
_TRIP_OVER = const(3)
_TRIP_COMP = const(7)
_TRIP_SHORT = const(2)
_TRIP_SHORT_uA = const(1000)
_TRIP_SHORT_RUN = const(2)

# What the scan reads, as addresses (q, the ADC ring, the sense cfg, the DMA write-address
# register): one global and no buffer-protocol lookup per scan instead of four of each,
# 1,000 scans a second; _t_keep holds the objects for the addresses' sake.
_t_at = _t_keep = _t_cut = None


def trip_bind_multi(adc, q, cfg, reg, cut):
    global _t_at, _t_keep, _t_cut
    import uctypes
    _t_keep = (adc, q, cfg, reg)
    _t_at = (uctypes.addressof(q), uctypes.addressof(adc), uctypes.addressof(cfg), uctypes.addressof(reg))
    _t_cut = cut


@micropython.viper
def trip_scan_multi(_timer) -> int:
    t = _t_at
    q = ptr32(int(t[0]))
    if q[_Q_RUN] == 0:
        return 0
    adc = ptr16(int(t[1]))
    cfg = ptr32(int(t[2]))
    a_addr = int(ptr32(int(t[3]))[0])
    step = (a_addr - int(q[_Q_TALAST])) & int(q[_Q_MASKA])
    q[_Q_TALAST] = a_addr
    p = int(q[_Q_TAPOS]) + (step >> 1)
    if p >= int(q[_Q_AWRAP]):
        p -= int(q[_Q_AWRAP])
    q[_Q_TAPOS] = p
    nch = int(q[_Q_NCH])
    k = int(q[_Q_TK])
    n = ((p // nch - int(q[_Q_LAT]) - 1 - k + _K_HALF) & _K_MASK) - _K_HALF
    if n <= 0:
        return 0
    sg = int(1) << 31
    cap = int(q[_Q_TCAP])
    last = _N_HEAD + _N_SRC * int(cfg[_N_C])
    if n > cap:
        k = (k + n - cap) & _K_MASK
        n = cap
        h = _Q_THOLDS + 2 * int(cfg[_N_C])
        while h > _Q_THOLDS:
            h -= 1
            q[h] = 0
    q[_Q_TK] = (k + n) & _K_MASK
    holdn = int(q[_Q_THOLDN])
    slo = (int(q[_Q_TSLO]) ^ sg) - sg
    shi = (int(q[_Q_TSHI]) ^ sg) - sg
    ilo = (int(q[_Q_TILO]) ^ sg) - sg
    ihi = (int(q[_Q_TIHI]) ^ sg) - sg
    vlo = (int(q[_Q_TVLO]) ^ sg) - sg
    vhi = (int(q[_Q_TVHI]) ^ sg) - sg
    mid = int(cfg[_G_MID])
    ki = int(cfg[_G_KI])
    si = int(cfg[_G_SI])
    hi = int(1) << (si - 1)
    kv = int(cfg[_G_KV])
    sv = int(cfg[_G_SV])
    hv = int(1) << (sv - 1)
    ma = int(cfg[_N_MASKA])
    a = nch * k
    end = a + nch * n
    code = 0
    o = _N_HEAD
    while a < end:
        o = _N_HEAD
        while o < last:
            x = a + int(cfg[o + _N_OI])
            c = int(adc[x & ma])
            if c < ilo or c > ihi:
                code = _TRIP_OVER
                break
            w = int(adc[(a + int(cfg[o + _N_OV])) & ma])
            if w < vlo or w > vhi:
                v = ((w - mid) * kv + hv) >> sv
                if v < 0:
                    v = 0 - v
                i = ((c - mid) * ki + hi) >> si
                if i < 0:
                    i = 0 - i
                j = ((int(adc[(x + nch) & ma]) - mid) * ki + hi) >> si
                if j < 0:
                    j = 0 - j
                if j < i:
                    i = j
                if v > 1000 * i:
                    code = _TRIP_OPEN
                else:
                    code = _TRIP_COMP
                break
            h = _Q_THOLDS + o - _N_HEAD
            hold = (int(q[h]) ^ sg) - sg
            if c > shi:
                if hold < 0:
                    hold = 0
                if hold < holdn:
                    hold += 1
            elif c < slo:
                if hold > 0:
                    hold = 0
                if hold > 0 - holdn:
                    hold -= 1
            else:
                hold = 0
            q[h] = hold
            if (hold >= holdn or 0 - hold >= holdn) and holdn > 0:
                i = ((c - mid) * ki + hi) >> si
                if i < 0:
                    i = 0 - i
                v = ((w - mid) * kv + hv) >> sv
                if v < 0:
                    v = 0 - v
                if i >= _TRIP_SHORT_uA and v * 10 < i:
                    q[h + 1] = int(q[h + 1]) + 1
                    if int(q[h + 1]) >= _TRIP_SHORT_RUN:
                        code = _TRIP_SHORT
                        break
                else:
                    q[h + 1] = 0
            else:
                q[h + 1] = 0
            o += _N_SRC
        if code:
            break
        a += nch
    if code:
        q[_Q_TRIP] = code
        q[_Q_TSRC] = (o - _N_HEAD) // _N_SRC
        _t_cut()
    return code
