"""Viper twin of tes.supervisor.check: the same rules, statement for statement, on machine
words. Bit-exact to the plain code (tests/firmware/test_supervisor_fast.py) because every
value stays within +/-2**30 and so never wraps, whether viper ints are 32 or 64 bits.

viper's ptr32 loads zero-extend on a 64-bit build: signed words are read as
(w ^ 2**31) - 2**31, which restores the sign there and is the identity on a 32-bit board.
Imported only where the viper emitter exists (a board, the unix port); elsewhere the
plain code runs.
"""
import micropython
from micropython import const

_OK = const(0)
_OPEN_CIRCUIT = const(1)
_SHORT = const(2)
_OVERCURRENT = const(3)
_TRACKING = const(4)
_DAC_STUCK = const(5)
_ADC_STUCK = const(6)
_COMPLIANCE = const(7)
_IMPEDANCE_HIGH = const(8)
_CHARGE_BUDGET = const(9)
_DURATION_BUDGET = const(10)
_HOST_LOST = const(11)
_TRACK_MIN_uA = const(100)
_TRACK_BLOCKS = const(2)
_DAC_SAMPLES = const(2)
_OPEN_OHM = const(1000000)
_Z_MIN_uA = const(100)
_SHORT_MIN_uA = const(300)
_OPEN_MIN_uA = const(50)
_COLLAPSE_MIN_uA = const(200)
_Q_FLOOR_uA = const(20)
_ADC_STUCK_SAMPLES = const(8)
_HOST_LOST_MS = const(3000)
_W_MAX = const(1000)
# state layout: tes.supervisor T_*, S_*, W_*
_T_IOVER = const(0)
_T_VCOMP = const(1)
_T_VHEAD = const(2)
_T_DACTOL = const(3)
_T_NOISY = const(4)
_T_ZMAX = const(5)
_T_ZWIN = const(6)
_T_QMAX = const(7)
_T_TMAX = const(8)
_T_FS = const(9)
_T_HOLD = const(10)
_T_SWIN = const(11)
_S_CODE = const(12)
_S_QUC = const(13)
_S_QREM = const(14)
_S_STIM = const(15)
_S_TRACK = const(16)
_S_DAC = const(17)
_S_STILL = const(18)
_S_PI = const(19)
_S_PV = const(20)
_S_PSET = const(21)
_S_HOLD = const(22)
_S_SV = const(23)
_S_SI = const(24)
_S_SN = const(25)
_S_ZV = const(26)
_S_ZI = const(27)
_S_ZN = const(28)
_S_ZHIGH = const(29)
_S_ZLAST = const(30)
_W_N = const(31)
_W_SET = const(32)
_W_I = const(33)
_W_V = const(34)
_W_SPK = const(35)
_W_IPK = const(36)
_W_VPK = const(37)
_P_SL = const(38)
_P_SH = const(39)
_P_IL = const(40)
_P_IH = const(41)
_P_VL = const(42)
_P_VH = const(43)
_P_IPK = const(44)
_P_VPK = const(45)
_L_N = const(54)
_L_CNT = const(55)
_P_PL = const(56)
_P_PH = const(57)
_P_QL = const(58)
_P_QH = const(59)
_P_DL = const(60)
_P_DH = const(61)
_S_PPI = const(68)
_T_LOCKIN = const(69)
_P_LO = const(16777216)


# the Thumb kernel (hal.check_thumb.samples) where the driver has one: use_samples()
_samples = None
# its results in the state (tes.supervisor X_*)
_X_STRIDE = const(70)
_X_DACBAD = const(71)
_X_STILLBAD = const(72)
_X_SABS = const(73)
_X_SDIF = const(74)
_X_IABS = const(75)
_X_QABS = const(76)
_X_VABS = const(77)
_X_EABS = const(78)
_X_IPK = const(79)
_X_VPK = const(80)
_X_SPK = const(81)
_X_WSET = const(82)
_X_WI = const(83)
_X_WV = const(84)
_X_WSSQ = const(85)
_X_WISQ = const(86)
_X_WVSQ = const(87)


