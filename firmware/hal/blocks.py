"""Whole-block conversions of the DMA-paced drivers: microamps into the DAC word ring, and
the ADC ring into aligned uA/mV samples. Plain code that runs anywhere (the reference);
hal.blocks_fast is its viper twin, bit-exact (tests/firmware/test_blocks.py).

Output ring: W 16-bit DAC words per sample (W = 1: channel A; W = 2: A then B), sample k
at halfwords (k*W) & mask_w; a parallel ring of set currents (uA) at k & mask_s, so that
sense() can pair every measurement with the sample it belongs to.
ADC ring: round-robin conversions, NCH per sample (current, voltage, DAC readback), the
conversion of channel c for sample slot p at (NCH*p + c) & mask_a. A channel with latency L
measures sample k in slot k + L.
Every int stays within +/-2**30 (uA <= 5000, codes < 4096): no allocation on a board.
"""
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

# cfg of put_words (array('i'))
P_Z = const(0)        # zero code
P_SC = const(1)       # span in codes
P_SU = const(2)       # span in uA
P_HW = const(3)       # hardware current limit (uA)
P_TOP = const(4)      # largest code
P_BASE = const(5)     # DAC word bits above the code (channel A, buffered, 1x, active)
P_W = const(6)        # words per sample (1 or 2)
P_MASKW = const(7)    # output ring length in halfwords - 1
P_MASKS = const(8)    # set ring length in samples - 1
P_WORDB = const(9)    # W = 2: the fixed channel B word
P_LEN = const(10)

# cfg of get_sense (array('i'))
G_MID = const(0)      # ADC code of zero (mid-rail)
G_KI = const(1)       # current: uA = (code - mid) * KI >> SI (rounded)
G_SI = const(2)
G_KV = const(3)       # voltage: mV = (code - mid) * KV >> SV
G_SV = const(4)
G_KD = const(5)       # readback: DAC code = code * KD >> SD
G_SD = const(6)
G_CI = const(7)       # round-robin position of each channel
G_CV = const(8)
G_CD = const(9)
G_LI = const(10)      # latency of each channel, samples
G_LV = const(11)
G_LD = const(12)
G_MASKA = const(13)   # ADC ring length in halfwords - 1
G_Z = const(14)       # calibration, for the readback in uA
G_SU = const(15)
G_SC = const(16)
G_NCH = const(17)     # conversions per sample
G_MASKS = const(18)   # set ring length in samples - 1
G_LEN = const(19)


# queue state of a DMA-paced driver (array('i'), hal.rp2): where the hardware is, where
# the CPU is, and the accounting of both. Sample counters wrap at 2**22 (K_MASK).
K_MASK = const(0x3FFFFF)
K_HALF = const(0x200000)
Q_RUN = const(0)      # 1 while the output runs
Q_DLAST = const(1)    # output DMA read address last seen (bytes)
Q_DPOS = const(2)     # halfwords it has read, mod W * 2**22
Q_ALAST = const(3)    # ADC DMA write address last seen
Q_APOS = const(4)     # conversions written, mod Q_AWRAP
Q_KW = const(5)       # next sample to write
Q_KS = const(6)       # next sample to sense
Q_LEAD = const(7)     # how far ahead of the DMA the CPU writes (samples)
Q_CHUNK = const(8)    # room() offers nothing under this
Q_UNDER = const(9)    # samples the DMA read before the CPU wrote them
Q_DRAIN = const(10)   # 1: no more samples come (past the end is not an underrun)
Q_W = const(11)       # halfwords per sample (1 or 2)
Q_LAT = const(12)     # largest channel latency (samples)
Q_MASKO = const(13)   # output ring bytes - 1
Q_MASKA = const(14)   # ADC ring bytes - 1
Q_NCH = const(15)     # conversions per sample
Q_AWRAP = const(16)   # NCH * 2**22
Q_TRIP = const(17)    # the fast trip's code once it tripped (0: none; hal.rp2 zeroed the output)
Q_TALAST = const(18)  # the trip's own view of the ADC DMA: write address last seen
Q_TAPOS = const(19)   #   conversions written, mod Q_AWRAP
Q_TK = const(20)      #   next sample it scans
Q_TCAP = const(21)    # most samples one scan judges (the newest, when more are pending)
Q_TIOVER = const(22)  # overcurrent above (uA): tes.supervisor's st[T_IOVER]
Q_TVCOMP = const(23)  # compliance at or above (mV): st[T_VCOMP]
Q_TILO = const(24)    # ADC codes of the current within the limit: Q_TILO..Q_TIHI (trip_limits)
Q_TIHI = const(25)
Q_TVLO = const(26)    # ADC codes of the voltage under compliance: Q_TVLO..Q_TVHI
Q_TVHI = const(27)
Q_TSLO = const(28)    # ADC codes of the current: under Q_TSLO is i <= -TRIP_HOLD_uA, over Q_TSHI i >= it
Q_TSHI = const(29)
Q_THOLDN = const(30)  # samples of one sign that arm the short rule (TRIP_HOLD_MS; 0: no short rule)
Q_THOLD = const(31)   # the trip's run of samples of one sign: +n (positive), -n (negative), <= Q_THOLDN
Q_TSRUN = const(32)   # short samples in a row (armed)
Q_LEN = const(33)
TRIP_CODES = const(4096)  # the sense ADC's codes (12 bits)

