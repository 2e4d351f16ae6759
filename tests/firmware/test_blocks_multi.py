"""hal.blocks_multi: the per-sample conversions of a DMA-paced board with C current sources
(issue 12's two-source board, boards/pico2-mcp4922.json; its driver is hal.rp2_multi).
The plain code against hal.calib and the MCP4922 word layout, against hal.blocks with C = 1,
and the viper twin (hal.blocks_multi_fast) against the plain code, bit for bit, where the
emitter exists. Runs under the unix port, the 32-bit WebAssembly port and CPython."""
import sys
from array import array

from hal import blocks as B
from hal import blocks_multi as M
from hal import calib, mcp4922
from tes import board
from test_blocks import CONVS

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = _HERE + "/../.."

try:
    from hal import blocks_multi_fast as F
except (ImportError, SyntaxError, NameError):     # CPython or a port without viper
    F = None


def draft(**over):
    """boards/pico2-mcp4922.json (the two-source board), with keys replaced."""
    b = board.load(ROOT + "/boards/pico2-mcp4922.json")
    adc = b["sense"]["adc"]
    for k, v in over.items():
        (adc if k in adc or k == "readback_channel" else b)[k] = v
    return b


def one_source(**over):
    """The two-source board cut to one source (AIN0 current, AIN1 voltage): hal.blocks' twin."""
    return draft(current_sources=1, current_channels=[0], voltage_channels=[1], **over)


def put_of(convs, mask_w=255, mask_s=127):
    """put_words_multi's cfg straight from conversion dicts (any calibration, any C)."""
    cfg = array("i", [0] * (M.M_HEAD + M.M_SRC * len(convs)))
    cfg[M.M_C], cfg[M.M_MASKW], cfg[M.M_MASKS] = len(convs), mask_w, mask_s
    for c, conv in enumerate(convs):
        o = M.M_HEAD + M.M_SRC * c
        cfg[o + B.P_Z], cfg[o + B.P_SC], cfg[o + B.P_SU] = conv["zero_code"], conv["span_code"], conv["span_uA"]
        cfg[o + B.P_HW], cfg[o + B.P_TOP] = conv["hw_limit_uA"], conv["code_max"]
        cfg[o + B.P_BASE] = mcp4922.word(0, c & 1)
    return cfg


def rnd(x):
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


def kernels():
    return (M,) if F is None else (M, F)


def put(kern, ring, sring, buf, n, k0, cfg):
    kern.put_words_multi(ring, sring, buf, n, k0, cfg, 1, cfg[M.M_C])     # interleaved


def random_sense(x, nc, ma, ms):
    """A random ADC ring of ma + 1 conversions and a sense cfg of nc sources (the draft
    board's scales, each source's channels and latencies drawn) -> (x, adc, cfg)."""
    adc = array("H", [0] * (ma + 1))
    for h in range(ma + 1):
        x = rnd(x)
        adc[h] = (x >> 9) & 0xFFF
    g = array("i", [0] * (M.N_HEAD + M.N_SRC * nc))
    sc = calib.sense_scales(draft())
    g[B.G_MID], g[B.G_KI], g[B.G_SI], g[B.G_KV], g[B.G_SV] = sc["mid"], sc["ki"], sc["si"], sc["kv"], sc["sv"]
    g[M.N_C], g[M.N_NCH], g[M.N_MASKA], g[M.N_MASKS] = nc, 2 * nc, ma, ms
    for c in range(nc):
        x = rnd(x)
        M.set_source(g, c, 2 * c + (x & 1), 2 * c + 1 - (x & 1), (x >> 3) % 4, (x >> 6) % 4)
    return x, adc, g


def sense(kern, adc, sring, outs, n, k0, cfg):
    kern.get_sense_multi(adc, sring, outs[0], outs[1], outs[2], outs[3], n, k0, cfg)


# ---- the builder ---------------------------------------------------------------------------

def test_cfgs_of_the_draft_board():
    p, g = M.cfgs(draft(), 256, 128, 512)
    assert list(p[:M.M_HEAD]) == [2, 255, 127]
    conv = calib.conversion(draft())
    for c in range(2):
        o = M.M_HEAD + M.M_SRC * c
        assert list(p[o:o + M.M_SRC]) == [2048, 1800, 3960, 4500, 4095, mcp4922.word(0, c)]
    assert p[M.M_HEAD + M.M_SRC + B.P_BASE] & 0x8000 and not p[M.M_HEAD + B.P_BASE] & 0x8000   # A, then B
    sc = calib.sense_scales(draft())
    assert list(g[:M.N_HEAD]) == [sc["mid"], sc["ki"], sc["si"], sc["kv"], sc["sv"], 2, 4, 511, 127]
    # AIN0..3 = current 1, voltage 1, current 2, voltage 2: positions 0..3 in that order
    assert list(g[M.N_HEAD:]) == [0, 1, 2, 3]
    assert conv["span_code"] == 1800
    # The round robin converts in channel-number order, whatever order the file lists them in.
    _, g = M.cfgs(draft(current_channels=[3, 1], voltage_channels=[0, 2], latency_samples=[2, 1, 0]), 256, 128, 512)
    assert list(g[M.N_HEAD:]) == [3 + 4 * 2, 0 + 4 * 1, 1 + 4 * 2, 2 + 4 * 1]


