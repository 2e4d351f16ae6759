import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RP2040 } from 'rp2040js';
import { fifoDepths, patchFifoJoin } from '../lib/piofifo.mjs';
import { quiet } from './helpers.mjs';

const TXF0 = 0x010;
const FSTAT = 0x004;
const SM0_SHIFTCTRL = 0x0d0;
const FJOIN_TX = 1 << 30;

function pio0(patched) {
  const rp = new RP2040();
  rp.logger = quiet();
  if (patched) patchFifoJoin(rp.pio);
  return rp.pio[0];
}

const txLevel = (pio) => pio.machines[0].txFIFO.itemCount;
const txFull = (pio) => !!(pio.readUint32(FSTAT) & (1 << 16)); // FSTAT.TXFULL, SM0

test('FJOIN_TX makes the TX FIFO 8 deep, as on silicon', () => {
  const pio = pio0(true);
  pio.writeUint32(SM0_SHIFTCTRL, pio.machines[0].shiftCtrl | FJOIN_TX);
  for (let i = 0; i < 7; i++) pio.writeUint32(TXF0, i);
  assert.equal(txLevel(pio), 7);
  assert.equal(txFull(pio), false);
  pio.writeUint32(TXF0, 7);
  assert.equal(txFull(pio), true);
});

test('changing FJOIN_TX flushes the queued words (hal.rp2 zeroes the DAC that way)', () => {
  const pio = pio0(true);
  const sm = pio.machines[0];
  pio.writeUint32(SM0_SHIFTCTRL, sm.shiftCtrl | FJOIN_TX);
  for (let i = 0; i < 5; i++) pio.writeUint32(TXF0, 100 + i);
  const v = sm.shiftCtrl;
  pio.writeUint32(SM0_SHIFTCTRL, v ^ FJOIN_TX); // hal.rp2 _flush_tx: toggle...
  pio.writeUint32(SM0_SHIFTCTRL, v); // ...and back
  assert.equal(txLevel(pio), 0);
  pio.writeUint32(TXF0, 0x3800); // the zero word is the next one out
  assert.equal(sm.txFIFO.pull(), 0x3800);
  assert.equal(sm.txFIFO.itemCount, 0);
});

test('a SHIFTCTRL write that keeps the join bits keeps the FIFO', () => {
  const pio = pio0(true);
  const sm = pio.machines[0];
  for (let i = 0; i < 3; i++) pio.writeUint32(TXF0, i);
  pio.writeUint32(SM0_SHIFTCTRL, sm.shiftCtrl ^ (1 << 19)); // OUT_SHIFTDIR only
  assert.equal(txLevel(pio), 3);
});

test('unpatched rp2040js keeps stale words through the toggle (why the patch exists)', () => {
  const pio = pio0(false);
  const sm = pio.machines[0];
  for (let i = 0; i < 3; i++) pio.writeUint32(TXF0, i);
  pio.writeUint32(SM0_SHIFTCTRL, sm.shiftCtrl ^ FJOIN_TX);
  pio.writeUint32(SM0_SHIFTCTRL, sm.shiftCtrl ^ FJOIN_TX);
  assert.equal(txLevel(pio), 3);
});

test('depths: 4/4, joined 8/0 or 0/8', () => {
  assert.deepEqual(fifoDepths(0), [4, 4]);
  assert.deepEqual(fifoDepths(FJOIN_TX), [8, 0]);
  assert.deepEqual(fifoDepths(1 << 31), [0, 8]);
});
