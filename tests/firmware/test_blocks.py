"""hal.blocks: the DMA drivers' per-sample conversions. The plain code against the board's
calibration (hal.calib) and the MCP4922 word layout; the viper twin (hal.blocks_fast)
against the plain code, bit for bit, where the emitter exists.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import sys
from array import array

from hal import blocks as B
from hal import calib, mcp4922
from tes import board

try:
    from hal import blocks_fast as F
except (ImportError, SyntaxError, NameError):     # CPython or a port without viper
    F = None

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
PICO = board.load(_HERE + "/../../boards/pico-mcp4922.json")
UNBOUND = (B._t_adc, B._t_q, B._t_cfg, B._t_reg, B._t_cut)     # as hal.blocks starts, before any trip_bind


def put_cfg(b, w=1, mask_w=255, mask_s=127):
    conv = calib.conversion(b)
    cfg = array("i", [0] * B.P_LEN)
    cfg[B.P_Z] = conv["zero_code"]
    cfg[B.P_SC] = conv["span_code"]
    cfg[B.P_SU] = conv["span_uA"]
    cfg[B.P_HW] = conv["hw_limit_uA"]
    cfg[B.P_TOP] = conv["code_max"]
    cfg[B.P_BASE] = mcp4922.word(0)
    cfg[B.P_W] = w
    cfg[B.P_MASKW] = mask_w
    cfg[B.P_MASKS] = mask_s
    cfg[B.P_WORDB] = mcp4922.word(2048, mcp4922.CH_B)
    return cfg


def sense_cfg(b, lat=(1, 0, 0), mask_a=511, mask_s=127):
    conv = calib.conversion(b)
    sc = calib.sense_scales(b)
    cfg = array("i", [0] * B.G_LEN)
    cfg[B.G_MID], cfg[B.G_KI], cfg[B.G_SI] = sc["mid"], sc["ki"], sc["si"]
    cfg[B.G_KV], cfg[B.G_SV], cfg[B.G_KD], cfg[B.G_SD] = sc["kv"], sc["sv"], sc["kd"], sc["sd"]
    cfg[B.G_CI], cfg[B.G_CV], cfg[B.G_CD] = 0, 1, 2
    cfg[B.G_LI], cfg[B.G_LV], cfg[B.G_LD] = lat
    cfg[B.G_MASKA] = mask_a
    cfg[B.G_Z], cfg[B.G_SU], cfg[B.G_SC] = conv["zero_code"], conv["span_uA"], conv["span_code"]
    cfg[B.G_NCH] = 3
    cfg[B.G_MASKS] = mask_s
    return cfg


def test_words_are_the_calibrated_codes_in_mcp4922_commands():
    conv = calib.conversion(PICO)
    for w in (1, 2):
        ring = array("H", [0] * 256)
        sring = array("i", [0] * 128)
        buf = array("i", [-4500 + 97 * j for j in range(32)] + [0] * 0)
        cfg = put_cfg(PICO, w)
        B.put_words(ring, sring, buf, 32, 120, cfg)     # wraps the set ring (128) and word ring
        for j in range(32):
            k = 120 + j
            code = calib.ua_to_code(conv, buf[j])
            assert ring[(k * w) & 255] == mcp4922.word(code), (w, j)
            if w == 2:
                assert ring[(k * w + 1) & 255] == mcp4922.word(2048, mcp4922.CH_B)
            assert sring[k & 127] == buf[j]


def test_sense_pairs_each_sample_with_its_own_conversions():
    sc = calib.sense_scales(PICO)
    conv = calib.conversion(PICO)
    adc = array("H", [0] * 512)
    sring = array("i", [0] * 128)
    n = 20
    k0 = 125                                      # wraps the set ring
    for j in range(n + 1):
        k = k0 + j
        sring[k & 127] = 100 * j
        # slot p holds: current of sample p - 1, voltage of p, readback of p
        adc[(3 * k) & 511] = sc["mid"] + j - 1        # current channel, latency 1
        adc[(3 * k + 1) & 511] = sc["mid"] - 2 * j    # voltage
        adc[(3 * k + 2) & 511] = 2000 + j             # readback
    out = [array("i", [0] * n) for _ in range(4)]
    B.get_sense(adc, sring, out[0], out[1], out[2], out[3], n, k0, sense_cfg(PICO))
    for j in range(n):
        assert out[0][j] == 100 * j
        assert out[1][j] == calib.scaled(j, sc["ki"], sc["si"]), j      # sample j's current is in slot j+1
        assert out[2][j] == calib.scaled(-2 * j, sc["kv"], sc["sv"])
        assert out[3][j] == calib.code_to_ua(conv, calib.scaled(2000 + j, sc["kd"], sc["sd"]))


def test_sense_scales_of_the_reference_board():
    sc = calib.sense_scales(PICO)
    assert sc["mid"] == 2048
    # 3.3 V over 4096 codes, 100 ohm shunt x 3: 2.686 uA per code; 1000 codes = 2686 uA
    assert calib.scaled(1000, sc["ki"], sc["si"]) == 2686
    # x 20 divider: 16.11 mV per code
    assert calib.scaled(1000, sc["kv"], sc["sv"]) == 16113
    assert calib.scaled(-1000, sc["kv"], sc["sv"]) == -16113
    # readback: ADC code 1241 (1000 mV) = DAC code 2000 of 2048 mV full scale
    assert calib.scaled(1241, sc["kd"], sc["sd"]) == 2000


def test_viper_twins_are_bit_exact():
    if sys.implementation.name != "micropython":
        assert F is None
        return
    if F is None:
        return      # a MicroPython port without viper: the plain code runs (hal.rp2 checks)
    x = 12345
    for trial in range(30):
        w = 1 + trial % 2
        ring_a = array("H", [0] * 256)
        ring_b = array("H", [0] * 256)
        s_a = array("i", [0] * 128)
        s_b = array("i", [0] * 128)
        buf = array("i", [0] * 32)
        for j in range(32):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            buf[j] = (x >> 8) % 11001 - 5500
        k0 = (x >> 3) % 100000
        cfg = put_cfg(PICO, w)
        B.put_words(ring_a, s_a, buf, 32, k0, cfg)
        F.put_words(ring_b, s_b, buf, 32, k0, cfg)
        assert list(ring_a) == list(ring_b) and list(s_a) == list(s_b), trial
        adc = array("H", [(x >> (j % 13)) & 0xFFF for j in range(512)])
        outs_a = [array("i", [0] * 32) for _ in range(4)]
        outs_b = [array("i", [0] * 32) for _ in range(4)]
        cfg = sense_cfg(PICO, lat=(trial % 2, 0, trial % 3))
        B.get_sense(adc, s_a, outs_a[0], outs_a[1], outs_a[2], outs_a[3], 32, k0, cfg)
        F.get_sense(adc, s_a, outs_b[0], outs_b[1], outs_b[2], outs_b[3], 32, k0, cfg)
        for a, b in zip(outs_a, outs_b):
            assert list(a) == list(b), trial


def test_ring_offsets_align_both_rings_inside_the_buffer():
    big, small = 4096, 2048
    for start in range(0x20000000, 0x20000000 + 8192, 4):
        a, o = B.ring_offsets(start, big, small)
        assert (start + a) % big == 0 and (start + o) % small == 0, start
        assert 0 <= a and a + big <= 2 * big and 0 <= o and o + small <= 2 * big, start
        assert o + small <= a or a + big <= o, start          # no overlap


# ---- the DMA queue's accounting (hal.rp2 via queue_room / queue_block) ----------------------
OUT_BASE = 0x20001000       # ring addresses as a board has them (aligned to the ring size)
ADC_BASE = 0x20002000


class FakeDma:
    """Output DMA reading halfwords and ADC DMA writing conversions, in rings of 2**11 and
    2**12 bytes; positions as their address registers show them."""

    def __init__(self, w=1, lead=16, chunk=8, lat=0):
        q = self.q = array("i", [0] * B.Q_LEN)
        q[B.Q_W], q[B.Q_MASKO], q[B.Q_MASKA], q[B.Q_NCH] = w, 2047, 4095, 3
        q[B.Q_AWRAP], q[B.Q_LEAD], q[B.Q_CHUNK], q[B.Q_LAT] = 3 << 22, lead, chunk, lat
        q[B.Q_DLAST], q[B.Q_ALAST], q[B.Q_RUN] = OUT_BASE, ADC_BASE, 1
        self.w = w
        self.read = 0           # halfwords the output DMA has read
        self.conv = 0           # conversions the ADC DMA has written

    def run(self, samples):
        self.read += samples * self.w
        self.conv += 3 * samples

    def room(self, kern=B):
        return kern.queue_room(self.q, OUT_BASE + (2 * self.read) % 2048, ADC_BASE + (2 * self.conv) % 4096)


def test_room_offers_the_lead_in_chunks_and_counts_what_the_dma_took_unwritten():
    for w in (1, 2):
        d = FakeDma(w=w)
        q = d.q
        assert d.room() == 16                       # nothing written yet: the whole lead
        q[B.Q_KW] = 16                              # the CPU wrote 16 samples
        d.run(5)
        assert d.room() == 0                        # 5 free: under a chunk
        d.run(3)
        assert d.room() == 8                        # 8 free: one chunk
        assert q[B.Q_UNDER] == 0
        d.run(8 + 3)                                # the DMA passed the last written sample by 3
        assert d.room() == -1 and q[B.Q_UNDER] == 3, w
        assert d.room() == -1                       # and stays an underrun
        assert q[B.Q_KW] == 19                      # written position moved past the gap


def test_past_the_end_after_drain_is_no_underrun_and_sense_stops_at_the_last_sample():
    d = FakeDma()
    q = d.q
    q[B.Q_KW] = 16
    q[B.Q_DRAIN] = 1
    d.run(40)
    assert d.room() == 0 and q[B.Q_UNDER] == 0 and q[B.Q_KW] == 16
    assert B.queue_block(q, 1000, 1000) == 16       # measured 40, written 16: the short last block
    assert B.queue_block(q, 20, 5) == 16            # all that is left fits: 5, 5, 5 and 1
    assert B.queue_block(q, 15, 5) == 15            # it does not: whole blocks first
    assert B.queue_block(q, 14, 5) == 10
    q[B.Q_KS] = 15
    assert B.queue_block(q, 20, 5) == 1             # then the short one
    q[B.Q_KS] = 16
    assert B.queue_block(q, 1000, 1000) == 0 and B.queue_block(q, 20, 5) == 0


def test_ready_waits_for_every_channel_of_a_sample_and_its_latency():
    d = FakeDma(lat=1)
    q = d.q
    q[B.Q_KW] = 100
    d.conv = 3 * 10 + 2                              # sample 10's last conversion not in yet
    d.room()
    assert B.queue_block(q, 10, 10) == 0             # samples 0..8 (latency 1: slot k+1 needed)
    assert B.queue_block(q, 9, 9) == 9
    assert B.queue_block(q, 4, 4) == 4
    assert B.queue_block(q, 1000, 1000) == 0         # a whole block or nothing: 100 were written
    assert B.queue_block(q, 20, 5) == 5              # several blocks asked, one whole one ready
    assert B.queue_block(q, 20, 3) == 9
    assert B.queue_block(q, 8, 3) == 6               # whole blocks within what was asked
    assert B.queue_block(q, 2, 3) == 0
    d.conv += 1
    d.room()
    assert B.queue_block(q, 10, 10) == 10 and B.queue_block(q, 40, 5) == 10


def test_positions_survive_ring_laps_and_counter_wraps():
    d = FakeDma(lead=600, chunk=1)
    q = d.q
    k = 0
    for _ in range(20000):                           # 2**22 samples and more, 300 at a time
        r = d.room()
        assert r >= 0
        k = (k + r) & B.K_MASK
        q[B.Q_KW] = k
        m = B.queue_block(q, 50, 50)
        while m:
            q[B.Q_KS] = (q[B.Q_KS] + m) & B.K_MASK
            m = B.queue_block(q, 50, 50)
        d.run(300)
    assert q[B.Q_UNDER] == 0
    seen = 300 * 19999                              # the last run() came after the last room()
    assert q[B.Q_DPOS] == seen & B.K_MASK and q[B.Q_APOS] == (3 * seen) % (3 << 22)


def test_queue_viper_twins_are_bit_exact():
    if sys.implementation.name != "micropython":
        assert F is None
        return
    if F is None:
        return      # a MicroPython port without viper (the 32-bit WebAssembly one): plain code runs
    x = 99
    for trial in range(200):
        a, b = FakeDma(w=1 + trial % 2, lat=trial % 2), FakeDma(w=1 + trial % 2, lat=trial % 2)
        for _ in range(30):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            steps = (x >> 8) % 40
            a.run(steps)
            b.run(steps)
            if (x >> 20) % 7 == 0:
                a.q[B.Q_DRAIN] = b.q[B.Q_DRAIN] = 1
            assert a.room(B) == b.room(F), trial
            n = (x >> 4) % 50
            blk = 1 + (x >> 9) % 12
            assert B.queue_block(a.q, n, blk) == F.queue_block(b.q, n, blk), trial
            w = (x >> 12) % 20
            a.q[B.Q_KW] = (a.q[B.Q_KW] + w) & B.K_MASK
            b.q[B.Q_KW] = (b.q[B.Q_KW] + w) & B.K_MASK
            a.q[B.Q_KS] = b.q[B.Q_KS] = (a.q[B.Q_KS] + (x >> 16) % 10) & B.K_MASK
            assert list(a.q) == list(b.q), trial


# ---- the DAC words against the calibration's own rule, every current, both polarities --------

def _conv(zero, full_code, full_uA, hw, bits=12):
    return {"zero_code": zero, "span_code": full_code - zero, "span_uA": full_uA,
            "code_max": (1 << bits) - 1, "hw_limit_uA": hw}


def _cfg_of(conv, w=1):
    cfg = array("i", [0] * B.P_LEN)
    cfg[B.P_Z], cfg[B.P_SC], cfg[B.P_SU] = conv["zero_code"], conv["span_code"], conv["span_uA"]
    cfg[B.P_HW], cfg[B.P_TOP], cfg[B.P_BASE] = conv["hw_limit_uA"], conv["code_max"], mcp4922.word(0)
    cfg[B.P_W], cfg[B.P_MASKW], cfg[B.P_MASKS] = w, 255, 127
    cfg[B.P_WORDB] = mcp4922.word(2048, mcp4922.CH_B)
    return cfg


CONVS = (
    calib.conversion(PICO),                 # the reference board: hardware limit inside the DAC range
    _conv(2048, 3848, 3960, 5000),          # limit past the DAC's top and bottom: the range clamps
    _conv(500, 2500, 2000, 5000),           # zero low: negative currents run off code 0
    _conv(3500, 4000, 500, 5000),           # zero high: positive currents run off the top
    _conv(1000, 2000, 1000, 3000),          # the limit falls exactly on a code (+/-3000 uA)
    _conv(3000, 4000, 1000, 2000),          # ... and on the negative side (-2000 uA is code 1000)
    _conv(2048, 3048, 3000, 2000),          # nearest code lies past the limit (666.7 codes): one code back
    _conv(2048, 2049, 2, 3000),             # 2 uA a code: every odd current is a tie, rounded away from zero
    _conv(2048, 2148, 1, 30),               # 1 uA per 100 codes: readback rounding at p = -1
)


def test_every_sample_gets_the_calibrated_code_and_never_passes_the_limit():
    # Every current from -6 mA to +6 mA, on several calibrations: the word is the one
    # hal.calib.ua_to_code gives (nearest code, hardware limit, DAC range), and the code
    # delivers no more than the hardware limit, whichever the polarity.
    for conv in CONVS:
        cfg = _cfg_of(conv)
        ring = array("H", [0] * 256)
        sring = array("i", [0] * 128)
        buf = array("i", [0] * 32)
        hw = conv["hw_limit_uA"]
        for start in range(-6000, 6001, 32):
            for j in range(32):
                buf[j] = start + j
            B.put_words(ring, sring, buf, 32, start & 0xFFFF, cfg)
            for j in range(32):
                k = (start & 0xFFFF) + j
                uA = start + j
                code = ring[k & 255] & 0xFFF
                assert ring[k & 255] == mcp4922.word(calib.ua_to_code(conv, uA)), (conv, uA)
                assert 0 <= code <= conv["code_max"]
                assert -hw <= calib.code_to_ua(conv, code) <= hw, (conv, uA, code)
                assert sring[k & 127] == uA


def test_readback_is_the_dac_current_rounded_toward_zero_on_both_sides():
    # Readback channel only (identity scaling: ADC code = DAC code), every code of the DAC.
    for conv in CONVS:
        cfg = array("i", [0] * B.G_LEN)
        cfg[B.G_KI], cfg[B.G_SI], cfg[B.G_KV], cfg[B.G_SV] = 1, 1, 1, 1
        cfg[B.G_KD], cfg[B.G_SD] = 2, 1                       # (code * 2 + 1) >> 1 == code
        cfg[B.G_CI], cfg[B.G_CV], cfg[B.G_CD], cfg[B.G_NCH] = 0, 1, 2, 3
        cfg[B.G_MASKA], cfg[B.G_MASKS] = 4095, 127
        cfg[B.G_Z], cfg[B.G_SU], cfg[B.G_SC] = conv["zero_code"], conv["span_uA"], conv["span_code"]
        adc = array("H", [0] * 4096)
        sring = array("i", [0] * 128)
        out = [array("i", [0] * 32) for _ in range(4)]
        for base in range(0, 4096, 32):
            for j in range(32):
                adc[(3 * j + 2) & 4095] = base + j
            B.get_sense(adc, sring, out[0], out[1], out[2], out[3], 32, 0, cfg)
            for j in range(32):
                want = calib.code_to_ua(conv, base + j)
                assert out[3][j] == want, (conv, base + j, out[3][j], want)


def test_each_channel_reads_its_own_latency():
    # Current, voltage and readback each measured 0..3 samples late: every channel takes
    # its conversion from its own slot, never a neighbour's.
    sc = calib.sense_scales(PICO)
    conv = calib.conversion(PICO)
    for lat in ((2, 0, 0), (0, 2, 0), (0, 0, 2), (3, 1, 2), (1, 3, 0)):
        adc = array("H", [0] * 512)
        sring = array("i", [0] * 128)
        n = 16
        for p in range(n + 4):
            adc[3 * p] = sc["mid"] + 10 * p            # current
            adc[3 * p + 1] = sc["mid"] - 20 * p        # voltage
            adc[3 * p + 2] = 1500 + 7 * p              # readback
        out = [array("i", [0] * n) for _ in range(4)]
        B.get_sense(adc, sring, out[0], out[1], out[2], out[3], n, 0, sense_cfg(PICO, lat=lat))
        for j in range(n):
            assert out[1][j] == calib.scaled(10 * (j + lat[0]), sc["ki"], sc["si"]), (lat, j)
            assert out[2][j] == calib.scaled(-20 * (j + lat[1]), sc["kv"], sc["sv"]), (lat, j)
            assert out[3][j] == calib.code_to_ua(conv, calib.scaled(1500 + 7 * (j + lat[2]), sc["kd"], sc["sd"])), \
                (lat, j)


def test_a_stopped_queue_offers_nothing():
    d = FakeDma()
    d.q[B.Q_RUN] = 0
    d.run(100)                                      # whatever the address registers show
    assert d.room() == 0 and d.q[B.Q_UNDER] == 0 and d.q[B.Q_KW] == 0


def test_one_sample_late_is_an_underrun_and_it_stays_reported():
    d = FakeDma()
    q = d.q
    q[B.Q_KW] = 16
    d.run(17)                                       # the DMA took one sample never written
    assert d.room() == -1 and q[B.Q_UNDER] == 1
    q[B.Q_DRAIN] = 1                                # the end comes after: still an underrun
    assert d.room() == -1


def test_ready_counts_a_single_sample():
    d = FakeDma()
    q = d.q
    q[B.Q_KW] = 16
    d.conv = 3                                      # sample 0 measured, nothing more
    d.room()
    assert B.queue_block(q, 1, 1) == 1 and B.queue_block(q, 2, 2) == 0 and B.queue_block(q, 2, 1) == 1
    q[B.Q_KS] = 1
    assert B.queue_block(q, 1, 1) == 0


# ---- the fast trip (hal.rp2 runs trip_scan from a hard timer interrupt) ------------------------

def trip_dma(lat=0, cap=10, iover=1000, vcomp=1500):
    """A FakeDma whose queue state also holds the trip's: its own ADC view at the ring's
    start, cap samples a scan, the supervisor's limits."""
    d = FakeDma(lat=lat)
    q = d.q
    q[B.Q_TALAST] = ADC_BASE
    q[B.Q_TCAP], q[B.Q_TIOVER], q[B.Q_TVCOMP] = cap, iover, vcomp
    return d