def test_cfgs_takes_each_sources_own_calibration():
    cal2 = {"zero_code": 2040, "full_scale_code": 3900, "full_scale_uA": 4100, "load_ohm": 1000}
    b = draft(calibration=[draft()["calibration"], cal2])
    p, _ = M.cfgs(b, 256, 128, 512)
    o = M.M_HEAD + M.M_SRC
    assert list(p[o:o + 3]) == [2040, 1860, 4100] and list(p[M.M_HEAD:M.M_HEAD + 3]) == [2048, 1800, 3960]
    cal3 = {"zero_code": 2050, "full_scale_code": 3850, "full_scale_uA": 3900}
    p, _ = M.cfgs(b, 256, 128, 512, cals=[cal3, cal3])      # stored calibrations win
    assert list(p[o:o + 3]) == [2050, 1800, 3900] == list(p[M.M_HEAD:M.M_HEAD + 3])


def test_cfgs_refuses_what_the_kernels_cannot_do():
    bad = ((draft(readback_channel=2), (256, 128, 512)),       # no fifth input: a readback is a mistake
           (draft(current_sources=3, current_channels=[0, 2, 4], voltage_channels=[1, 3, 5]), (256, 128, 512)),
           (draft(current_channels=[0]), (256, 128, 512)),
           (draft(voltage_channels=[1, 2]), (256, 128, 512)),    # AIN2 twice
           (draft(), (250, 128, 512)), (draft(), (256, 100, 512)), (draft(), (256, 128, 0)))
    for b, rings in bad:
        try:
            M.cfgs(b, *rings)
        except ValueError:
            continue
        raise AssertionError((b["sense"]["adc"], rings))


# ---- put_words_multi -----------------------------------------------------------------------

def test_words_are_each_sources_calibrated_code_on_its_own_channel():
    # Every current from -6 mA to +6 mA on source 0 and its negative on source 1, pairs of
    # calibrations (hardware limit inside the DAC range, past it, limits on a code, ties):
    # each word is hal.calib.ua_to_code of its own calibration with its own channel bit, and
    # no code delivers more than the hardware limit.
    for t in range(len(CONVS)):
        convs = (CONVS[t], CONVS[(t + 3) % len(CONVS)])
        cfg = put_of(convs)
        ring = array("H", [0] * 256)
        sring = array("i", [0] * 128)
        buf = array("i", [0] * 64)
        for start in range(-6000, 6001, 32):
            for j in range(32):
                buf[2 * j], buf[2 * j + 1] = start + j, -start - j
            k0 = (start + 6000) & 0xFFFF       # wraps both rings
            M.put_words_multi(ring, sring, buf, 32, k0, cfg, 1, cfg[M.M_C])
            for j in range(64):
                c = j & 1
                x = 2 * k0 + j
                conv = convs[c]
                code = calib.ua_to_code(conv, buf[j])
                assert ring[x & 255] == mcp4922.word(code, c), (t, c, buf[j])
                assert 0 <= code <= conv["code_max"]
                assert -conv["hw_limit_uA"] <= calib.code_to_ua(conv, code) <= conv["hw_limit_uA"]
                assert sring[x & 127] == buf[j]


def test_one_source_writes_what_hal_blocks_writes():
    # C = 1 on the draft board's calibration and on others: the same words and set ring as
    # hal.blocks.put_words (W = 1), currents past the limit and the DAC range, rings wrapped.
    x = 31
    for conv in (calib.conversion(one_source()),) + CONVS:
        pc = put_of((conv,))
        bc = array("i", [0] * B.P_LEN)
        bc[B.P_Z], bc[B.P_SC], bc[B.P_SU] = conv["zero_code"], conv["span_code"], conv["span_uA"]
        bc[B.P_HW], bc[B.P_TOP], bc[B.P_BASE] = conv["hw_limit_uA"], conv["code_max"], mcp4922.word(0)
        bc[B.P_W], bc[B.P_MASKW], bc[B.P_MASKS] = 1, 255, 127
        for _ in range(10):
            buf = array("i", [0] * 100)
            for j in range(100):
                x = rnd(x)
                buf[j] = (x >> 8) % 13001 - 6500
            k0 = (x >> 4) % (1 << 22)
            ra, rb = array("H", [0] * 256), array("H", [1] * 256)
            sa, sb = array("i", [0] * 128), array("i", [1] * 128)
            B.put_words(ra, sa, buf, 100, k0, bc)
            M.put_words_multi(rb, sb, buf, 100, k0, pc, 1, pc[M.M_C])
            for h in range(256):                  # only the slots written (100 of 256)
                if ((h - k0) & 255) < 100:
                    assert ra[h] == rb[h], (conv, h)
            for h in range(128):
                if ((h - k0) & 127) < 100:
                    assert sa[h] == sb[h], (conv, h)
    p, _ = M.cfgs(one_source(), 256, 128, 512)
    assert list(p) == list(put_of((calib.conversion(one_source()),)))    # the builder agrees


# ---- get_sense_multi -----------------------------------------------------------------------

def test_each_source_reads_its_own_channels_at_their_latency():
    # Every conversion a distinct code (position and slot): each source's current and voltage
    # come from its own position of the slot its latency names, never a neighbour's; set and
    # "readback" are the set ring's value of that source and sample.
    sc = calib.sense_scales(draft())
    for cur, vol, lat in (([0, 2], [1, 3], [0, 0, 0]), ([0, 2], [1, 3], [1, 0, 0]),
                          ([0, 2], [1, 3], [0, 2, 0]), ([1, 3], [0, 2], [3, 1, 0]), ([0, 1], [2, 3], [2, 3, 0])):
        b = draft(current_channels=cur, voltage_channels=vol, latency_samples=lat)
        _, cfg = M.cfgs(b, 256, 128, 512)
        order = sorted(cur + vol)
        adc = array("H", [0] * 512)
        for slot in range(128):
            for p in range(4):
                adc[(4 * slot + p) & 511] = 1000 + 8 * p + slot     # < 4096, distinct
        sring = array("i", [0] * 128)
        for x in range(128):
            sring[x] = 7 * x - 300
        n, k0 = 40, 110                                            # wraps the set and ADC rings
        outs = [array("i", [0] * 2 * n) for _ in range(4)]
        sense(M, adc, sring, outs, n, k0, cfg)
        for j in range(n):
            k = k0 + j
            for c in range(2):
                i = 2 * j + c
                ci, cv = order.index(cur[c]), order.index(vol[c])
                wi = 1000 + 8 * ci + ((k + lat[0]) & 127)
                wv = 1000 + 8 * cv + ((k + lat[1]) & 127)
                assert outs[1][i] == calib.scaled(wi - sc["mid"], sc["ki"], sc["si"]), (cur, lat, j, c)
                assert outs[2][i] == calib.scaled(wv - sc["mid"], sc["kv"], sc["sv"]), (cur, lat, j, c)
                assert outs[0][i] == outs[3][i] == 7 * ((2 * k + c) & 127) - 300, (j, c)


