// The analog stage after the DAC: improved Howland current pump (current follows A - B),
// its hardware current limit and compliance, the output relay, and the electrode-skin
// load: series R + (skin R || skin C), as firmware/hal/sim.py models it.
//
// Source current: I = ((VA - VB) / lsb - (zero_code - 2048)) * nA_per_code, with
// lsb = vref / 4096 (2048: the code channel B is designed to hold), clamped to
// +/- hw_current_limit; zero while the relay is open (enable pin not driven high).
// Load: the electrode voltage is v = I*Rs + vc; where |v| would pass compliance the source
// saturates, I = (+-Vcomp - vc) / Rs. The skin capacitor obeys C dvc/dt = I - vc/Rskin.
// Between two events (a DAC latch, an enable change) the source current is constant, so
// vc follows an exponential in each regime (linear, saturated) and the crossing between
// regimes is found in closed form: the integration is exact, whatever the step.
// Faults (setFault, as firmware/hal/sim.py injects them): "liftoff" (the electrodes come
// off) puts liftoff_ohm (10 MOhm) in series: the source sits at compliance and ~3 uA flows;
// the skin capacitor discharges through skin R. "short" (the electrodes touch) puts
// short_ohm (10 ohm) in series and bridges skin R and C (vc = 0 at once). null clears: the
// board's series R and skin back (the capacitor starts from what it holds).
// Not modelled: skin R falling while current flows (Hahn 2013; the sim does it), drift,
// the pump's finite output impedance, op-amp slew and the snubber, noise sources here.

export const FAULT_KINDS = ['liftoff', 'short'];

export class AnalogStage {
  constructor(p) {
    this.lsbMv = p.vrefMv / 4096;
    this.offsetCodes = p.zeroCode - 2048;
    this.nAPerCode = p.nAPerCode;
    this.limitA = p.hwLimitUa * 1e-6;
    this.comp = p.complianceV;
    this.rs = p.seriesOhm;
    this.rs0 = p.seriesOhm;
    this.liftoffOhm = p.liftoffOhm ?? 10e6;
    this.shortOhm = p.shortOhm ?? 10;
    this.fault = null; // null, 'liftoff' or 'short'
    this.bridged = false; // skin R and C shorted: vc = 0
    this.rsk = p.skinOhm;
    this.c = p.skinNf * 1e-9;
    if (!(this.rs > 0 && this.rsk > 0 && this.c > 0 && this.liftoffOhm > 0 && this.shortOhm > 0)) {
      throw new Error('load model: series_ohm, skin_ohm, skin_nF, liftoff_ohm and short_ohm must be positive');
    }
    this.t = 0; // ns of the state below
    this.vc = 0; // skin capacitor, V
    this.src = 0; // source current the pump drives (before compliance), A
    this.enabled = false;
    this.vA = 0;
    this.vB = 0;
    this.chargeC = 0; // |charge| delivered, coulombs (for the stats)
    this.peakA = 0;
  }

  // ---- inputs -----------------------------------------------------------------------
  setDac(tNs, vAmV, vBmV) {
    this.advance(tNs);
    this.vA = vAmV;
    this.vB = vBmV;
    this._source();
  }

  setEnable(tNs, on) {
    this.advance(tNs);
    this.enabled = !!on;
    this._source();
  }

  /** kind: 'liftoff', 'short' or null (clear), from tNs on. */
  setFault(tNs, kind) {
    if (kind !== null && !FAULT_KINDS.includes(kind)) throw new Error(`unknown fault ${JSON.stringify(kind)} (${FAULT_KINDS.join(', ')})`);
    this.advance(tNs);
    this.fault = kind;
    this.bridged = kind === 'short';
    this.rs = kind === 'liftoff' ? this.liftoffOhm : kind === 'short' ? this.shortOhm : this.rs0;
    if (this.bridged) this.vc = 0; // the bridge discharges the skin capacitance at once
  }

  _source() {
    if (!this.enabled) {
      this.src = 0;
      return;
    }
    const codes = (this.vA - this.vB) / this.lsbMv - this.offsetCodes;
    const i = (codes * this.nAPerCode) * 1e-9;
    this.src = Math.max(-this.limitA, Math.min(this.limitA, i));
  }

  // ---- outputs ----------------------------------------------------------------------
  /** State at tNs (>= the last event): current A, electrode voltage V (anode - cathode). */
  sample(tNs) {
    this.advance(tNs);
    const i = this.current();
    return { i, v: i * this.rs + this.vc, vc: this.vc, saturated: this._saturated() };
  }

  current() {
    if (!this._saturated()) return this.src;
    const s = Math.sign(this.src * this.rs + this.vc);
    return (s * this.comp - this.vc) / this.rs;
  }

  // ---- exact integration ----------------------------------------------------------------
  _saturated() {
    if (this.src === 0) return false;
    const v = this.src * this.rs + this.vc;
    const lim = this.comp;
    if (Math.abs(v) > lim * (1 + 1e-12)) return true;
    if (Math.abs(v) < lim * (1 - 1e-12)) return false;
    // On the boundary: saturated if the linear trajectory would carry v beyond it.
    return Math.sign(v) * (this.src * this.rsk - this.vc) > 0;
  }

  _regime() {
    // The current regime: vc's asymptote vInf and time constant tau (and the clamp vl).
    if (this._saturated()) {
      const vl = Math.sign(this.src * this.rs + this.vc) * this.comp;
      const rp = (this.rs * this.rsk) / (this.rs + this.rsk);
      return { sat: true, vl, vInf: (vl * this.rsk) / (this.rs + this.rsk), tau: this.c * rp };
    }
    return { sat: false, vInf: this.src * this.rsk, tau: this.c * this.rsk };
  }

  advance(tNs) {
    let dt = (tNs - this.t) * 1e-9;
    if (dt < -1e-6) throw new Error(`analog model asked to go back in time (${tNs} < ${this.t})`);
    if (dt <= 0) return; // the same instant (float rounding of board time: under 1 us)
    this.t = tNs;
    if (this.bridged) {
      // Skin R and C shorted: a resistor Rs alone, the current constant over the step.
      this.vc = 0;
      const i = Math.abs(this.current());
      this.chargeC += i * dt;
      if (i > this.peakA) this.peakA = i;
      return;
    }
    for (let k = 0; k < 4 && dt > 0; k++) {
      const g = this._regime();
      const v0 = this.vc;
      let step = dt;
      // The boundary between regimes: vc where |src*Rs + vc| = compliance.
      if (this.src !== 0) {
        const vb = Math.sign(this.src) * this.comp - this.src * this.rs;
        const r = (vb - g.vInf) / (v0 - g.vInf);
        if (r > 0 && r < 1) {
          const tc = -g.tau * Math.log(r);
          if (tc < dt) step = tc;
        }
      }
      const e = Math.exp(-step / g.tau);
      const v1 = g.vInf + (v0 - g.vInf) * e;
      // Charge: linear regime I = src; saturated I = (vl - vc)/Rs, integrated exactly.
      let q;
      if (g.sat) {
        const intVc = g.vInf * step + (v0 - g.vInf) * g.tau * (1 - e);
        q = (g.vl * step - intVc) / this.rs;
      } else {
        q = this.src * step;
      }
      this.chargeC += Math.abs(q);
      this.vc = step < dt ? Math.sign(this.src) * this.comp - this.src * this.rs : v1;
      const i = Math.abs(this.current());
      if (i > this.peakA) this.peakA = i;
      dt -= step;
    }
    if (dt > 0) {
      // More regime changes in one step than physics allows: settle at the asymptote.
      this.vc = this._regime().vInf;
    }
  }
}