def ident_cfg(lat=(0, 0, 0)):
    """Sense scaling where uA and mV are the ADC code less 2048, on the 2048-halfword ring."""
    cfg = array("i", [0] * B.G_LEN)
    cfg[B.G_MID] = 2048
    cfg[B.G_KI], cfg[B.G_SI], cfg[B.G_KV], cfg[B.G_SV], cfg[B.G_KD], cfg[B.G_SD] = 2, 1, 2, 1, 2, 1
    cfg[B.G_CI], cfg[B.G_CV], cfg[B.G_CD], cfg[B.G_NCH] = 0, 1, 2, 3
    cfg[B.G_LI], cfg[B.G_LV], cfg[B.G_LD] = lat
    cfg[B.G_MASKA] = 2047
    return cfg


def ring(fill=0):
    return array("H", [2048 + fill] * 2048)


def put_iv(adc, k, i, v, ci=0, cv=1):
    """Sample k's current and voltage (identity scaling), in the slots its channels use."""
    adc[(3 * k + ci) & 2047] = 2048 + i
    adc[(3 * k + cv) & 2047] = 2048 + v


def tscan(d, adc, cfg, kern=B, cut=None):
    """One scan as the timer makes it: bound to d's queue state, the ADC DMA's write
    address where d's conversions put it (reg[0], as a board's register view has it)."""
    reg = array("i", [ADC_BASE + (2 * d.conv) % 4096, 0x1FFE])    # (the word after: not it)
    B.trip_limits(d.q, cfg)                 # as hal.rp2.arm_trip does (plain: once a session)
    kern.trip_bind(adc, d.q, cfg, reg, cut if cut is not None else [].clear)
    return kern.trip_scan(None)


