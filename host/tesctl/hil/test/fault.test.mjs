// Fault injection (`fault liftoff|short|clear` on the harness's stdin): the load model under
// each fault, what the sense ADC then reads against the firmware supervisor's rules
// (firmware/tes/supervisor.py: open-circuit at compliance with V/I > 1 MOhm; short with
// V/I < 100 ohm and |i| >= 300 uA), and the board's fault event with the onset's time.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AnalogStage } from '../lib/analog.mjs';
import { boardParams, readJson } from '../lib/board.mjs';
import { FlashStore } from '../lib/flash.mjs';
import { adcCode } from '../lib/rpadc.mjs';
import { Runner } from '../lib/runner.mjs';
import { rpAdcChannels } from '../lib/sense.mjs';
import { VirtualBoard } from '../lib/vboard.mjs';
import { T } from './helpers.mjs';

const BOARDS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'boards');
const params = () => boardParams(readJson(join(BOARDS, 'pico-mcp4922.json')), readJson(join(BOARDS, 'sim.json')));
const ms = (x) => x * 1e6;
const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
const MID = 1024; // channel B at code 2048 (vref 2048 mV: 0.5 mV a code)

/** The board's stage (pico-mcp4922 with the sim's load) driving uA, steady after 1 s. */
function driven(uA) {
  const p = params();
  const s = new AnalogStage(p.stage);
  s.setEnable(0, true);
  s.setDac(0, MID + (uA / 2.2) * 0.5, MID); // 2.2 uA a code
  s.advance(ms(1000));
  return { s, p };
}

/** What the firmware reads (uA, mV) from the RP2040 ADC codes at tNs, without noise. */
function sensed(s, p, tNs) {
  const ch = rpAdcChannels(s, p.sense);
  const mid = adcCode(p.sense.midMv, p.sense.refMv);
  const mvPerCode = p.sense.refMv / 4096;
  const iCode = adcCode(ch(p.sense.currentChannel, tNs), p.sense.refMv) - mid;
  const vCode = adcCode(ch(p.sense.voltageChannel, tNs), p.sense.refMv) - mid;
  return {
    uA: (iCode * mvPerCode * 1000) / (p.sense.shuntOhm * p.sense.gain),
    mV: vCode * mvPerCode * p.sense.divider,
  };
}

test('the board file carries the sim\'s fault loads: liftoff 10 MOhm, short 10 ohm', () => {
  const p = params();
  assert.equal(p.stage.liftoffOhm, 10e6);
  assert.equal(p.stage.shortOhm, 10);
});

test('liftoff: the source goes to compliance, ~3 uA flows, the sense ADC reads an open circuit', () => {
  const { s, p } = driven(2000);
  near(s.sample(ms(1000)).v, 2e-3 * 8500, 1e-6, 'before: 2 mA into 8.5 kOhm');
  s.setFault(ms(1000), 'liftoff');
  const x = s.sample(ms(1000));
  assert.equal(x.saturated, true);
  near(x.v, 30, 1e-9, 'at compliance at once');
  near(x.i, (30 - x.vc) / 10e6, 1e-15, 'the series 10 MOhm passes what compliance allows');
  for (const t of [ms(1000) + 1000, ms(1001), ms(1500)]) {
    const r = sensed(s, p, t);
    assert.ok(r.mV >= 0.97 * 30000, `voltage at compliance as the ADC reads it: ${r.mV} mV`);
    assert.ok(r.mV > 1000 * Math.max(Math.abs(r.uA), 1e-9), `V/I > 1 MOhm: ${r.mV} mV, ${r.uA} uA`);
    assert.ok(Math.abs(r.uA) * 8 < 2000, 'the current collapsed (under 1/8 of the set)');
  }
  const y = s.sample(ms(2000)); // the skin capacitor has discharged through skin R
  near(y.i, 30 / (10e6 + 8000), 1e-12, '~3 uA at steady state');
  assert.equal(s.fault, 'liftoff');
});

test('liftoff integrates exactly: one step equals many small ones', () => {
  const a = driven(2000).s;
  const b = driven(2000).s;
  a.setFault(ms(1000), 'liftoff');
  b.setFault(ms(1000), 'liftoff');
  for (let k = 1; k <= 500; k++) b.advance(ms(1000 + 0.1 * k));
  a.advance(ms(1050));
  near(a.vc, b.vc, 1e-9, 'vc');
  near(a.chargeC, b.chargeC, 1e-12, 'charge');
});

