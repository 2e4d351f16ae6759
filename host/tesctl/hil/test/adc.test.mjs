import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RP2040 } from 'rp2040js';
import { Ads1115, CONFIG_DEFAULT } from '../lib/ads1115.mjs';
import { attachI2c, sclPeriodNs } from '../lib/i2cbus.mjs';
import { attachRpAdc } from '../lib/rpadc.mjs';
import { quiet } from './helpers.mjs';

/** Manual board time: at() queues, run(t) fires what is due. */
function manualClock() {
  const c = { t: 0, q: [] };
  c.now = () => c.t;
  c.at = (t, fn) => c.q.push({ t, fn });
  c.run = (t) => {
    c.q.sort((a, b) => a.t - b.t);
    while (c.q.length && c.q[0].t <= t) {
      const e = c.q.shift();
      c.t = e.t;
      e.fn();
    }
    c.t = t;
  };
  return c;
}

// firmware/hal/ads1115.py config(): OS | MUX | PGA | MODE single | DR | comparator off
const cfg = (mux, pga = 2, dr = 7, single = true, start = true) =>
  (start ? 0x8000 : 0) | (mux << 12) | (pga << 9) | (single ? 0x100 : 0) | (dr << 5) | 3;

function ads(ain = [1.95, 1.65, 2.08, 1.65]) {
  const clock = manualClock();
  const dev = new Ads1115({ address: 0x48, inputs: () => ain, sched: clock, wakeupUs: 25 });
  const write = (p, v) => {
    assert.ok(dev.connect(0x48, false));
    dev.writeByte(p);
    if (v !== undefined) {
      dev.writeByte(v >> 8);
      dev.writeByte(v & 0xff);
    }
    dev.stop();
  };
  const read = (p) => {
    write(p);
    dev.connect(0x48, true);
    const v = (dev.readByte() << 8) | dev.readByte();
    dev.stop();
    return v;
  };
  return { dev, clock, write, read };
}

test('power-on registers; only the address 0x48 answers', () => {
  const { dev, read } = ads();
  assert.equal(read(1), CONFIG_DEFAULT);
  assert.equal(read(0), 0);
  assert.equal(read(2), 0x8000);
  assert.equal(read(3), 0x7fff);
  assert.equal(dev.connect(0x49, false), false);
});

test('single shot: OS reads 0 for 1/DR + wake-up, then the result is there', () => {
  const { clock, write, read } = ads();
  write(1, cfg(0)); // AIN0-AIN1, +/-2.048 V, 860 SPS
  const conv = 1e9 / 860 + 25e3;
  clock.run(conv - 1000);
  assert.equal(read(1) & 0x8000, 0, 'converting');
  assert.equal(read(0), 0, 'no result yet');
  clock.run(conv + 1);
  assert.equal(read(1) & 0x8000, 0x8000, 'done');
  assert.equal(read(0), 4800, '0.3 V / 2.048 V * 32768');
});

test('a start while converting is ignored (datasheet: OS has no effect during a conversion)', () => {
  const { dev, clock, write, read } = ads();
  write(1, cfg(0));
  clock.run(1e6); // 1 ms: the 1.19 ms conversion still runs
  write(1, cfg(3)); // the firmware asks for AIN2-AIN3 now
  assert.equal(dev.ignoredStarts, 1);
  clock.run(1.2e6);
  assert.equal(read(0), 4800, 'the result is the current channel, not the voltage');
  clock.run(5e6);
  assert.equal(dev.conversions, 1, 'and no voltage conversion ever started');
  write(1, cfg(3));
  clock.run(7e6);
  assert.equal(read(0), Math.round((0.43 / 2.048) * 32768), 'AIN2-AIN3 once idle');
});

test('continuous mode converts back to back at the data rate; PGA sets the scale', () => {
  const { dev, clock, write, read } = ads();
  write(1, cfg(0, 1, 4, false, false)); // +/-4.096 V, 128 SPS, continuous
  clock.run(1e9 / 128 * 10 + 1);
  assert.equal(dev.conversions, 10);
  assert.equal(read(0), 2400);
  assert.equal(read(1) & 0x8000, 0, 'always converting');
});

test('I2C bus: each phase takes its time on the wire at the programmed SCL', () => {
  const calls = [];
  const fake = { sclHighPeriod: 0, sclLowPeriod: 0 };
  for (const k of ['completeStart', 'completeConnect', 'completeWrite', 'completeRead', 'completeStop']) {
    fake[k] = (...a) => calls.push([k, ...a]);
  }
  const delays = [];
  const { dev } = ads();
  attachI2c(fake, [dev], { alarm: (d, fn) => { delays.push(d); fn(); }, cpuHz: 125e6, fallbackHz: 400000 });
  fake.onStart(false);
  fake.onConnect(0x48, 0);
  fake.onWriteByte(1);
  fake.onStop();
  fake.onConnect(0x50, 0);
  assert.deepEqual(calls.map((c) => c[0]), ['completeStart', 'completeConnect', 'completeWrite', 'completeStop', 'completeConnect']);
  assert.equal(calls[1][1], true, 'ACK from the ADS1115');
  assert.equal(calls[4][1], false, 'NACK from nobody');
  assert.deepEqual(delays.slice(0, 4), [1250, 22500, 22500, 1250], 'half bit, 9 bits, 9 bits, half bit at 400 kHz');
  // Programmed counts: 125 MHz / (125 + 188) = 399.4 kHz.
  assert.equal(sclPeriodNs({ sclHighPeriod: 125, sclLowPeriod: 188 }, 125e6, 400000), (313 / 125e6) * 1e9);
});

test('RP2040 ADC: the model supplies values, and round robin alternates (rp2040js bug patched)', () => {
  const rp = new RP2040();
  rp.logger = quiet();
  attachRpAdc(rp.adc, { channelMv: (ch) => [1000, 2000][ch] ?? null, now: () => rp.clock.nanos, refMv: 3300 });
  const ADC = 0x4004c000;
  rp.writeUint32(ADC + 0x08, 1); // FCS: FIFO on
  rp.writeUint32(ADC + 0x00, 1 | (0b11 << 16) | (1 << 2)); // EN, RROBIN ch0+ch1, START_ONE
  const codes = [];
  for (let k = 0; k < 4; k++) {
    rp.clock.tick(2000);
    codes.push(rp.readUint32(ADC + 0x0c));
    rp.writeUint32(ADC + 0x00, 1 | (0b11 << 16) | (1 << 2) | (rp.adc.activeChannel << 12));
  }
  assert.deepEqual(codes, [1241, 2482, 1241, 2482]);
  assert.equal(Math.round((1000 / 3300) * 4096), 1241);
});
