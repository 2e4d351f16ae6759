// The two-source board's electrode network (docs/hardware.md, "The next revision: two
// sources from one MCP4922"), for C sources (C = 2 on that board; board.mjs allows 2):
// the same topology and fault semantics as firmware/hal/simnet.py, integrated in
// continuous time like lib/analog.mjs.
//
// Source c (electrode c) is an improved Howland pump fed by DAC channel c against a fixed
// mid reference (the DAC's output at code 2048): I_c = ((V_c,dac - mid) / lsb - (zero_code -
// 2048)) * nA_per_code, clamped to +/- hw_current_limit; zero while the one relay is open.
// Every electrode e (0..C-1 driven, C the return) has a contact: series R + (skin R ||
// skin C), into one tissue node T; the return is tied to ground:
//   V_T = Rs_ret * I_tot + x_ret    (I_tot = the sum of the currents that reach the tissue)
//   V_c = Rs_c * I_c + x_c + V_T    (electrode c's voltage to ground: what is sensed)
// with x_e contact e's skin capacitor, C dx_e/dt = i_e - x_e / Rskin. Source c saturates
// at the compliance on its own V_c (either sign, as simnet clamps): I_c = (+-Vcomp - x_c -
// V_T) / Rs_c. With the relay open no current flows and nothing saturates (V_c = x_c + V_T).
//
// Integration. Between events (a DAC latch, the relay, a fault) the set currents are
// constant and the network is linear in each regime (which sources sit at which
// compliance): dx/dt = A x + b, solved as x(t) = x_inf + exp(A t) (x0 - x_inf).
//  - No source saturated: A is diagonal (each contact its own exponential): exact. With
//    every contact's skin R and C equal (the board model) each V_c is one exponential, so
//    a compliance crossing is seen at the step's end and found by bisection to 1 ps.
//  - A source saturated: the contacts couple through V_T; exp(A t) by scaling and squaring
//    (Taylor to degree 12 at |A t| <= 1/4: relative error < 1e-15). The approximation:
//    regime changes are looked for at the ends of chunks of h <= 1/(16 rho) (rho >= every
//    rate of A, its largest row sum), then bisected; a constraint that crosses and comes
//    back within one chunk goes unseen. With the constraint f(t) = a + sum c_k exp(l_k t)
//    (|l_k| <= rho), such an unseen excursion is at most h^2/8 * max|f''| <= sum|c_k| /
//    2048 (one mode: its distance from the regime's asymptote; e.g. 15 mV past compliance
//    for 30 V), and after it the regime is still the right one. More than 32 regime
//    changes in one advance (chattering on a boundary): the regime is solved afresh and
//    the rest of that advance runs in it unchecked. network.test.mjs compares one long
//    step with fine ones and with an independent fine-step model.
// Faults per electrode (setFault(t, kind, e), e = 0..C): 'liftoff' puts liftoff_ohm in
// series (the source sits at compliance, ~uA flow; a lifted return starves the tissue:
// every source saturates). 'short' puts short_ohm in series and bridges the skin (x = 0);
// a shorted driven electrode reaches ground directly, its current bypasses the tissue
// (simnet's thru = 0). null clears (series R back, the capacitor as it is). One fault per
// electrode at a time (a new one replaces the old; simnet lets them pile up).
// Not modelled (as analog.mjs): skin R falling while current flows, drift, the pumps'
// output impedance, slew, noise (the ADC adds its own).

export const FAULT_KINDS = ['liftoff', 'short'];

const TOL_V = 1e-9; // a compliance constraint counts as crossed past this, V
const TOL_A = 1e-13; // a saturated source counts as free again past this, A

