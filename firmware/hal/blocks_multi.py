"""Whole-block conversions for a DMA-paced board with C current sources (issue 12's two-source
board: one MCP4922, channel A = source 1, channel B = source 2, each pump against a fixed
mid reference). Plain code that runs anywhere (the reference); hal.blocks_multi_fast is its
viper twin, bit-exact (tests/firmware/test_blocks_multi.py). Not imported at boot: only a
driver for such a board uses it. With C = 1 it gives what hal.blocks gives (tested).

Buffers are interleaved as hal.base says (value k*C + c: source c at sample k).
Output ring: C 16-bit DAC words per sample, source c's at halfword (k*C + c) & mask_w, its
code through its own calibration with its channel bits (A, B) ORed in; the set ring keeps
every source's set current (uA) at (k*C + c) & mask_s.
ADC ring: round-robin conversions, NCH = 2*C per sample (a current and a voltage per source,
no DAC readback: the RP2040's four inputs are spent), position p of sample slot s at
(NCH*s + p) & mask_a; a channel with latency L measures sample k in slot k + L.
The fast trip (trip_scan_multi) judges every source on hal.blocks.trip_scan's rules.
Every int stays within +/-2**30 (uA <= 5000, codes < 4096, k*NCH < 2**22 * 16).
Rings are powers of two up to 2**22 values: the counters' wrap at 2**22 samples is whole laps.
"""
from array import array

from hal import calib, mcp4922
from hal.blocks import (G_KI, G_KV, G_MID, G_SI, G_SV, K_MASK, P_BASE, P_HW, P_SC, P_SU, P_TOP, P_Z, Q_AWRAP,
                        Q_LAT, Q_MASKA, Q_NCH, Q_RUN, Q_TALAST, Q_TAPOS, Q_TCAP, Q_TIHI, Q_TILO, Q_TK,
                        Q_THOLDN, Q_TRIP, Q_TSHI, Q_TSLO, Q_TVHI, Q_TVLO, TRIP_COMP, TRIP_OPEN, TRIP_OVER,
                        TRIP_SHORT, TRIP_SHORT_RUN, TRIP_SHORT_uA, diff)

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

MAX_SOURCES = const(8)  # NCH * 2**22 stays below 2**30 (the sample counters wrap at 2**22)

# cfg of put_words_multi (array('i')): a header, then per source c a block of M_SRC ints at
# M_HEAD + M_SRC * c, laid out as hal.blocks' put cfg (P_Z, P_SC, P_SU, P_HW, P_TOP, P_BASE)
M_C = const(0)        # sources C
M_MASKW = const(1)    # output ring length in halfwords - 1
M_MASKS = const(2)    # set ring length in values - 1
M_HEAD = const(3)
M_SRC = const(6)      # P_BASE + 1: base = the word's bits above the code, channel bit included

# cfg of get_sense_multi (array('i')): the shared sense scaling at hal.blocks' indices 0..4
# (G_MID, G_KI, G_SI, G_KV, G_SV: hal.blocks.trip_limits reads it as it reads get_sense's),
# then per source c a block of N_SRC ints at o = N_HEAD + N_SRC * c
N_C = const(5)        # sources C
N_NCH = const(6)      # conversions per sample (2 * C)
N_MASKA = const(7)    # ADC ring length in halfwords - 1
N_MASKS = const(8)    # set ring length in values - 1
N_HEAD = const(9)
N_OI = const(0)       # source c's current of sample k is at NCH*k + cfg[o + N_OI] in the ADC
N_OV = const(1)       #   ring (round-robin position + NCH * latency: set_source); its voltage's
N_SRC = const(2)


def put_words_multi(ring, sring, buf, n, k0, cfg, cs, st):
    """Source c's set currents (uA) for samples k0..k0+n-1 at buf[c*cs + j*st] (j < n: cs = 1,
    st = C interleaved as hal.write takes them; cs = a stride, st = 1 one block per source, as
    the multi block loop's fill leaves them) -> their DAC words and the set ring. Source by
    source (its calibration loaded once), each as hal.calib.ua_to_code: nearest code, the
    hardware limit, the DAC range."""
    nc = cfg[M_C]
    mw = cfg[M_MASKW]
    ms = cfg[M_MASKS]
    for c in range(nc):
        o = M_HEAD + M_SRC * c
        z = cfg[o + P_Z]
        sc = cfg[o + P_SC]
        su = cfg[o + P_SU]
        half = su >> 1
        hw = cfg[o + P_HW]
        top = cfg[o + P_TOP]
        base = cfg[o + P_BASE]
        lim = hw * sc
        i = c * cs              # buf's index: c*cs + j*st for sample k0 + j
        x = k0 * nc + c         # the rings' index, before the mask
        end = i + n * st
        while i < end:
            s = buf[i]
            sring[x & ms] = s
            if s > hw:
                s = hw
            elif s < -hw:
                s = -hw
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