def kernels():
    """The plain trip_scan and, where the viper emitter exists, its twin: each must pass."""
    return (B,) if F is None else (B, F)


def test_trip_codes_are_the_supervisors():
    from tes import supervisor as S
    assert (B.TRIP_OPEN, B.TRIP_OVER, B.TRIP_COMP) == (S.OPEN_CIRCUIT, S.OVERCURRENT, S.COMPLIANCE)
    assert B.TRIP_SHORT == S.SHORT
    assert (B.TRIP_HOLD_MS, B.TRIP_HOLD_uA) == (S.SIGN_HOLD_MS, S.SHORT_MIN_uA)
    assert B.TRIP_SHORT_uA * 1000 // S.SHORT_OHM == 10 * B.TRIP_SHORT_uA    # |v| * 10 < |i| is V/I < SHORT_OHM
    assert B.Q_LEN == 33 and B.Q_TRIP == B.Q_AWRAP + 1 and B.TRIP_CODES == 4096


def _scaled(c, k, s, mid=2048):
    return ((c - mid) * k + (1 << (s - 1))) >> s


def test_trip_limits_are_the_scaled_rules_for_every_code():
    # Every ADC code: outside the current interval exactly where |i| > iover, outside the
    # voltage interval exactly where |v| >= vcomp, on both scalings and at limits on, off
    # and between the codes' values (and limits no code reaches, or every code does).
    sc = calib.sense_scales(PICO)
    for cfg in (ident_cfg(), sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047)):
        mid, ki, si, kv, sv = cfg[B.G_MID], cfg[B.G_KI], cfg[B.G_SI], cfg[B.G_KV], cfg[B.G_SV]
        for iover, vcomp in ((1000, 1500), (2047, 2048), (0, 1), (4100, 29100), (5378, 30000), (5379, 33000),
                             (3, 16), (-1, 0), (100000, 100000), (1, 17), (2, 8)):
            q = array("i", [0] * B.Q_LEN)
            q[B.Q_TIOVER], q[B.Q_TVCOMP] = iover, vcomp
            B.trip_limits(q, cfg)
            for c in range(4096):
                i, v = _scaled(c, ki, si, mid), _scaled(c, kv, sv, mid)
                assert (c < q[B.Q_TILO] or c > q[B.Q_TIHI]) == (abs(i) > iover), (cfg[B.G_KI], iover, c)
                assert (c < q[B.Q_TVLO] or c > q[B.Q_TVHI]) == (abs(v) >= vcomp), (cfg[B.G_KV], vcomp, c)
                assert (c > q[B.Q_TSHI]) == (i >= B.TRIP_HOLD_uA), (cfg[B.G_KI], c)
                assert (c < q[B.Q_TSLO]) == (i <= -B.TRIP_HOLD_uA), (cfg[B.G_KI], c)
    assert sc["ki"] == 176000                   # (the reference board's scaling was among them)


