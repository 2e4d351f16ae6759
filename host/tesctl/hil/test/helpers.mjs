// Test helpers: a bare rp2040js chip with our ROM, and a tiny Thumb encoder for the few
// instructions the tests' programs need (no firmware image is involved anywhere).
import { RP2040 } from 'rp2040js';
import { BootromHle } from '../lib/romhle.mjs';
import { FlashStore } from '../lib/flash.mjs';
import { QuietLogger } from '../lib/logger.mjs';

export const SRAM = 0x20000000;
export const SIO = 0xd0000000;

export function quiet(lines = []) {
  return new QuietLogger((l) => lines.push(l));
}

/** A chip with the HLE ROM and an in-memory flash; log lines collect in .lines. */
export function bareChip({ cpuHz = 125e6 } = {}) {
  const lines = [];
  const flash = new FlashStore(null);
  const halts = [];
  const rom = new BootromHle({ flash, cpuHz, log: (m) => lines.push(m), onHalt: (w) => halts.push(w) });
  const rp = new RP2040();
  rp.logger = quiet(lines);
  flash.attach(rp);
  rom.attach(rp);
  return { rp, rom, flash, lines, halts };
}

/** Write halfwords (Thumb code) at addr in SRAM. */
export function poke16(rp, addr, halfwords) {
  halfwords.forEach((h, i) => rp.writeUint16(addr + 2 * i, h));
}

export const T = {
  movs: (rd, imm) => 0x2000 | (rd << 8) | imm,
  subs: (rd, imm) => 0x3800 | (rd << 8) | imm,
  str: (rt, rn, imm = 0) => 0x6000 | ((imm >> 2) << 6) | (rn << 3) | rt,
  ldrPc: (rt, imm) => 0x4800 | (rt << 8) | (imm >> 2), // ldr rt, [pc, #imm]
  bne: (from, to) => 0xd100 | (((to - (from + 4)) >> 1) & 0xff),
  b: (from, to) => 0xe000 | (((to - (from + 4)) >> 1) & 0x7ff),
  wfi: 0xbf30,
  nop: 0xbf00,
};

/** Run a ROM function: registers r0..r3, return to a `b .` loop; -> core. */
export function callRom(rp, fnAddr, args = []) {
  const core = rp.core;
  const ret = SRAM + 0x100;
  poke16(rp, ret, [T.b(ret, ret)]);
  args.forEach((v, i) => {
    core.registers[i] = v >>> 0;
  });
  core.LR = ret | 1;
  core.PC = fnAddr & ~1;
  core.executeInstruction(); // the bkpt: the service runs and returns to LR
  return core;
}

/** Function pointer of a ROM function by its two-letter code (through the ROM's table). */
export function romFunc(rp, code) {
  const table = rp.readUint16(0x14);
  for (let a = table; ; a += 4) {
    const c = rp.readUint16(a);
    if (c === 0) return 0;
    if (c === (code.charCodeAt(0) | (code.charCodeAt(1) << 8))) return rp.readUint16(a + 2);
  }
}
