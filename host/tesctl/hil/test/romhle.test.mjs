import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLASH_US, memCycles, ROM_VERSION, SD_TABLE, SF_TABLE } from '../lib/romhle.mjs';
import { bitsToDouble, bitsToFloat, doubleToBits, floatToBits } from '../lib/softfloat.mjs';
import { bareChip, callRom, romFunc, SRAM } from './helpers.mjs';

const PICO_CODES = ['P3', 'R3', 'L3', 'T3', 'MS', 'S4', 'MC', 'C4', 'IF', 'EX', 'RE', 'RP', 'FC', 'CX', 'UB'];

test('ROM header: magic, version, table pointers as pico-sdk reads them', () => {
  const { rp } = bareChip();
  assert.deepEqual([0x10, 0x11, 0x12].map((a) => rp.readUint8(a)), [0x4d, 0x75, 0x01]);
  assert.equal(rp.readUint8(0x13), ROM_VERSION);
  assert.equal(ROM_VERSION, 3);
  const lookup = rp.readUint16(0x18);
  assert.equal(lookup & 1, 1, 'the lookup function pointer is a thumb address');
  for (const c of PICO_CODES) {
    const p = romFunc(rp, c);
    assert.ok(p, `function ${c} in the table`);
    assert.equal(p & 1, 1, `${c} is a thumb pointer`);
    assert.equal(rp.readUint16(p & ~1) >> 8, 0xbe, `${c} starts with bkpt`);
  }
  // The soft float/double tables: 32 thumb pointers each, length byte two before.
  assert.equal(rp.readUint8(SF_TABLE - 2), 32);
  assert.equal(rp.readUint8(SD_TABLE - 2), 32);
  for (let i = 0; i < 32; i++) {
    assert.equal(rp.readUint32(SF_TABLE + 4 * i) & 1, 1);
    assert.equal(rp.readUint32(SD_TABLE + 4 * i) & 1, 1);
  }
});

test('lookup runs on the core: finds functions and data, NULL and a loud log for an unknown code', () => {
  const { rp, lines } = bareChip();
  const lookup = rp.readUint16(0x18);
  const funcs = rp.readUint16(0x14);
  const data = rp.readUint16(0x16);
  let core = callRom(rp, lookup, [funcs, 0x4552]); // 'RE'
  assert.equal(core.registers[0], romFunc(rp, 'RE'));
  assert.equal(core.PC, SRAM + 0x100, 'returned to LR');
  core = callRom(rp, lookup, [data, 0x4653]); // 'SF'
  assert.equal(core.registers[0], SF_TABLE);
  core = callRom(rp, lookup, [data, 0x4453]); // 'SD'
  assert.equal(core.registers[0], SD_TABLE);
  core = callRom(rp, lookup, [funcs, 0x5a5a]); // 'ZZ'
  assert.equal(core.registers[0], 0);
  assert.ok(lines.some((l) => /UNKNOWN CODE 'ZZ'/.test(l)));
});