export class Network {
  /**
   * p: sources (C, default 2), vrefMv, zeroCode, nAPerCode, hwLimitUa, complianceV,
   * seriesOhm, skinOhm, skinNf, liftoffOhm, shortOhm (board.mjs's stage params).
   */
  constructor(p) {
    const C = p.sources ?? 2;
    if (!(Number.isInteger(C) && C >= 1)) throw new Error(`network: sources must be a positive integer, not ${C}`);
    this.C = C;
    this.E = C + 1;
    this.lsbMv = p.vrefMv / 4096;
    this.midMv = (p.vrefMv * 2048) / 4096; // the fixed mid reference: DAC code 2048's voltage
    this.offsetCodes = p.zeroCode - 2048;
    this.nAPerCode = p.nAPerCode;
    this.limitA = p.hwLimitUa * 1e-6;
    this.comp = p.complianceV;
    this.rs0 = p.seriesOhm;
    this.liftoffOhm = p.liftoffOhm ?? 10e6;
    this.shortOhm = p.shortOhm ?? 10;
    this.rsk = p.skinOhm;
    this.cap = p.skinNf * 1e-9;
    if (!(this.rs0 > 0 && this.rsk > 0 && this.cap > 0 && this.liftoffOhm > 0 && this.shortOhm > 0)) {
      throw new Error('network: series_ohm, skin_ohm, skin_nF, liftoff_ohm and short_ohm must be positive');
    }
    this.rs = new Array(this.E).fill(this.rs0);
    this.bridged = new Array(this.E).fill(false);
    this.thru = new Array(C).fill(true);
    this.fault = new Array(this.E).fill(null);
    this.x = new Float64Array(this.E); // skin capacitors, V
    this.dacMv = new Array(C).fill(0);
    this.want = new Float64Array(C); // what each pump drives before compliance, A
    this.sat = new Int8Array(C); // the regime: 0 free, +1 / -1 at +/- compliance
    this.enabled = false;
    this.t = 0; // ns of the state
    this.chargeC = new Float64Array(C); // |charge| each source delivered, C (piecewise |integral|)
    this.peakA = new Float64Array(C);
    this.switches = 0; // regime changes found inside steps (tests, stats)
    this._sys = null;
  }

  // ---- inputs -----------------------------------------------------------------------
  /** mVs[c]: DAC channel c's output voltage (channel A = source 0, B = source 1). */
  setDac(tNs, mVs) {
    this.advance(tNs);
    for (let c = 0; c < this.C; c++) this.dacMv[c] = mVs[c];
    this._sources();
  }

  setEnable(tNs, on) {
    this.advance(tNs);
    this.enabled = !!on;
    this._sources();
  }

  /** kind 'liftoff', 'short' or null (clear) on electrode e (0..C-1 driven, C the return). */
  setFault(tNs, kind, e) {
    if (kind !== null && !FAULT_KINDS.includes(kind)) throw new Error(`unknown fault ${JSON.stringify(kind)} (${FAULT_KINDS.join(', ')})`);
    if (!(Number.isInteger(e) && e >= 0 && e <= this.C)) throw new Error(`network: no electrode ${e} (0..${this.C}, ${this.C} the return)`);
    this.advance(tNs);
    this.fault[e] = kind;
    this.rs[e] = kind === 'liftoff' ? this.liftoffOhm : kind === 'short' ? this.shortOhm : this.rs0;
    this.bridged[e] = kind === 'short';
    if (kind === 'short') this.x[e] = 0; // the bridge discharges the skin capacitance at once
    if (e < this.C) this.thru[e] = kind !== 'short';
    this._regime();
  }

  _sources() {
    for (let c = 0; c < this.C; c++) {
      const codes = (this.dacMv[c] - this.midMv) / this.lsbMv - this.offsetCodes;
      const i = this.enabled ? codes * this.nAPerCode * 1e-9 : 0;
      this.want[c] = Math.max(-this.limitA, Math.min(this.limitA, i));
    }
    this._regime();
  }

  // ---- outputs ----------------------------------------------------------------------
  /** State at tNs: currents i[c] (A), electrode voltages v[c] (V, to ground), tissue vt,
   *  skin capacitors vc[e], saturated[c] (+1, -1 or 0). */
  sample(tNs) {
    this.advance(tNs);
    const s = this._system();
    const x = this.x;
    return {
      i: s.i.map((a) => dot(a, x)),
      v: s.v.map((a) => dot(a, x)),
      vt: dot(s.vt, x),
      vc: Array.from(x),
      saturated: Array.from(this.sat),
    };
  }