def test_one_source_senses_what_hal_blocks_senses():
    # C = 1: hal.blocks.get_sense over a 2-conversion round robin gives the same set, current
    # and voltage (its readback, pointed at the current's slot, is not compared: there is none).
    x = 5
    for lat in ((0, 0), (1, 0), (0, 2), (3, 1)):
        _, mc = M.cfgs(one_source(latency_samples=[lat[0], lat[1], 0]), 256, 128, 512)
        sc = calib.sense_scales(one_source())
        bc = array("i", [0] * B.G_LEN)
        bc[B.G_MID], bc[B.G_KI], bc[B.G_SI], bc[B.G_KV], bc[B.G_SV] = sc["mid"], sc["ki"], sc["si"], sc["kv"], sc["sv"]
        bc[B.G_KD], bc[B.G_SD], bc[B.G_SU], bc[B.G_SC] = 1, 1, 1, 1
        bc[B.G_CI], bc[B.G_CV], bc[B.G_CD], bc[B.G_NCH] = 0, 1, 0, 2
        bc[B.G_LI], bc[B.G_LV], bc[B.G_LD] = lat[0], lat[1], lat[0]
        bc[B.G_MASKA], bc[B.G_MASKS] = 511, 127
        for _ in range(5):
            adc = array("H", [0] * 512)
            sring = array("i", [0] * 128)
            for h in range(512):
                x = rnd(x)
                adc[h] = (x >> 7) & 0xFFF
            for h in range(128):
                x = rnd(x)
                sring[h] = (x >> 5) % 9001 - 4500
            k0 = (x >> 3) % (1 << 22)
            a = [array("i", [0] * 90) for _ in range(4)]
            m = [array("i", [0] * 90) for _ in range(4)]
            B.get_sense(adc, sring, a[0], a[1], a[2], a[3], 90, k0, bc)
            sense(M, adc, sring, m, 90, k0, mc)
            assert list(a[0]) == list(m[0]) == list(m[3]), lat
            assert list(a[1]) == list(m[1]) and list(a[2]) == list(m[2]), lat
            assert len(set(m[1])) > 10                  # (the inputs do vary)


# ---- the viper twins -----------------------------------------------------------------------

def test_viper_twins_are_bit_exact():
    if sys.implementation.name != "micropython":
        assert F is None
        return
    if F is None:
        return      # a MicroPython port without viper (the 32-bit WebAssembly one): plain code runs
    x = 2026
    for trial in range(60):
        nc = 1 + trial % 3
        convs = [CONVS[(trial + 2 * c) % len(CONVS)] for c in range(nc)]
        x = rnd(x)
        mw, ms, ma = (255, 511, 1023)[x % 3], (127, 255)[(x >> 3) & 1], (511, 2047)[(x >> 5) & 1]
        cfg = put_of(convs, mw, ms)
        n = 1 + (x >> 7) % 40
        k0 = (x >> 2) % (1 << 22)
        if trial % 5 == 0:
            k0 = (1 << 22) - 1 - n // 2                       # the sample counter's last values
        buf = array("i", [0] * (n * nc))
        for j in range(n * nc):
            x = rnd(x)
            buf[j] = (x >> 8) % 13001 - 6500
        ring_a, ring_b = array("H", [0] * (mw + 1)), array("H", [0] * (mw + 1))
        s_a, s_b = array("i", [0] * (ms + 1)), array("i", [0] * (ms + 1))
        M.put_words_multi(ring_a, s_a, buf, n, k0, cfg, 1, nc)
        F.put_words_multi(ring_b, s_b, buf, n, k0, cfg, 1, nc)
        assert list(ring_a) == list(ring_b) and list(s_a) == list(s_b), trial
        x, adc, g = random_sense(x, nc, ma, ms)
        oa = [array("i", [0] * (n * nc)) for _ in range(4)]
        ob = [array("i", [-1] * (n * nc)) for _ in range(4)]
        sense(M, adc, s_a, oa, n, k0, g)
        sense(F, adc, s_a, ob, n, k0, g)
        for a, b in zip(oa, ob):
            assert list(a) == list(b), trial


