import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RP2040 } from 'rp2040js';
import { attachDac } from '../lib/dacbus.mjs';
import { Mcp4922 } from '../lib/mcp4922.mjs';
import { quiet } from './helpers.mjs';

// firmware/hal/mcp4922.py word(): A/B, BUF, GA (1x), SHDN (active), code
const word = (code, ch = 0, { buf = true, gain1x = true, active = true } = {}) =>
  (ch ? 0x8000 : 0) | (buf ? 0x4000 : 0) | (gain1x ? 0x2000 : 0) | (active ? 0x1000 : 0) | code;

function send(dac, w, t = 0) {
  dac.setCs(0, t);
  dac.clockIn(w >> 8, 8);
  dac.clockIn(w & 0xff, 8);
  dac.setCs(1, t);
}

test('a word loads the input register at CS rising; LDAC falling moves both to the outputs', () => {
  const outs = [];
  const dac = new Mcp4922({ vrefMv: 2048, onOutput: (t, d) => outs.push([t, d.output[0].code, d.output[1].code]) });
  send(dac, word(3000, 0), 10);
  send(dac, word(2048, 1), 20);
  assert.equal(dac.input[0].code, 3000);
  assert.equal(dac.output[0].code, 0, 'not latched while LDAC is high');
  dac.setLdac(0, 30);
  dac.setLdac(1, 31);
  assert.deepEqual(outs, [[30, 3000, 2048]]);
  assert.equal(dac.volts(0), 1500);
  assert.equal(dac.volts(1), 1024);
});

test('LDAC held low: the output follows at CS rising; a word of the wrong length is ignored', () => {
  const dac = new Mcp4922({ vrefMv: 2048 });
  dac.setLdac(0, 0);
  send(dac, word(100, 0), 5);
  assert.equal(dac.output[0].code, 100);
  dac.setCs(0, 6);
  dac.clockIn(0x3f, 8); // 8 bits only
  dac.setCs(1, 7);
  assert.equal(dac.output[0].code, 100);
  assert.equal(dac.badWords, 1);
  dac.clockIn(0xff, 8); // clocks with CS high go nowhere
  assert.equal(dac.bits, 0);
});

test('SHDN=0 takes that channel to 0 V; GA=0 doubles and clips at VDD', () => {
  const dac = new Mcp4922({ vrefMv: 2048, vddMv: 3300 });
  dac.setLdac(0, 0);
  send(dac, word(2048, 1));
  send(dac, word(3000, 0, { active: false }));
  assert.equal(dac.volts(0), 0);
  assert.equal(dac.effectiveCode(0), 0, 'the pump sees A = 0 against B at mid-scale');
  send(dac, word(1000, 0, { gain1x: false }));
  assert.equal(dac.volts(0), 1000);
  assert.equal(dac.effectiveCode(0), 2000);
  send(dac, word(4000, 0, { gain1x: false }));
  assert.equal(dac.volts(0), 3300);
});

// ---- both frontends on an rp2040js chip ------------------------------------------------
const P = { bus: 0, sck: 18, mosi: 19, csPin: 17, ldacPin: 20, baudrate: 10e6 };
const SIO_OE_SET = 0xd0000024;
const SIO_OUT_SET = 0xd0000014;
const SIO_OUT_CLR = 0xd0000018;

function chipWithDac() {
  const rp = new RP2040();
  rp.logger = quiet();
  const dac = new Mcp4922({ vrefMv: 2048 });
  attachDac(rp, dac, P, { now: () => rp.clock.nanos, alarm: (d, fn) => rp.clock.createAlarm(fn).schedule(d) });
  const sio = (pins) => {
    for (const n of pins) rp.writeUint32(0x40014000 + 8 * n + 4, 5); // FUNCSEL = SIO
    rp.writeUint32(SIO_OE_SET, pins.reduce((m, n) => m | (1 << n), 0));
  };
  const set = (n, v) => rp.writeUint32(v ? SIO_OUT_SET : SIO_OUT_CLR, 1 << n);
  return { rp, dac, sio, set };
}

test('hardware SPI frontend: two 8-bit frames with CS low, then an LDAC pulse', () => {
  const { rp, dac, sio, set } = chipWithDac();
  sio([P.csPin, P.ldacPin]);
  set(P.csPin, 1);
  set(P.ldacPin, 1);
  const SPI0 = 0x4003c000;
  rp.writeUint32(SPI0 + 0x10, 2); // CPSDVSR 2
  rp.writeUint32(SPI0 + 0x00, 7 | (5 << 8)); // 8 bits, SCR 5: 125 MHz / 12
  rp.writeUint32(SPI0 + 0x04, 2); // SSE
  set(P.csPin, 0);
  const w = word(1234, 0);
  rp.writeUint32(SPI0 + 0x08, w >> 8);
  rp.writeUint32(SPI0 + 0x08, w & 0xff);
  assert.ok(rp.readUint32(SPI0 + 0x0c) & 0x10, 'busy while the frames are on the wire');
  rp.clock.tick(((8 * 12) / 125e6) * 1e9 * 2 + 10);
  assert.equal(rp.readUint32(SPI0 + 0x0c) & 0x10, 0, 'done after 16 bit times');
  set(P.csPin, 1);
  assert.equal(dac.input[0].code, 1234);
  set(P.ldacPin, 0);
  set(P.ldacPin, 1);
  assert.equal(dac.output[0].code, 1234);
  assert.equal(dac.words, 1);
});

test('pin-level frontend (PIO/bit-banged SPI, mode 0, MSB first)', () => {
  const { dac, sio, set } = chipWithDac();
  sio([P.csPin, P.ldacPin, P.sck, P.mosi]);
  set(P.csPin, 1);
  set(P.ldacPin, 1);
  set(P.sck, 0);
  set(P.csPin, 0);
  const w = word(777, 1);
  for (let i = 15; i >= 0; i--) {
    set(P.mosi, (w >> i) & 1);
    set(P.sck, 1); // sampled on the rising edge
    set(P.sck, 0);
  }
  set(P.csPin, 1);
  assert.equal(dac.input[1].code, 777);
  set(P.ldacPin, 0);
  assert.equal(dac.output[1].code, 777);
});
