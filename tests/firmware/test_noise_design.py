"""tes.noise.design: the gain's impulse-response sum stops once the cascade can only output
zero, and gives exactly the gain of the full 4096-sample sum (so the stimulus, and every
golden vector, is unchanged; a board builds a tRNS engine in ms instead of seconds)."""
from tes import noise as N


def full_gain(st, seg):
    probe = list(st)
    probe[N.N_GAIN] = 1 << 12
    energy = 0
    x = N.X_LIMIT
    for _ in range(4096):
        y = N.filter_step(probe, x)
        energy += y * y
        x = 0
    var_in = 4 * (1024 * 1024 - 1) // 12
    var_out = var_in * energy // (N.X_LIMIT * N.X_LIMIT)
    want = seg["noise_sd_uA"] * 32768 // max(1, seg["amplitude_uA"])
    sd = N.isqrt(max(1, var_out))
    return max(1, min(N.GAIN_MAX, want * 4096 // sd))


def test_the_early_stop_gives_the_full_sums_gain():
    x = 11
    for _ in range(40):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        fs = (1000, 1280, 2000, 5000, 10000, 20000)[x % 6]
        lo = (x >> 4) % 200000
        hi = lo + 1000 + (x >> 9) % max(1, fs * 500 - lo - 1000)
        seg = {"band_mHz": [lo, hi], "seed": 1, "noise_sd_uA": 1 + (x >> 13) % 2000,
               "amplitude_uA": (x >> 17) % 2000}
        st = N.design(seg, fs)
        assert st[N.N_GAIN] == full_gain(st, seg), (fs, lo, hi)


def test_settled_means_the_output_stays_zero():
    seg = {"band_mHz": [101000, 640000], "seed": 1, "noise_sd_uA": 333, "amplitude_uA": 0}
    probe = list(N.design(seg, 5000))
    probe[N.N_GAIN] = 1 << 12
    N.filter_step(probe, N.X_LIMIT)               # the impulse
    k = 1
    while not N._settled(probe):
        N.filter_step(probe, 0)
        k += 1
        assert k < 4096
    assert k > 10                                 # the impulse did ring
    for _ in range(2000):
        assert N.filter_step(probe, 0) == 0


def test_the_viper_cascade_is_filter_step_section_by_section():
    # tes.kernels_fast._cascade (osc_noise's biquads over a piece) against the plain
    # filter_step, sample by sample: any coefficients (b0 != b2 too), any state, inputs
    # and outputs that clip, pieces of 1..64, 0..6 sections; the state after every piece.
    try:
        from array import array
        from tes import kernels as K
        from tes import kernels_fast as KF
    except (ImportError, SyntaxError, NameError):
        return              # CPython or a port without viper: the plain kernel is the only one
    x = 12345

    def rnd(lo, hi):
        nonlocal x
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (x >> 7) % (hi - lo + 1)

    for trial in range(60):
        nsec = trial % 7
        plain = [0] * N.NOISE_LEN
        plain[N.N_NSEC] = nsec
        for s in range(nsec):
            p = N.N_SEC + s * N.SEC_LEN
            for c in range(5):
                plain[p + c] = rnd(-32768, 32768) if trial % 3 else rnd(-900, 900)
            for c in range(5, 9):
                plain[p + c] = rnd(-N.X_LIMIT, N.X_LIMIT)
            plain[p + 9] = rnd(0, (1 << 14) - 1)
        st = array("i", [0] * (K.NOISE_BASE + N.NOISE_LEN))
        for k in range(N.NOISE_LEN):
            st[K.NOISE_BASE + k] = plain[k]
        for piece in range(4):
            c = rnd(1, 64)
            buf = array("i", [rnd(-N.X_LIMIT, N.X_LIMIT) for _ in range(64)])
            want = [N.filter_step(plain, buf[k]) for k in range(c)]
            KF._cascade(0, 0, 0, st, buf, c, nsec)
            assert list(buf[:c]) == want, (trial, piece)
            assert list(st[K.NOISE_BASE:]) == plain, (trial, piece)
