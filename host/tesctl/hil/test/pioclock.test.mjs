import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RP2040 } from 'rp2040js';
import { PioClock } from '../lib/pioclock.mjs';
import { quiet } from './helpers.mjs';

const CPU_HZ = 125e6;
const CTRL = 0x000;
const TXF0 = 0x010;
const INSTR_MEM0 = 0x048;
const SM0_CLKDIV = 0x0c8;
const SM0_EXECCTRL = 0x0cc;
const SM0_PINCTRL = 0x0dc;

const setPins = (v, delay = 0) => 0xe000 | (delay << 8) | v;
const jmpYDec = (addr, delay = 0) => (delay << 8) | (0b100 << 5) | addr;
const PULL_BLOCK = 0x80a0;

/** PIO0 SM0 running `program` (wrapping over all of it) at clk_sys / div. */
function pioWith(program, div) {
  const rp = new RP2040();
  rp.logger = quiet();
  const pio = rp.pio[0];
  program.forEach((op, i) => pio.writeUint32(INSTR_MEM0 + 4 * i, op));
  pio.writeUint32(SM0_CLKDIV, div << 16);
  pio.writeUint32(SM0_EXECCTRL, ((program.length - 1) << 12) | (0 << 7));
  pio.writeUint32(SM0_PINCTRL, (1 << 26) | (2 << 5)); // one SET pin: GPIO2
  const seen = [];
  const clock = new PioClock(rp.pio, CPU_HZ, (t) => t !== null && seen.push(t));
  pio.writeUint32(CTRL, 1);
  return { rp, pio, sm: pio.machines[0], clock, seen };
}

test('a state machine runs at clk_sys divided by its CLKDIV, in emulated time', () => {
  for (const div of [1, 4, 10]) {
    const { sm, clock } = pioWith([setPins(1, 4), setPins(0, 4)], div);
    const ns = (1e9 / CPU_HZ) * div;
    clock.advance(0);
    clock.advance(100000);
    const want = 100000 / ns;
    // Each instruction costs 5 cycles; the last may start just before t and end after it.
    assert.ok(sm.cycles >= want && sm.cycles <= want + 5, `div ${div}: ${sm.cycles} cycles, want ~${want}`);
  }
});

test('pin listeners see each instruction at its own time, 1 + delay cycles apart', () => {
  const { clock, seen } = pioWith([setPins(1, 4), setPins(0, 2)], 2);
  clock.advance(0);
  clock.advance(2000);
  const ns = (1e9 / CPU_HZ) * 2;
  const gaps = seen.slice(1).map((t, i) => Math.round((t - seen[i]) / ns));
  assert.ok(gaps.length > 10);
  gaps.forEach((g, i) => assert.equal(g, i % 2 === 0 ? 5 : 3, `gap ${i}`));
  assert.ok(seen.every((t) => t <= 2000));
});

test('advancing in many small steps or one large one gives the same machine state', () => {
  const a = pioWith([setPins(1, 3), jmpYDec(1), setPins(0, 1)], 3);
  const b = pioWith([setPins(1, 3), jmpYDec(1), setPins(0, 1)], 3);
  a.sm.y = b.sm.y = 500;
  a.clock.advance(0);
  b.clock.advance(0);
  for (let t = 0; t <= 50000; t += 37) a.clock.advance(t);
  b.clock.advance(50000 - (50000 % 37));
  assert.equal(a.sm.cycles, b.sm.cycles);
  assert.equal(a.sm.y, b.sm.y);
  assert.equal(a.sm.pc, b.sm.pc);
});

test('a `jmp y-- self` delay loop is fast-forwarded, not stepped turn by turn', () => {
  const { sm, clock } = pioWith([jmpYDec(0)], 1);
  sm.y = 100000;
  clock.advance(0);
  const steps0 = clock.steps;
  clock.advance(8000); // 1000 cycles of 8 ns
  assert.ok(sm.y >= 98999 && sm.y <= 99001, `y ${sm.y}`);
  assert.ok(clock.steps - steps0 < 5, `${clock.steps - steps0} steps`);
  const end = clock.nextEvent();
  assert.ok(Math.abs(end - (8000 + sm.y * 8)) <= 16, `loop ends at ${end}`);
});

test('a stalled pull waits without cost until the FIFO has data, then resumes', () => {
  const { pio, sm, clock } = pioWith([PULL_BLOCK, setPins(1)], 1);
  clock.advance(0);
  clock.advance(1e6);
  assert.ok(sm.waiting);
  assert.equal(clock.nextEvent(), Infinity);
  const steps0 = clock.steps;
  clock.advance(2e6);
  assert.ok(clock.steps - steps0 < 3);
  pio.writeUint32(TXF0, 0x1234);
  clock.advance(2e6 + 80);
  assert.equal(sm.outputShiftReg, 0x1234);
});

test('a disabled state machine does nothing and reports no event', () => {
  const { pio, sm, clock } = pioWith([setPins(1, 4), setPins(0, 4)], 1);
  pio.writeUint32(CTRL, 0);
  clock.advance(0);
  clock.advance(1e5);
  assert.equal(sm.cycles, 0);
  assert.equal(clock.nextEvent(), Infinity);
  assert.equal(clock.active, false);
});
