"""The simulated board's electrode network (hal.simnet, issue 12): SimHal.start(fs, C).

Every driven electrode has its own contact (the board model's series R + skin R || C) into
one tissue node, the return at ground: with the skin held at a constant R (skin_ohm =
skin_ohm_floor) and DC, electrode c reads I_c*R + I_tot*R; each source saturates at the
compliance on its own electrode; faults hit one electrode by name at their exact sample;
write/sense allocate nothing; C = 1 is the single-channel model, bit for bit.

Plain asserts: the unix port (tools/mptest.py), the 32-bit WebAssembly port
(tools/wasm/mptest32.mjs) and CPython (pytest)."""
import sys
from array import array

from hal.sim import SimHal
from devrun import BOARD

MP = sys.implementation.name == "micropython"
R = 500 + 8000          # one contact at constant skin R: series + skin, ohm
VCOMP = 30000           # sim.json's compliance, mV
NOISE_MV = 40 + 16      # one voltage reading: +/-40 mV of noise and a 16 mV code
NOISE_UA = 8 + 3        # one current reading
RING = ("C1", "C5", "FC3", "CP3", "C3")     # 4x1: C3 the return
Q = 256
_S = array("i", [0] * Q * 8)
_I = array("i", [0] * Q * 8)
_V = array("i", [0] * Q * 8)
_D = array("i", [0] * Q * 8)


def board(**model):
    import json
    b = json.loads(json.dumps(BOARD))
    m = {"skin_ohm_floor": 8000}           # constant skin R unless a test says otherwise
    m.update(model)
    b["model"].update(m)
    return b


def net(C=4, fs=1000, names=RING, faults=(), **model):
    h = SimHal(board(**model), storage="build/sim-storage-test", faults=faults)
    h.electrodes(names[:C] + names[-1:])
    h.start(fs, C)
    h.enable(True)
    return h


