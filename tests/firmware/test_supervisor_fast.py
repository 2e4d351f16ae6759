"""The viper supervisor (tes.supervisor_fast) against the plain one, block by block: the
same code and the same state array after every block, on random and extreme inputs.

Under MicroPython with the viper emitter (the unix port here, the board) both run; under
CPython and ports without viper the fast module must not import, and the plain code is
the supervisor (checked here too)."""
import sys
from array import array

from tes import supervisor as S

try:
    from tes import supervisor_fast as F
except (ImportError, SyntaxError, NameError):    # CPython: no viper; wasm port: no emitter
    F = None


class Lcg:
    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self, lo, hi):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (self.x >> 8) % (hi - lo + 1)


def make(fs, period=0, lockin=True):
    lim = {"max_current_uA": 4000, "max_charge_uC": 7200000, "max_stim_ms": 2400000}
    return S.Supervisor(lim, {"impedance_max_ohm": 20000}, fs, period_samples=period, fast=False, lockin=lockin)


LOCKIN_SLOTS = list(range(S.P_PL, S.P_DH + 1)) + list(range(S.L_PL, S.L_DH + 1)) + [S.T_LOCKIN]


def scenario(rng, kind):
    """A block generator: (set, i, v, d) per sample for one scenario."""
    base_set = rng.next(-4000, 4000)
    z = rng.next(0, 60000)

    def sample(k):
        if kind == "extreme":
            s = rng.next(-5000, 5000)
            return s, rng.next(-5200, 5200), rng.next(-32000, 32000), rng.next(-5000, 5000)
        if kind == "still":
            return base_set, 1234, -567, base_set
        if kind == "sine":
            s = (base_set * ((k * 37) % 200 - 100)) // 100
        else:
            s = base_set
        i = s + rng.next(-30, 30)
        v = i * z // 1000 + rng.next(-5, 5)
        if v > 31000:
            v = 31000
        elif v < -31000:
            v = -31000
        return s, i, v, s + rng.next(-3, 3)
    return sample


