"""The simulated board's electrode network (issue 12): C driven electrodes and the return,
for sessions started with channels > 1 (hal.sim imports this module only then).

Each electrode e has its own contact with the single-channel model's parameters (the board's
`model`): series R plus skin R || C, into one common tissue node T. The return is tied to
the board's ground:
    V_T = Z_ret(I_tot)        I_tot = the sum of the driven currents (into the tissue)
    V_c = Z_c(I_c) + V_T      electrode c's voltage to the return (ground), as sensed
where Z(i) = i*Rs + vc and vc is that contact's skin capacitor (hal.sim's backward-Euler
step, vc = (vc*k1 + i*k2) / 1024). Each source is hal.sim's (calibration, DAC range, hw
limit) and saturates at the compliance on its own V_c. Without saturation a sample is a few
lines per electrode; with it (a liftoff, a contact too high for the current) the tissue
voltage is found by bisection to 1 mV: the tissue current the sources can push at a given
V_T falls as V_T rises, so Z_ret(I_tot(V_T)) = V_T has one root.

Faults per electrode (fault(kind, e)): liftoff and drift as hal.sim's on that contact; a
short on a driven electrode bridges it to the return: its current reaches ground through
model.short_ohm and bypasses the tissue (V_c ~ 0 while current flows). ADC noise and
quantisation per channel as hal.sim's, from its one random sequence (current, then voltage,
channel by channel). Buffers and the queue are interleaved: word k*C + c.
"""
try:
    import micropython
except ImportError:  # CPython
    from tes import compat as micropython

from array import array

from hal.sim import _K2_MAX, _SKIN_MAX, QUEUE


def _ints(n, v=0):
    return array("i", [v] * n)


