// The two-source board's electrode network (lib/network.mjs) against firmware/hal/simnet.py
// (reference numbers: ref/simnet_ref.py -> ref/simnet_ref.json, CPython, noise-free), the
// closed-form physics, an independent fine-step integration, the faults and the ADC map.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expm, Network, networkAdcChannels, solve } from '../lib/network.mjs';
import { adcCode } from '../lib/rpadc.mjs';
import { REF, codeOf, refParams, replay } from './netref.mjs';

const P = refParams(); // the contract's draft board, boards/sim.json's load (500 + 8000 || 2 uF)
const FS = 5000;
const DT_US = 1e6 / FS;
const ms = (x) => x * 1e6;
const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);
const LSB = P.vrefMv / 4096;

// simnet's skin capacitor: vc = (vc*k1 + i*k2 + 512) >> 10, k1 = 1024 tau/(tau + dt) floored
// (hal.simnet.set_load). That is the exact zero-order-hold step of an RC whose time constant
// gives exp(-dt/tau') = k1/1024 (k2 = (1024 - k1) R / 1000 keeps the DC gain): with that C'
// the two models differ only by simnet's integer rounding. Its bounds: the +512 >> 10 dead
// band, 512 / (1024 - k1) mV per capacitor; a current floored by < 1 uA (R_skin * 1 uA on a
// contact, twice on the return); 1 mV floors in v.
const TAU_US = Math.floor((P.skinOhm * P.skinNf) / 1000);
const K1 = 1024 + Math.floor((-1024 * DT_US) / (TAU_US + DT_US));
const NF_SIM = (-DT_US * 1e-6) / Math.log(K1 / 1024) / P.skinOhm * 1e9;
const TOL_VC = 512 / (1024 - K1) + (2 * P.skinOhm) / 1000; // mV
const TOL_V = 2 * TOL_VC + 3;

test('the effective capacitance of simnet at 5 kS/s (k1 = 1011: tau 2.2 % shorter than 16 ms)', () => {
  assert.equal(K1, 1011);
  near(NF_SIM, 1956.7, 0.1, 'nF');
});

for (const name of Object.keys(REF.scenarios)) {
  test(`simnet agreement, sample by sample: ${name}`, () => {
    const { out } = replay(name, REF, new Network({ ...P, skinNf: NF_SIM }));
    assert.ok(out.length >= 100);
    let edge = 0;
    let prev = out[0];
    for (const r of out) {
      assert.deepEqual(r.got.codes, r.ref.codes, `codes at ${r.k}`);
      for (let e = 0; e < 3; e++) near(r.got.vc[e], r.ref.vc[e], TOL_VC, `${name} k ${r.k} vc[${e}]`);
      for (let c = 0; c < 2; c++) {
        // simnet saturates whole samples; the JS model at the instant: a row next to a
        // regime change may differ by the current's slope over one sample (at most 2 rows).
        const refSat = Math.abs(r.ref.v[c]) === 30000 ? Math.sign(r.ref.v[c]) : 0;
        if (refSat !== r.got.sat[c]) {
          edge++;
          continue;
        }
        let tolI = 2;
        if (refSat) {
          // Saturated, I = (+-Vcomp - x_c - V_T) / Rs: it follows the capacitors' rounding
          // (the dead band, through Rs), and simnet holds the current it computes at the
          // sample's start for the whole sample (explicit: behind by up to one sample's
          // change, taken from the JS model over the last 10 samples).
          const dx = Math.abs(r.got.vc[c] - r.ref.vc[c]) + Math.abs(r.got.vc[2] - r.ref.vc[2]);
          tolI += (dx / P.seriesOhm) * 1000 + Math.abs(r.got.i[c] - prev.got.i[c]) / 10;
        }
        near(r.got.i[c], r.ref.i[c], tolI, `${name} k ${r.k} i[${c}] uA`);
        near(r.got.v[c], r.ref.v[c], TOL_V, `${name} k ${r.k} v[${c}]`);
      }
      prev = r;
    }
    assert.ok(edge <= 2, `${edge} rows where only one model saturates`);
  });
}

/** A network driven at constant set currents uA[c] (through the DAC codes) from t = 0. */
function driven(uA, p = P) {
  const n = new Network(p);
  n.setEnable(0, true);
  n.setDac(0, uA.map((u) => 1024 + (u / 2.2) * LSB)); // 2.2 uA a code, exact (no rounding)
  return n;
}