def test_put_of_one_block_per_source_is_put_of_the_interleaved():
    # The multi block loop's write (hal.rp2_multi write_blocks): each source's samples in a
    # block of its own (cs = the stride, st = 1) give the words and set ring the interleaved
    # layout gives (cs = 1, st = C); the plain kernel and the viper twin.
    x = 99
    for trial in range(30):
        nc = 1 + trial % 3
        convs = [CONVS[(trial + c) % len(CONVS)] for c in range(nc)]
        cfg = put_of(convs, 255, 127)
        x = rnd(x)
        n = 1 + (x >> 7) % 40
        k0 = (x >> 2) % (1 << 22)
        stride = 48
        flat = array("i", [7777] * (stride * nc))
        inter = array("i", [0] * (n * nc))
        for c in range(nc):
            for j in range(n):
                x = rnd(x)
                flat[c * stride + j] = inter[j * nc + c] = (x >> 8) % 13001 - 6500
        for kern in kernels():
            ra, rb = array("H", [0] * 256), array("H", [0] * 256)
            sa, sb = array("i", [0] * 128), array("i", [0] * 128)
            kern.put_words_multi(ra, sa, inter, n, k0, cfg, 1, nc)
            kern.put_words_multi(rb, sb, flat, n, k0, cfg, stride, 1)
            assert list(ra) == list(rb) and list(sa) == list(sb), (kern, trial)
            assert any(ra), trial


def test_sense_split_is_sense_then_split():
    # get_sense_split, the two-source driver's one call a pass, against what every other HAL
    # and this one before gave: get_sense_multi's interleaved samples split per electrode by
    # tes.multi.split (the return minus the sums, its voltage its current); the plain kernel
    # (a board runs its machine code, hal.split_thumb, held to it in tests/hil/
    # test_split_thumb.py), heap locked, nothing written past n samples.
    from tes import multi
    try:
        import micropython
        lock = hasattr(micropython, "heap_lock")
    except ImportError:
        lock = False
    x = 4242
    for trial in range(40):
        nc = 1 + trial % 4
        x = rnd(x)
        ms, ma = (127, 255)[(x >> 3) & 1], (511, 2047)[(x >> 5) & 1]
        n = 1 + (x >> 7) % 40
        k0 = (x >> 2) % (1 << 22)
        if trial % 5 == 0:
            k0 = (1 << 22) - 1 - n // 2                       # the sample counter's last values
        sring = array("i", [0] * (ms + 1))
        for j in range(ms + 1):
            x = rnd(x)
            sring[j] = (x >> 8) % 13001 - 6500
        x, adc, g = random_sense(x, nc, ma, ms)
        inter = [array("i", [0] * (n * nc)) for _ in range(4)]
        M.get_sense_multi(adc, sring, inter[0], inter[1], inter[2], inter[3], n, k0, g)
        want = [[array("i", [5] * (n + 2)) for _ in range(nc + 1)] for _ in range(4)]
        multi.split(inter[0], inter[1], inter[2], inter[3], want[0], want[1], want[2], want[3], n, nc)
        got = [[array("i", [5] * (n + 2)) for _ in range(nc + 1)] for _ in range(4)]
        if lock:
            micropython.heap_lock()
        try:
            M.get_sense_split(adc, sring, got[0], got[1], got[2], got[3], n, k0, g)
        finally:
            if lock:
                micropython.heap_unlock()
        assert [[list(a) for a in b] for b in got] == [[list(a) for a in b] for b in want], trial


# ---- no allocation, ints within 2**30 ------------------------------------------------------

def sense_2048(nc):
    """(the draft board's sense scales, a sense cfg of nc sources over a 2048-halfword ADC
    ring and a 1024-value set ring, latency 4)."""
    g = array("i", [0] * (M.N_HEAD + M.N_SRC * nc))
    sc = calib.sense_scales(draft())
    g[B.G_MID], g[B.G_KI], g[B.G_SI], g[B.G_KV], g[B.G_SV] = sc["mid"], sc["ki"], sc["si"], sc["kv"], sc["sv"]
    g[M.N_C], g[M.N_NCH], g[M.N_MASKA], g[M.N_MASKS] = nc, 2 * nc, 2047, 1023
    for c in range(nc):
        M.set_source(g, c, 2 * c, 2 * c + 1, 4, 4)
    return sc, g


def test_the_kernels_allocate_nothing_at_the_largest_counts():
    # The heap locked around each kernel (the block path runs so), at the sample counter's
    # top and MAX_SOURCES sources: the largest index any kernel computes. On the 32-bit port
    # an int past 2**30 would be a big int and allocate, failing here.
    try:
        import micropython
    except ImportError:
        return      # CPython
    if not hasattr(micropython, "heap_lock"):
        return
    nc = M.MAX_SOURCES
    n = 32
    k0 = B.K_MASK
    cfg = put_of([CONVS[c % len(CONVS)] for c in range(nc)], 1023, 1023)
    buf = array("i", [(j * 611) % 12001 - 6000 for j in range(n * nc)])
    ring, sring = array("H", [0] * 1024), array("i", [0] * 1024)
    sc, g = sense_2048(nc)
    adc = array("H", [4095] * 2048)
    outs = [array("i", [0] * (n * nc)) for _ in range(4)]
    for kern in kernels():
        pw, gs = kern.put_words_multi, kern.get_sense_multi
        micropython.heap_lock()
        try:
            pw(ring, sring, buf, n, k0, cfg, n, 1)         # one block per source: the largest index
            pw(ring, sring, buf, n, k0, cfg, 1, nc)         # interleaved
            gs(adc, sring, outs[0], outs[1], outs[2], outs[3], n, k0, g)
        finally:
            micropython.heap_unlock()
        assert sring[(k0 * nc) & 1023] == buf[0] and outs[0][n * nc - 1] == buf[n * nc - 1]
        assert outs[1][0] == calib.scaled(4095 - sc["mid"], sc["ki"], sc["si"])
    assert 2 * nc * (k0 + n + 4) + 2 * nc < 1 << 30