class SimNet:
    def __init__(self, sim, C):
        self.sim = sim
        self.C = C
        E = C + 1
        m = sim.model
        self.rs = _ints(E, m["series_ohm"])
        self.vc = _ints(E)
        self.k1 = _ints(E)
        self.k2 = _ints(E)
        self.ifast = _ints(E)                  # |i| above this surely saturates (as hal.sim)
        self.thru = _ints(E, 1)                # 0: a shorted driven electrode, bypassing the tissue
        self.shorted = _ints(E)
        self.skin = _ints(E)
        self.skin_ex = _ints(E, (m["skin_ohm"] - m["skin_ohm_floor"]) << 12)   # Q12, over the floor
        self.skin_add = _ints(E)
        self.drift = _ints(E, m["drift_ohm_per_s"])
        self.drift_acc = _ints(E)
        self.tpk = _ints(E)                    # peak |current| since the last slow() (the return: the tissue's)
        self.code = _ints(C, sim.z)
        self.iraw = _ints(C)
        self.vraw = _ints(C)
        self.im = _ints(C)
        self.vm = _ints(C)
        self.want = _ints(C)
        self.cur = _ints(C)
        self.volt = _ints(C)
        self.q_set = _ints(QUEUE * C)
        self.q_i = _ints(QUEUE * C)
        self.q_v = _ints(QUEUE * C)
        self.q_d = _ints(QUEUE * C)
        self.k2_ret = (1 << 30) // (5000 * C)  # the return carries up to C sources: i * k2 < 2**30
        for e in range(E):
            self.set_load(e)

    # ---- per block ---------------------------------------------------------------------
    def _skin(self, e):
        if self.shorted[e]:
            return 0
        m = self.sim.model
        r = m["skin_ohm_floor"] + (self.skin_ex[e] >> 12) + self.skin_add[e]
        return r if r < _SKIN_MAX else _SKIN_MAX

    def set_load(self, e):
        """Contact e's RC constants for its skin R and the sample rate (hal.sim._set_load)."""
        sim = self.sim
        r = self._skin(e)
        self.skin[e] = r
        dt_us = 1000000 // sim.fs or 1
        tau_us = r * sim.model["skin_nF"] // 1000
        if r == 0:
            self.k1[e] = self.k2[e] = 0
        else:
            k1 = 1024 + (-1024 * dt_us) // (tau_us + dt_us)   # 1024 tau / (tau + dt), floored, in small ints
            k2 = (1024 - k1) * r // 1000
            top = self.k2_ret if e == self.C else _K2_MAX
            self.k1[e] = k1
            self.k2[e] = k2 if k2 < top else top
        self.ifast[e] = 2 * sim.vcomp * 1000 // self.rs[e] + 1

    def fault(self, kind, e):
        """liftoff, short or drift on electrode e (0..C-1 driven, C the return)."""
        m = self.sim.model
        if kind == "liftoff":
            self.rs[e] = m["liftoff_ohm"]
        elif kind == "short":
            self.rs[e] = m["short_ohm"] or 1
            self.shorted[e] = 1
            self.vc[e] = 0            # the bridge discharges the skin capacitance at once
            if e < self.C:
                self.thru[e] = 0
        elif kind == "drift":
            self.drift[e] = m["fault_drift_ohm_per_s"]
        self.set_load(e)

    def slow(self, d):
        """d ms have passed: each contact's skin R falls while current flows; drift climbs."""
        tau = self.sim.model["skin_tau_s"] * 1000 or 1
        for e in range(self.C + 1):
            if self.tpk[e] >= 10:
                self.skin_ex[e] -= (self.skin_ex[e] // tau) * d
            self.tpk[e] = 0
            if self.drift[e]:
                a = self.drift_acc[e] + self.drift[e] * d
                self.skin_add[e] += a // 1000
                self.drift_acc[e] = a % 1000
            if self._skin(e) != self.skin[e]:
                self.set_load(e)

    def zero(self):
        z = self.sim.z
        for c in range(self.C):
            self.code[c] = z

    # ---- per sample --------------------------------------------------------------------
    @micropython.native
    def run(self, buf, a, e):
        """Play samples a..e-1 of the interleaved buf (hal.sim._run for C sources)."""
        if a >= e:
            return
        sim = self.sim
        (z, sc, su, half, top, hw, npc, vcomp, ni, nv, spi, spv, inum, iden, imax, vnum, vden, vmax,
         kiq, kvq) = sim.consts
        C = self.C
        stuck = sim.dac_stuck
        en = sim.en
        astuck = sim.adc_stuck
        rng = sim.rng
        codes = self.code
        rs = self.rs
        vcs = self.vc
        k1s = self.k1
        k2s = self.k2
        ifs = self.ifast
        thru = self.thru
        tpk = self.tpk
        cur = self.cur
        volt = self.volt
        iraws = self.iraw
        vraws = self.vraw
        ims = self.im
        vms = self.vm
        qs = self.q_set
        qi = self.q_i
        qv = self.q_v
        qd = self.q_d
        w = sim.pend * C
        for k in range(a, e):
            b = k * C
            tot = 0
            for c in range(C):
                s = buf[b + c]
                qs[w + c] = s
                if stuck:
                    code = codes[c]
                else:
                    if s > hw:
                        s = hw
                    elif s < -hw:
                        s = -hw
                    if s >= 0:
                        code = z + (s * sc + half) // su
                    else:
                        code = z - ((half - s * sc) // su)
                    if code > top:
                        code = top
                    elif code < 0:
                        code = 0
                    codes[c] = code
                i = 0
                if en:
                    i = (code - z) * npc // 1000
                    if i > hw:
                        i = hw
                    elif i < -hw:
                        i = -hw
                cur[c] = i
                if thru[c]:
                    tot += i
            # The tissue node and each electrode's voltage; any source past its compliance
            # (or a current surely past it): solve the network. Enable off: no current.
            sat = en and (tot > ifs[C] or tot < -ifs[C])
            if not sat:
                vt = tot * rs[C] // 1000 + vcs[C]
                for c in range(C):
                    i = cur[c]
                    if i > ifs[c] or i < -ifs[c]:
                        sat = True
                        break
                    v = i * rs[c] // 1000 + vcs[c]
                    if thru[c]:
                        v += vt
                    if en and (v > vcomp or v < -vcomp):
                        sat = True
                        break
                    volt[c] = v
            if sat:
                tot = self._solve(vcomp)
            for c in range(C):
                i = cur[c]
                vcs[c] = (vcs[c] * k1s[c] + i * k2s[c] + 512) >> 10
                if i < 0:
                    i = -i
                if i > tpk[c]:
                    tpk[c] = i
            vcs[C] = (vcs[C] * k1s[C] + tot * k2s[C] + 512) >> 10
            if tot < 0:
                tot = -tot
            if tot > tpk[C]:
                tpk[C] = tot
            for c in range(C):
                if not astuck:
                    rng = (rng * 4093 + 13849) & 0xFFFF
                    raw = ((cur[c] * 1000 + ((rng >> 4) * spi >> 12) - ni) // 100 * kiq) >> 16
                    if raw > imax:
                        raw = imax
                    elif raw < -imax:
                        raw = -imax
                    if raw != iraws[c]:
                        iraws[c] = raw
                        ims[c] = raw * inum // iden
                    rng = (rng * 4093 + 13849) & 0xFFFF
                    raw = ((volt[c] * 1000 + ((rng >> 4) * spv >> 12) - nv) // 100 * kvq) >> 16
                    if raw > vmax:
                        raw = vmax
                    elif raw < -vmax:
                        raw = -vmax
                    if raw != vraws[c]:
                        vraws[c] = raw
                        vms[c] = raw * vnum // vden
                qi[w + c] = ims[c]
                qv[w + c] = vms[c]
                p = (codes[c] - z) * su
                qd[w + c] = p // sc if p >= 0 else -((-p) // sc)
            w += C
        sim.pend = w // C
        sim.rng = rng
        for c in range(C + 1):
            if tpk[c] > sim.peak_uA:
                sim.peak_uA = tpk[c]

    @micropython.native
    def _solve(self, vcomp):
        """cur[] holds what each source would put out; make it what the network lets it
        (saturated sources at their compliance) and fill volt[]. Returns the tissue current."""
        C = self.C
        want = self.want
        cur = self.cur
        for c in range(C):
            want[c] = cur[c]
        lo = -3 * vcomp        # the excess below is > 0 here and <= 0 at hi (any sane state)
        hi = 3 * vcomp
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if self._excess(mid, vcomp) > 0:
                lo = mid
            else:
                hi = mid
        self._excess(lo, vcomp)
        rs = self.rs
        vcs = self.vc
        thru = self.thru
        volt = self.volt
        tot = 0
        for c in range(C):
            i = cur[c]
            if i < want[c]:
                volt[c] = vcomp
            elif i > want[c]:
                volt[c] = -vcomp
            else:
                volt[c] = i * rs[c] // 1000 + vcs[c] + (lo if thru[c] else 0)
            if thru[c]:
                tot += i
        return tot

    @micropython.native
    def _excess(self, vt, vcomp):
        """With the tissue at vt mV: each source's current within its compliance (into cur[]),
        and Z_ret(their sum) - vt, which falls as vt rises."""
        C = self.C
        want = self.want
        cur = self.cur
        rs = self.rs
        vcs = self.vc
        thru = self.thru
        t = 0
        for c in range(C):
            o = vcs[c]
            if thru[c]:
                o += vt
            r = rs[c]
            i = want[c]
            up = (vcomp - o) * 1000 // r
            down = (-vcomp - o) * 1000 // r
            if i > up:
                i = up
            elif i < down:
                i = down
            cur[c] = i
            if thru[c]:
                t += i
        f = self.ifast[C]
        if t > f:
            return 4 * vcomp - vt
        if t < -f:
            return -4 * vcomp - vt
        return t * self.rs[C] // 1000 + vcs[C] - vt

    # ---- sense -------------------------------------------------------------------------
    @micropython.native
    def sense(self, set_out, i_out, v_out, d_out, n):
        sim = self.sim
        C = self.C
        m = sim.pend if sim.pend < n else n
        qs = self.q_set
        qi = self.q_i
        qv = self.q_v
        qd = self.q_d
        for j in range(m * C):
            set_out[j] = qs[j]
            i_out[j] = qi[j]
            v_out[j] = qv[j]
            d_out[j] = qd[j]
        rest = sim.pend - m
        o = m * C
        for j in range(rest * C):
            qs[j] = qs[o + j]
            qi[j] = qi[o + j]
            qv[j] = qv[o + j]
            qd[j] = qd[o + j]
        sim.pend = rest
        return m