  // ---- the regime -------------------------------------------------------------------
  /** The regime for the present state, as simnet's _solve finds it: the tissue voltage at
   *  which the current the sources can push (each clamped by its compliance) balances the
   *  return, by bisection (the balance falls as V_T rises: one root). */
  _regime() {
    this._sys = null;
    this.sat.fill(0);
    if (!this.enabled) return;
    const { C, comp, rs, x, want, thru } = this;
    const rr = rs[C];
    // Every source within its compliance with its own current (the usual case): free.
    let tot = 0;
    for (let c = 0; c < C; c++) if (thru[c]) tot += want[c];
    const vt0 = rr * tot + x[C];
    let free = true;
    for (let c = 0; c < C && free; c++) free = Math.abs(want[c] * rs[c] + x[c] + (thru[c] ? vt0 : 0)) <= comp;
    if (free) return;
    const clamp = (c, vt) => {
      const o = x[c] + (thru[c] ? vt : 0);
      return [(-comp - o) / rs[c], (comp - o) / rs[c]];
    };
    const excess = (vt) => {
      let t = 0;
      for (let c = 0; c < C; c++) {
        if (!thru[c]) continue;
        const o = x[c] + vt;
        t += Math.max((-comp - o) / rs[c], Math.min((comp - o) / rs[c], want[c]));
      }
      return rr * t + x[C] - vt;
    };
    const b = rr * C * this.limitA + Math.abs(x[C]) + comp + 1;
    let lo = -b;
    let hi = b;
    for (let k = 0; k < 200 && hi - lo > 1e-13 * b; k++) {
      const mid = (lo + hi) / 2;
      if (excess(mid) > 0) lo = mid;
      else hi = mid;
    }
    const vt = (lo + hi) / 2;
    for (let c = 0; c < C; c++) {
      const [dn, up] = clamp(c, vt);
      // A tie stays free: if it is heading out, advance() finds the crossing at once.
      if (want[c] > up + TOL_A) this.sat[c] = 1;
      else if (want[c] < dn - TOL_A) this.sat[c] = -1;
    }
  }

  /** The regime's affine maps of the state (arrays of E coefficients and a constant):
   *  currents i[c], voltages v[c], vt; the ODE dx/dt = A x + b over the free contacts. */
  _system() {
    if (this._sys) return this._sys;
    const { C, E, comp, rs, thru, want, sat } = this;
    const zero = () => new Float64Array(E + 1);
    const vt = zero();
    const i = [];
    if (!this.enabled) {
      for (let c = 0; c < C; c++) i.push(zero());
      vt[C] = 1;
    } else {
      // V_T (1 + Rs_ret * sum 1/Rs_c over saturated) = Rs_ret * (free currents + sum over
      // saturated (s Vcomp - x_c) / Rs_c) + x_ret.
      const rr = rs[C];
      let g = 0;
      vt[C] = 1;
      for (let c = 0; c < C; c++) {
        if (!thru[c]) continue;
        if (sat[c]) {
          vt[c] -= rr / rs[c];
          vt[E] += (rr * sat[c] * comp) / rs[c];
          g += 1 / rs[c];
        } else {
          vt[E] += rr * want[c];
        }
      }
      const d = 1 + rr * g;
      for (let k = 0; k <= E; k++) vt[k] /= d;
      for (let c = 0; c < C; c++) {
        const a = zero();
        if (sat[c]) {
          a[E] = (sat[c] * comp) / rs[c];
          a[c] -= 1 / rs[c];
          if (thru[c]) for (let k = 0; k <= E; k++) a[k] -= vt[k] / rs[c];
        } else {
          a[E] = want[c];
        }
        i.push(a);
      }
    }
    const v = [];
    const tot = zero();
    for (let c = 0; c < C; c++) {
      const a = i[c].map((q) => q * rs[c]);
      a[c] += 1;
      if (thru[c]) {
        for (let k = 0; k <= E; k++) {
          a[k] += vt[k];
          tot[k] += i[c][k];
        }
      }
      v.push(a);
    }
    // The constraints that end this regime, f(x) > tol: a free source reaching a
    // compliance, a saturated one whose network current reaches what it drives.
    const cons = [];
    if (this.enabled) {
      for (let c = 0; c < C; c++) {
        if (sat[c]) {
          const f = i[c].map((q) => sat[c] * q);
          f[E] -= sat[c] * want[c];
          cons.push({ c, to: 0, f, tol: TOL_A });
        } else {
          for (const s of [1, -1]) {
            const f = v[c].map((q) => s * q);
            f[E] -= comp;
            cons.push({ c, to: s, f, tol: TOL_V });
          }
        }
      }
    }
    // The ODE over the free (not bridged) contacts.
    const act = [];
    for (let e = 0; e < E; e++) if (!this.bridged[e]) act.push(e);
    const m = act.length;
    const A = act.map(() => new Float64Array(m));
    const b = new Float64Array(m);
    act.forEach((e, r) => {
      const cur = e < C ? i[e] : tot;
      act.forEach((k, col) => {
        A[r][col] = cur[k] / this.cap;
      });
      A[r][r] -= 1 / (this.rsk * this.cap);
      b[r] = cur[E] / this.cap;
    });
    let rho = 0;
    let diag = true;
    for (let r = 0; r < m; r++) {
      let s = 0;
      for (let col = 0; col < m; col++) {
        s += Math.abs(A[r][col]);
        if (col !== r && A[r][col] !== 0) diag = false;
      }
      rho = Math.max(rho, s);
    }
    const same = A.every((row, r) => Math.abs(row[r] - A[0][0]) <= 1e-12 * Math.abs(A[0][0]));
    const xInf = m ? solve(A, b.map((q) => -q)) : new Float64Array(0);
    // Free and every contact alike: each V_c is one exponential, a crossing shows at the end.
    const hmax = diag && same ? Infinity : rho > 0 ? 1 / (16 * rho) : Infinity;
    this._sys = { i, v, vt, tot, cons, act, A, b, xInf, diag, hmax };
    return this._sys;
  }