test('DC closed form: V_c = I_c (Rs + Rskin) + I_tot (Rs + Rskin), each contact its own exponential', () => {
  const n = driven([1000, 500]);
  const tau = P.skinOhm * P.skinNf * 1e-9;
  const R = P.seriesOhm + P.skinOhm;
  const x = n.sample(tau * 1e9);
  const g = 1 - Math.exp(-1);
  near(x.vc[0], 1e-3 * P.skinOhm * g, 1e-9, 'vc0 at one tau');
  near(x.vc[1], 0.5e-3 * P.skinOhm * g, 1e-9, 'vc1');
  near(x.vc[2], 1.5e-3 * P.skinOhm * g, 1e-9, 'return');
  near(x.vt, 1.5e-3 * P.seriesOhm + x.vc[2], 1e-12, 'tissue');
  const y = n.sample(ms(2000));
  near(y.v[0], 1e-3 * R + 1.5e-3 * R, 1e-9, 'V1 steady');
  near(y.v[1], 0.5e-3 * R + 1.5e-3 * R, 1e-9, 'V2 steady');
  near(n.chargeC[0], 2e-3, 1e-12, 'charge of source 1 over 2 s');
});

test('6 Hz: in phase the return carries both (|V| = 3 |Z| |I|); anti-phase it carries nothing (|V| = |Z| |I|)', () => {
  const w = 2 * Math.PI * 6;
  const tau = P.skinOhm * P.skinNf * 1e-9;
  const zAbs = Math.hypot(P.seriesOhm + P.skinOhm / (1 + (w * tau) ** 2), (P.skinOhm * w * tau) / (1 + (w * tau) ** 2));
  for (const [sign, k] of [[1, 3], [-1, 1]]) {
    const n = new Network(P);
    n.setEnable(0, true);
    let peak = 0;
    let peakRet = 0;
    for (let j = 0; j < FS; j++) { // 1 s: five time constants, then the last period
      const t = (j * 1e9) / FS;
      const u = 1000 * Math.sin(w * (j / FS));
      const codes = [codeOf(REF.board, u), codeOf(REF.board, sign * u)];
      n.setDac(t, codes.map((c) => c * LSB));
      if (j >= FS - FS / 6) {
        const x = n.sample(t);
        peak = Math.max(peak, Math.abs(x.v[0]), Math.abs(x.v[1]));
        peakRet = Math.max(peakRet, Math.abs(x.vc[2]));
      }
    }
    // The DAC holds each sample (zero-order hold, 100 us late on average: 0.4 % at 6 Hz)
    // and rounds to 1.1 uA; the peak is read at the samples (cos(6 Hz * 100 us) ~ 1).
    near(peak, k * zAbs * 1e-3, 0.01 * k * zAbs * 1e-3, `peak |V| (${sign > 0 ? 'in' : 'anti'} phase)`);
    if (sign < 0) near(peakRet, 0, 1e-3, 'the return capacitor stays at ~0 (2 uA of rounding)');
  }
});

test('liftoff of a driven electrode: that source sits at compliance with ~uA, the other drives on', () => {
  const n = driven([1000, 1000]);
  n.setFault(ms(100), 'liftoff', 0);
  const x = n.sample(ms(1100));
  assert.deepEqual(x.saturated, [1, 0]);
  near(x.v[0], 30, 1e-9, 'at the compliance');
  assert.ok(x.i[0] > 0 && x.i[0] < 5e-6, `lifted current ${x.i[0]}`);
  near(x.i[1], 1e-3, 1e-12, 'source 2');
  const R = P.seriesOhm + P.skinOhm;
  near(x.v[1], 1e-3 * R + (1e-3 + x.i[0]) * R, 1e-6, 'V2: its contact and the return carrying ~1 mA');
  n.setFault(ms(1100), null, 0);
  near(n.sample(ms(3100)).v[0], 2e-3 * R + 1e-3 * R, 1e-3, 'cleared: back to 1 mA');
});

test('liftoff of the return, in phase: both sources saturate, ~uA flow', () => {
  const n = driven([1000, 1000]);
  n.setFault(ms(50), 'liftoff', 2);
  const x = n.sample(ms(60));
  assert.deepEqual(x.saturated, [1, 1]);
  near(x.v[0], 30, 1e-9, 'V1');
  near(x.v[1], 30, 1e-9, 'V2');
  for (const i of x.i) assert.ok(i > 0 && i < 5e-6, `current ${i}`);
  // Anti-phase the return carries nothing: its liftoff changes nothing.
  const a = driven([1000, -1000]);
  a.setFault(ms(50), 'liftoff', 2);
  const y = a.sample(ms(60));
  assert.deepEqual(y.saturated, [0, 0]);
  near(y.i[0], 1e-3, 1e-12, 'I1 anti-phase');
});