def test_the_thumb_kernels_frames_are_filled_without_allocating():
    # hal.rp2_multi binds hal.split_thumb's and hal.put_thumb's frames at a session's first
    # sense and write, inside the heap-locked block loop: split_frame and put_frame with the
    # port's own uctypes.addressof (the frames' contents are checked on rp2040js,
    # tests/hil/test_split_thumb.py and test_put_thumb.py)
    try:
        import micropython
        import uctypes
    except ImportError:
        return      # CPython
    if not hasattr(micropython, "heap_lock"):
        return
    nc = 2
    cfg = put_of([CONVS[c] for c in range(nc)], 1023, 1023)
    sc, g = sense_2048(nc)
    flat = array("i", [0] * (4 * 40 * (nc + 1)))
    mv = memoryview(flat)
    bufs = [[mv[(4 * e + t) * 40:(4 * e + t + 1) * 40] for e in range(nc + 1)] for t in range(4)]
    sf = array("i", [0] * (M.SF_LEN + M.SF_REC * (nc + 1)))
    pf = array("i", [0] * (M.PF_LEN + M.PF_REC * nc))
    adc, ring, sring = array("H", [0] * 2048), array("H", [0] * 1024), array("i", [0] * 1024)
    at = uctypes.addressof
    micropython.heap_lock()
    try:
        M.split_frame(sf, g, at(adc), at(sring), bufs[0], bufs[1], bufs[2], bufs[3], at)
        M.put_frame(pf, cfg, at(ring), at(sring), at(flat), 64)
    finally:
        micropython.heap_unlock()
    base = at(flat)     # (a 64-bit port's addresses do not fit the frame's words: mod 2**32)
    assert [(sf[M.SF_LEN + M.SF_REC * e + t] - base) & 0xFFFFFFFF for e in range(nc + 1) for t in range(4)] == \
        [4 * 40 * (4 * e + t) for e in range(nc + 1) for t in range(4)]
    assert sf[M.SF_HI] == 1 << (sc["si"] - 1) and sf[M.SF_NCH] == 2 * nc
    o = M.M_HEAD + M.M_SRC          # source 1's conversion: its lim is hw * sc
    assert (pf[M.PF_BUF] - base) & 0xFFFFFFFF == 0 and pf[M.PF_CS] == 256
    assert pf[M.PF_LEN + M.PF_REC + 7] == cfg[o + B.P_HW] * cfg[o + B.P_SC]



# ---- the fast trip over C sources ------------------------------------------------------------
ADC_BASE = 0x20002000       # a 2048-halfword ADC ring's address (aligned to its 4096 bytes)


class TripDma:
    """The ADC DMA writing NCH = 2*C conversions a sample into a 2048-halfword ring, and a
    queue state whose trip part starts at the ring's start (as hal.rp2 arms it)."""

    def __init__(self, nc=2, lat=0, cap=10, iover=1000, vcomp=1500):
        q = self.q = array("i", [0] * M.Q_LEN_MULTI)
        q[B.Q_RUN], q[B.Q_MASKA], q[B.Q_NCH], q[B.Q_AWRAP] = 1, 4095, 2 * nc, (2 * nc) << 22
        q[B.Q_LAT], q[B.Q_TCAP], q[B.Q_TIOVER], q[B.Q_TVCOMP] = lat, cap, iover, vcomp
        q[B.Q_TALAST] = ADC_BASE
        self.conv = 0

    def scan(self, kern, adc, cfg, cut=None):
        reg = array("i", [ADC_BASE + (2 * self.conv) % 4096, 0x1FFE])
        B.trip_limits(self.q, cfg)
        kern.trip_bind_multi(adc, self.q, cfg, reg, cut if cut is not None else [].clear)
        return kern.trip_scan_multi(None)


def ident(nc=2, lat=None, pos=None):
    """get_sense_multi's cfg where uA and mV are the ADC code less 2048, on a 2048-halfword
    ring; source c's current at position 2c and voltage at 2c + 1 unless pos says."""
    g = array("i", [0] * (M.N_HEAD + M.N_SRC * nc))
    g[B.G_MID], g[B.G_KI], g[B.G_SI], g[B.G_KV], g[B.G_SV] = 2048, 2, 1, 2, 1
    g[M.N_C], g[M.N_NCH], g[M.N_MASKA], g[M.N_MASKS] = nc, 2 * nc, 2047, 127
    for c in range(nc):
        pi, pv = pos[c] if pos else (2 * c, 2 * c + 1)
        li, lv = lat[c] if lat else (0, 0)
        M.set_source(g, c, pi, pv, li, lv)
    return g


def put_iv2(adc, k, c, i, v, nc=2):
    adc[(2 * nc * k + 2 * c) & 2047] = 2048 + i
    adc[(2 * nc * k + 2 * c + 1) & 2047] = 2048 + v


def trips():
    return (M,) if F is None else (M, F)


def _judge(kern, faults, iover=1000, vcomp=1500, samples=6):
    """samples judged (the next one measured too) with faults [(k, c, i, v)]: -> (code, source)."""
    d = TripDma(iover=iover, vcomp=vcomp)
    adc = array("H", [2048] * 2048)
    for k, c, i, v in faults:
        put_iv2(adc, k, c, i, v)
    d.conv = 4 * (samples + 1)
    r = d.scan(kern, adc, ident())
    assert d.q[B.Q_TK] == samples
    return r, d.q[M.Q_TSRC]