def get_sense_multi(adc, sring, sb, ib, vb, db, n, k0, cfg):
    """Samples k0..k0+n-1 -> set (uA), current (uA), voltage (mV, electrode c to ground) and
    "readback", n*C values each, interleaved. There is no readback channel: db is the set
    value, so the supervisor's dac-stuck rule has nothing to judge on this board; a DAC that
    does not follow shows as a tracking-error (measured current against set) instead."""
    mid = cfg[G_MID]
    ki = cfg[G_KI]
    si = cfg[G_SI]
    hi = 1 << (si - 1)
    kv = cfg[G_KV]
    sv = cfg[G_SV]
    hv = 1 << (sv - 1)
    nc = cfg[N_C]
    nch = cfg[N_NCH]
    ma = cfg[N_MASKA]
    ms = cfg[N_MASKS]
    for c in range(nc):
        o = N_HEAD + N_SRC * c
        ci = cfg[o + N_OI]
        cv = cfg[o + N_OV]
        i = c
        x = k0 * nc + c
        a = nch * k0            # sample slot k's first conversion, before the mask
        end = n * nc
        while i < end:
            s = sring[x & ms]
            sb[i] = s
            db[i] = s
            ib[i] = ((adc[(a + ci) & ma] - mid) * ki + hi) >> si
            vb[i] = ((adc[(a + cv) & ma] - mid) * kv + hv) >> sv
            i += nc
            x += nc
            a += nch


def get_sense_split(adc, sring, sbs, ibs, vbs, dbs, n, k0, cfg):
    """get_sense_multi's samples straight into one array per electrode, as tes.multi.split
    would give them from its interleaved ones: electrode c's set, current, voltage and
    readback in sbs[c], ibs[c], vbs[c], dbs[c] (c < C), the return's (index C) minus the
    sums of set, current and readback, its voltage its current. One pass and one call
    instead of two (a two-source session spent ~8 % of the RP2040 in sense and split)."""
    mid = cfg[G_MID]
    ki = cfg[G_KI]
    si = cfg[G_SI]
    hi = 1 << (si - 1)
    kv = cfg[G_KV]
    sv = cfg[G_SV]
    hv = 1 << (sv - 1)
    nc = cfg[N_C]
    nch = cfg[N_NCH]
    ma = cfg[N_MASKA]
    ms = cfg[N_MASKS]
    rs = sbs[nc]
    ri = ibs[nc]
    for c in range(nc):
        o = N_HEAD + N_SRC * c
        ci = cfg[o + N_OI]
        cv = cfg[o + N_OV]
        s = sbs[c]
        i = ibs[c]
        v = vbs[c]
        d = dbs[c]
        x = k0 * nc + c
        a = nch * k0
        for k in range(n):
            y = sring[x & ms]
            s[k] = y
            d[k] = y
            z = ((adc[(a + ci) & ma] - mid) * ki + hi) >> si
            i[k] = z
            v[k] = ((adc[(a + cv) & ma] - mid) * kv + hv) >> sv
            if c == 0:
                rs[k] = -y
                ri[k] = -z
            else:
                rs[k] -= y
                ri[k] -= z
            x += nc
            a += nch
    rd = dbs[nc]
    rv = vbs[nc]
    for k in range(n):
        rd[k] = rs[k]           # the readback is the set here
        rv[k] = ri[k]


# hal.split_thumb's frame (array('i'), SF_LEN + SF_REC * (C + 1) words): what get_sense_split
# reads, as addresses and numbers, filled by split_frame; the kernel's byte offsets are these x 4
SF_ADC = const(0)     # the ADC ring's address (halfwords)
SF_MA = const(1)
SF_SRING = const(2)   # the set ring's address (words)
SF_MS = const(3)
SF_NC = const(4)
SF_NCH = const(5)
SF_MID = const(6)
SF_KI = const(7)
SF_SI = const(8)
SF_HI = const(9)
SF_KV = const(10)
SF_SV = const(11)
SF_HV = const(12)
SF_END = const(13)    # 13..16: the kernel's scratch
SF_X0 = const(16)
SF_LEN = const(20)    # then electrode e's record at SF_LEN + SF_REC * e, the return's last:
SF_REC = const(8)     #   s, i, v, d (its arrays' addresses), ci, cv (its ADC ring offsets)