test('short: a driven electrode bypasses the tissue; the return shorted drops out of V', () => {
  const n = driven([1000, 1000]);
  n.setFault(ms(10), 'short', 1);
  const x = n.sample(ms(3000));
  near(x.v[1], 1e-3 * P.shortOhm, 1e-12, 'V2 = I2 * short_ohm');
  const R = P.seriesOhm + P.skinOhm;
  near(x.v[0], 1e-3 * R + 1e-3 * R, 1e-6, 'V1: the return carries I1 only');
  const m = driven([1000, -500]);
  m.setFault(ms(10), 'short', 2);
  const y = m.sample(ms(3000));
  near(y.vt, 0.5e-3 * P.shortOhm, 1e-12, 'V_T = I_tot * short_ohm');
  near(y.v[1], -0.5e-3 * R + y.vt, 1e-6, 'V2');
});

test('the relay open: no current, nothing saturates, the capacitors decay through skin R', () => {
  const n = driven([4000, 4000]);
  const x0 = n.sample(ms(100));
  assert.deepEqual(x0.saturated, [1, 1]); // 8 mA through the return: at compliance
  n.setEnable(ms(100), false);
  const tau = P.skinOhm * P.skinNf * 1e-9;
  const x = n.sample(ms(100) + tau * 1e9);
  assert.deepEqual(x.i, [0, 0]);
  assert.deepEqual(x.saturated, [0, 0]);
  for (let e = 0; e < 3; e++) near(x.vc[e], x0.vc[e] * Math.exp(-1), 1e-9, `vc[${e}]`);
  near(x.v[0], x.vc[0] + x.vc[2], 1e-12, 'V1 = its capacitor + the return\'s');
});

test('hardware limit and a source saturating at compliance: steady I = Vcomp / (2 (Rs + Rskin))', () => {
  const n = driven([5000, 0]);
  near(n.want[0], 4.5e-3, 1e-12, 'the pump clamps at 4500 uA');
  const R = P.seriesOhm + P.skinOhm;
  const x = n.sample(ms(2000));
  assert.deepEqual(x.saturated, [1, 0]);
  near(x.i[0], 30 / (2 * R), 1e-9, 'I1 through its contact and the return');
  near(x.v[1], x.i[0] * R, 1e-6, 'the idle electrode sees the tissue');
});

/** An independent model: forward Euler at 0.2 us, the tissue voltage solved each step by
 *  bisection (simnet's method, in floats). */
function fineSteps(uA, tEnd, faultRet = null) {
  const C = 2;
  const rs = [P.seriesOhm, P.seriesOhm, faultRet === 'liftoff' ? P.liftoffOhm : P.seriesOhm];
  const cap = P.skinNf * 1e-9;
  const want = uA.map((u) => u * 1e-6);
  const x = [0, 0, 0];
  const h = 0.2e-6;
  let cur = [0, 0];
  for (let t = 0; t < tEnd - h / 2; t += h) {
    const excess = (vt) => {
      let tot = 0;
      for (let c = 0; c < C; c++) {
        const o = x[c] + vt;
        cur[c] = Math.max((-30 - o) / rs[c], Math.min((30 - o) / rs[c], want[c]));
        tot += cur[c];
      }
      return rs[2] * tot + x[2] - vt;
    };
    let lo = -1e5;
    let hi = 1e5;
    for (let k = 0; k < 80; k++) {
      const mid = (lo + hi) / 2;
      if (excess(mid) > 0) lo = mid;
      else hi = mid;
    }
    excess(lo);
    cur = [...cur];
    const tot = cur[0] + cur[1];
    for (let c = 0; c < C; c++) x[c] += (h * (cur[c] - x[c] / P.skinOhm)) / cap;
    x[2] += (h * (tot - x[2] / P.skinOhm)) / cap;
  }
  return x;
}