test('short: ~0 ohm, the set current flows, V/I under 100 ohm as the ADC reads it', () => {
  const { s, p } = driven(2000);
  s.setFault(ms(1000), 'short');
  const x = s.sample(ms(1000));
  assert.equal(x.vc, 0, 'the bridge discharges the skin capacitance at once');
  near(x.i, 2000e-6, 3e-6, 'the set current (within a code)');
  near(x.v, x.i * 10, 1e-12, 'v = I * 10 ohm');
  const q0 = s.chargeC;
  const r = sensed(s, p, ms(1100));
  near(s.chargeC - q0, x.i * 0.1, 1e-12, 'charge: the current over 100 ms');
  assert.ok(r.uA >= 300, `|i| >= 300 uA: ${r.uA}`);
  assert.ok(Math.abs(r.mV) * 10 < r.uA, `V/I < 100 ohm: ${r.mV} mV / ${r.uA} uA`);
  // Through a short the full hardware limit flows without reaching compliance.
  s.setDac(ms(1100), 2047.5, MID);
  near(s.sample(ms(1200)).i, 4500e-6, 1e-12, 'clamped at the hardware limit');
  assert.equal(s.sample(ms(1200)).saturated, false);
});

test('clear: the board\'s load is back, the skin capacitor charges again from where it was', () => {
  const { s } = driven(2000);
  s.setFault(ms(1000), 'short');
  s.setFault(ms(1010), null);
  assert.equal(s.fault, null);
  assert.equal(s.rs, 500);
  const x = s.sample(ms(1010));
  near(x.vc, 0, 1e-12, 'the capacitor starts empty');
  near(x.v, x.i * 500, 1e-9, 'series R only at first');
  near(s.sample(ms(3000)).v, x.i * 8500, 1e-6, 'steady again');
  s.setFault(ms(3000), 'liftoff');
  s.setFault(ms(3001), null);
  assert.equal(s.sample(ms(3001)).saturated, false);
  assert.throws(() => s.setFault(ms(3002), 'bogus'), /unknown fault/);
});

test('the relay open under a fault: no source current, nothing sensed', () => {
  const { s } = driven(2000);
  s.setFault(ms(1000), 'liftoff');
  s.setEnable(ms(1000), false);
  const x = s.sample(ms(1100));
  assert.equal(x.i, 0);
  assert.equal(x.saturated, false);
});

test('the board\'s fault event carries the onset in emulated microseconds, at the current time', () => {
  const flash = new FlashStore(null);
  // b . at the reset vector's place: the chip idles in a loop while time passes
  const code = new Uint8Array(2);
  new DataView(code.buffer).setUint16(0, T.b(0, 0), true);
  flash.loadBlocks([{ addr: 0, data: code }]);
  const events = [];
  const lines = [];
  const b = new VirtualBoard({ params: params(), flash, log: (l) => lines.push(l), onEvent: (e) => events.push(e) });
  b.start();
  b.cpu.start(0);
  const runner = new Runner(b, { realtime: false });
  runner.run(ms(3));
  const t = b.now();
  assert.ok(t > ms(2), `time passed: ${t} ns`);
  b._setEnable(true);
  b.stage.setDac(t, MID + (2000 / 2.2) * 0.5, MID);
  const ev = b.fault('liftoff');
  assert.deepEqual(events.at(-1), ev);
  assert.equal(ev.event, 'fault');
  assert.equal(ev.kind, 'liftoff');
  assert.equal(ev.was, null);
  assert.equal(ev.t_us, Math.round(t) / 1e3);
  assert.equal(ev.enabled, true);
  assert.equal(ev.series_ohm, 10e6);
  near(ev.v_V, 30, 1e-3, 'at compliance');
  assert.match(lines.at(-1), /fault liftoff at \d+\.\d{3} ms/);
  runner.run(t + ms(1)); // run() takes an absolute board time
  const c = b.fault(null);
  assert.equal(c.kind, 'clear');
  assert.equal(c.was, 'liftoff');
  assert.ok(c.t_us > ev.t_us);
  assert.equal(b.stage.rs, 500);
});