  /** The state after h seconds in regime s from x0 (and the integral of x over them). */
  _at(s, x0, h, wantIntegral = false) {
    const { act, A, xInf, diag } = s;
    const m = act.length;
    const d0 = new Float64Array(m);
    act.forEach((e, r) => {
      d0[r] = x0[e] - xInf[r];
    });
    let d1;
    if (diag) {
      d1 = d0.map((q, r) => q * Math.exp(A[r][r] * h));
    } else {
      const phi = expm(A, h);
      d1 = new Float64Array(m);
      for (let r = 0; r < m; r++) {
        let q = 0;
        for (let col = 0; col < m; col++) q += phi[r][col] * d0[col];
        d1[r] = q;
      }
    }
    const x1 = new Float64Array(this.E);
    act.forEach((e, r) => {
      x1[e] = xInf[r] + d1[r];
    });
    if (!wantIntegral) return { x1 };
    // integral of x = x_inf h + A^-1 (x(h) - x0)
    const integ = new Float64Array(this.E);
    if (m) {
      const y = solve(A, d1.map((q, r) => q - d0[r]));
      act.forEach((e, r) => {
        integ[e] = xInf[r] * h + y[r];
      });
    }
    return { x1, integ };
  }

  _crossed(s, x) {
    return s.cons.filter((k) => dot(k.f, x) > k.tol);
  }

  _account(s, h, integ, x1) {
    for (let c = 0; c < this.C; c++) {
      const a = s.i[c];
      const q = dot(a, integ) + a[this.E] * (h - 1); // the integral of a.x + a0 over h
      this.chargeC[c] += Math.abs(q);
      const i1 = Math.abs(dot(a, x1));
      if (i1 > this.peakA[c]) this.peakA[c] = i1;
    }
  }

  // ---- integration ------------------------------------------------------------------
  advance(tNs) {
    let dt = (tNs - this.t) * 1e-9;
    if (dt < -1e-6) throw new Error(`network model asked to go back in time (${tNs} < ${this.t})`);
    if (dt <= 0) return; // the same instant (float rounding of board time: under 1 us)
    this.t = tNs;
    let switches = 0;
    while (dt > 0) {
      const s = this._system();
      let h = Math.min(dt, s.hmax);
      let r = this._at(s, this.x, h, true);
      const hit = switches < 32 ? this._crossed(s, r.x1) : [];
      if (hit.length) {
        // The first crossing in (0, h]: bisect to 1 ps, then step just past it.
        let lo = 0;
        let hi = h;
        while (hi - lo > 1e-12) {
          const mid = (lo + hi) / 2;
          if (this._crossed(s, this._at(s, this.x, mid).x1).length) hi = mid;
          else lo = mid;
        }
        h = hi;
        r = this._at(s, this.x, h, true);
      }
      this._account(s, h, r.integ, r.x1);
      this.x = r.x1;
      for (const e of this.bridged.keys()) if (this.bridged[e]) this.x[e] = 0;
      dt -= h;
      if (hit.length) {
        for (const k of this._crossed(s, r.x1)) this.sat[k.c] = k.to;
        this._sys = null;
        switches++;
        this.switches++;
        if (switches === 32) this._regime(); // chattering on a boundary: let the solve decide
      }
    }
  }
}