def drive(h, levels, ms, isum, vsum, blk=1, log=None):
    """Hold the driven currents levels (uA) for ms; isum/vsum[c]: sums of the readings over
    the last half. log: (current, voltage) arrays, every sample of channel log[2]."""
    C = len(levels)
    buf = array("i", [0] * C * blk)
    for k in range(blk):
        for c in range(C):
            buf[k * C + c] = levels[c]
    n = ms * h.fs // 1000 // blk
    for c in range(C):
        isum[c] = vsum[c] = 0
    k = 0
    for b in range(n):
        h.write(buf, blk)
        m = h.sense(_S, _I, _V, _D, Q, blk)
        for j in range(m):
            for c in range(C):
                assert _S[j * C + c] == levels[c]
                if 2 * b >= n:
                    isum[c] += _I[j * C + c]
                    vsum[c] += _V[j * C + c]
            if log is not None:
                log[0][k] = _I[j * C + log[2]]
                log[1][k] = _V[j * C + log[2]]
            k += 1
        h.feed()
    return n * blk - (n // 2) * blk       # samples summed


def means(h, levels, ms=400, **kw):
    C = len(levels)
    isum = [0] * C
    vsum = [0] * C
    k = drive(h, levels, ms, isum, vsum, **kw)
    return [s // k for s in isum], [s // k for s in vsum]


def ideal(h, r=None, skip=()):
    """Each driven electrode's I_c*R_c + I_tissue*R (mV) from the currents the sources put out
    now (the DAC's codes: up to 1 uA below the set current); r: each contact's R; skip: the
    shorted electrodes, whose current bypasses the tissue."""
    cur = h.net.cur
    C = len(cur)
    r = r or [R] * C
    tot = 0
    for c in range(C):
        if c not in skip:
            tot += cur[c]
    return [cur[c] * r[c] // 1000 + (0 if c in skip else tot * R // 1000) for c in range(C)]


# A mean of 200 readings against ideal(): the ADC rounds down (up to a 16 mV code), and each
# skin capacitor settles within its rounding's dead band (+/-8 mV at these constants).
TOL_MV = 40


def test_dc_each_electrode_reads_its_contact_plus_the_return():
    for levels in ([-500, -500, -500, -500], [300, -200, 700, 100], [1200, -1200]):
        C = len(levels)
        h = net(C)
        im, vm = means(h, levels)
        want = ideal(h)
        tot = sum(levels)
        for c in range(C):
            assert abs(vm[c] - want[c]) <= TOL_MV, (levels, c, vm[c], want[c])
            assert abs(h.net.cur[c] - levels[c]) <= 1
            assert abs(want[c] - (levels[c] + tot) * R // 1000) <= (C + 1) * R // 1000 + 1
            assert abs(im[c] - levels[c]) <= 4, (levels, c, im[c])


def test_currents_sum_with_the_return_to_zero():
    levels = [900, -300, 250, -50]
    h = net(4)
    im, _ = means(h, levels)
    ret = -sum(levels)                      # the return's set current
    assert abs(sum(im) + ret) <= 4 * 4, (im, ret)


def test_unequal_contacts():
    h = net(2)
    h.net.rs[0] = 2500                      # a worse contact on C1: 2000 ohm more
    im, vm = means(h, [1000, 1000])
    want = ideal(h, [R + 2000, R])
    assert abs(vm[0] - want[0]) <= TOL_MV and abs(vm[1] - want[1]) <= TOL_MV, (vm, want)
    assert vm[0] - vm[1] > 1900, vm


def test_liftoff_on_a_driven_electrode():
    h = net(4, faults=[("liftoff", 200, "C5")])
    h.session_started()
    levels = [-500, -500, -500, -500]
    means(h, levels, 200)
    im, vm = means(h, levels, 400)
    assert abs(im[1]) <= NOISE_UA, im
    assert vm[1] <= -VCOMP + NOISE_MV, vm                 # at the compliance
    want = ideal(h)                                       # the others: the return carries ~1500
    for c in (0, 2, 3):
        assert abs(im[c] + 500) <= 4, im
        assert abs(vm[c] - want[c]) <= TOL_MV, (c, vm, want)
        assert abs(vm[c] + 2000 * R // 1000) <= 100, vm    # no longer -2500 * R
    assert h.log() == [(200, "liftoff")]


def test_liftoff_on_the_return_puts_every_electrode_at_compliance():
    for name in ("C3", None):               # no name: the return
        h = net(4, faults=[("liftoff", 100, name)])
        h.session_started()
        im, vm = means(h, [500, 800, 200, 1000], 400)
        for c in range(4):
            assert abs(im[c]) <= NOISE_UA, (name, im)
            assert vm[c] >= VCOMP - NOISE_MV, (name, vm)


def test_short_on_a_driven_electrode():
    h = net(4, faults=[("short", 100, "FC3")])
    h.session_started()
    im, vm = means(h, [-500, -500, -500, -500], 400)
    assert abs(vm[2]) <= NOISE_MV, vm                     # bridged to the return, ~0 V
    assert abs(im[2] + 500) <= 4, im                      # while its current flows
    want = ideal(h, skip=(2,))                            # the tissue carries the other three
    for c in (0, 1, 3):
        assert abs(vm[c] - want[c]) <= TOL_MV, (c, vm, want)


def test_drift_on_one_electrode():
    h = net(3, faults=[("drift", 0, "C5")], fault_drift_ohm_per_s=20000)
    h.session_started()
    _, v0 = means(h, [500, 500, 500], 300)
    _, v1 = means(h, [500, 500, 500], 600)
    assert v1[1] - v0[1] > 4000, (v0, v1)                 # 20 kohm/s at 0.5 mA: ~10 V/s
    assert abs(v1[0] - v0[0]) <= TOL_MV and abs(v1[2] - v0[2]) <= TOL_MV, (v0, v1)


def test_compliance_per_source():
    # 3 mA into one electrode of a 2x1 with the other at 0: 3 mA * 8.5 kohm twice = 51 V.
    h = net(2)
    im, vm = means(h, [3000, 0])
    assert vm[0] >= VCOMP - NOISE_MV, vm
    i_max = (VCOMP * 1000) // (2 * R)                     # both contacts in series
    assert abs(im[0] - i_max) <= 6, (im, i_max)
    assert abs(vm[1] - i_max * R // 1000) <= 12, vm       # the idle electrode sees the tissue


def test_faults_at_their_exact_sample():
    fs = 5000
    for blk in (1, 7, 5):
        h = net(4, fs, faults=[("liftoff", 13, "FC3")])
        h.session_started()
        log = (array("i", [0] * 200), array("i", [0] * 200), 2)
        drive(h, [-500, -500, -500, -500], 40, [0] * 4, [0] * 4, blk, log)
        onset = 13 * fs // 1000                           # sample 65
        for k in range(onset - 10, onset):
            assert log[0][k] < -450, (blk, k, log[0][k])
        for k in range(onset, onset + 10):
            assert abs(log[0][k]) <= NOISE_UA and log[1][k] <= -VCOMP + NOISE_MV, (blk, k, log[0][k], log[1][k])


def test_board_wide_faults_and_unknown_names():
    h = net(4, faults=[("dac-stuck", 100, None), ("liftoff", 50, "O2")])
    h.session_started()
    means(h, [-500, -500, -500, -500], 200)
    im, _ = means(h, [500, 500, 500, 500], 200)           # the DAC kept -500 everywhere
    for c in range(4):
        assert abs(im[c] + 500) <= 4, im
    assert h.log() == [(100, "dac-stuck")]                # O2 is no electrode here: ignored
    for bad in (("dac-stuck", "C3"), ("reset", "C1"), ("bogus", None)):
        try:
            h.inject(bad[0], 10, bad[1])
            raise AssertionError(bad)
        except ValueError:
            pass


def test_reset_zeroes_every_source_from_its_sample():
    from hal.sim import SimReset
    h = net(3, 2000, faults=[("reset", 10, None)])
    h.session_started()
    buf = array("i", [800] * 3 * 2)
    k = 0
    try:
        for _ in range(20):
            h.write(buf, 2)
            k += h.sense(_S, _I, _V, _D, Q, 2)
        raise AssertionError("no reset")
    except SimReset:
        pass
    assert k == 18 and h.ms == 10               # the write reaching sample 20 (10 ms) raised
    assert h.log() == [(10, "reset")] and not h.en
    assert list(h.net.code) == [h.z] * 3
    h.start(2000, 3)                            # the app boots and starts again: same network
    h.enable(True)
    im, _ = means(h, [300, 300, 300], 100)
    assert abs(im[0] - 300) <= 4, im


def test_two_electrode_session_takes_its_own_names():
    # One source: a fault naming either electrode hits the one load; another name is ignored.
    for name, hit in (("F3", True), ("Fp2", True), ("C3", False)):
        h = SimHal(board(), storage="build/sim-storage-test", faults=[("liftoff", 50, name)])
        h.electrodes(["F3", "Fp2"])
        h.start(1000)
        h.enable(True)
        h.session_started()
        isum = [0]
        vsum = [0]
        k = drive(h, [1000], 200, isum, vsum)
        assert (abs(isum[0] // k) <= NOISE_UA) == hit, (name, isum[0] // k)
        assert h.log() == ([(50, "liftoff")] if hit else []), h.log()


def test_start_checks_the_sources():
    h = SimHal(board(), storage="build/sim-storage-test")
    assert h.channels == 8
    for C in (0, 9):
        try:
            h.start(1000, C)
            raise AssertionError(C)
        except ValueError:
            pass
    b = board()
    del b["current_sources"]
    assert SimHal(b, storage="build/sim-storage-test").channels == 1


def test_zero_and_enable_off():
    h = net(3)
    means(h, [1000, 1000, 1000], 100)
    h.zero()
    assert list(h.net.code) == [h.z] * 3
    im, vm = means(h, [1000, 1000, 1000], 200)
    assert max(abs(x) for x in im) <= NOISE_UA, im
    assert max(abs(x) for x in vm) <= 200, vm           # the skin capacitors discharge


def test_engine_fill_all_through_the_network():
    from tes.engine import Engine
    import test_validate_montage as VM
    segs = [VM.mseg([VM.cur("F4", amplitude_uA=1000), VM.cur("P4", amplitude_uA=-400)],
                    duration_ms=200, ramp_up_ms=100, ramp_down_ms=100)]
    p = VM.mproto(segs, ("F4", "P4", "Cz"), "Cz", fs=1000)
    eng = Engine(p, False)
    C = eng.channels
    assert C == 2
    h = SimHal(board(), storage="build/sim-storage-test")
    h.electrodes(["F4", "P4", "Cz"])
    h.start(1000, C)
    h.enable(True)
    outs = [array("i", [0] * 4) for _ in range(C + 1)]
    buf = array("i", [0] * 4 * C)
    got = 0
    while True:
        n = eng.fill_all(outs, 1)
        if n == 0:
            break
        for c in range(C):
            buf[c] = outs[c][0]
        h.write(buf, 1)
        m = h.sense(_S, _I, _V, _D, Q, 1)
        assert m == 1
        for c in range(C):
            assert _S[c] == outs[c][0]
            assert abs(_D[c] - outs[c][0]) <= 2, (c, _D[c], outs[c][0])   # one DAC code
            assert abs(_I[c] - outs[c][0]) <= NOISE_UA + 2
        got += 1
    assert got == 400


def test_heap_locked_write_and_sense():
    if not MP:
        return
    import micropython
    h = net(4, 5000, faults=[("liftoff", 5, "C1"), ("short", 6, "C5"), ("drift", 7, None),
                             ("adc-stuck", 9, None), ("liftoff", 8, "C3"), ("short", 8, "O2")])
    h.start_watchdog(1000)
    h.session_started()
    buf = array("i", [700] * 4 * 5)
    h.write(buf, 5)
    micropython.heap_lock()
    try:
        for _ in range(40):
            h.write(buf, 5)
            h.sense(_S, _I, _V, _D, Q, 5)
            h.feed()
        h.zero()
    finally:
        micropython.heap_unlock()
    assert len(h.log()) == 5


def digest(h, buf, n, blk):
    """Every sense value of buf[0:n] written in blocks of blk, folded into one int."""
    d = 0
    for k in range(0, n, blk):
        h.write(buf[k:k + blk], blk)
        m = h.sense(_S, _I, _V, _D, Q, blk)
        for j in range(m):
            for x in (_S[j], _I[j], _V[j], _D[j]):
                d = (d * 31 + x) % 1000000007
        h.feed()
    return d


def single_digest(h, inject=None):
    fs = 2000
    buf = array("i", [(k * 37) % 4000 - 2000 if k % 500 < 250 else 1500 for k in range(2000)])
    (inject or h.inject)("liftoff", 600)
    (inject or h.inject)("short", 800)
    h.start(fs)
    h.enable(True)
    return digest(h, buf, 2000, 4)


# single_digest of firmware/hal/sim.py as of 2cb66a9 (before the network), on any port.
GOLD = 329164744


def test_one_channel_is_the_single_model_bit_for_bit():
    h = SimHal(board(skin_ohm_floor=3000), storage="build/sim-storage-test")
    assert single_digest(h) == GOLD
    h = SimHal(board(skin_ohm_floor=3000), storage="build/sim-storage-test")
    h.electrodes(["A", "B"])
    assert single_digest(h, lambda kind, at: h.inject(kind, at, "B")) == GOLD   # named: the one contact
    # A session of several electrodes, then one of one: the single model again.
    h = net(3)
    means(h, [100, 100, 100], 20)
    h.start(1000)
    assert h.net is None
    h.enable(True)
    isum = [0]
    vsum = [0]
    k = drive(h, [1000], 300, isum, vsum)
    assert abs(isum[0] // k - 1000) <= 4
    assert abs(vsum[0] // k - 1000 * R // 1000) <= 12      # one contact: the single model


def test_simmain_takes_electrode_fault_specs():
    # CPython only (it starts the unix port): simmain.py's --fault KIND[:ELECTRODE]@SECONDS.
    if MP:
        return
    import os
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    mp = os.environ.get("MICROPYTHON") or os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(mp):
        mp = "micropython"

    def sim(*specs):
        args = [mp, here + "/../../firmware/simmain.py", "--board", here + "/../../boards/sim.json",
                "--storage", "build/sim-storage-simmain"]
        for s in specs:
            args += ["--fault", s]
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    r = sim("liftoff:C3@1.5", "short:F4@2", "drift@3", "stall@9")
    assert r.returncode == 0, r.stderr               # no host (stdin at its end): boots and ends
    for spec, why in (("dac-stuck:C3@1", b"takes no electrode"), ("lift:C3@1", b"unknown fault")):
        r = sim(spec)
        assert r.returncode == 3 and why in r.stderr, (spec, r.returncode, r.stderr)


def run_protocol(canon, seconds, last_ms=1000):
    """The first seconds of a multi protocol through Engine.fill_all and the network, as the
    control path plays it (1 ms blocks); per driven electrode over the last last_ms: the
    peak |voltage| (mV) and the sum of the measured currents, and the set total's sum."""
    from tes.engine import Engine
    from tes import validate as Vd
    eng = Engine(canon)
    C = eng.channels
    fs = canon["sample_rate_hz"]
    h = SimHal(board(skin_ohm_floor=3000), storage="build/sim-storage-test")
    h.electrodes(Vd.driven_names(canon) + [Vd.return_name(canon)])
    h.start(fs, C)
    h.enable(True)
    blk = h.lead
    outs = [array("i", [0] * blk) for _ in range(C + 1)]
    buf = array("i", [0] * blk * C)
    vpk = [0] * C
    isum = [0] * C
    ssum = 0
    n = seconds * fs // blk
    for b in range(n):
        got = eng.fill_all(outs, blk)
        assert got == blk
        for k in range(blk):
            for c in range(C):
                buf[k * C + c] = outs[c][k]
        h.write(buf, blk)
        m = h.sense(_S, _I, _V, _D, Q, blk)
        if (n - b) * blk * 1000 <= last_ms * fs:
            for j in range(m):
                ssum += outs[C][j]
                for c in range(C):
                    isum[c] += _I[j * C + c]
                    v = abs(_V[j * C + c])
                    if v > vpk[c]:
                        vpk[c] = v
        h.feed()
    return vpk, isum, ssum


def test_ready_protocols_through_the_network():
    # pytest only: the host reads the TOML. Equal contacts: in phase, each site reads its
    # contact plus the return's carrying twice its current (3 x its contact's drop); anti-
    # phase, the return carries ~0 and each site reads its own contact alone.
    if MP:
        return
    import os
    from tesctl import protofile
    here = os.path.dirname(os.path.abspath(__file__)) + "/../../protocols/"

    def canon(name):
        with open(here + name + ".toml", "rb") as f:
            c, problems, _ = protofile.parse(f.read(), name)
        assert c is not None, problems
        return c

    pk = {}
    for name in ("tacs-theta-inphase-2site", "tacs-theta-antiphase-2site"):
        vpk, isum, ssum = run_protocol(canon(name), 12)
        pk[name] = vpk
        assert abs(vpk[0] - vpk[1]) <= 2 * NOISE_MV, (name, vpk)
        assert abs(sum(isum) + ssum) <= 2 * 1000 * 4, (name, isum, ssum)   # 1 s, 4 uA a sample
    ratio = pk["tacs-theta-inphase-2site"][0] * 100 // pk["tacs-theta-antiphase-2site"][0]
    assert 290 <= ratio <= 310, (pk, ratio)
    # 4x1 HD-tDCS, 2 s into the plateau: the four ring electrodes alike, at -0.5 x 8.5 kohm
    # - 2 x 8.5 kohm (fresh skin; it has fallen a little over 32 s of current).
    vpk, isum, ssum = run_protocol(canon("hd-tdcs-4x1"), 32)
    assert max(vpk) - min(vpk) <= 2 * NOISE_MV, vpk
    assert 17000 <= vpk[0] <= 21250 + NOISE_MV, vpk
    assert abs(sum(isum) + ssum) <= 4 * 1000 * 4, (isum, ssum)