def test_trip_multi_judges_every_source_first_in_time_then_in_source_order():
    assert M.Q_TSRC == B.Q_LEN and M.Q_THOLDS == M.Q_TSRC + 1 and M.Q_LEN_MULTI == M.Q_THOLDS + 2 * M.MAX_SOURCES
    assert M.N_SRC == 2             # the short rule's state: source c's pair at Q_THOLDS + (o - N_HEAD)
    O, C, V = B.TRIP_OVER, B.TRIP_COMP, B.TRIP_OPEN
    for kern in trips():
        for s in (1, -1):
            assert _judge(kern, [(3, 1, s * 1000, 0), (3, 0, s * 1000, s * 1499)]) == (0, 0)
            assert _judge(kern, [(3, 1, s * 1001, 0)]) == (O, 1)
            assert _judge(kern, [(4, 0, s * 1001, 0)]) == (O, 0)
            both = [(3, 0, s * 2, s * 1500), (4, 0, s * 2, 0), (3, 1, s * 1001, 0)]
            assert _judge(kern, both) == (C, 0)                              # one sample: source 0 first
            assert _judge(kern, [(2, 1, s * 1001, 0), (3, 0, 0, 1500)]) == (O, 1)          # earlier sample wins
            assert _judge(kern, [(5, 1, 0, -s * 1500)]) == (V, 1)
            assert _judge(kern, [(6, 1, 0, -s * 1500)]) == (0, 0)                           # not judged yet
            # open vs compliance: the smaller |i| of this sample and the next one, of that source
            base = [(2, 1, s * 2, s * 1001), (2, 0, 500, 0), (3, 0, 0, 0)]
            assert _judge(kern, base + [(3, 1, s * 2, 0)], vcomp=1000) == (C, 1)
            assert _judge(kern, base + [(3, 1, -s * 1, 0)], vcomp=1000) == (V, 1)
            assert _judge(kern, [(2, 0, s * 1, s * 1000), (3, 0, s * 1, 0)], vcomp=1000) == (C, 0)


def test_trip_multi_reads_each_channel_at_its_own_position_and_latency():
    # Round robin AIN0..3 = voltage 2, current 1, current 2, voltage 1; current 2 a sample late.
    pos = ((1, 3), (2, 0))
    for kern in trips():
        d = TripDma(lat=1)
        adc = array("H", [2048] * 2048)
        adc[4 * 5 + 2] = 2048 + 1200            # slot 5's current 2: sample 4's (latency 1)
        adc[4 * 3 + 0] = 2048 + 2000            # slot 3's position 0: voltage 2 of sample 3
        d.conv = 4 * 5                          # slots 0..4: samples 0..2 judged
        assert d.scan(kern, adc, ident(lat=((0, 0), (1, 0)), pos=pos)) == 0 and d.q[B.Q_TK] == 3
        d.conv = 4 * 6
        assert d.scan(kern, adc, ident(lat=((0, 0), (1, 0)), pos=pos)) == B.TRIP_OPEN
        assert d.q[M.Q_TSRC] == 1 and d.q[B.Q_TK] == 4
        d = TripDma(lat=1)
        adc[4 * 3 + 0] = 2048
        d.conv = 4 * 7
        assert d.scan(kern, adc, ident(lat=((0, 0), (1, 0)), pos=pos)) == B.TRIP_OVER and d.q[M.Q_TSRC] == 1


def test_trip_multi_short_rule_keeps_each_sources_own_runs():
    # Source 0 alternates +-1200 uA at 0 mV (AC: never armed), source 1 holds -1200 uA: armed
    # after THOLDN = 3 samples, a short at 50 mV (V/I 42 ohm) on its 2nd armed sample. Shared
    # runs would never arm (source 0's flips) or would arm source 0.
    for kern in trips():
        for v1, want in ((50, (B.TRIP_SHORT, 1)), (200, (0, 0))):
            d = TripDma(iover=2000, vcomp=2010, cap=40)
            d.q[B.Q_THOLDN] = 3
            adc = array("H", [2048] * 2048)
            for k in range(12):
                put_iv2(adc, k, 0, 1200 if k % 2 else -1200, 0)
                put_iv2(adc, k, 1, -1200, -v1)
            d.conv = 4 * 11
            assert (d.scan(kern, adc, ident()), d.q[M.Q_TSRC]) == want, (kern, v1)
            if want[0]:
                assert d.q[B.Q_TK] == 10 and d.q[M.Q_THOLDS + 2] == -3 and d.q[M.Q_THOLDS + 3] == 2
            else:
                assert d.q[M.Q_THOLDS + 2:M.Q_THOLDS + 4] == array("i", [-3, 0])
                assert d.q[M.Q_THOLDS] in (1, -1) and d.q[M.Q_THOLDS + 1] == 0
        # Samples skipped (more pending than the cap) disarm every source.
        d = TripDma(iover=2000, vcomp=2010, cap=2)
        d.q[B.Q_THOLDN] = 3
        for c in range(2):
            d.q[M.Q_THOLDS + 2 * c], d.q[M.Q_THOLDS + 2 * c + 1] = -3, 1
        adc = array("H", [2048] * 2048)
        for k in range(12):
            put_iv2(adc, k, 1, -1200, -50)
        d.conv = 4 * 5                           # 4 pending, 2 judged: a gap
        assert d.scan(kern, adc, ident()) == 0 and d.q[M.Q_THOLDS + 2] == -2 and d.q[M.Q_THOLDS] == 0
        d.conv = 4 * 6
        assert d.scan(kern, adc, ident()) == 0                          # armed now, first short sample
        d.conv = 4 * 7
        assert d.scan(kern, adc, ident()) == B.TRIP_SHORT and d.q[M.Q_TSRC] == 1