def run_pair(seed):
    rng = Lcg(seed)
    fs = (1000, 1280, 5000, 20000, 50000)[seed % 5]
    period = rng.next(0, 3) * 100
    lock = seed % 3 != 0                # a multi session's supervisors run without the lock-in
    plain = make(fs, period=period, lockin=lock)
    fast = make(fs, period=0)
    ref = make(fs, period=period, lockin=lock)      # the plain code on the same samples at offset 0
    other = make(fs, period=period, lockin=not lock)    # ...and with the lock-in the other way
    for k in range(len(fast.st)):
        fast.st[k] = plain.st[k]
    n_max = min(32, fs // 1000 or 1)
    sb = array("i", [0] * 64)
    ib = array("i", [0] * 64)
    vb = array("i", [0] * 64)
    db = array("i", [0] * 64)
    rb = [array("i", [0] * 32) for _ in range(4)]
    kind = ("extreme", "still", "sine", "dc")[seed % 4]
    sample = scenario(rng, kind)
    t = 0
    for blk in range(300):
        n = rng.next(1, n_max)
        j0 = rng.next(0, 64 - n)            # the control loop checks blocks in place
        for j in range(64):                 # samples outside the block must not count
            sb[j], ib[j], vb[j], db[j] = 4999, -5100, 31999, -4999
        for j in range(n):
            sb[j0 + j], ib[j0 + j], vb[j0 + j], db[j0 + j] = sample(t)
            for buf, ref_buf in zip((sb, ib, vb, db), rb):
                ref_buf[j] = buf[j0 + j]
            t += 1
        age = rng.next(0, 4000)
        a = S.check(plain.st, sb, ib, vb, db, n, age, j0)
        c = S.check(ref.st, rb[0], rb[1], rb[2], rb[3], n, age, 0)
        assert a == c and list(plain.st) == list(ref.st), (seed, blk, j0, a, c)
        # the lock-in changes nothing but its own sums, which stay zero without it
        assert S.check(other.st, rb[0], rb[1], rb[2], rb[3], n, age, 0) == a, (seed, blk)
        off = other.st if lock else plain.st
        assert [other.st[k] for k in range(S.STATE_LEN) if k not in LOCKIN_SLOTS] == \
            [plain.st[k] for k in range(S.STATE_LEN) if k not in LOCKIN_SLOTS], (seed, blk)
        assert not any(off[k] for k in LOCKIN_SLOTS), (seed, blk)
        if F is None:
            continue                        # no twin here: the offset check above is the test
        b = F.check(fast.st, sb, ib, vb, db, n, age, j0)
        assert a == b, (seed, blk, a, b)
        assert list(plain.st) == list(fast.st), (seed, blk, [(k, plain.st[k], fast.st[k])
                                                              for k in range(len(plain.st))
                                                              if plain.st[k] != fast.st[k]])
        if blk % 37 == 0:
            plain.window()
            ref.window()
            fast.window()
            other.window()
        if blk % 50 == 49 and period:       # no phase without the lock-in
            p, q = plain.period(), other.period()
            if p is not None:
                assert p[:7] == q[:7], (seed, blk, p, q)
                assert (p if not lock else q)[7] is None, (seed, blk)


def test_viper_twin_is_bit_exact():
    if sys.implementation.name != "micropython":
        assert F is None        # CPython never loads the viper module
    elif F is None:             # a MicroPython port without viper (WebAssembly): plain code runs
        assert make(1000).kernel is S.check
    for seed in range(1, 41):   # the plain code checks a block in place as at offset 0, everywhere
        run_pair(seed)


def test_the_supervisor_uses_the_fast_kernel_where_it_exists():
    lim = {"max_current_uA": 4000, "max_charge_uC": 7200000, "max_stim_ms": 2400000}
    sup = S.Supervisor(lim, {"impedance_max_ohm": 20000}, 5000)
    assert sup.kernel is (F.check if F is not None else S.check)
    assert sup.kernel_run is (F.check_run if F is not None else S.check_run)


def _blocks_one_by_one(st, sb, ib, vb, db, m, age, j0, b):
    """What the block path did before check_run: check() per block of b, up to a fault."""
    j = 0
    while j < m:
        n = min(b, m - j)
        code = S.check(st, sb, ib, vb, db, n, age, j0 + j)
        j += n
        if code:
            return j, code
    return j, 0


def test_check_run_is_check_block_by_block_and_its_twin_bit_exact():
    for seed in range(1, 25):
        rng = Lcg(seed * 7919)
        fs = (1000, 2000, 5000, 10000, 20000, 32000)[seed % 6]
        b = min(32, fs // 1000)
        sups = [make(fs, period=rng.next(0, 2) * 100) for _ in range(3)]
        for s in sups[1:]:
            for k in range(len(s.st)):
                s.st[k] = sups[0].st[k]
        sample = scenario(rng, ("extreme", "still", "sine", "dc")[seed % 4])
        bufs = [array("i", [0] * 160) for _ in range(4)]
        t = 0
        for rnd in range(60):
            m = rng.next(1, 4 * b + b // 2 + 1)         # up to four blocks and a short one
            j0 = rng.next(0, 160 - m)
            for j in range(160):
                bufs[0][j], bufs[1][j], bufs[2][j], bufs[3][j] = 4999, -5100, 31999, -4999
            for j in range(m):
                bufs[0][j0 + j], bufs[1][j0 + j], bufs[2][j0 + j], bufs[3][j0 + j] = sample(t)
                t += 1
            age = rng.next(0, 3500)
            want = _blocks_one_by_one(sups[0].st, *bufs, m, age, j0, b)
            r = S.check_run(sups[1].st, *bufs, m, age, j0, b)
            assert (r >> 5, r & 31) == want, (seed, rnd, r, want)
            assert list(sups[1].st) == list(sups[0].st), (seed, rnd)
            if F is not None:
                r = F.check_run(sups[2].st, *bufs, m, age, j0, b)
                assert (r >> 5, r & 31) == want, (seed, rnd, r, want)
                assert list(sups[2].st) == list(sups[0].st), (seed, rnd)
            if rnd % 11 == 0:
                for s in sups:
                    s.window()


def test_check_run_of_nothing_checks_nothing_and_a_blockless_run_is_one_block():
    mods = [S] + ([F] if F is not None else [])
    for mod in mods:
        sup = make(5000)
        before = list(sup.st)
        buf = array("i", [100] * 8)
        assert mod.check_run(sup.st, buf, buf, buf, buf, 0, 0, 0, 5) == 0
        assert list(sup.st) == before
        one = make(5000)
        want = S.check(one.st, buf, buf, buf, buf, 7, 0, 1)
        r = mod.check_run(sup.st, buf, buf, buf, buf, 7, 0, 1, 0)      # b = 0: one block of 7
        assert r == (7 << 5) | want and list(sup.st) == list(one.st)