# codes of trip_scan: tes.supervisor's (hal does not import tes; tests/firmware/test_blocks.py
# checks they are the same)
TRIP_OPEN = const(1)      # OPEN_CIRCUIT
TRIP_OVER = const(3)      # OVERCURRENT
TRIP_COMP = const(7)      # COMPLIANCE
TRIP_SHORT = const(2)     # SHORT
TRIP_HOLD_MS = const(1000)  # SIGN_HOLD_MS: one sign this long and the skin capacitance charges the
                            # way the current flows, so |v| >= |i| x the series resistance
TRIP_HOLD_uA = const(300)   # SHORT_MIN_uA: a sample of one sign has at least this |i|
TRIP_SHORT_uA = const(1000)  # the per-sample short rule needs |i| >= this: at 1 mA 100 ohm is 100 mV,
                             # ~6 voltage codes (16 mV each on pico-mcp4922) and 2.5 x the
                             # sense noise the board model has (40 mV RMS); at 300 uA, 30 mV
                             # is within the noise, and a lower current is the supervisor's
TRIP_SHORT_RUN = const(2)    # short samples in a row that trip (one noisy sample does not)


def diff(a, b):
    """a - b for sample counters that wrap at 2**22, in [-2**21, 2**21)."""
    return ((a - b + K_HALF) & K_MASK) - K_HALF


def queue_room(q, d_addr, a_addr):
    """Advance the positions from the DMA address registers (read by the caller, at least
    once a ring lap) and return how many samples to write now: 0 under a chunk (or
    stopped), -1 - code once the fast trip stopped the output (trip_scan), -1 once
    an underrun was counted (samples the DMA took before they were written: zero current
    went out). After drain(), the DMA running past the last sample is the end: nothing is
    counted and the write position stays, so sense stops at the last sample written."""
    if q[Q_RUN] == 0:
        t = q[Q_TRIP]
        return -1 - t if t else 0       # stopped; by the fast trip: -1 - its code
    step = (d_addr - q[Q_DLAST]) & q[Q_MASKO]
    q[Q_DLAST] = d_addr
    w = q[Q_W]
    dpos = (q[Q_DPOS] + (step >> 1)) & (w * (K_MASK + 1) - 1)
    q[Q_DPOS] = dpos
    step = (a_addr - q[Q_ALAST]) & q[Q_MASKA]
    q[Q_ALAST] = a_addr
    p = q[Q_APOS] + (step >> 1)
    if p >= q[Q_AWRAP]:
        p -= q[Q_AWRAP]
    q[Q_APOS] = p
    consumed = dpos >> (w - 1)
    late = diff(consumed, q[Q_KW])
    if late > 0:
        if q[Q_DRAIN]:
            return 0
        q[Q_UNDER] += late
        q[Q_KW] = consumed
    if q[Q_UNDER]:
        return -1
    r = diff(consumed + q[Q_LEAD], q[Q_KW])
    return r if r >= q[Q_CHUNK] else 0


