import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { boardParams, BoardError, readJson } from '../lib/board.mjs';
import { CdcBridge } from '../lib/cdc.mjs';
import { CpuAccount } from '../lib/cpu.mjs';
import { DacLog } from '../lib/daclog.mjs';
import { BoardClock } from '../lib/sched.mjs';

function fakeUsb() {
  return { reads: [], endpointReadDone(ep, buf) { this.reads.push([ep, [...buf]]); }, resetDevice() {}, sendSetupPacket() {} };
}

test('CDC: an armed OUT buffer waits for host bytes instead of taking an empty packet', () => {
  const usb = fakeUsb();
  const cdc = new CdcBridge(usb);
  cdc.outEndpoint = 2;
  cdc.onDeviceConnected();
  usb.onEndpointRead(2, 64);
  assert.equal(usb.reads.length, 0, 'nothing to send: the device keeps waiting (no interrupt storm)');
  cdc.write(Uint8Array.from([1, 2, 3]));
  assert.deepEqual(usb.reads, [[2, [1, 2, 3]]]);
  cdc.write(Uint8Array.from({ length: 100 }, (_, i) => i));
  assert.equal(usb.reads.length, 1, 'no buffer armed: the bytes queue');
  usb.onEndpointRead(2, 64);
  usb.onEndpointRead(2, 64);
  assert.equal(usb.reads[1][1].length, 64);
  assert.equal(usb.reads[2][1].length, 36);
  assert.equal(cdc.backlog(), 0);
});

test('CDC: host bytes wait for the device to enumerate', () => {
  const usb = fakeUsb();
  const cdc = new CdcBridge(usb);
  cdc.outEndpoint = 2;
  cdc.write(Uint8Array.from([9]));
  usb.onEndpointRead(2, 64);
  assert.equal(usb.reads.length, 0);
  cdc.onDeviceConnected();
  assert.deepEqual(usb.reads, [[2, [9]]]);
});

test('board clock: events outlive a chip clock and fire at their board time on the next', () => {
  const mk = () => {
    const c = { nanos: 0, alarms: [] };
    c.createAlarm = (fn) => {
      const a = { fn, t: null, cancel() { c.alarms = c.alarms.filter((x) => x !== a); }, schedule(d) { a.t = c.nanos + d; c.alarms.push(a); } };
      return a;
    };
    c.tick = (d) => {
      c.nanos += d;
      for (const a of [...c.alarms]) if (a.t <= c.nanos) { a.cancel(); a.fn(); }
    };
    return c;
  };
  const bc = new BoardClock();
  const c1 = mk();
  bc.bind(c1);
  c1.tick(1000);
  let fired = null;
  bc.at(5000, () => { fired = bc.now(); });
  const c2 = mk(); // a chip reset at board time 1000
  bc.bind(c2);
  assert.equal(bc.now(), 1000);
  c1.tick(10000);
  assert.equal(fired, null, 'the old chip clock no longer fires it');
  c2.tick(4000);
  assert.equal(fired, 5000);
});

test('DAC log: header and one row per call, integer ns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hil-daclog-'));
  const log = new DacLog(join(dir, 'd.csv'));
  log.row(1000.4, 2048, 2048, false);
  log.row(2000, 2500, 2048, true);
  log.close();
  assert.equal(readFileSync(join(dir, 'd.csv'), 'utf8'), 't_ns,dac_a,dac_b,enable\n1000,2048,2048,0\n2000,2500,2048,1\n');
});

test('CPU account: run and interval figures', () => {
  let wall = 0;
  const cpu = new CpuAccount(100e6, () => wall);
  cpu.start(0);
  cpu.addBusy(25e6);
  cpu.addIdle(0.75e9);
  cpu.addCompute(2000);
  wall = 4000;
  const a = cpu.report(1e9);
  assert.equal(a.run.idle_share, 0.75);
  assert.equal(a.run.speed, 0.25);
  assert.equal(a.run.busy_speed, 0.125, '0.25 s of busy cycles took 2 s of harness work');
  assert.equal(a.run.lag_s, 3);
  cpu.addBusy(100e6);
  wall = 8000;
  const b = cpu.report(2e9);
  assert.equal(b.interval.idle_share, 0);
  assert.equal(b.run.idle_share, 0.375);
});

test('board parameters: from the board file and the sim model; overrides; clear errors', () => {
  const boards = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'boards');
  const board = readJson(join(boards, 'pico-mcp4922.json'));
  const sim = readJson(join(boards, 'sim.json'));
  const p = boardParams(board, sim, { series_ohm: 1000 });
  assert.equal(p.dac.csPin, 17);
  assert.equal(p.dac.ldacPin, 16);
  assert.equal(p.stage.nAPerCode, 2200);
  assert.equal(p.stage.seriesOhm, 1000);
  assert.equal(p.stage.skinNf, 2000);
  assert.equal(p.sense.kind, 'rp2040');
  assert.equal(p.sense.midMv, 1650);
  assert.deepEqual([p.sense.currentChannel, p.sense.voltageChannel, p.sense.readbackChannel], [0, 1, 2]);
  assert.equal(p.sense.noiseLsb, 2);
  assert.throws(() => boardParams(board, sim, { bogus: 1 }), /not a model parameter/);
  const ads = { ...board, sense: { ...board.sense, adc: { kind: 'ads1115', bits: 16, ref_mV: 2048, rate_sps: 860,
    i2c: { bus: 0, sda: 4, scl: 5, freq: 400000, addr: 72 } } } };
  assert.equal(boardParams(ads, sim).sense.i2c.addr, 72);
  assert.throws(() => boardParams({ ...board, dac: { ...board.dac, cs_pin: undefined } }, sim), BoardError);
});
