// Replays host/tesctl/hil/test/ref/simnet_ref.json's scenarios on lib/network.mjs (the
// reference numbers: ref/simnet_ref.py, firmware/hal/simnet.py under CPython).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Network } from '../lib/network.mjs';

export const REF = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'ref', 'simnet_ref.json'), 'utf8'));

/** The network's parameters for the draft board (contract) with the reference's load. */
export function refParams(ref = REF) {
  const b = ref.board;
  const m = ref.model;
  return {
    sources: b.current_sources,
    vrefMv: b.dac.vref_mV,
    zeroCode: b.current_source.zero_code,
    nAPerCode: b.current_source.nA_per_code,
    hwLimitUa: b.hw_current_limit_uA,
    complianceV: b.compliance_V,
    seriesOhm: m.series_ohm,
    skinOhm: m.skin_ohm,
    skinNf: m.skin_nF,
    liftoffOhm: m.liftoff_ohm,
    shortOhm: m.short_ohm,
  };
}

/** simnet's set current -> DAC code (hal.sim: the board calibration, rounded half up). */
export function codeOf(board, uA) {
  const cal = board.calibration;
  const z = cal.zero_code;
  const sc = cal.full_scale_code - z;
  const su = cal.full_scale_uA;
  const half = su >> 1;
  const hw = board.hw_current_limit_uA;
  const s = Math.max(-hw, Math.min(hw, uA));
  const code = s >= 0 ? z + Math.floor((s * sc + half) / su) : z - Math.floor((half - s * sc) / su);
  return Math.max(0, Math.min(4095, code));
}

export function levelsOf(spec, fs) {
  if (spec.kind === 'dc') return () => spec.uA;
  return (k) => spec.amp.map((a, c) => Math.floor(a * Math.sin(2 * Math.PI * spec.hz * k / fs + (spec.phase[c] * Math.PI) / 180) + 0.5));
}

/** Play scenario name; -> rows [{k, ref, got}] with got: codes, i uA, v mV, vc mV. */
export function replay(name, ref = REF, net = new Network(refParams(ref))) {
  const sc = ref.scenarios[name];
  const dtNs = 1e9 / sc.fs;
  const lv = levelsOf(sc.set, sc.fs);
  const rows = new Map(sc.rows.map((r) => [r[0], r]));
  const lsb = ref.board.dac.vref_mV / 4096;
  net.setEnable(0, true);
  const out = [];
  const n = (sc.ms * sc.fs) / 1000;
  for (let k = 0; k < n; k++) {
    const t = k * dtNs;
    const ev = sc.events[String(k)];
    if (ev && ev[0] === 'fault') net.setFault(t, ev[1], ev[2]);
    if (ev && ev[0] === 'enable') net.setEnable(t, ev[1]);
    const codes = lv(k).map((uA) => codeOf(ref.board, uA));
    net.setDac(t, codes.map((c) => c * lsb));
    const r = rows.get(k);
    if (r) {
      const x = net.sample(t);
      out.push({
        k,
        ref: { codes: r[1], i: r[2], v: r[3], vc: r[4] },
        got: { codes, i: x.i.map((a) => a * 1e6), v: x.v.map((a) => a * 1e3), vc: x.vc.map((a) => a * 1e3), sat: x.saturated },
      });
    }
  }
  return { out, net };
}