def _one(kern, i, v, iover=1000, vcomp=1500, inext=None):
    """Sample 0 alone judged (sample 1, current inext or i, is measured too)."""
    d = trip_dma(iover=iover, vcomp=vcomp)
    adc = ring()
    put_iv(adc, 0, i, v)
    put_iv(adc, 1, i if inext is None else inext, 0)
    d.conv = 6
    r = tscan(d, adc, ident_cfg(), kern)
    assert d.q[B.Q_TK] == 1
    return r


def test_trip_rules_at_their_exact_boundaries_on_both_polarities():
    for kern in kernels():
        for si in (1, -1):
            for sv in (1, -1):
                # overcurrent: |i| above the limit, not at it
                assert _one(kern, si * 1000, 0) == 0
                assert _one(kern, si * 1001, 0) == B.TRIP_OVER
                assert _one(kern, si * 1001, sv * 2000) == B.TRIP_OVER        # it comes first
                # compliance: |v| at the threshold, not under it
                assert _one(kern, si * 2, sv * 1499) == 0
                assert _one(kern, si * 2, sv * 1500) == B.TRIP_COMP
                # open-circuit where |v| > 1000 |i| of the sample, compliance where equal
                assert _one(kern, si * 1, sv * 1000, vcomp=1000) == B.TRIP_COMP
                assert _one(kern, si * 1, sv * 1001, vcomp=1000) == B.TRIP_OPEN
                assert _one(kern, si * 1, sv * 1001, vcomp=1002) == 0
                assert _one(kern, 0, sv * 1500) == B.TRIP_OPEN
                assert _one(kern, 0, sv * 1, vcomp=1) == B.TRIP_OPEN            # |v| of -1 is 1
                assert _one(kern, si * 1, 0, iover=0) == B.TRIP_OVER            # |i| of -1 is 1
                assert _one(kern, si * 1500, sv * 1500, iover=1499) == B.TRIP_OVER
                assert _one(kern, si * 1499, sv * 1500, iover=1499) == B.TRIP_COMP
                # the smaller current of the sample and the next one decides
                assert _one(kern, si * 1, sv * 1000, vcomp=1000, inext=si * 2) == B.TRIP_COMP
                assert _one(kern, si * 2, sv * 1000, vcomp=1000, inext=si * 1) == B.TRIP_COMP
                assert _one(kern, si * 2, sv * 1001, vcomp=1000, inext=si * 1) == B.TRIP_OPEN
                assert _one(kern, si * 1, sv * 1001, vcomp=1000, inext=si * 2) == B.TRIP_OPEN
                assert _one(kern, si * 2, sv * 2000, vcomp=2000, inext=-si * 2) == B.TRIP_COMP
                assert _one(kern, si * 2, sv * 2000, vcomp=2000, inext=-si * 1) == B.TRIP_OPEN
                assert _one(kern, si * 1000, sv * 1500, inext=0) == B.TRIP_OPEN
                assert _one(kern, si * 1001, sv * 1500, inext=0) == B.TRIP_OVER