def queue_block(q, n, b):
    """How many samples sense takes now, at most n: whole blocks of b once every channel's
    conversions of them are in (latency included), or everything written once all of it
    is measured and fits in n (the end: the last block may be short); else 0. The
    supervisor judges blocks of b however the passes fall (a pass every 2 ms took 5, 5
    and 3 at 5 kS/s: a third more checks, each on fewer samples), and one sense call
    takes every whole block that is ready (a call per block cost a tenth of the CPU)."""
    ready = diff(q[Q_APOS] // q[Q_NCH] - q[Q_LAT], q[Q_KS])
    want = diff(q[Q_KW], q[Q_KS])
    if want <= 0:
        return 0
    if want <= n and ready >= want:
        return want
    m = ready if ready < want else want
    if m > n:
        m = n
    if m < b:
        return 0
    return (m // b) * b


def ring_offsets(start, big, small):
    """Offsets of two DMA rings of big and small bytes (powers of two, small <= big), each
    aligned to its size, in a buffer of 2 * big bytes at address start."""
    a = (-start) % big                        # the big ring: the aligned window in the buffer
    if 2 * big - (a + big) >= small:
        return a, a + big                     # the small one after it starts aligned
    return a, a - small                       # else before it: it ends on a big-aligned address


def put_words(ring, sring, buf, n, k0, cfg):
    """buf[0:n] (uA) -> DAC words of samples k0..k0+n-1, and their set currents."""
    z = cfg[P_Z]
    sc = cfg[P_SC]
    su = cfg[P_SU]
    half = su >> 1
    hw = cfg[P_HW]
    top = cfg[P_TOP]
    base = cfg[P_BASE]
    w = cfg[P_W]
    mw = cfg[P_MASKW]
    ms = cfg[P_MASKS]
    lim = hw * sc
    for j in range(n):
        k = k0 + j
        s = buf[j]
        sring[k & ms] = s
        # hal.calib.ua_to_code, inline: nearest code, hardware limit, DAC range
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
        i = (k * w) & mw
        ring[i] = base | code
        if w == 2:
            ring[(i + 1) & mw] = cfg[P_WORDB]


def get_sense(adc, sring, sb, ib, vb, db, n, k0, cfg):
    """Samples k0..k0+n-1 -> set (uA), current (uA), voltage (mV), readback (uA)."""
    mid = cfg[G_MID]
    ki = cfg[G_KI]
    si = cfg[G_SI]
    hi = 1 << (si - 1)
    kv = cfg[G_KV]
    sv = cfg[G_SV]
    hv = 1 << (sv - 1)
    kd = cfg[G_KD]
    sd = cfg[G_SD]
    hd = 1 << (sd - 1)
    nch = cfg[G_NCH]
    ci = cfg[G_CI] + nch * cfg[G_LI]
    cv = cfg[G_CV] + nch * cfg[G_LV]
    cd = cfg[G_CD] + nch * cfg[G_LD]
    ma = cfg[G_MASKA]
    ms = cfg[G_MASKS]
    z = cfg[G_Z]
    su = cfg[G_SU]
    sc = cfg[G_SC]
    for j in range(n):
        k = k0 + j
        sb[j] = sring[k & ms]
        a = nch * k
        ib[j] = ((adc[(a + ci) & ma] - mid) * ki + hi) >> si
        vb[j] = ((adc[(a + cv) & ma] - mid) * kv + hv) >> sv
        code = (adc[(a + cd) & ma] * kd + hd) >> sd
        p = (code - z) * su       # hal.calib.code_to_ua: toward zero
        db[j] = p // sc if p >= 0 else -((-p) // sc)


def _no_cut():
    pass


_t_q = [0] * Q_LEN          # trip_scan's arrays (trip_bind); before it, a stopped queue: no scan
_t_adc = _t_cfg = _t_reg = _t_q
_t_cut = _no_cut


def trip_bind(adc, q, cfg, reg, cut):
    """What trip_scan works on: the ADC ring, the queue state, get_sense's cfg, reg (reg[0]:
    the ADC DMA's write address now; on a board a view of that register) and cut(), which
    zeroes the output. Bound once: the timer hands its callback nothing but itself, and a
    call with more arguments costs ~1,000 cycles more on an RP2040."""
    global _t_adc, _t_q, _t_cfg, _t_reg, _t_cut
    _t_adc = adc
    _t_q = q
    _t_cfg = cfg
    _t_reg = reg
    _t_cut = cut


def _lowest(mid, k, s, bound):
    """The smallest ADC code whose value ((code - mid) * k + half) >> s is >= bound
    (TRIP_CODES if none): the value never falls as the code rises (k > 0)."""
    lo = 0
    hi = TRIP_CODES
    h = 1 << (s - 1)
    while lo < hi:
        m = (lo + hi) >> 1
        if ((m - mid) * k + h) >> s >= bound:
            hi = m
        else:
            lo = m + 1
    return lo


def trip_limits(q, cfg):
    """The trip's limits (Q_TIOVER, Q_TVCOMP) as intervals of raw ADC codes, once a
    session (not in the interrupt): a current code outside Q_TILO..Q_TIHI scales to
    |i| > Q_TIOVER, a voltage code outside Q_TVLO..Q_TVHI to |v| >= Q_TVCOMP, exactly, for
    every code of the ADC. So trip_scan compares codes and scales only on a hit (scaling
    every sample cost the chip ~3 % of its CPU at 5 kS/s)."""
    mid = cfg[G_MID]
    iover = q[Q_TIOVER]
    vcomp = q[Q_TVCOMP]
    q[Q_TILO] = _lowest(mid, cfg[G_KI], cfg[G_SI], -iover)              # i >= -iover
    q[Q_TIHI] = _lowest(mid, cfg[G_KI], cfg[G_SI], iover + 1) - 1       # i <= iover
    q[Q_TVLO] = _lowest(mid, cfg[G_KV], cfg[G_SV], 1 - vcomp)           # v > -vcomp
    q[Q_TVHI] = _lowest(mid, cfg[G_KV], cfg[G_SV], vcomp) - 1           # v < vcomp
    q[Q_TSLO] = _lowest(mid, cfg[G_KI], cfg[G_SI], 1 - TRIP_HOLD_uA)    # under: i <= -300
    q[Q_TSHI] = _lowest(mid, cfg[G_KI], cfg[G_SI], TRIP_HOLD_uA) - 1    # over: i >= 300


def trip_scan(_timer):
    """The fast trip (hal.rp2: the callback of a hard timer interrupt, on what trip_bind
    bound): the supervisor's per-sample HARD rules on the conversions the ADC DMA wrote
    since the last scan, with the sense path's scaling (get_sense's cfg). At most
    q[Q_TCAP] samples a scan, the newest if more are pending (its cost stays bounded).
    Per sample, first match wins (on the raw codes against trip_limits' intervals, which
    is the same): |i| > q[Q_TIOVER] -> TRIP_OVER; |v| >= q[Q_TVCOMP] ->
    TRIP_OPEN if |v| > 1000 * |i| (V/I > 1 MOhm), else TRIP_COMP, with |i| the smaller of
    the sample's and the next one's: a sample's current is converted before its voltage,
    so a liftoff between the two paired the 30 V after it with the 2 mA before it (a
    third of the onsets: named compliance on the virtual RP2040). So a sample is judged
    once the next one is measured too (one sample later).
    Then the short rule, armed once the measured current has kept one sign at
    |i| >= TRIP_HOLD_uA for q[Q_THOLDN] samples running (TRIP_HOLD_MS: the skin
    capacitance has charged the way the current flows, so a load's |v| is at least |i|
    times its series resistance; on AC or noise the current changes sign first and a
    voltage zero crossing with current flowing is not a short): |i| >= TRIP_SHORT_uA and
    |v| * 10 < |i| (V/I < 100 ohm) on TRIP_SHORT_RUN samples in a row -> TRIP_SHORT.
    Samples skipped (more pending than the cap) disarm it: the run of one sign restarts.
    On one: q[Q_TRIP] = code, cut(). -> the code or 0; nothing while the output is stopped
    (q[Q_RUN] == 0). Keeps its own positions (Q_TALAST, Q_TAPOS, Q_TK): it may interrupt
    queue_room, whose Q_ALAST/Q_APOS it must not touch."""
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
    hold = q[Q_THOLD]
    run = q[Q_TSRUN]
    cap = q[Q_TCAP]
    if n > cap:
        k = (k + n - cap) & K_MASK              # the newest cap samples
        n = cap
        hold = 0                                # a gap: the run of one sign starts again
        run = 0
    q[Q_TK] = (k + n) & K_MASK
    ilo = q[Q_TILO]
    ihi = q[Q_TIHI]
    vlo = q[Q_TVLO]
    vhi = q[Q_TVHI]
    slo = q[Q_TSLO]
    shi = q[Q_TSHI]
    holdn = q[Q_THOLDN]
    mid = cfg[G_MID]
    ki = cfg[G_KI]
    si = cfg[G_SI]
    hi = 1 << (si - 1)
    kv = cfg[G_KV]
    sv = cfg[G_SV]
    hv = 1 << (sv - 1)
    ci = cfg[G_CI] + nch * cfg[G_LI]
    cv = cfg[G_CV] + nch * cfg[G_LV]
    ma = cfg[G_MASKA]
    a = nch * k
    end = a + nch * n
    code = 0
    while a < end:
        c = adc[(a + ci) & ma]
        if c < ilo or c > ihi:
            code = TRIP_OVER
            break
        w = adc[(a + cv) & ma]
        if w < vlo or w > vhi:
            v = ((w - mid) * kv + hv) >> sv
            if v < 0:
                v = -v
            i = ((c - mid) * ki + hi) >> si
            if i < 0:
                i = -i
            j = ((adc[(a + nch + ci) & ma] - mid) * ki + hi) >> si     # the next sample's current
            if j < 0:
                j = -j
            if j < i:
                i = j
            code = TRIP_OPEN if v > 1000 * i else TRIP_COMP
            break
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
        if (hold >= holdn or -hold >= holdn) and holdn > 0:
            i = ((c - mid) * ki + hi) >> si
            if i < 0:
                i = -i
            v = ((w - mid) * kv + hv) >> sv
            if v < 0:
                v = -v
            if i >= TRIP_SHORT_uA and v * 10 < i:
                run += 1
                if run >= TRIP_SHORT_RUN:
                    code = TRIP_SHORT
                    break
            else:
                run = 0
        else:
            run = 0
        a += nch
    q[Q_THOLD] = hold
    q[Q_TSRUN] = run
    if code:
        q[Q_TRIP] = code
        _t_cut()
    return code
