"""check_run's Thumb path (tes.supervisor_fast.use_samples, hal.check_thumb on the board)
against the plain supervisor: with a kernel of the Thumb code's contract (the plain
reference, check_samples_ref) in place of the per-sample loop, the same codes and the same
state after every call, and the kernel called only where its contract holds (no lock-in,
the four buffers at equal distances). The machine code itself is held to the same reference
on rp2040js (tests/hil/test_check_thumb.py)."""
from array import array

from check_samples_ref import samples_ref
from tes import supervisor as S
from test_supervisor_fast import Lcg, make, scenario

try:
    import uctypes

    from tes import supervisor_fast as F
except (ImportError, SyntaxError, NameError):    # CPython: no viper; wasm port: no emitter
    F = None


def words_at(address, n):
    """n int32 words of memory at address (the kernel's arguments are addresses)."""
    return uctypes.struct(address, {"w": (uctypes.ARRAY | 0, uctypes.INT32 | n)}).w


class Kernel:
    """samples_ref where the Thumb code would run: the state and the samples from their
    addresses, the buffers a stride of cap words apart; counting calls."""
    def __init__(self, cap):
        self.cap = cap
        self.calls = 0

    def __call__(self, st_address, p, n):
        assert n >= 1
        self.calls += 1
        st = words_at(st_address, S.STATE_LEN)
        assert st[S.X_STRIDE] == 4 * self.cap
        samples_ref(st, words_at(p, 3 * self.cap + n), 0, self.cap, 0, n)


def layout(cap):
    flat = array("i", [0] * (4 * cap))
    mv = memoryview(flat)
    return flat, [mv[k * cap:(k + 1) * cap] for k in range(4)]


def run_session(seed):
    rng = Lcg(seed)
    fs = (1000, 5000, 20000)[seed % 3]
    plain = make(fs, period=rng.next(0, 3) * 100, lockin=False)
    fast = make(fs, period=0, lockin=False)
    for k in range(S.STATE_LEN):
        fast.st[k] = plain.st[k]
    cap = 64
    _, (sb, ib, vb, db) = layout(cap)
    kern = Kernel(cap)
    sample = scenario(rng, ("extreme", "still", "sine", "dc")[seed % 4])
    t = 0
    F.use_samples(kern)
    try:
        for call in range(120):
            m = rng.next(1, 40)
            j0 = rng.next(0, cap - m)
            b = rng.next(1, 12)
            for j in range(cap):
                sb[j], ib[j], vb[j], db[j] = 4999, -5100, 31999, -4999
            for j in range(m):
                sb[j0 + j], ib[j0 + j], vb[j0 + j], db[j0 + j] = sample(t)
                t += 1
            age = rng.next(0, 4000)
            a = S.check_run(plain.st, sb, ib, vb, db, m, age, j0, b)
            before = kern.calls
            c = F.check_run(fast.st, sb, ib, vb, db, m, age, j0, b)
            assert a == c, (seed, call, a, c)
            assert kern.calls - before == ((a >> 5) + b - 1) // b, (seed, call)     # one a block
            diff = [(k, plain.st[k], fast.st[k]) for k in range(S.X_STRIDE) if plain.st[k] != fast.st[k]]
            assert not diff, (seed, call, diff)
            assert fast.st[S.X_STRIDE] == 4 * cap
            if call % 29 == 0:
                assert plain.window() == fast.window()
            if a & 31 and S.is_hard(a & 31):
                for sup in (plain, fast):               # go on from a fresh fault state
                    sup.st[S.S_CODE] = 0
    finally:
        F.use_samples(None)
    return kern.calls


def test_the_thumb_path_with_the_reference_kernel_is_the_plain_supervisor():
    if F is None:
        return                  # no viper here: check_run is the plain code (test_supervisor_fast)
    calls = 0
    for seed in range(1, 13):
        calls += run_session(seed)
    assert calls > 1000


def test_the_kernel_runs_only_where_its_contract_holds():
    if F is None:
        return
    cap = 16
    flat, (sb, ib, vb, db) = layout(cap)
    for j in range(cap):
        sb[j], ib[j], vb[j], db[j] = 1000, 1000 + j % 3, 2000 + j % 5, 1000     # no fault
    kern = Kernel(cap)
    F.use_samples(kern)
    try:
        with_lock = make(5000, lockin=True)
        F.check_run(with_lock.st, sb, ib, vb, db, cap, 0, 0, 5)
        assert kern.calls == 0                          # the lock-in's sums are the viper loop's
        apart = [array("i", sb) for _ in range(4)]      # four arrays: no common stride
        no_lock = make(5000, lockin=False)
        F.check_run(no_lock.st, apart[0], apart[1], apart[2], apart[3], cap, 0, 0, 5)
        assert kern.calls == 0
        assert F.check_run(no_lock.st, sb, ib, vb, db, cap, 0, 0, 5) == cap << 5
        assert kern.calls == 4                          # 16 samples in blocks of 5
        swapped = make(5000, lockin=False)              # equal distances, another order
        F.check_run(swapped.st, sb, vb, db, flat, cap, 0, 0, 16)
        assert kern.calls == 4
    finally:
        F.use_samples(None)
    F.check_run(no_lock.st, sb, ib, vb, db, cap, 0, 0, 5)
    assert kern.calls == 4                              # use_samples(None): the viper loop again
