"""Viper twin of hal.blocks (put_words, get_sense, queue_room, queue_block, trip_scan): the same
arithmetic, statement for statement, on machine words; bit-exact to the plain code (tests/firmware/test_blocks.py).
Signed words are read as (w ^ 2**31) - 2**31 (ptr32 zero-extends on a 64-bit build; the
identity on a 32-bit board). Imported only where the viper emitter exists."""
import micropython
from micropython import const

_P_Z = const(0)
_P_SC = const(1)
_P_SU = const(2)
_P_HW = const(3)
_P_TOP = const(4)
_P_BASE = const(5)
_P_W = const(6)
_P_MASKW = const(7)
_P_MASKS = const(8)
_P_WORDB = const(9)
_G_MID = const(0)
_G_KI = const(1)
_G_SI = const(2)
_G_KV = const(3)
_G_SV = const(4)
_G_KD = const(5)
_G_SD = const(6)
_G_CI = const(7)
_G_CV = const(8)
_G_CD = const(9)
_G_LI = const(10)
_G_LV = const(11)
_G_LD = const(12)
_G_MASKA = const(13)
_G_Z = const(14)
_G_SU = const(15)
_G_SC = const(16)
_G_NCH = const(17)
_G_MASKS = const(18)


@micropython.viper
def put_words(ring_obj, sring_obj, buf_obj, n: int, k0: int, cfg_obj):
    ring = ptr16(ring_obj)
    sring = ptr32(sring_obj)
    buf = ptr32(buf_obj)
    cfg = ptr32(cfg_obj)
    sg = int(1) << 31
    z = int(cfg[_P_Z])
    sc = int(cfg[_P_SC])
    su = int(cfg[_P_SU])
    half = su >> 1
    hw = int(cfg[_P_HW])
    top = int(cfg[_P_TOP])
    base = int(cfg[_P_BASE])
    w = int(cfg[_P_W])
    mw = int(cfg[_P_MASKW])
    ms = int(cfg[_P_MASKS])
    wb = int(cfg[_P_WORDB])
    lim = hw * sc
    j = 0
    while j < n:
        k = k0 + j
        s = (buf[j] ^ sg) - sg
        sring[k & ms] = s
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
        i = (k * w) & mw
        ring[i] = base | code
        if w == 2:
            ring[(i + 1) & mw] = wb
        j += 1


