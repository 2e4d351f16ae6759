// The two-source network wired into the virtual board (board.mjs current_channels ->
// lib/network.mjs), with boards/pico2-mcp4922.json. No firmware image, the chip not run.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { boardParams, BoardError, readJson } from '../lib/board.mjs';
import { FlashStore } from '../lib/flash.mjs';
import { adcCode } from '../lib/rpadc.mjs';
import { VirtualBoard } from '../lib/vboard.mjs';

const BOARDS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'boards');
const SIM = readJson(join(BOARDS, 'sim.json'));
const TWO = readJson(join(BOARDS, 'pico2-mcp4922.json'));
const ms = (x) => x * 1e6;
const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test('board params: current_channels selects the network; a single-source board keeps its keys', () => {
  const p = boardParams(TWO, SIM);
  assert.equal(p.stage.sources, 2);
  assert.deepEqual(p.sense.currentChannels, [0, 2]);
  assert.deepEqual(p.sense.voltageChannels, [1, 3]);
  assert.equal(p.sense.readbackChannel, null);
  const one = boardParams(readJson(join(BOARDS, 'pico-mcp4922.json')), SIM);
  assert.equal(one.stage.sources, undefined);
  assert.equal(one.sense.currentChannel, 0);
  assert.equal(one.sense.currentChannels, undefined);
  const bad = structuredClone(TWO);
  bad.sense.adc.voltage_channels = [1];
  assert.throws(() => boardParams(bad, SIM), BoardError);
});

function board() {
  const flash = new FlashStore(null);
  flash.loadBlocks([{ addr: 0, data: new Uint8Array(4) }]);
  const events = [];
  const b = new VirtualBoard({ params: boardParams(TWO, SIM, { adc_noise_lsb: 0 }), flash, onEvent: (e) => events.push(e) });
  b.start();
  b.cpu.start(0);
  return { b, events };
}

/** Latch codes on channels A and B together (one LDAC), as hal.pio_dac.dac2 does. */
function latch(b, codes) {
  codes.forEach((code, ch) => {
    b.dac.input[ch] = { code, buf: false, gain1x: true, active: true };
  });
  b.dac.setLdac(1, b.now());
  b.dac.setLdac(0, b.now()); // falling: both outputs at once
}

/** What the RP2040 ADC converts on input ch at board time tNs (the hook attachRpAdc installs). */
function convert(b, ch) {
  const adc = b.chip.rp.adc;
  adc.onADCRead(ch);
  adc.sampleAlarm.callback();
  return adc.result;
}

test('the virtual board with two sources: DAC A and B drive sources 1 and 2, the ADC reads I1 V1 I2 V2', () => {
  const { b } = board();
  assert.equal(b.multi, true);
  latch(b, [2048 + 455, 2048 - 227]); // ~ +1001 uA and -499 uA
  near(b.stage.want[0], 0, 0, 'the relay is open');
  b._setEnable(true);
  near(b.stage.want[0], 455 * 2.2e-6, 1e-12, 'source 1');
  near(b.stage.want[1], -227 * 2.2e-6, 1e-12, 'source 2');
  b.stage.advance(ms(3000)); // steady; the ADC samples at board time 0 (the chip not run)
  const x = b.stage.sample(b.stage.t);
  const R = 8500;
  near(x.v[0], 455 * 2.2e-6 * R + (455 - 227) * 2.2e-6 * R, 1e-6, 'V1');
  const adcNow = (ch) => {
    b.bclock.now = () => b.stage.t; // the conversion at the network's time
    return convert(b, ch);
  };
  assert.equal(adcNow(0), adcCode(1650 + 455 * 2.2 * 0.3, 3300));
  assert.equal(adcNow(1), adcCode(1650 + (x.v[0] * 1000) / 20, 3300));
  assert.equal(adcNow(2), adcCode(1650 - 227 * 2.2 * 0.3, 3300));
  assert.equal(adcNow(3), adcCode(1650 + (x.v[1] * 1000) / 20, 3300));
  assert.equal(adcNow(4), adcCode(706, 3300));
  const load = b.stats().load;
  assert.equal(load.per_source.length, 2);
  near(load.delivered_uC, (455 + 227) * 2.2 * 3, 1e-3, 'charge of both over 3 s');
});

test('fault KIND ELECTRODE on the two-source board: the event names the electrode', () => {
  const { b, events } = board();
  latch(b, [2048 + 455, 2048 + 455]);
  b._setEnable(true);
  const ev = b.fault('liftoff', 0);
  assert.equal(ev.electrode, 0);
  assert.equal(ev.series_ohm, 10000000);
  assert.equal(events.at(-1), ev);
  const ret = b.fault('liftoff'); // no electrode: the return
  assert.equal(ret.electrode, 2);
  assert.deepEqual(b.stage.sample(b.now()).saturated, [1, 1]);
  assert.equal(b.fault(null, 2).kind, 'clear');
});

test('the harness\'s fault line: KIND [ELECTRODE], the electrode only on the two-source board', () => {
  const { b, events } = board();
  assert.equal(b.faultCommand(' short 1'), null);
  assert.equal(events.at(-1).electrode, 1);
  assert.equal(b.stage.fault[1], 'short');
  assert.equal(b.faultCommand('clear 1'), null);
  assert.equal(b.stage.fault[1], null);
  assert.equal(b.faultCommand('liftoff'), null); // the return
  assert.equal(b.stage.fault[2], 'liftoff');
  assert.match(b.faultCommand('liftoff 3'), /electrode 0\.\.2 \(2 the return\)/);
  assert.match(b.faultCommand('melt 0'), /expected liftoff, short or clear/);
  // One source (pico-mcp4922): as before, and no electrode.
  const flash = new FlashStore(null);
  flash.loadBlocks([{ addr: 0, data: new Uint8Array(4) }]);
  const one = new VirtualBoard({ params: boardParams(readJson(join(BOARDS, 'pico-mcp4922.json')), SIM), flash });
  one.start();
  assert.equal(one.multi, false);
  assert.equal(one.faultCommand('liftoff'), null);
  assert.equal(one.stage.fault, 'liftoff');
  assert.match(one.faultCommand('short 0'), /one load: no electrode/);
  assert.equal(one.stage.fault, 'liftoff');
  assert.match(one.faultCommand(''), /fault "": expected liftoff, short or clear/);
  assert.equal(one.faultCommand('clear'), null);
  assert.equal(one.stage.fault, null);
});