def split_frame(fr, cfg, adc_at, sring_at, sbs, ibs, vbs, dbs, addressof):
    """Fill fr, hal.split_thumb.split's frame, so that split(address of fr, n, k0) does
    get_sense_split(adc, sring, sbs, ibs, vbs, dbs, n, k0, cfg) (adc at adc_at, sring at
    sring_at; addressof: uctypes.addressof on a board). Allocates nothing (the block loop
    runs heap-locked and binds it at its first sense)."""
    nc = cfg[N_C]
    fr[SF_ADC] = adc_at
    fr[SF_MA] = cfg[N_MASKA]
    fr[SF_SRING] = sring_at
    fr[SF_MS] = cfg[N_MASKS]
    fr[SF_NC] = nc
    fr[SF_NCH] = cfg[N_NCH]
    fr[SF_MID] = cfg[G_MID]
    fr[SF_KI] = cfg[G_KI]
    fr[SF_SI] = cfg[G_SI]
    fr[SF_HI] = 1 << (cfg[G_SI] - 1)
    fr[SF_KV] = cfg[G_KV]
    fr[SF_SV] = cfg[G_SV]
    fr[SF_HV] = 1 << (cfg[G_SV] - 1)
    for e in range(nc + 1):
        r = SF_LEN + SF_REC * e
        fr[r] = addressof(sbs[e])
        fr[r + 1] = addressof(ibs[e])
        fr[r + 2] = addressof(vbs[e])
        fr[r + 3] = addressof(dbs[e])
        if e < nc:
            o = N_HEAD + N_SRC * e
            fr[r + 4] = cfg[o + N_OI]
            fr[r + 5] = cfg[o + N_OV]


# hal.put_thumb's frame (array('i'), PF_LEN + PF_REC * C words): what put_words_multi reads
# for one block per source, as addresses and numbers, filled by put_frame
PF_RING = const(0)    # the output ring's address (halfwords)
PF_MW = const(1)
PF_SRING = const(2)   # the set ring's address (words)
PF_MS = const(3)
PF_NC = const(4)
PF_BUF = const(5)     # source 0's block's address
PF_CS = const(6)      # bytes from a source's block to the next's
PF_LEN = const(12)    # 7..11: the kernel's scratch; then source c's record at PF_LEN + PF_REC * c:
PF_REC = const(8)     #   z, sc, su, half, hw, top, base, lim (put_words_multi's locals)


def put_frame(fr, cfg, ring_at, sring_at, buf_at, stride):
    """Fill fr, hal.put_thumb.put's frame, so that put(address of fr, n, k0) does
    put_words_multi(ring, sring, buf, n, k0, cfg, stride, 1) (the rings at ring_at and
    sring_at, buf at buf_at). Allocates nothing."""
    nc = cfg[M_C]
    fr[PF_RING] = ring_at
    fr[PF_MW] = cfg[M_MASKW]
    fr[PF_SRING] = sring_at
    fr[PF_MS] = cfg[M_MASKS]
    fr[PF_NC] = nc
    fr[PF_BUF] = buf_at
    fr[PF_CS] = 4 * stride
    for c in range(nc):
        o = M_HEAD + M_SRC * c
        r = PF_LEN + PF_REC * c
        fr[r] = cfg[o + P_Z]
        fr[r + 1] = cfg[o + P_SC]
        fr[r + 2] = cfg[o + P_SU]
        fr[r + 3] = cfg[o + P_SU] >> 1
        fr[r + 4] = cfg[o + P_HW]
        fr[r + 5] = cfg[o + P_TOP]
        fr[r + 6] = cfg[o + P_BASE]
        fr[r + 7] = cfg[o + P_HW] * cfg[o + P_SC]


def _pow2(x, what):
    if x < 1 or x & (x - 1):
        raise ValueError("%s = %d: must be a power of two" % (what, x))
    return x - 1