def _short_dma(holdn, cap=40, hold=0, run=0, iover=2000):
    d = trip_dma(iover=iover, vcomp=2010, cap=cap)
    d.q[B.Q_THOLDN], d.q[B.Q_THOLD], d.q[B.Q_TSRUN] = holdn, hold, run
    return d


def _short_scan(kern, samples, holdn, hold=0, run=0, cfg=None, iover=2000):
    """samples: (i, v) per sample from sample 0 (identity scaling unless cfg), all judged in
    one scan (one more sample measured after them). -> (code, samples judged, state)."""
    d = _short_dma(holdn, hold=hold, run=run, iover=iover)
    adc = ring()
    for k, (i, v) in enumerate(samples):
        put_iv(adc, k, i, v)
    put_iv(adc, len(samples), samples[-1][0], samples[-1][1])
    d.conv = 3 * (len(samples) + 1)
    r = tscan(d, adc, cfg or ident_cfg(), kern)
    return r, d.q[B.Q_TK], d.q[B.Q_THOLD], d.q[B.Q_TSRUN]


def test_trip_short_rule_at_its_exact_boundaries_on_both_polarities():
    # Armed by holdn samples of one sign at |i| >= 300 uA; then |i| >= 1000 uA and
    # |v| * 10 < |i| (V/I < 100 ohm) on two samples in a row. Identity scaling: i and v are
    # the code less 2048.
    for kern in kernels():
        for sg in (1, -1):
            for sv in (1, -1):
                arm = [(sg * 300, sv * 1000)] * 4           # 4 samples of one sign, a 3.3 kOhm load
                short = [(sg * 1000, sv * 99)] * 2
                assert _short_scan(kern, arm + short, 4)[:2] == (B.TRIP_SHORT, 6)
                assert _short_scan(kern, arm[1:] + short, 4)[0] == B.TRIP_SHORT   # the 1st short sample arms
                assert _short_scan(kern, arm[2:] + short, 4)[0] == 0              # one sample short of armed
                assert _short_scan(kern, arm + short[:1], 4)[0] == 0              # one short sample only
                assert _short_scan(kern, arm + [(sg * 1000, sv * 100)] * 2, 4)[0] == 0    # 100 ohm is not
                assert _short_scan(kern, arm + [(sg * 999, 0)] * 2, 4)[0] == 0    # under 1 mA: the supervisor's
                assert _short_scan(kern, arm + [(sg * 1000, 0)] * 2, 4)[0] == B.TRIP_SHORT
                assert _short_scan(kern, arm + [(sg * 1500, sv * 149)] * 2, 4)[0] == B.TRIP_SHORT
                assert _short_scan(kern, arm + [(sg * 1500, sv * 150)] * 2, 4)[0] == 0
                # |i| of 299 is no sign: the run restarts
                assert _short_scan(kern, arm + [(sg * 299, 500)] + arm[:2] + short, 4)[0] == 0
                assert _short_scan(kern, arm + [(sg * 299, 500)] + arm[:3] + short, 4)[0] == B.TRIP_SHORT
                # the other sign restarts it too (AC: the current reverses, the capacitance
                # still holds the old sign and the voltage crosses zero with current flowing)
                assert _short_scan(kern, arm + [(-sg * 300, 500)] + arm[:2] + short, 4)[0] == 0
                assert _short_scan(kern, arm + [(-sg * 1000, 0)] * 2, 4)[0] == 0
                # a non-short sample between two short ones restarts the run
                assert _short_scan(kern, arm + short[:1] + [(sg * 1000, sv * 100)] + short[:1], 4)[0] == 0
                # the rule off (holdn 0): never
                assert _short_scan(kern, arm + short * 3, 0)[0] == 0
                # the other rules come first, on the same sample
                assert _short_scan(kern, arm + [(sg * 1000, 0)] * 2, 4, cfg=None, iover=999)[0] == B.TRIP_OVER


def test_trip_short_state_carries_across_scans_and_a_gap_disarms_it():
    for kern in kernels():
        # the run of one sign and the short run continue from the last scan
        r, k, hold, run = _short_scan(kern, [(500, 2000)] * 3, 5)
        assert (r, k, hold, run) == (0, 3, 3, 0)
        assert _short_scan(kern, [(500, 2000)] * 2 + [(1000, 0)], 5, hold=3)[2:] == (5, 1)
        assert _short_scan(kern, [(1000, 0)], 5, hold=5, run=1)[0] == B.TRIP_SHORT
        assert _short_scan(kern, [(-1000, 0)], 5, hold=-5, run=1)[0] == B.TRIP_SHORT
        assert _short_scan(kern, [(-1000, 0)], 5, hold=5, run=1)[:4] == (0, 1, -1, 0)
        assert _short_scan(kern, [(1000, 0)] * 3, 5, hold=-5)[2:] == (3, 0)
        # the run of one sign stops at holdn (no overflow in a long session)
        assert _short_scan(kern, [(1500, 2000)] * 30, 5)[2:] == (5, 0)
        assert _short_scan(kern, [(-1500, 1)] * 30, 5, hold=-5)[:4] == (B.TRIP_SHORT, 30, -5, 2)
        # more pending than the cap: the newest cap samples, and the run of one sign restarts
        d = _short_dma(4, cap=4, hold=4, run=1)
        adc = ring()
        for k in range(11):
            put_iv(adc, k, 1000, 0)
        d.conv = 3 * 10
        assert tscan(d, adc, ident_cfg(), kern) == 0            # samples 5..8: hold 0 -> 4, run 0 -> 1
        assert (d.q[B.Q_TK], d.q[B.Q_THOLD], d.q[B.Q_TSRUN]) == (9, 4, 1)
        d.conv += 3
        assert tscan(d, adc, ident_cfg(), kern) == B.TRIP_SHORT