test('bit ops and mem ops give C results and charge cycles', () => {
  const { rp } = bareChip();
  assert.equal(callRom(rp, romFunc(rp, 'P3'), [0xf0f0000f]).registers[0], 12);
  assert.equal(callRom(rp, romFunc(rp, 'R3'), [0x00000001]).registers[0], 0x80000000);
  assert.equal(callRom(rp, romFunc(rp, 'L3'), [0x00010000]).registers[0], 15);
  assert.equal(callRom(rp, romFunc(rp, 'L3'), [0]).registers[0], 32);
  assert.equal(callRom(rp, romFunc(rp, 'T3'), [0x00010000]).registers[0], 16);
  assert.equal(callRom(rp, romFunc(rp, 'T3'), [0]).registers[0], 32);
  const dst = SRAM + 0x1000;
  const c0 = rp.core.cycles;
  let core = callRom(rp, romFunc(rp, 'MS'), [dst, 0x1ab, 10]);
  assert.equal(core.registers[0], dst);
  assert.equal(rp.readUint8(dst + 9), 0xab);
  assert.equal(rp.readUint8(dst + 10), 0);
  assert.equal(rp.core.cycles - c0, 1 + memCycles(10, true, true));
  for (let i = 0; i < 8; i++) rp.writeUint8(SRAM + 0x2000 + i, i + 1);
  core = callRom(rp, romFunc(rp, 'MC'), [dst + 1, SRAM + 0x2000, 8]);
  assert.equal(core.registers[0], dst + 1);
  assert.deepEqual([...Array(8)].map((_, i) => rp.readUint8(dst + 1 + i)), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('flash functions: erase and program reach the flash, with flash-chip time charged', () => {
  const { rp, flash } = bareChip();
  for (const c of ['IF', 'EX']) callRom(rp, romFunc(rp, c));
  const src = SRAM + 0x3000;
  for (let i = 0; i < 256; i++) rp.writeUint8(src + i, i);
  flash.mem.fill(0, 0x10000, 0x11000);
  let c0 = rp.core.cycles;
  callRom(rp, romFunc(rp, 'RE'), [0x10000, 0x1000, 1 << 16, 0xd8]);
  assert.equal(flash.mem[0x10000], 0xff);
  assert.equal(flash.mem[0x10fff], 0xff);
  const sectorCycles = ((FLASH_US.sector + FLASH_US.xipCmd) * 125e6) / 1e6;
  assert.equal(rp.core.cycles - c0, 1 + sectorCycles);
  c0 = rp.core.cycles;
  callRom(rp, romFunc(rp, 'RE'), [0x20000, 0x10000, 1 << 16, 0xd8]); // one aligned 64 KiB block
  assert.equal(rp.core.cycles - c0, 1 + ((FLASH_US.block64 + FLASH_US.xipCmd) * 125e6) / 1e6);
  callRom(rp, romFunc(rp, 'RP'), [0x10000, src, 256]);
  for (const c of ['FC', 'CX']) callRom(rp, romFunc(rp, c));
  assert.equal(flash.mem[0x10005], 5);
  assert.equal(rp.readUint8(0x10010005), 5, 'visible through XIP');
  assert.equal(flash.erases, 1 + 16);
  assert.equal(flash.programs, 1);
});

test('soft float table: IEEE single results through the core', () => {
  const { rp } = bareChip();
  const sf = (i) => rp.readUint32(SF_TABLE + 4 * i);
  const f = (x) => floatToBits(x);
  const r0 = (core) => core.registers[0];
  assert.equal(bitsToFloat(r0(callRom(rp, sf(0), [f(1.5), f(2.25)]))), 3.75);
  assert.equal(bitsToFloat(r0(callRom(rp, sf(3), [f(1), f(3)]))), Math.fround(1 / 3));
  assert.equal(bitsToFloat(r0(callRom(rp, sf(6), [f(-4)]))), -Infinity, 'sqrt of a negative');
  assert.equal(r0(callRom(rp, sf(7), [f(-1.5)])) | 0, -2, 'float2int rounds toward -inf');
  assert.equal(r0(callRom(rp, sf(7), [f(3e9)])) | 0, 2147483647, 'and clamps');
  assert.equal(r0(callRom(rp, sf(8), [f(0.5), 16])), 0x8000, 'float2fix(0.5, 16)');
  assert.equal(r0(callRom(rp, sf(9), [f(-3)])), 0, 'float2uint clamps at 0');
  assert.equal(bitsToFloat(r0(callRom(rp, sf(12), [0x8000, 16]))), 0.5, 'fix2float');
  const core = callRom(rp, sf(5), [f(1), f(2)]); // flags as CMP 1, 2
  assert.ok(core.N && !core.Z && !core.C);
  const d = callRom(rp, sf(31), [f(0.1)]); // float2double is exact
  assert.equal(bitsToDouble(d.registers[0], d.registers[1]), Math.fround(0.1));
});

test('soft double table: sincos fills r0:r1 and r2:r3, double2float rounds once', () => {
  const { rp } = bareChip();
  const sd = (i) => rp.readUint32(SD_TABLE + 4 * i);
  const [lo, hi] = doubleToBits(0.5);
  const core = callRom(rp, sd(18), [lo, hi]);
  assert.equal(bitsToDouble(core.registers[0], core.registers[1]), Math.sin(0.5));
  assert.equal(bitsToDouble(core.registers[2], core.registers[3]), Math.cos(0.5));
  const [a0, a1] = doubleToBits(1 / 3);
  assert.equal(bitsToFloat(callRom(rp, sd(31), [a0, a1]).registers[0]), Math.fround(1 / 3));
  const [b0, b1] = doubleToBits(2.5);
  const [c0, c1] = doubleToBits(0.25);
  const q = callRom(rp, sd(3), [b0, b1, c0, c1]);
  assert.equal(bitsToDouble(q.registers[0], q.registers[1]), 10);
});

test('boot service starts boot2 in flash with LR = 0; unknown bkpt halts loudly', () => {
  const { rp, halts } = bareChip();
  rp.core.reset();
  rp.core.executeInstruction();
  assert.equal(rp.core.PC, 0x10000000);
  assert.equal(rp.core.LR, 0);
  assert.equal(rp.core.SP, 0x20041f00);
  rp.writeUint16(SRAM + 0x200, 0xbeff); // bkpt #255: not a ROM service
  rp.core.PC = SRAM + 0x200;
  rp.core.executeInstruction();
  assert.equal(halts.length, 1);
});

test('boot after watchdog_reboot(pc, sp): the scratch-register vector is taken once', () => {
  const { rp } = bareChip();
  const s = rp.peripherals[0x40058].scratchData;
  const pc = 0x20001001;
  s[4] = 0xb007c0d3;
  s[5] = (pc ^ -0xb007c0d3) >>> 0;
  s[6] = 0x20040000;
  s[7] = pc;
  rp.core.reset();
  rp.core.executeInstruction();
  assert.equal(rp.core.PC, 0x20001000);
  assert.equal(rp.core.SP, 0x20040000);
  assert.equal(s[4], 0, 'the magic is cleared: the next reset boots normally');
});

test('reset_usb_boot logs and stops the core where it is (BOOTSEL is not emulated)', () => {
  const { rp, lines } = bareChip();
  const core = callRom(rp, romFunc(rp, 'UB'), [0, 0]);
  assert.notEqual(core.PC, SRAM + 0x100, 'it never returns');
  assert.ok(lines.some((l) => /reset_usb_boot/.test(l)));
});
