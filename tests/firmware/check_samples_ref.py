"""The contract of hal.check_thumb.samples in plain Python, for its tests: samples j..j+n-1
of the set, measured, voltage and readback buffers at flat[base + k * stride + j] (k = 0..3),
the state's S_PI, S_PV, S_PSET, S_HOLD, S_DAC, S_STILL, S_STIM carried as
tes.supervisor.check carries them, one block's flags and sums in st[X_DACBAD..X_WVSQ]. The
statements are tes.supervisor.check's per-sample ones without the lock-in."""
from tes import supervisor as S

X_RESULTS = list(range(S.X_DACBAD, S.X_WVSQ + 1))


def samples_ref(st, flat, base, stride, j0, n):
    for k in X_RESULTS:
        st[k] = 0
    dtol = st[S.T_DACTOL]
    for j in range(j0, j0 + n):
        s = flat[base + j]
        i = flat[base + stride + j]
        v = flat[base + 2 * stride + j]
        d = flat[base + 3 * stride + j]
        ps = st[S.S_PSET]
        a = d - s
        if a > dtol or a < -dtol:
            st[S.S_DAC] += 1
            if st[S.S_DAC] >= S.DAC_SAMPLES:
                st[S.X_DACBAD] = 1
        else:
            st[S.S_DAC] = 0
        st[S.X_SABS] += abs(s)
        st[S.X_SPK] = max(st[S.X_SPK], abs(s))
        if s != 0:
            st[S.S_STIM] += 1
        if (s > 0 and ps > 0) or (s < 0 and ps < 0):
            st[S.S_HOLD] += 1
        else:
            st[S.S_HOLD] = 0
        st[S.X_SDIF] += abs(s - ps)
        st[S.S_PSET] = s
        st[S.X_IABS] += abs(i)
        if s != 0 or abs(i) > S.Q_FLOOR_uA:
            st[S.X_QABS] += abs(i)
        st[S.X_IPK] = max(st[S.X_IPK], abs(i))
        st[S.X_VABS] += abs(v)
        st[S.X_VPK] = max(st[S.X_VPK], abs(v))
        st[S.X_EABS] += abs(i - s)
        if i == st[S.S_PI] and v == st[S.S_PV]:
            st[S.S_STILL] += 1
            if st[S.S_STILL] >= S.ADC_STUCK_SAMPLES:
                st[S.X_STILLBAD] = 1
        else:
            st[S.S_STILL] = 0
        st[S.S_PI] = i
        st[S.S_PV] = v
        st[S.X_WSET] += s
        st[S.X_WI] += i
        st[S.X_WV] += v
        st[S.X_WSSQ] += (s * s) >> 6
        st[S.X_WISQ] += (i * i) >> 6
        st[S.X_WVSQ] += (v * v) >> 10