def cfgs(board, out_halfwords, set_len, adc_halfwords, cals=None):
    """(put cfg, sense cfg) for a board file with current_sources C (the draft two-source
    board of issue 12): source c's calibration is cals[c] if given (stored ones), else
    board["calibration"][c] (a list, one per source) or the one board["calibration"] for
    all; its DAC channel is c. The ADC converts sense.adc.current_channels[c] and
    voltage_channels[c] in channel-number order (the RP2040's round robin); every current
    channel has latency_samples[0], every voltage channel latency_samples[1]. Ring lengths
    are powers of two (2**22 * NCH must be a multiple of each)."""
    nc = board.get("current_sources", 1)
    dac = board["dac"]
    adc = board["sense"]["adc"]
    cur = adc["current_channels"]
    vol = adc["voltage_channels"]
    if not 1 <= nc <= min(MAX_SOURCES, dac.get("channels", 1)):
        raise ValueError("current_sources = %d: 1 to %d on this DAC" % (nc, min(MAX_SOURCES, dac.get("channels", 1))))
    if len(cur) != nc or len(vol) != nc or len(set(cur + vol)) != 2 * nc:
        raise ValueError("sense.adc: %d current and %d voltage channels, all different" % (nc, nc))
    if adc.get("readback_channel") is not None:
        raise ValueError("sense.adc.readback_channel: none on a board of several sources")
    cal = board["calibration"]
    put = [0] * (M_HEAD + M_SRC * nc)
    put[M_C] = nc
    put[M_MASKW] = _pow2(out_halfwords, "output ring")
    put[M_MASKS] = _pow2(set_len, "set ring")
    for c in range(nc):
        conv = calib.conversion(board, cals[c] if cals else cal[c] if isinstance(cal, list) else cal)
        o = M_HEAD + M_SRC * c
        put[o + P_Z] = conv["zero_code"]
        put[o + P_SC] = conv["span_code"]
        put[o + P_SU] = conv["span_uA"]
        put[o + P_HW] = conv["hw_limit_uA"]
        put[o + P_TOP] = conv["code_max"]
        put[o + P_BASE] = mcp4922.word(0, c)
    sc = calib.sense_scales(board)
    get = [0] * (N_HEAD + N_SRC * nc)
    get[G_MID], get[G_KI], get[G_SI], get[G_KV], get[G_SV] = sc["mid"], sc["ki"], sc["si"], sc["kv"], sc["sv"]
    get[N_C] = nc
    get[N_NCH] = 2 * nc
    get[N_MASKA] = _pow2(adc_halfwords, "ADC ring")
    get[N_MASKS] = put[M_MASKS]
    order = sorted(cur + vol)
    lat = adc["latency_samples"]
    for c in range(nc):
        set_source(get, c, order.index(cur[c]), order.index(vol[c]), lat[0], lat[1])
    return array("i", put), array("i", get)


def set_source(cfg, c, pos_i, pos_v, lat_i, lat_v):
    """Source c's channels in get_sense_multi's cfg (N_NCH set): the round-robin positions of
    its current and voltage and their latencies (samples)."""
    o = N_HEAD + N_SRC * c
    cfg[o + N_OI] = pos_i + cfg[N_NCH] * lat_i
    cfg[o + N_OV] = pos_v + cfg[N_NCH] * lat_v


# ---- the fast trip over C sources (hal.blocks.trip_scan's rules, every source) -------------
# The queue state (hal.blocks' Q_* layout) grows: from hal.blocks.Q_LEN on, the source that
# tripped, then each source's short-rule state (hal.blocks' Q_THOLD, Q_TSRUN stay unused)
Q_TSRC = const(33)      # the source that tripped (its index c), set with Q_TRIP
Q_THOLDS = const(34)    # source c's run of one sign at Q_THOLDS + 2c, its short run at + 2c + 1
Q_LEN_MULTI = const(50)  # Q_THOLDS + 2 * MAX_SOURCES


def _no_cut():
    pass


_t_q = [0] * Q_LEN_MULTI    # trip_bind_multi's arrays; before it, a stopped queue: no scan
_t_adc = _t_cfg = _t_reg = _t_q
_t_cut = _no_cut


def trip_bind_multi(adc, q, cfg, reg, cut):
    """As hal.blocks.trip_bind, with get_sense_multi's cfg and a queue state of Q_LEN_MULTI
    ints (hal.blocks.trip_limits(q, cfg) sets its code intervals: the scaling is shared)."""
    global _t_adc, _t_q, _t_cfg, _t_reg, _t_cut
    _t_adc = adc
    _t_q = q
    _t_cfg = cfg
    _t_reg = reg
    _t_cut = cut