// ---- small dense linear algebra (m <= C + 1) ---------------------------------------------
function dot(a, x) {
  let s = a[a.length - 1];
  for (let k = 0; k < a.length - 1; k++) s += a[k] * x[k];
  return s;
}

/** x with A x = b (Gaussian elimination, partial pivoting). */
export function solve(A, b) {
  const m = b.length;
  const M = A.map((row, r) => [...row, b[r]]);
  for (let col = 0; col < m; col++) {
    let p = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(M[r][col]) > Math.abs(M[p][col])) p = r;
    [M[col], M[p]] = [M[p], M[col]];
    if (M[col][col] === 0) throw new Error('network: singular system');
    for (let r = col + 1; r < m; r++) {
      const f = M[r][col] / M[col][col];
      for (let k = col; k <= m; k++) M[r][k] -= f * M[col][k];
    }
  }
  const x = new Float64Array(m);
  for (let r = m - 1; r >= 0; r--) {
    let s = M[r][m];
    for (let k = r + 1; k < m; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

function matmul(P, Q) {
  const m = P.length;
  return P.map((row) => {
    const out = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      const pk = row[k];
      if (pk === 0) continue;
      for (let col = 0; col < m; col++) out[col] += pk * Q[k][col];
    }
    return out;
  });
}

/** exp(A h): scale to |A h / 2^s| <= 1/4, Taylor (to degree 12 at most), square s times. */
export function expm(A, h) {
  const m = A.length;
  let norm = 0;
  for (const row of A) norm = Math.max(norm, row.reduce((s, q) => s + Math.abs(q), 0) * h);
  const s = norm > 0.25 ? Math.ceil(Math.log2(norm / 0.25)) : 0;
  const f = h / 2 ** s;
  const X = A.map((row) => row.map((q) => q * f));
  let term = A.map((_, r) => {
    const e = new Float64Array(m);
    e[r] = 1;
    return e;
  });
  const out = term.map((row) => Float64Array.from(row));
  for (let k = 1; k <= 12; k++) {
    term = matmul(term, X);
    let big = 0;
    for (let r = 0; r < m; r++) {
      for (let col = 0; col < m; col++) {
        term[r][col] /= k;
        out[r][col] += term[r][col];
        big = Math.max(big, Math.abs(term[r][col]));
      }
    }
    if (big < 1e-18) break; // each further term is at least 8x smaller (|X| <= 1/4)
  }
  let P = out;
  for (let k = 0; k < s; k++) P = matmul(P, P);
  return P;
}

// ---- the sense inputs -----------------------------------------------------------------
/**
 * The RP2040 ADC's inputs on the two-source board: current_channels[c] -> mid_mV +
 * I_c uA * shunt * gain / 1000, voltage_channels[c] -> mid_mV + V_c mV / voltage_divider
 * (V_c to ground); the temperature sensor (4) reads 706 mV; other inputs null (read 0).
 * s: midMv, shuntOhm, gain, divider, currentChannels, voltageChannels.
 */
export function networkAdcChannels(net, s) {
  const role = new Map();
  s.currentChannels.forEach((ch, c) => role.set(ch, ['i', c]));
  s.voltageChannels.forEach((ch, c) => role.set(ch, ['v', c]));
  return (ch, tNs) => {
    const r = role.get(ch);
    if (r) {
      const x = net.sample(tNs);
      if (r[0] === 'i') return s.midMv + (x.i[r[1]] * 1e6 * s.shuntOhm * s.gain) / 1000;
      return s.midMv + (x.v[r[1]] * 1000) / s.divider;
    }
    if (ch === 4) return 706;
    return null;
  };
}
