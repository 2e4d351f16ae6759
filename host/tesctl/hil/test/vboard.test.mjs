// The virtual board with tiny hand-assembled programs in flash at 0x10000000 (where boot2
// would be): resets, what survives them, and the CPU accounting. No firmware image.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { boardParams, readJson } from '../lib/board.mjs';
import { FlashStore } from '../lib/flash.mjs';
import { Runner } from '../lib/runner.mjs';
import { VirtualBoard } from '../lib/vboard.mjs';
import { T } from './helpers.mjs';

const BOARDS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'boards');
const params = () => boardParams(readJson(join(BOARDS, 'pico-mcp4922.json')), readJson(join(BOARDS, 'sim.json')));
const BOOT_CYCLES = 1 + 62500; // the boot service's bkpt and its 500 us

function program(halfwords, words = []) {
  const b = new Uint8Array(halfwords.length * 2 + words.length * 4);
  const dv = new DataView(b.buffer);
  halfwords.forEach((h, i) => dv.setUint16(2 * i, h, true));
  words.forEach((w, i) => dv.setUint32(halfwords.length * 2 + 4 * i, w >>> 0, true));
  return b;
}

function boardWith(code) {
  const flash = new FlashStore(null);
  flash.loadBlocks([{ addr: 0, data: code }]);
  flash.mem[0x100000] = 0x5a; // stands for the filesystem
  const lines = [];
  const events = [];
  const b = new VirtualBoard({ params: params(), flash, log: (l) => lines.push(l), onEvent: (e) => events.push(e) });
  b.start();
  b.cpu.start(0);
  return { b, flash, lines, events, runner: new Runner(b, { realtime: false }) };
}

// ldr r0,=ADDR; ldr r1,=VALUE; str r1,[r0]; b .
const store = (addr, value) => program([T.ldrPc(0, 4), T.ldrPc(1, 8), T.str(1, 0), T.b(6, 6)], [addr, value]);

test('watchdog TRIGGER (machine.reset) resets the chip; flash, DAC output and load are kept, the relay drops', () => {
  const { b, flash, events, runner } = boardWith(store(0x40058000, 0x80000000));
  b.dac.setLdac(0, 0);
  b.dac.setCs(0, 0);
  b.dac.clockIn(0x3000 | 2500, 16);
  b.dac.setCs(1, 0);
  b._setEnable(true);
  runner.run(1e6);
  assert.ok(b.resets.length >= 1);
  assert.match(b.resets[0].reason, /watchdog trigger/);
  assert.equal(events.find((e) => e.event === 'reset').reason, b.resets[0].reason);
  assert.equal(flash.mem[0x100000], 0x5a);
  assert.equal(b.dac.output[0].code, 2500, 'the DAC is its own chip: it keeps its output');
  assert.equal(b.enabled, false, 'the enable pin floats at reset: relay open');
  assert.equal(b.chip.rp.peripherals[0x40058].reason, 2, 'REASON says FORCE on the new chip');
});

test('watchdog timeout: LOAD 2000 at 2 MHz (errata E1) resets 1 ms after it is enabled', () => {
  const code = program(
    [T.ldrPc(0, 8), T.ldrPc(1, 12), T.str(1, 0, 4), T.ldrPc(1, 12), T.str(1, 0, 0), T.b(10, 10)],
    [0x40058000, 2000, 0x40000000],
  );
  const { b, runner } = boardWith(code);
  runner.run(3e6);
  assert.match(b.resets[0].reason, /watchdog timeout/);
  const t = b.resets[0].t_s * 1e9;
  const enabledAt = (BOOT_CYCLES + 6) * 8; // ns: boot, then the few instructions before CTRL
  assert.ok(Math.abs(t - enabledAt - 1e6) < 200, `reset at ${t} ns`);
});

test('SYSRESETREQ through AIRCR resets the chip; a write without the key does not', () => {
  let { b, runner } = boardWith(store(0xe000ed0c, 0x05fa0004));
  runner.run(1e6);
  assert.match(b.resets[0].reason, /SYSRESETREQ/);
  ({ b, runner } = boardWith(store(0xe000ed0c, 0x00000004)));
  runner.run(1e6);
  assert.equal(b.resets.length, 0);
});

test('power cycle: the DAC and the chip restart; the flash stays', () => {
  const { b, flash, runner } = boardWith(store(0x20000000, 1));
  b.dac.setLdac(0, 0);
  b.dac.setCs(0, 0);
  b.dac.clockIn(0x3000 | 2500, 16);
  b.dac.setCs(1, 0);
  runner.run(1e6);
  b.powerCycle();
  assert.equal(b.dac.output[0].code, 0);
  assert.equal(b.resets.at(-1).reason, 'power cycle');
  assert.equal(flash.mem[0x100000], 0x5a);
  assert.equal(b.boots.length, 2);
});

test('idle accounting: a counted busy loop, then WFI until the limit', () => {
  // movs r0,#100; 1: subs r0,#1; bne 1b; 2: wfi; b 2b
  const code = program([T.movs(0, 100), T.subs(0, 1), T.bne(4, 2), T.wfi, T.b(8, 6)]);
  const { b, runner } = boardWith(code);
  b._setEnable(true); // the output-enabled stretch is accounted on its own too
  runner.run(10e6);
  b._setEnable(false);
  // rp2040js cycles: movs 1, subs 1, bne 2 taken / 1 not, wfi 2.
  const loop = 1 + 100 * 1 + 99 * 2 + 1 + 2;
  const s = b.stats();
  assert.equal(s.run.busy_cycles, BOOT_CYCLES + loop);
  assert.equal(s.run.busy_cycles + s.run.idle_cycles, 1250000, '10 ms at 125 MHz, all accounted');
  assert.equal(s.run.emulated_s, 0.01);
  assert.equal(s.enabled_periods.length, 1);
  assert.equal(s.enabled_periods[0].busy_cycles, BOOT_CYCLES + loop);
  assert.equal(s.enabled_periods[0].emulated_s, 0.01);
  assert.equal(s.enabled_periods[0].idle_share, Math.round((1 - (BOOT_CYCLES + loop) / 1250000) * 1e4) / 1e4);
});

test('real time: emulated time never runs ahead of the wall clock', async () => {
  const code = program([T.wfi, T.b(2, 0)]);
  const { b } = boardWith(code);
  const runner = new Runner(b, { realtime: true });
  runner.start();
  const t0 = performance.now();
  const samples = [];
  for (let k = 0; k < 8; k++) {
    await new Promise((r) => setTimeout(r, 50));
    samples.push([b.now() / 1e6, performance.now() - t0]);
  }
  runner.stop();
  for (const [emuMs, wallMs] of samples) assert.ok(emuMs <= wallMs + 1, `emulated ${emuMs} ms, wall ${wallMs} ms`);
  const [emuMs, wallMs] = samples.at(-1);
  // Keeps up within a few slices (generous: CI machines are loaded).
  assert.ok(emuMs > wallMs - 150, `an idle chip keeps up with the wall: ${emuMs} vs ${wallMs}`);
});
