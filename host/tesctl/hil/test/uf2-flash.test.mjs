import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FlashError, FlashStore, PICO_FLASH } from '../lib/flash.mjs';
import { buildUf2, parseUf2, Uf2Error } from '../lib/uf2.mjs';

const bytes = (n, f) => Uint8Array.from({ length: n }, (_, i) => f(i));

test('UF2: blocks parse back to addresses and payloads', () => {
  const blocks = [{ addr: 0, data: bytes(256, (i) => i) }, { addr: 0x1000, data: bytes(256, (i) => 255 - i) }];
  const got = parseUf2(buildUf2(blocks));
  assert.equal(got.length, 2);
  assert.equal(got[1].addr, 0x1000);
  assert.deepEqual(got[0].data, blocks[0].data);
  assert.deepEqual(got[1].data, blocks[1].data);
});

test('UF2: other families are skipped, garbage refused', () => {
  const other = buildUf2([{ addr: 0, data: bytes(256, () => 1) }], 0x12345678);
  assert.throws(() => parseUf2(other), /no RP2040 flash blocks/);
  const bad = buildUf2([{ addr: 0, data: bytes(256, () => 1) }]);
  bad[0] ^= 0xff;
  assert.throws(() => parseUf2(bad), Uf2Error);
  assert.throws(() => parseUf2(new Uint8Array(100)), /512-byte blocks/);
});

test('flash: erase sets whole 4 KiB sectors to 0xFF; misaligned refused', () => {
  const f = new FlashStore(null);
  f.mem.fill(0x00, 0, 0x3000);
  f.erase(0x1000, 0x1000);
  assert.equal(f.mem[0x0fff], 0x00);
  assert.equal(f.mem[0x1000], 0xff);
  assert.equal(f.mem[0x1fff], 0xff);
  assert.equal(f.mem[0x2000], 0x00);
  assert.throws(() => f.erase(0x800, 0x1000), FlashError);
  assert.throws(() => f.erase(0x1000, 100), FlashError);
  assert.throws(() => f.erase(PICO_FLASH, 0x1000), /beyond/);
});

test('flash: program can only clear bits (AND), in whole 256-byte pages', () => {
  const f = new FlashStore(null);
  f.program(0x100, bytes(256, () => 0xf0));
  assert.equal(f.mem[0x100], 0xf0);
  f.program(0x100, bytes(256, () => 0x3c));
  assert.equal(f.mem[0x100], 0x30); // 0xf0 & 0x3c: a 1 cannot come back without an erase
  assert.throws(() => f.program(0x80, bytes(256, () => 0)), FlashError);
});

test('flash file: survives a reopen; the UF2 rewrites only its own blocks; erase starts fresh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hil-flash-'));
  const path = join(dir, 'sub', 'flash.bin');
  const a = new FlashStore(path).open();
  assert.equal(statSync(path).size, PICO_FLASH);
  a.loadBlocks([{ addr: 0, data: bytes(256, () => 0x11) }]);
  a.erase(0x100000, 0x1000);
  a.program(0x100000, bytes(256, () => 0x42)); // "the filesystem"
  a.close();
  const b = new FlashStore(path).open();
  assert.equal(b.mem[0x100000], 0x42);
  b.loadBlocks([{ addr: 0, data: bytes(256, () => 0x22) }]); // a new image
  assert.equal(b.mem[0], 0x22);
  assert.equal(b.mem[0x100000], 0x42); // the filesystem is untouched
  b.close();
  assert.equal(readFileSync(path)[0x100000], 0x42);
  const c = new FlashStore(path).open(true);
  assert.equal(c.mem[0x100000], 0xff);
  c.close();
});