test('through saturation and back: one step equals many small ones and an independent fine-step model', () => {
  // 2.5 mA each: the return's 5 mA takes V past 30 V after ~8 ms; the coupled regime.
  const a = driven([2500, 2500]);
  const b = driven([2500, 2500]);
  for (let k = 1; k <= 300; k++) b.advance(ms(0.1 * k));
  a.advance(ms(30));
  assert.deepEqual(a.sat, Int8Array.from([1, 1]));
  for (let e = 0; e < 3; e++) near(a.x[e], b.x[e], 1e-6, `vc[${e}] after 30 ms`);
  const f = fineSteps([2500, 2500], 30e-3);
  for (let e = 0; e < 3; e++) near(a.x[e], f[e], 2e-3, `vc[${e}] against forward Euler at 0.2 us`);
  assert.ok(a.switches >= 1);
  // Down to 1 mA and 0.2 mA: free again once the network can carry it.
  for (const n of [a, b]) n.setDac(ms(30), [1024 + (1000 / 2.2) * LSB, 1024 + (200 / 2.2) * LSB]);
  for (let k = 1; k <= 300; k++) b.advance(ms(30 + 0.1 * k));
  a.advance(ms(60));
  for (let e = 0; e < 3; e++) near(a.x[e], b.x[e], 1e-6, `vc[${e}] after 60 ms`);
  assert.deepEqual(a.sample(ms(60)).saturated, [0, 0]);
  near(a.chargeC[0], b.chargeC[0], 1e-12, 'charge');
});

test('unequal sources through saturation: against fine steps', () => {
  // [4000, -1500]: source 1 saturates, source 2 stays free. [4000, 2000]: source 1
  // saturates first, then source 2 reaches its compliance in the coupled regime.
  for (const [uA, sat] of [[[4000, -1500], [1, 0]], [[4000, 2000], [1, 1]]]) {
    const a = driven(uA);
    a.advance(ms(20));
    assert.deepEqual(a.sample(ms(20)).saturated, sat, `${uA}`);
    const f = fineSteps(uA, 20e-3);
    for (let e = 0; e < 3; e++) near(a.x[e], f[e], 2e-3, `${uA}: vc[${e}]`);
  }
});

test('C = 3: the same physics for more sources', () => {
  const n = driven([1000, -300, 500], { ...P, sources: 3 });
  const R = P.seriesOhm + P.skinOhm;
  const x = n.sample(ms(3000));
  near(x.v[1], -0.3e-3 * R + 1.2e-3 * R, 1e-6, 'V2 = I2 R + I_tot R');
  assert.equal(x.vc.length, 4);
});

test('the 4-input ADC map of the draft board: AIN0 I1, AIN1 V1, AIN2 I2, AIN3 V2', () => {
  const adc = REF.board.sense.adc;
  const s = { midMv: adc.mid_mV, shuntOhm: 100, gain: 3, divider: 20, currentChannels: adc.current_channels, voltageChannels: adc.voltage_channels };
  const n = driven([1000, -500]);
  const ch = networkAdcChannels(n, s);
  const t = ms(3000);
  const x = n.sample(t);
  near(ch(0, t), 1650 + 300, 1e-9, 'AIN0 = mid + 1 mA * 100 ohm * 3');
  near(ch(2, t), 1650 - 150, 1e-9, 'AIN2');
  near(ch(1, t), 1650 + (x.v[0] * 1000) / 20, 1e-9, 'AIN1 = mid + V1 / 20');
  near(ch(3, t), 1650 + (x.v[1] * 1000) / 20, 1e-9, 'AIN3');
  near(x.v[0], 8.5 * 1.5, 1e-6, 'V1 = 1 mA * 8.5 k + 0.5 mA * 8.5 k');
  assert.equal(ch(4, t), 706);
  assert.equal(ch(5, t), null);
  assert.equal(adcCode(ch(0, t), 3300), 2420);
  assert.equal(adcCode(ch(1, t), 3300), adcCode(1650 + 12750 / 20, 3300));
});

test('expm and solve against closed forms (the coupled regime\'s tools)', () => {
  // [[-a, b], [b, -a]]: exp = e^(-a h) [[cosh bh, sinh bh], [sinh bh, cosh bh]]; scaled and
  // squared (|A h| = 12 here).
  const a = 3000;
  const b = 1000;
  const h = 3e-3;
  const E = expm([Float64Array.of(-a, b), Float64Array.of(b, -a)], h);
  const e = Math.exp(-a * h);
  near(E[0][0], e * Math.cosh(b * h), 1e-15, 'E00');
  near(E[0][1], e * Math.sinh(b * h), 1e-15, 'E01');
  near(E[1][1], e * Math.cosh(b * h), 1e-15, 'E11');
  const x = solve([Float64Array.of(0, 2, 1), Float64Array.of(1, 1, 0), Float64Array.of(3, 0, 1)], Float64Array.of(7, 3, 6));
  for (const [k, want] of [[0, 1], [1, 2], [2, 3]]) near(x[k], want, 1e-12, `x${k}`);
});

test('faults name an electrode 0..C', () => {
  const n = new Network(P);
  assert.throws(() => n.setFault(0, 'liftoff', 3), /no electrode 3/);
  assert.throws(() => n.setFault(0, 'melt', 0), /unknown fault/);
});