def trip_scan_multi(_timer):
    """hal.blocks.trip_scan's HARD per-sample rules on every source, sample by sample and
    source by source within a sample (the first match wins): source c's |i| > Q_TIOVER ->
    TRIP_OVER; its |v| >= Q_TVCOMP -> TRIP_OPEN if |v| > 1000 * |i| (|i| the smaller of
    this sample's and the next one's current of that source), else TRIP_COMP; then its
    short rule on that source's own run of one sign and run of short samples (Q_THOLDS):
    TRIP_SHORT. On one: q[Q_TRIP] = code, q[Q_TSRC] = c, cut(). Same positions, cap,
    latency and gap rule (skipped samples disarm every source) as trip_scan."""
    q = _t_q
    if q[Q_RUN] == 0:
        return 0
    adc = _t_adc
    cfg = _t_cfg
    a_addr = _t_reg[0]
    step = (a_addr - q[Q_TALAST]) & q[Q_MASKA]
    q[Q_TALAST] = a_addr
    p = q[Q_TAPOS] + (step >> 1)
    if p >= q[Q_AWRAP]:
        p -= q[Q_AWRAP]
    q[Q_TAPOS] = p
    nch = q[Q_NCH]
    k = q[Q_TK]
    n = diff(p // nch - q[Q_LAT] - 1, k)      # samples whose next one is measured too
    if n <= 0:
        return 0
    cap = q[Q_TCAP]
    last = N_HEAD + N_SRC * cfg[N_C]
    if n > cap:
        k = (k + n - cap) & K_MASK              # the newest cap samples
        n = cap
        h = Q_THOLDS + 2 * cfg[N_C]
        while h > Q_THOLDS:                     # a gap: every source's run of one sign restarts
            h -= 1
            q[h] = 0
    q[Q_TK] = (k + n) & K_MASK
    holdn = q[Q_THOLDN]
    slo = q[Q_TSLO]
    shi = q[Q_TSHI]
    ilo = q[Q_TILO]
    ihi = q[Q_TIHI]
    vlo = q[Q_TVLO]
    vhi = q[Q_TVHI]
    mid = cfg[G_MID]
    ki = cfg[G_KI]
    si = cfg[G_SI]
    hi = 1 << (si - 1)
    kv = cfg[G_KV]
    sv = cfg[G_SV]
    hv = 1 << (sv - 1)
    ma = cfg[N_MASKA]
    a = nch * k
    end = a + nch * n
    code = 0
    o = N_HEAD
    while a < end:
        o = N_HEAD
        while o < last:
            x = a + cfg[o + N_OI]                   # the source's current conversion
            c = adc[x & ma]
            if c < ilo or c > ihi:
                code = TRIP_OVER
                break
            w = adc[(a + cfg[o + N_OV]) & ma]
            if w < vlo or w > vhi:
                v = ((w - mid) * kv + hv) >> sv
                if v < 0:
                    v = -v
                i = ((c - mid) * ki + hi) >> si
                if i < 0:
                    i = -i
                j = ((adc[(x + nch) & ma] - mid) * ki + hi) >> si     # the next sample's current
                if j < 0:
                    j = -j
                if j < i:
                    i = j
                code = TRIP_OPEN if v > 1000 * i else TRIP_COMP
                break
            h = Q_THOLDS + o - N_HEAD           # (N_SRC == 2: the source's pair of ints)
            hold = q[h]
            if c > shi:                 # i >= TRIP_HOLD_uA
                if hold < 0:
                    hold = 0
                if hold < holdn:
                    hold += 1
            elif c < slo:               # i <= -TRIP_HOLD_uA
                if hold > 0:
                    hold = 0
                if hold > -holdn:
                    hold -= 1
            else:
                hold = 0
            q[h] = hold
            if (hold >= holdn or -hold >= holdn) and holdn > 0:
                i = ((c - mid) * ki + hi) >> si
                if i < 0:
                    i = -i
                v = ((w - mid) * kv + hv) >> sv
                if v < 0:
                    v = -v
                if i >= TRIP_SHORT_uA and v * 10 < i:
                    q[h + 1] += 1
                    if q[h + 1] >= TRIP_SHORT_RUN:
                        code = TRIP_SHORT
                        break
                else:
                    q[h + 1] = 0
            else:
                q[h + 1] = 0
            o += N_SRC
        if code:
            break
        a += nch
    if code:
        q[Q_TRIP] = code
        q[Q_TSRC] = (o - N_HEAD) // N_SRC
        _t_cut()
    return code