def test_trip_short_rule_spares_ac_noise_and_real_loads_and_trips_a_dc_short():
    # A series resistance and a skin R||C (the board model's 500 ohm, 8 kOhm, 2 uF) driven
    # by 10 Hz tACS at 2 mA, tRNS-like noise at 1 mA peak and DC 2 mA, at 5 kS/s, with
    # +-3 voltage codes (48 mV) of noise: no trip in 2 s; then the DC through a short (0 ohm).
    from tes.tables import SINE
    cfg = sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047)
    sc = calib.sense_scales(PICO)
    hz = 5000

    def code_of(x, k, s):       # the ADC code nearest to x (uA or mV) on this scaling
        return 2048 + ((x << s) + (k >> 1)) // k

    for kern in kernels():
        for wave in ("sine", "noise", "dc"):
            d = trip_dma(iover=2100, vcomp=29100, cap=10)
            d.q[B.Q_THOLDN] = B.TRIP_HOLD_MS * hz // 1000
            adc = array("H", [2048] * 2048)
            x = 99
            vc = 0              # skin capacitor voltage, uV
            y = 0
            for k in range(2 * hz + 20):
                if wave == "sine":
                    i = 2000 * SINE[(k * 10 * 1024 // hz) % 1024] // 32767
                elif wave == "noise":
                    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                    y = (y * 3 + (x >> 20) - 1024) // 4          # low-passed, 1 mA peak
                    i = max(-1000, min(1000, y))
                else:
                    i = min(2000, k)                            # a 0.4 s ramp, then 2 mA
                shorted = wave == "dc" and k >= 2 * hz
                # dVc/dt = i/C - Vc/(R C): uV per sample with C = 2 uF, R = 8 kOhm
                vc += i * 100 - vc // 80
                v = 0 if shorted else (i * 500 // 1000 + vc // 1000)    # mV
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                adc[(3 * k) & 2047] = code_of(i, sc["ki"], sc["si"])
                adc[(3 * k + 1) & 2047] = min(4095, max(0, code_of(v, sc["kv"], sc["sv"]) + (x >> 16) % 7 - 3))
                if k % 5 == 4:                                  # a scan every 1 ms
                    d.conv = 3 * (k + 1)
                    r = tscan(d, adc, cfg, kern)
                    if k < 2 * hz:
                        assert r == 0, (wave, k)
                    elif r:
                        break
            if wave == "dc":
                assert r == B.TRIP_SHORT and k < 2 * hz + 10, k        # within 2 ms of the onset
            else:
                assert r == 0


def test_a_liftoff_inside_a_block_is_named_open_circuit_sample_by_sample():
    # 2 mA at 1 V, then the contact goes: 1 uA at the rail. A block's peaks (2 mA, 2 V)
    # say compliance; each sample after the onset says open circuit, the one whose current
    # was converted before the onset and its voltage after it too.
    for kern in kernels():
        for mixed in (False, True):
            d = trip_dma(iover=2040, vcomp=1900, cap=5)
            adc = ring()
            for k in range(5):
                put_iv(adc, k, 2000 if k < 3 or (mixed and k == 3) else 1, 1000 if k < 3 else 2000)
            d.conv = 15
            assert tscan(d, adc, ident_cfg(), kern) == B.TRIP_OPEN, mixed
            assert d.q[B.Q_TK] == 4
    # The same on the reference board's own scaling: 2 mA into 5 kOhm, then 30 V at ~3 uA.
    sc = calib.sense_scales(PICO)
    cfg = sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047)
    for kern in kernels():
        d = trip_dma(iover=4100, vcomp=29100, cap=5)
        adc = ring()
        for k in range(6):
            i_code = sc["mid"] + (744 if k < 2 else 1)          # ~2000 uA, then ~2.7 uA
            v_code = sc["mid"] + (621 if k < 2 else 1862)        # ~10 V, then ~30 V
            adc[3 * k], adc[3 * k + 1] = i_code, v_code
        d.conv = 18
        assert tscan(d, adc, cfg, kern) == B.TRIP_OPEN


def test_trip_scales_a_sample_as_the_sense_path_does():
    # At each rule's boundary on the reference board's scaling (rounded, both polarities):
    # what get_sense makes of the same conversions decides, not the raw code.
    cfg = sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047)
    mid = calib.sense_scales(PICO)["mid"]
    sb, ib, vb, db = (array("i", [0]) for _ in range(4))
    for kern in kernels():
        for di, dv in ((1500, 0), (-1500, 0), (1, 1800), (-1, -1800), (7, 1800), (0, -1807), (3, 1801)):
            adc = ring()
            adc[0], adc[1], adc[3] = mid + di, mid + dv, mid + di
            B.get_sense(adc, array("i", [0] * 128), sb, ib, vb, db, 1, 0, cfg)
            i, v = abs(ib[0]), abs(vb[0])
            for iover, vcomp, want in ((i, 30000, 0), (i - 1, 30000, B.TRIP_OVER),
                                       (30000, v + 1, 0), (30000, v, B.TRIP_OPEN if v > 1000 * i else B.TRIP_COMP)):
                d = trip_dma(iover=iover, vcomp=vcomp)
                d.conv = 6
                assert tscan(d, adc, cfg, kern) == want, (kern, di, dv, iover, vcomp)


def test_trip_names_at_compliance_by_the_sense_paths_values():
    # Open-circuit vs compliance compares the values get_sense makes of the codes (rounded
    # as it rounds them), around |v| = 1000 |i| on the reference board's scaling.
    cfg = sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047)
    mid = calib.sense_scales(PICO)["mid"]
    sb, ib, vb, db = (array("i", [0] * 2) for _ in range(4))
    for kern in kernels():
        for di in range(0, 13):
            for dv in range(1, 2048, 5):
                for sign in (1, -1):
                    adc = ring()
                    adc[0], adc[1], adc[3] = mid + sign * di, mid + sign * dv, mid + sign * di
                    B.get_sense(adc, array("i", [0] * 128), sb, ib, vb, db, 2, 0, cfg)
                    i, v = abs(ib[0]), abs(vb[0])
                    want = B.TRIP_OPEN if v > 1000 * i else B.TRIP_COMP
                    d = trip_dma(iover=30000, vcomp=1)
                    d.conv = 6
                    assert tscan(d, adc, cfg, kern) == want, (kern, di, dv, sign)
    # The voltage's rounding at the boundary: mid 0, uA = code, mV = (code + 2) >> 2.
    cfg = ident_cfg()
    cfg[B.G_MID], cfg[B.G_KV], cfg[B.G_SV] = 0, 1, 2
    for kern in kernels():
        for vcode, want in ((4002, B.TRIP_OPEN), (4001, B.TRIP_COMP), (3998, B.TRIP_COMP)):
            adc = array("H", [0] * 2048)
            adc[0], adc[1], adc[3] = 1, vcode, 1       # 1 uA; 1001, 1000, 1000 mV
            d = trip_dma(iover=30000, vcomp=1)
            d.conv = 6
            assert tscan(d, adc, cfg, kern) == want, (kern, vcode)