def test_trip_multi_keeps_the_queue_rules_cap_stop_and_cut():
    for kern in trips():
        for ready, fault, want in ((10, 0, B.TRIP_OVER), (11, 0, 0), (25, 14, 0), (25, 15, B.TRIP_OVER)):
            d = TripDma(cap=10)
            adc = array("H", [2048] * 2048)
            put_iv2(adc, fault, 1, 1500, 0)
            d.conv = 4 * (ready + 1)
            assert d.scan(kern, adc, ident()) == want and d.q[B.Q_TK] == ready, (kern, ready, fault)
        d = TripDma()
        adc = array("H", [2048] * 2048)
        put_iv2(adc, 3, 1, 0, 1600)
        cuts = [1]
        d.conv = 4 * 4
        assert d.scan(kern, adc, ident(), cuts.clear) == 0 and cuts == [1] and d.q[B.Q_TRIP] == 0
        d.conv = 4 * 5
        assert d.scan(kern, adc, ident(), cuts.clear) == B.TRIP_OPEN and cuts == [] and d.q[B.Q_TRIP] == B.TRIP_OPEN
        d.q[B.Q_RUN] = 0                        # stopped: nothing looked at, nothing changed
        saved = list(d.q)
        cuts.append(1)
        d.conv = 4 * 30
        assert d.scan(kern, adc, ident(), cuts.clear) == 0 and list(d.q) == saved and cuts == [1]
    saved = (M._t_adc, M._t_q, M._t_cfg, M._t_reg, M._t_cut)
    try:
        M.trip_bind_multi(*([[0] * M.Q_LEN_MULTI] * 4 + [M._no_cut]))
        assert M.trip_scan_multi(None) == 0 and M._no_cut() is None
    finally:
        M.trip_bind_multi(*saved)