@micropython.viper
def get_sense(adc_obj, sring_obj, sb_obj, ib_obj, vb_obj, db_obj, n: int, k0: int, cfg_obj):
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
    kd = int(cfg[_G_KD])
    sd = int(cfg[_G_SD])
    hd = int(1) << (sd - 1)
    nch = int(cfg[_G_NCH])
    ci = int(cfg[_G_CI]) + nch * int(cfg[_G_LI])
    cv = int(cfg[_G_CV]) + nch * int(cfg[_G_LV])
    cd = int(cfg[_G_CD]) + nch * int(cfg[_G_LD])
    ma = int(cfg[_G_MASKA])
    ms = int(cfg[_G_MASKS])
    z = int(cfg[_G_Z])
    su = int(cfg[_G_SU])
    sc = int(cfg[_G_SC])
    j = 0
    while j < n:
        k = k0 + j
        sb[j] = sring[k & ms]
        a = nch * k
        ib[j] = ((int(adc[(a + ci) & ma]) - mid) * ki + hi) >> si
        vb[j] = ((int(adc[(a + cv) & ma]) - mid) * kv + hv) >> sv
        code = (int(adc[(a + cd) & ma]) * kd + hd) >> sd
        p = (code - z) * su
        if p >= 0:
            db[j] = p // sc
        else:
            db[j] = 0 - ((0 - p) // sc)
        j += 1


_K_MASK = const(0x3FFFFF)
_K_HALF = const(0x200000)
_Q_RUN = const(0)
_Q_DLAST = const(1)
_Q_DPOS = const(2)
_Q_ALAST = const(3)
_Q_APOS = const(4)
_Q_KW = const(5)
_Q_KS = const(6)
_Q_LEAD = const(7)
_Q_CHUNK = const(8)
_Q_UNDER = const(9)
_Q_DRAIN = const(10)
_Q_W = const(11)
_Q_LAT = const(12)
_Q_MASKO = const(13)
_Q_MASKA = const(14)
_Q_NCH = const(15)
_Q_AWRAP = const(16)
_Q_TRIP = const(17)
_Q_TALAST = const(18)
_Q_TAPOS = const(19)
_Q_TK = const(20)
_Q_TCAP = const(21)
_Q_TIOVER = const(22)
_Q_TVCOMP = const(23)
_Q_TILO = const(24)
_Q_TIHI = const(25)
_Q_TVLO = const(26)
_Q_TVHI = const(27)
_TRIP_OPEN = const(1)
_TRIP_OVER = const(3)
_TRIP_COMP = const(7)
_Q_TSLO = const(28)
_Q_TSHI = const(29)
_Q_THOLDN = const(30)
_Q_THOLD = const(31)
_Q_TSRUN = const(32)
_TRIP_SHORT = const(2)
_TRIP_SHORT_uA = const(1000)
_TRIP_SHORT_RUN = const(2)


@micropython.viper
def queue_room(q_obj, d_addr: int, a_addr: int) -> int:
    q = ptr32(q_obj)
    if q[_Q_RUN] == 0:
        t = int(q[_Q_TRIP])
        if t:
            return -1 - t
        return 0
    step = (d_addr - int(q[_Q_DLAST])) & int(q[_Q_MASKO])
    q[_Q_DLAST] = d_addr
    w = int(q[_Q_W])
    dpos = (int(q[_Q_DPOS]) + (step >> 1)) & (w * (_K_MASK + 1) - 1)
    q[_Q_DPOS] = dpos
    step = (a_addr - int(q[_Q_ALAST])) & int(q[_Q_MASKA])
    q[_Q_ALAST] = a_addr
    p = int(q[_Q_APOS]) + (step >> 1)
    if p >= int(q[_Q_AWRAP]):
        p -= int(q[_Q_AWRAP])
    q[_Q_APOS] = p
    consumed = dpos >> (w - 1)
    late = ((consumed - int(q[_Q_KW]) + _K_HALF) & _K_MASK) - _K_HALF
    if late > 0:
        if q[_Q_DRAIN]:
            return 0
        q[_Q_UNDER] = int(q[_Q_UNDER]) + late
        q[_Q_KW] = consumed
    if q[_Q_UNDER]:
        return -1
    r = ((consumed + int(q[_Q_LEAD]) - int(q[_Q_KW]) + _K_HALF) & _K_MASK) - _K_HALF
    if r >= int(q[_Q_CHUNK]):
        return r
    return 0


@micropython.viper
def queue_block(q_obj, n: int, b: int) -> int:
    q = ptr32(q_obj)
    ks = int(q[_Q_KS])
    ready = ((int(q[_Q_APOS]) // int(q[_Q_NCH]) - int(q[_Q_LAT]) - ks + _K_HALF) & _K_MASK) - _K_HALF
    want = ((int(q[_Q_KW]) - ks + _K_HALF) & _K_MASK) - _K_HALF
    if want <= 0:
        return 0
    if want <= n and ready >= want:
        return want
    m = ready
    if m > want:
        m = want
    if m > n:
        m = n
    if m < b:
        return 0
    return (m // b) * b


_t_adc = _t_q = _t_cfg = _t_reg = _t_cut = None


def trip_bind(adc, q, cfg, reg, cut):
    global _t_adc, _t_q, _t_cfg, _t_reg, _t_cut
    _t_adc = adc
    _t_q = q
    _t_cfg = cfg
    _t_reg = reg
    _t_cut = cut


@micropython.viper
def trip_scan(_timer) -> int:
    q = ptr32(_t_q)
    if q[_Q_RUN] == 0:
        return 0
    adc = ptr16(_t_adc)
    cfg = ptr32(_t_cfg)
    a_addr = int(ptr32(_t_reg)[0])
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
    hold = (int(q[_Q_THOLD]) ^ sg) - sg
    run = int(q[_Q_TSRUN])
    cap = int(q[_Q_TCAP])
    if n > cap:
        k = (k + n - cap) & _K_MASK
        n = cap
        hold = 0
        run = 0
    q[_Q_TK] = (k + n) & _K_MASK
    ilo = (int(q[_Q_TILO]) ^ sg) - sg
    ihi = (int(q[_Q_TIHI]) ^ sg) - sg
    vlo = (int(q[_Q_TVLO]) ^ sg) - sg
    vhi = (int(q[_Q_TVHI]) ^ sg) - sg
    slo = (int(q[_Q_TSLO]) ^ sg) - sg
    shi = (int(q[_Q_TSHI]) ^ sg) - sg
    holdn = int(q[_Q_THOLDN])
    mid = int(cfg[_G_MID])
    ki = int(cfg[_G_KI])
    si = int(cfg[_G_SI])
    hi = int(1) << (si - 1)
    kv = int(cfg[_G_KV])
    sv = int(cfg[_G_SV])
    hv = int(1) << (sv - 1)
    ci = int(cfg[_G_CI]) + nch * int(cfg[_G_LI])
    cv = int(cfg[_G_CV]) + nch * int(cfg[_G_LV])
    ma = int(cfg[_G_MASKA])
    a = nch * k
    end = a + nch * n
    code = 0
    while a < end:
        c = int(adc[(a + ci) & ma])
        if c < ilo or c > ihi:
            code = _TRIP_OVER
            break
        w = int(adc[(a + cv) & ma])
        if w < vlo or w > vhi:
            v = ((w - mid) * kv + hv) >> sv
            if v < 0:
                v = 0 - v
            i = ((c - mid) * ki + hi) >> si
            if i < 0:
                i = 0 - i
            j = ((int(adc[(a + nch + ci) & ma]) - mid) * ki + hi) >> si
            if j < 0:
                j = 0 - j
            if j < i:
                i = j
            if v > 1000 * i:
                code = _TRIP_OPEN
            else:
                code = _TRIP_COMP
            break
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
        if (hold >= holdn or 0 - hold >= holdn) and holdn > 0:
            i = ((c - mid) * ki + hi) >> si
            if i < 0:
                i = 0 - i
            v = ((w - mid) * kv + hv) >> sv
            if v < 0:
                v = 0 - v
            if i >= _TRIP_SHORT_uA and v * 10 < i:
                run += 1
                if run >= _TRIP_SHORT_RUN:
                    code = _TRIP_SHORT
                    break
            else:
                run = 0
        else:
            run = 0
        a += nch
    q[_Q_THOLD] = hold
    q[_Q_TSRUN] = run
    if code:
        q[_Q_TRIP] = code
        _t_cut()
    return code