def test_trip_scans_only_the_samples_measured_since_its_last_scan():
    # A sample is judged once it and the next one are measured, every channel.
    for kern in kernels():
        d = trip_dma()
        q = d.q
        adc = ring(2000)                     # a fault everywhere the scan must not look
        for k in range(6):
            put_iv(adc, k, 10, 10)
        d.conv = 15
        assert tscan(d, adc, ident_cfg(), kern) == 0
        assert q[B.Q_TK] == 4 and q[B.Q_TAPOS] == 15 and q[B.Q_TALAST] == ADC_BASE + 30
        put_iv(adc, 2, 2000, 2000)           # already scanned: not again
        assert tscan(d, adc, ident_cfg(), kern) == 0 and q[B.Q_TK] == 4
        d.conv = 17                          # sample 5's current and voltage, not its readback
        assert tscan(d, adc, ident_cfg(), kern) == 0 and q[B.Q_TK] == 4 and q[B.Q_TAPOS] == 17
        d.conv = 18
        assert tscan(d, adc, ident_cfg(), kern) == 0 and q[B.Q_TK] == 5
        d.conv = 20                          # sample 6 (the ring's fill: a fault) not complete
        assert tscan(d, adc, ident_cfg(), kern) == 0 and q[B.Q_TK] == 5
        d.conv = 21                          # it is: sample 5 is judged, not sample 6 yet
        assert tscan(d, adc, ident_cfg(), kern) == 0 and q[B.Q_TK] == 6
        d.conv = 24
        assert tscan(d, adc, ident_cfg(), kern) == B.TRIP_OVER and q[B.Q_TK] == 7


def test_trip_waits_for_the_latency_of_the_slowest_channel():
    for kern in kernels():
        d = trip_dma(lat=1)
        adc = ring()
        cfg = ident_cfg(lat=(1, 0, 1))       # the current of sample k is in slot k + 1
        adc[3 * 4] = 2048 + 1500             # sample 3's current
        d.conv = 12                          # slots 0..3 in: samples 0..1 judged (2 needs 3's slot 4)
        assert tscan(d, adc, cfg, kern) == 0 and d.q[B.Q_TK] == 2
        d.conv = 15
        assert tscan(d, adc, cfg, kern) == 0 and d.q[B.Q_TK] == 3
        d.conv = 18
        assert tscan(d, adc, cfg, kern) == B.TRIP_OVER and d.q[B.Q_TK] == 4


def test_trip_judges_at_most_cap_samples_the_newest():
    for kern in kernels():
        for ready, fault, want in ((10, 0, B.TRIP_OVER), (11, 0, 0), (11, 1, B.TRIP_OVER), (10, 10, 0),
                                   (25, 14, 0), (25, 15, B.TRIP_OVER), (25, 24, B.TRIP_OVER)):
            d = trip_dma(cap=10)
            adc = ring()
            put_iv(adc, fault, 1500, 0)
            d.conv = 3 * (ready + 1)         # and the next one measured
            assert tscan(d, adc, ident_cfg(), kern) == want, (kern, ready, fault)
            assert d.q[B.Q_TK] == ready


def test_trip_positions_survive_ring_laps_and_counter_wraps():
    for kern in kernels():
        d = trip_dma(cap=40)
        q = d.q
        k0 = (1 << 22) - 6                   # 6 samples before the counters wrap
        d.conv = 3 * k0
        q[B.Q_TK], q[B.Q_TAPOS], q[B.Q_TALAST] = k0, 3 * k0, ADC_BASE + (2 * d.conv) % 4096
        adc = ring()
        d.conv += 18                         # exactly to the wrap: the count goes back to 0
        assert tscan(d, adc, ident_cfg(), kern) == 0
        assert q[B.Q_TAPOS] == 0 and q[B.Q_TK] == (1 << 22) - 1
        d.conv -= 18
        q[B.Q_TK], q[B.Q_TAPOS], q[B.Q_TALAST] = k0, 3 * k0, ADC_BASE + (2 * d.conv) % 4096
        for lap in range(3):                 # 2048 halfwords a lap: 682.7 samples
            d.conv += 3 * 300
            assert tscan(d, adc, ident_cfg(), kern) == 0, lap
        assert q[B.Q_TK] == 893 and q[B.Q_TAPOS] == 3 * 894
        put_iv(adc, 900, 0, 1600)
        d.conv += 3 * 8
        assert tscan(d, adc, ident_cfg(), kern) == B.TRIP_OPEN and q[B.Q_TK] == 901


def test_a_trip_keeps_its_code_and_cuts_the_output_once():
    for kern in kernels():
        d = trip_dma()
        adc = ring()
        put_iv(adc, 3, 0, 1600)
        cuts = [1]
        d.conv = 9
        assert tscan(d, adc, ident_cfg(), kern, cuts.clear) == 0
        assert cuts == [1] and d.q[B.Q_TRIP] == 0            # nothing yet: no cut
        d.conv = 15
        assert tscan(d, adc, ident_cfg(), kern, cuts.clear) == B.TRIP_OPEN
        assert cuts == [] and d.q[B.Q_TRIP] == B.TRIP_OPEN
        # Stopped (the cut stops the queue): a scan does nothing, however much came in.
        d.q[B.Q_RUN] = 0
        put_iv(adc, 6, 1500, 0)
        cuts.append(1)
        saved = list(d.q)
        d.conv = 30
        assert tscan(d, adc, ident_cfg(), kern, cuts.clear) == 0
        assert list(d.q) == saved and cuts == [1]


def test_an_unbound_trip_scans_nothing():
    # Before trip_bind, hal.blocks holds a stopped queue state: a scan neither looks nor
    # changes anything.
    saved = (B._t_adc, B._t_q, B._t_cfg, B._t_reg, B._t_cut)
    try:
        B.trip_bind(*UNBOUND)
        assert UNBOUND[4] is B._no_cut and B._no_cut() is None
        assert B.trip_scan(None) == 0
        assert list(UNBOUND[1]) == [0] * B.Q_LEN
    finally:
        B.trip_bind(*saved)