def edge_iv(x, sg):
    """-> (x, i, v, sg): a sample around the trip's edges (ADC codes less 2048): mostly |i| near
    300 or 1000 with |v| near |i| / 10 and a sign that holds ~8 samples, sometimes anything."""
    x = rnd(x)
    if x & 0xE0 == 0:
        sg = -sg
    if x & 0x300 == 0:
        i = (x >> 11) % 3001 - 1500 if x & 8 else (x >> 11) % 3 - 1    # anything, or ~0
        v = (x >> 13) % 3001 - 1500
    else:
        i = sg * (290 + (x >> 11) % 20 if x & 2 else 990 + (x >> 11) % 30)
        v = (1 if x & 4 else -1) * (abs(i) // 10 - 2 + (x >> 14) % 5)
    return x, i, v, sg


def fill_edges(adc, x, nc):
    """The whole ring, conversions 2c and 2c + 1 of a sample being source c's i and v."""
    sgs = [1] * nc
    for h in range(0, 2048, 2):
        c = (h >> 1) % nc
        x, i, v, sgs[c] = edge_iv(x, sgs[c])
        adc[h], adc[h + 1] = 2048 + i, 2048 + v
    return x


def test_trip_multi_with_one_source_is_hal_blocks_trip():
    # C = 1 over a 2-conversion round robin: the same codes, positions and short-rule state as
    # hal.blocks.trip_scan on random conversions around every rule's edges, caps (gaps),
    # counter positions, latencies and arming runs.
    x = 4321
    codes = set()
    for trial in range(150):
        x = rnd(x)
        lat = ((x >> 3) % 3, (x >> 5) % 3)
        g = ident(1, lat=(lat,))
        bc = array("i", [0] * B.G_LEN)
        for f in (B.G_MID, B.G_KI, B.G_SI, B.G_KV, B.G_SV):
            bc[f] = g[f]
        bc[B.G_CI], bc[B.G_CV], bc[B.G_CD], bc[B.G_NCH], bc[B.G_MASKA] = 0, 1, 0, 2, 2047
        bc[B.G_LI], bc[B.G_LV], bc[B.G_LD] = lat[0], lat[1], 0
        a, b = TripDma(1, max(lat), 1 + x % 30, 1000 + (x >> 7) % 900, 900 + (x >> 9) % 1100), None
        b = TripDma(1, max(lat), a.q[B.Q_TCAP], a.q[B.Q_TIOVER], a.q[B.Q_TVCOMP])
        start = (x >> 4) % (1 << 22)
        holdn = (x >> 11) % 6
        for d in (a, b):
            d.conv = 2 * start
            d.q[B.Q_TK], d.q[B.Q_TAPOS], d.q[B.Q_TALAST] = start, 2 * start, ADC_BASE + (2 * d.conv) % 4096
            d.q[B.Q_THOLDN] = holdn
        adc = array("H", [0] * 2048)
        seen = set()
        for _ in range(8):
            x = fill_edges(adc, x, 1)
            x = rnd(x)
            a.conv += (x >> 7) % 50
            b.conv = a.conv
            r = a.scan(M, adc, g)
            reg = array("i", [ADC_BASE + (2 * b.conv) % 4096])
            B.trip_limits(b.q, bc)
            B.trip_bind(adc, b.q, bc, reg, [].clear)
            assert B.trip_scan(None) == r, trial
            seen.add(r)
            assert list(a.q[:B.Q_THOLD]) == list(b.q[:B.Q_THOLD]), trial       # all but the short state
            assert (a.q[M.Q_THOLDS], a.q[M.Q_THOLDS + 1]) == (b.q[B.Q_THOLD], b.q[B.Q_TSRUN]), trial
            assert a.q[B.Q_THOLD] == a.q[B.Q_TSRUN] == a.q[M.Q_TSRC] == 0
            a.q[B.Q_TRIP] = b.q[B.Q_TRIP] = 0
        codes.update(seen)
    assert codes == {0, B.TRIP_OVER, B.TRIP_COMP, B.TRIP_OPEN, B.TRIP_SHORT}, codes     # every rule reached


def test_trip_multi_viper_twin_is_bit_exact():
    if F is None:
        return      # CPython, or a port without viper
    x = 99
    codes = set()
    for trial in range(200):
        x = rnd(x)
        nc = 1 + trial % 3
        lat = [((x >> (3 + 2 * c)) % 3, (x >> (9 + 2 * c)) % 3) for c in range(nc)]
        g = ident(nc, lat=lat) if trial % 2 else M.cfgs(draft(), 256, 128, 2048)[1]
        if not trial % 2:
            nc, lat = 2, [(0, 0), (0, 0)]
        mx = max(max(p) for p in lat)
        a, b = (TripDma(nc, mx, 1 + x % 40, 500 + (x >> 5) % 5000, 300 + (x >> 8) % 32000) for _ in range(2))
        start = (x >> 6) % (1 << 22)
        for d in (a, b):
            d.conv = 2 * nc * start
            d.q[B.Q_TK], d.q[B.Q_TAPOS] = start, 2 * nc * start
            d.q[B.Q_TALAST] = ADC_BASE + (2 * d.conv) % 4096
            d.q[B.Q_THOLDN] = (x >> 12) % 6
            for c in range(nc):                 # a source's runs where an earlier scan left them
                d.q[M.Q_THOLDS + 2 * c] = (x >> (15 + c)) % 11 - 5
                d.q[M.Q_THOLDS + 2 * c + 1] = (x >> (20 + c)) % 2
        adc = array("H", [0] * 2048)
        for _ in range(6):
            if trial % 4 < 2:
                x = fill_edges(adc, x, nc)
            else:
                for h in range(2048):
                    x = rnd(x)
                    adc[h] = (x >> 9) & 0xFFF if x & 63 == 0 else 2048 + (x >> 9) % 200 - 100   # rare faults
            x = rnd(x)
            a.conv += (x >> 7) % 80
            b.conv = a.conv
            ca, cb = [1], [1]
            r = a.scan(M, adc, g, ca.clear)
            assert r == b.scan(F, adc, g, cb.clear), trial
            assert list(a.q) == list(b.q) and ca == cb, trial
            a.q[B.Q_TRIP] = b.q[B.Q_TRIP] = 0
            codes.add(r)
    assert codes == {0, B.TRIP_OVER, B.TRIP_COMP, B.TRIP_OPEN, B.TRIP_SHORT}, codes


def _locked_scan(micropython, kern, d, adc):
    """One scan of d's queue with the heap locked -> (code, cuts made)."""
    g = ident()
    B.trip_limits(d.q, g)
    cuts = iter(range(5))           # cut() takes the next: allocation-free
    kern.trip_bind_multi(adc, d.q, g, array("i", [ADC_BASE + 2 * d.conv]), cuts.__next__)
    scan = kern.trip_scan_multi
    micropython.heap_lock()
    try:
        r = scan(None)
    finally:
        micropython.heap_unlock()
    return r, next(cuts)


def test_trip_multi_allocates_nothing():
    try:
        import micropython
    except ImportError:
        return      # CPython
    if not hasattr(micropython, "heap_lock"):
        return
    for kern in trips():
        for v, want in ((1600, B.TRIP_OPEN), (0, 0)):
            d = TripDma(cap=40)
            adc = array("H", [2048] * 2048)
            put_iv2(adc, 30, 1, 0, v)
            d.conv = 4 * 32
            assert _locked_scan(micropython, kern, d, adc) == (want, 1 if want else 0) and d.q[B.Q_TK] == 31
        d = TripDma(iover=2000, vcomp=2010, cap=40)      # the short rule, armed, scaling on a hit
        d.q[B.Q_THOLDN] = 3
        adc = array("H", [2048] * 2048)
        for k in range(12):
            put_iv2(adc, k, 1, 1200, 50)
        d.conv = 4 * 12
        assert _locked_scan(micropython, kern, d, adc) == (B.TRIP_SHORT, 1) and d.q[M.Q_TSRC] == 1


def test_hal_blocks_queue_keeps_two_sources_positions():
    # A two-source driver reuses hal.blocks.queue_room / queue_block unchanged: 2 words and
    # 4 conversions a sample (Q_W = 2, Q_NCH = 4). Positions through ring laps and the
    # counters' wrap, and sense offered only samples whose 4 conversions (and latency) are in.
    OUT_BASE = 0x20001000
    q = array("i", [0] * M.Q_LEN_MULTI)
    q[B.Q_W], q[B.Q_MASKO], q[B.Q_MASKA], q[B.Q_NCH] = 2, 2047, 4095, 4
    q[B.Q_AWRAP], q[B.Q_LEAD], q[B.Q_CHUNK], q[B.Q_LAT] = 4 << 22, 600, 1, 1
    q[B.Q_DLAST], q[B.Q_ALAST], q[B.Q_RUN] = OUT_BASE, ADC_BASE, 1
    read = conv = 0
    x = 17
    for t in range(1, 20001):                    # 2**22 samples and more
        r = B.queue_room(q, OUT_BASE + (2 * read) % 2048, ADC_BASE + (2 * conv) % 4096)
        assert r >= 0
        q[B.Q_KW] = (q[B.Q_KW] + r) & B.K_MASK
        m = B.queue_block(q, 1000, 1)
        ready = B.diff(conv // 4 - 1, q[B.Q_KS])   # whole samples in, less the latency
        written = B.diff(q[B.Q_KW], q[B.Q_KS])
        assert m == max(0, min(ready, written, 1000)), (t, m, ready, written)
        q[B.Q_KS] = (q[B.Q_KS] + m) & B.K_MASK
        read = 600 * t
        x = rnd(x)
        conv = 1200 * t - (x >> 5) % 4            # a sample's conversions come one at a time
    assert q[B.Q_UNDER] == 0 and q[B.Q_DPOS] == (600 * 19999) % (2 << 22)