def use_samples(fn):
    """check_run's per-sample loop from now on by fn(st address, &sb[j], n)
    (hal.check_thumb.samples' contract), for supervisors without lock-in whose buffers lie
    at equal distances; None: the viper loop everywhere."""
    global _samples
    _samples = fn


@micropython.viper
def check_run(st_obj, sb_obj, ib_obj, vb_obj, db_obj, m: int, host_age_ms: int, j1: int, b: int) -> int:
    """tes.supervisor.check_run: check() over samples j1..j1+m-1 in blocks of b, in one call
    (a call with its five buffers costs ~2,000 x86-64 instructions, ~3,000 RP2040 cycles)."""
    st = ptr32(st_obj)
    sb = ptr32(sb_obj)
    ib = ptr32(ib_obj)
    vb = ptr32(vb_obj)
    db = ptr32(db_obj)
    sg = int(1) << 31
    iover = int(st[_T_IOVER])
    vcomp = int(st[_T_VCOMP])
    dtol = int(st[_T_DACTOL])
    lock = int(st[_T_LOCKIN])
    # the Thumb kernel reads ib, vb, db at sb + 1, 2, 3 strides: only where they lie so
    kern = _samples
    fast = 0
    if kern and not lock:
        stride = int(ib) - int(sb)
        if int(vb) - int(ib) == stride and int(db) - int(vb) == stride and -0x3FFFFFFF <= stride <= 0x3FFFFFFF:
            st[_X_STRIDE] = stride
            fast = 1
    j0 = j1
    last = j1 + m
    code = _OK
    while j0 < last:
        n = last - j0
        if b > 0 and n > b:
            n = b
        if fast:
            ppi = (st[_S_PI] ^ sg) - sg
            kern(int(st), int(sb) + (j0 << 2), n)
            if n >= 2:
                ppi = (ib[j0 + n - 2] ^ sg) - sg
            st[_S_PPI] = ppi
            hold = int(st[_S_HOLD])
            stim = int(st[_S_STIM])
            dac_bad = int(st[_X_DACBAD])
            still_bad = int(st[_X_STILLBAD])
            sabs = int(st[_X_SABS])
            sdif = int(st[_X_SDIF])
            iabs = int(st[_X_IABS])
            qabs = int(st[_X_QABS])
            vabs = int(st[_X_VABS])
            eabs = int(st[_X_EABS])
            ipk = int(st[_X_IPK])
            vpk = int(st[_X_VPK])
            spk = int(st[_X_SPK])
            wset = (st[_X_WSET] ^ sg) - sg
            wi = (st[_X_WI] ^ sg) - sg
            wv = (st[_X_WV] ^ sg) - sg
            wssq = int(st[_X_WSSQ])
            wisq = int(st[_X_WISQ])
            wvsq = int(st[_X_WVSQ])
            wp = 0
            wq = 0
            wd = 0
        else:
            pi = (st[_S_PI] ^ sg) - sg
            pv = (st[_S_PV] ^ sg) - sg
            ps = (st[_S_PSET] ^ sg) - sg
            hold = int(st[_S_HOLD])
            dac = int(st[_S_DAC])
            still = int(st[_S_STILL])
            stim = int(st[_S_STIM])
            dac_bad = 0
            still_bad = 0
            sabs = 0
            sdif = 0
            iabs = 0
            qabs = 0
            vabs = 0
            eabs = 0
            ipk = 0
            vpk = 0
            spk = 0
            wset = 0
            wi = 0
            wv = 0
            wssq = 0
            wisq = 0
            wvsq = 0
            ppi = (st[_S_PPI] ^ sg) - sg
            wp = 0
            wq = 0
            wd = 0
            j = j0
            end = j0 + n
            while j < end:
                s = (sb[j] ^ sg) - sg
                i = (ib[j] ^ sg) - sg
                v = (vb[j] ^ sg) - sg
                if s >= 0:
                    a = s
                else:
                    a = 0 - s
                sabs += a
                if a > spk:
                    spk = a
                if s != 0:
                    stim += 1
                if (s > 0 and ps > 0) or (s < 0 and ps < 0):
                    hold += 1
                else:
                    hold = 0
                a = s - ps
                if a >= 0:
                    sdif += a
                else:
                    sdif -= a
                if i >= 0:
                    a = i
                else:
                    a = 0 - i
                iabs += a
                if s != 0 or a > _Q_FLOOR_uA:
                    qabs += a
                if a > ipk:
                    ipk = a
                if v >= 0:
                    a = v
                else:
                    a = 0 - v
                vabs += a
                if a > vpk:
                    vpk = a
                a = i - s
                if a >= 0:
                    eabs += a
                else:
                    eabs -= a
                a = ((db[j] ^ sg) - sg) - s
                if a > dtol or a < 0 - dtol:
                    dac += 1
                    if dac >= _DAC_SAMPLES:
                        dac_bad = 1
                else:
                    dac = 0
                if i == pi and v == pv:
                    still += 1
                    if still >= _ADC_STUCK_SAMPLES:
                        still_bad = 1
                else:
                    still = 0
                wset += s
                wi += i
                wv += v
                wssq += (s * s) >> 6
                wisq += (i * i) >> 6
                wvsq += (v * v) >> 10
                if lock:
                    wp += (pv * pi) >> 4
                    a = i - ppi
                    wq += (pv * a) >> 4
                    wd += (a * a) >> 4
                ppi = pi
                pi = i
                pv = v
                ps = s
                j += 1
            st[_S_PPI] = ppi
            st[_S_PI] = pi
            st[_S_PV] = pv
            st[_S_PSET] = ps
            st[_S_HOLD] = hold
            st[_S_DAC] = dac
            st[_S_STILL] = still
            st[_S_STIM] = stim
        if int(st[_W_N]) >= _W_MAX:
            st[_W_N] = int(st[_W_N]) >> 1
            st[_W_SET] = ((st[_W_SET] ^ sg) - sg) >> 1
            st[_W_I] = ((st[_W_I] ^ sg) - sg) >> 1
            st[_W_V] = ((st[_W_V] ^ sg) - sg) >> 1
        st[_W_N] = int(st[_W_N]) + n
        st[_W_SET] = ((st[_W_SET] ^ sg) - sg) + wset
        st[_W_I] = ((st[_W_I] ^ sg) - sg) + wi
        st[_W_V] = ((st[_W_V] ^ sg) - sg) + wv
        if spk > int(st[_W_SPK]):
            st[_W_SPK] = spk
        if ipk > int(st[_W_IPK]):
            st[_W_IPK] = ipk
        if vpk > int(st[_W_VPK]):
            st[_W_VPK] = vpk
        q = int(st[_S_QREM]) + qabs
        fs = int(st[_T_FS])
        st[_S_QUC] = int(st[_S_QUC]) + q // fs
        st[_S_QREM] = q % fs
        smean = sabs // n
        imean = iabs // n
        vmean = vabs // n
        code = _OK
        if ipk > iover:
            code = _OVERCURRENT
        elif vpk >= vcomp:
            if vpk > 1000 * ipk:
                code = _OPEN_CIRCUIT
            else:
                code = _COMPLIANCE
        elif dac_bad:
            code = _DAC_STUCK
        elif smean >= _OPEN_MIN_uA and vabs > 1000 * iabs:
            code = _OPEN_CIRCUIT
        elif smean >= _COLLAPSE_MIN_uA and imean * 8 < smean:
            code = _OPEN_CIRCUIT
        if code == _OK:
            if hold >= int(st[_T_HOLD]) and imean >= _SHORT_MIN_uA and vabs * 10 < iabs:
                code = _SHORT
            st[_S_SV] = int(st[_S_SV]) + vabs
            st[_S_SI] = int(st[_S_SI]) + iabs
            st[_S_SN] = int(st[_S_SN]) + n
            if int(st[_S_SN]) >= int(st[_T_SWIN]):
                if int(st[_S_SI]) >= _SHORT_MIN_uA * int(st[_S_SN]) and int(st[_S_SV]) * 10 < int(st[_S_SI]):
                    code = _SHORT
                st[_S_SV] = 0
                st[_S_SI] = 0
                st[_S_SN] = 0
        if code == _OK:
            lim = smean // 10
            if eabs > (_TRACK_MIN_uA + lim) * n + sdif:
                st[_S_TRACK] = int(st[_S_TRACK]) + 1
                if int(st[_S_TRACK]) >= _TRACK_BLOCKS:
                    code = _TRACKING
            else:
                st[_S_TRACK] = 0
        if code == _OK and still_bad and (int(st[_T_NOISY]) or sdif > 4 * dtol):
            code = _ADC_STUCK
        if code == _OK:
            if imean >= _Z_MIN_uA:
                st[_S_ZV] = int(st[_S_ZV]) + vmean
                st[_S_ZI] = int(st[_S_ZI]) + imean
            a = int(st[_P_SL]) + wssq
            if a >= _P_LO:
                st[_P_SH] = int(st[_P_SH]) + (a >> 24)
                a = a & 16777215
            st[_P_SL] = a
            a = int(st[_P_IL]) + wisq
            if a >= _P_LO:
                st[_P_IH] = int(st[_P_IH]) + (a >> 24)
                a = a & 16777215
            st[_P_IL] = a
            a = int(st[_P_VL]) + wvsq
            if a >= _P_LO:
                st[_P_VH] = int(st[_P_VH]) + (a >> 24)
                a = a & 16777215
            st[_P_VL] = a
            if ipk > int(st[_P_IPK]):
                st[_P_IPK] = ipk
            if vpk > int(st[_P_VPK]):
                st[_P_VPK] = vpk
            if lock:        # (without it wp = wq = wd = 0: the sums stay as they are)
                a = int(st[_P_PL]) + wp
                if a < 0 or a >= _P_LO:
                    st[_P_PH] = ((st[_P_PH] ^ sg) - sg) + (a >> 24)
                    a = a & 16777215
                st[_P_PL] = a
                a = int(st[_P_QL]) + wq
                if a < 0 or a >= _P_LO:
                    st[_P_QH] = ((st[_P_QH] ^ sg) - sg) + (a >> 24)
                    a = a & 16777215
                st[_P_QL] = a
                a = int(st[_P_DL]) + wd
                if a >= _P_LO:
                    st[_P_DH] = int(st[_P_DH]) + (a >> 24)
                    a = a & 16777215
                st[_P_DL] = a
            st[_S_ZN] = int(st[_S_ZN]) + n
            if int(st[_S_ZN]) >= int(st[_T_ZWIN]):
                st[_L_N] = st[_S_ZN]
                k = _P_SL
                while k <= _P_VPK:
                    st[k + 8] = st[k]
                    st[k] = 0
                    k += 1
                k = _P_PL
                while k <= _P_DH:
                    st[k + 6] = st[k]
                    st[k] = 0
                    k += 1
                st[_L_CNT] = (int(st[_L_CNT]) + 1) & 0x3FFFFFFF
                zi = int(st[_S_ZI])
                if zi:
                    zv = int(st[_S_ZV])
                    while zi >= 1048576:
                        zi = zi >> 1
                        zv = zv >> 1
                    if zv // zi >= _OPEN_OHM // 1000:
                        z = _OPEN_OHM
                    else:
                        z = (zv // zi) * 1000 + ((zv % zi) * 1000) // zi
                    st[_S_ZLAST] = z
                    if z > int(st[_T_ZMAX]):
                        st[_S_ZHIGH] = int(st[_S_ZHIGH]) + 1
                    else:
                        st[_S_ZHIGH] = 0
                st[_S_ZV] = 0
                st[_S_ZI] = 0
                st[_S_ZN] = 0
            if int(st[_S_ZHIGH]) >= 2 or vpk >= int(st[_T_VHEAD]):
                code = _IMPEDANCE_HIGH
            elif int(st[_S_QUC]) >= int(st[_T_QMAX]):
                code = _CHARGE_BUDGET
            elif stim >= int(st[_T_TMAX]):
                code = _DURATION_BUDGET
            elif host_age_ms > _HOST_LOST_MS:
                code = _HOST_LOST
        if code and not int(st[_S_CODE]):
            st[_S_CODE] = code
        j0 += n
        if code:
            break
    return ((j0 - j1) << 5) | code


def check(st, sb, ib, vb, db, n, host_age_ms, j0):
    """tes.supervisor.check: one block (through check_run; the block path calls check_run)."""
    return check_run(st, sb, ib, vb, db, n, host_age_ms, j0, n) & 31