def test_trip_viper_twin_is_bit_exact():
    if F is None:
        return      # CPython, or a port without viper (the 32-bit WebAssembly one)
    x = 4242
    cfgs = (sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047), sense_cfg(PICO, lat=(1, 0, 2), mask_a=2047),
            ident_cfg(), ident_cfg(lat=(0, 1, 0)))
    for trial in range(300):
        cfg = cfgs[trial % 4]
        lat = max(cfg[B.G_LI], cfg[B.G_LV], cfg[B.G_LD])
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        a, b = trip_dma(lat=lat, cap=1 + x % 40), trip_dma(lat=lat, cap=1 + x % 40)
        start = (x >> 6) % (1 << 22)         # random counter position, wraps included
        for d in (a, b):
            d.conv = 3 * start
            d.q[B.Q_TK], d.q[B.Q_TAPOS] = start, 3 * start
            d.q[B.Q_TALAST] = ADC_BASE + (2 * d.conv) % 4096
            d.q[B.Q_TIOVER] = 1000 + (x >> 3) % 5000
            d.q[B.Q_TVCOMP] = 500 + (x >> 5) % 32000
        adc = array("H", [0] * 2048)
        for _ in range(8):
            for j in range(2048):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                adc[j] = (x >> 9) & 0xFFF
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            step = (x >> 7) % 60
            a.conv += step
            b.conv += step
            ca, cb = [1], [1]
            assert tscan(a, adc, cfg, B, ca.clear) == tscan(b, adc, cfg, F, cb.clear), trial
            assert list(a.q) == list(b.q) and ca == cb, trial
            a.q[B.Q_TRIP] = b.q[B.Q_TRIP] = 0


def test_trip_viper_twin_is_bit_exact_on_the_short_rule():
    # Currents and voltages around the short rule's edges (|i| near 300 and 1000 uA, |v|
    # near |i| / 10, both signs), random arming runs, short runs, caps and gaps.
    if F is None:
        return
    x = 777
    cfgs = (ident_cfg(), sense_cfg(PICO, lat=(0, 0, 0), mask_a=2047), sense_cfg(PICO, lat=(1, 0, 2), mask_a=2047))
    for trial in range(200):
        cfg = cfgs[trial % 3]
        lat = max(cfg[B.G_LI], cfg[B.G_LV], cfg[B.G_LD])
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        holdn = x % 9
        a, b = (trip_dma(lat=lat, cap=1 + (x >> 4) % 12, iover=1900, vcomp=2000) for _ in range(2))
        start = (x >> 8) % (1 << 22)
        for d in (a, b):
            d.conv = 3 * start
            d.q[B.Q_TK], d.q[B.Q_TAPOS] = start, 3 * start
            d.q[B.Q_TALAST] = ADC_BASE + (2 * d.conv) % 4096
            d.q[B.Q_THOLDN] = holdn
            d.q[B.Q_THOLD] = ((x >> 12) % (2 * holdn + 1)) - holdn
            d.q[B.Q_TSRUN] = (x >> 16) % 2
        adc = array("H", [2048] * 2048)
        sg = 1
        for _ in range(10):
            k0 = a.q[B.Q_TK] - 4
            for k in range(k0, k0 + 682):      # whole samples, as the conversions wrap the ring
                j = (3 * k) % 2048
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                if x & 0x1C0 == 0:
                    sg = -sg                    # the sign holds for ~8 samples on average
                if cfg[B.G_KI] == 2:        # identity: codes are uA and mV
                    i = sg * (290 + (x >> 3) % 20 if x & 2 else 990 + (x >> 3) % 20)
                    v = (1 if x & 4 else -1) * (abs(i) // 10 - 2 + (x >> 9) % 5)
                else:
                    i = sg * ((x >> 3) % 400 + 100)
                    v = (x >> 9) % 13 - 6
                adc[j] = max(0, min(4095, 2048 + i))
                adc[(j + 1) % 2048] = max(0, min(4095, 2048 + v))
                adc[(j + 2) % 2048] = 2048
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            step = (x >> 7) % 40
            a.conv += step
            b.conv += step
            ca, cb = [1], [1]
            assert tscan(a, adc, cfg, B, ca.clear) == tscan(b, adc, cfg, F, cb.clear), trial
            assert list(a.q) == list(b.q) and ca == cb, trial
            a.q[B.Q_TRIP] = b.q[B.Q_TRIP] = 0


def test_trip_allocates_nothing():
    try:
        import micropython
    except ImportError:
        return      # CPython
    if not hasattr(micropython, "heap_lock"):
        return
    adc = ring()
    put_iv(adc, 30, 0, 1600)
    for kern in kernels():
        d = trip_dma(cap=40)
        cfg = ident_cfg()
        B.trip_limits(d.q, cfg)
        d.conv = 3 * 32
        cuts = iter(range(5))           # cut() takes the next: allocation-free
        kern.trip_bind(adc, d.q, cfg, array("i", [ADC_BASE + 2 * d.conv]), cuts.__next__)
        scan = kern.trip_scan
        micropython.heap_lock()
        try:
            r = scan(None)
        finally:
            micropython.heap_unlock()
        assert r == B.TRIP_OPEN and next(cuts) == 1
    for kern in kernels():              # the short rule too (armed, the scaling on a hit)
        adc = ring()
        for k in range(12):
            put_iv(adc, k, 1200, 0)
        d = _short_dma(3)
        B.trip_limits(d.q, ident_cfg())
        d.conv = 3 * 12
        cuts = iter(range(5))
        kern.trip_bind(adc, d.q, ident_cfg(), array("i", [ADC_BASE + 2 * d.conv]), cuts.__next__)
        scan = kern.trip_scan
        micropython.heap_lock()
        try:
            r = scan(None)
        finally:
            micropython.heap_unlock()
        assert r == B.TRIP_SHORT and next(cuts) == 1


def test_room_reports_a_trip_as_minus_one_minus_its_code():
    for kern in kernels():
        for code in (B.TRIP_OPEN, B.TRIP_OVER, B.TRIP_COMP):
            d = FakeDma()
            d.q[B.Q_KW] = 16
            d.q[B.Q_TRIP] = code
            d.q[B.Q_RUN] = 0                 # the trip stopped the output
            d.run(100)
            assert d.room(kern) == -1 - code and d.q[B.Q_UNDER] == 0 and d.q[B.Q_DPOS] == 0
        d = FakeDma()
        d.q[B.Q_TRIP] = B.TRIP_OVER          # a trip, but the output runs: the queue as ever
        assert d.room(kern) == 16
