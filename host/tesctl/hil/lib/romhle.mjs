// A synthetic RP2040 bootrom whose services run in JS (high-level emulation), so a stock
// MicroPython image is all a user needs: rp2040js ships no bootrom, and the real one is
// not ours to redistribute.
//
// Layout (RP2040 datasheet 2.8.3; pico-sdk pico_bootrom): 0x00 initial SP, 0x04 reset
// vector, 0x08 NMI, 0x0c HardFault; 0x10 'M' 'u' 0x01 then the version byte at 0x13;
// 0x14 u16 pointer to the function table, 0x16 u16 pointer to the data table, 0x18 u16
// pointer to the table lookup function. Tables are (u16 code, u16 pointer) pairs ending
// with code 0; code = c1 | c2 << 8. Every function is a 4-byte thumb stub, `bkpt #n; bx lr`:
// rp2040js calls rp2040.onBreak(n) with PC already past the bkpt; we do the work, set the
// result registers, charge the cycles and return to LR (BXWritePC, so a call from a
// handler returns correctly), clearing breakRewind (only its gdb server uses it).
//
// Version 3 (B2): pico-sdk's double sincos for a version 2 ROM calls fixed B1 addresses
// (0x3855, 0x389d, 0x38d9 in pico_double/double_aeabi_rp2040.S); with version 3 it goes
// through the 'SD' table like every other float and double function.
import { DOUBLE_FUNCS, FLOAT_FUNCS, TABLE_WORDS } from './softfloat.mjs';
import { SECTOR } from './flash.mjs';

export const ROM_VERSION = 3;
export const FUNC_TABLE = 0x100;
export const DATA_TABLE = 0x200;
export const SF_TABLE = 0x300;
export const SD_TABLE = 0x400;
const STRINGS = 0x500;
const STUBS = 0x600;
export const BOOT_STACK = 0x20041f00;
const WATCHDOG_MAGIC = 0xb007c0d3;

export const code = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);
export const codeName = (c) => String.fromCharCode(c & 0xff, (c >> 8) & 0xff);

// Flash timings (Winbond W25Q16JV datasheet, typical): 4 KiB sector erase 45 ms, 64 KiB
// block erase 150 ms, page program 0.4 ms; plus moving 260 bytes over QSPI at clk_sys/6
// (~0.1 ms at 125 MHz). The core spins polling the flash status meanwhile: busy cycles.
export const FLASH_US = { sector: 45000, block64: 150000, page: 500, xipCmd: 10 };

/** Cycles of the ROM's memcpy/memset (ldm/stm loops when aligned, byte loops otherwise). */
export function memCycles(n, aligned, set) {
  if (aligned) return 20 + Math.ceil(n * (set ? 0.5 : 0.8));
  return 20 + n * (set ? 4 : 6);
}

export class BootromHle {
  /**
   * flash: FlashStore; cpuHz: clk_sys for charging timed services; log(msg): loud stderr
   * line; onUsbBoot(): the chip asked for BOOTSEL mode; onHalt(why): stop the core.
   */
  constructor({ flash, cpuHz = 125e6, log = () => {}, onUsbBoot = () => {}, onHalt = () => {} }) {
    this.flash = flash;
    this.cpuHz = cpuHz;
    this.log = log;
    this.onUsbBoot = onUsbBoot;
    this.onHalt = onHalt;
    this.calls = new Map(); // service name -> count
    this.unknownCodes = new Set();
    this.services = [];
    this.stubAddr = new Map(); // name -> stub address (thumb bit clear)
    this._define();
    this.image = this._build();
  }

  us(us) {
    return Math.round((us * this.cpuHz) / 1e6);
  }

  _define() {
    const S = (name, cycles, fn) => this.services.push({ name, cycles, fn });
    // Vectors and the lookup.
    S('boot', 0, (rp) => this._boot(rp));
    S('nmi', 0, () => this._fatal('NMI taken with the ROM vector table'));
    S('hardfault', 0, () => this._fatal('HardFault taken with the ROM vector table'));
    S('lookup', 0, (rp, r) => this._lookup(rp, r[0], r[1]));
    // Public functions (codes as pico-sdk boot/bootrom_constants.h names them).
    this.funcCodes = [];
    const F = (c, name, cycles, fn) => {
      this.funcCodes.push([code(c), name]);
      S(name, cycles, fn);
    };
    F('P3', 'popcount32', 20, (rp, r) => ({ r0: popcount(r[0]) }));
    F('R3', 'reverse32', 20, (rp, r) => ({ r0: reverse32(r[0]) }));
    F('L3', 'clz32', 15, (rp, r) => ({ r0: Math.clz32(r[0]) }));
    F('T3', 'ctz32', 15, (rp, r) => ({ r0: ctz32(r[0]) }));
    F('MS', 'memset', null, (rp, r) => this._memset(rp, r[0], r[1], r[2]));
    F('S4', 'memset4', null, (rp, r) => this._memset(rp, r[0], r[1], r[2]));
    F('MC', 'memcpy', null, (rp, r) => this._memcpy(rp, r[0], r[1], r[2]));
    F('C4', 'memcpy44', null, (rp, r) => this._memcpy(rp, r[0], r[1], r[2]));
    F('IF', 'connect_internal_flash', 100, () => ({}));
    F('EX', 'flash_exit_xip', 1000, () => ({}));
    F('RE', 'flash_range_erase', null, (rp, r) => this._erase(r[0], r[1], r[2], r[3]));
    F('RP', 'flash_range_program', null, (rp, r) => this._program(rp, r[0], r[1], r[2]));
    F('FC', 'flash_flush_cache', 50, () => ({}));
    F('CX', 'flash_enter_cmd_xip', 200, () => ({}));
    F('UB', 'reset_usb_boot', 0, (rp, r) => this._usbBoot(r[0], r[1]));
    F('DT', 'debug_trampoline', 0, () => this._fatal('debug_trampoline called: not provided'));
    F('DE', 'debug_trampoline_end', 0, () => this._fatal('debug_trampoline_end called: not provided'));
    F('WV', 'wait_for_vector', 0, () => this._fatal('wait_for_vector called: core 1 is not emulated'));
    this.floatBase = this.services.length;
    for (const [name, cycles, fn] of FLOAT_FUNCS) S(name, cycles, (rp, r) => fn(r[0], r[1], r[2], r[3]));
    this.doubleBase = this.services.length;
    for (const [name, cycles, fn] of DOUBLE_FUNCS) S(name, cycles, (rp, r) => fn(r[0], r[1], r[2], r[3]));
    if (this.services.length > 256) throw new Error('bootrom: more services than bkpt immediates');
  }

  _build() {
    const rom = new Uint8Array(16 * 1024);
    const dv = new DataView(rom.buffer);
    this.services.forEach((s, i) => {
      const a = STUBS + 4 * i;
      dv.setUint16(a, 0xbe00 | i, true); // bkpt #i
      dv.setUint16(a + 2, 0x4770, true); // bx lr
      this.stubAddr.set(s.name, a);
    });
    const fn = (name) => this.stubAddr.get(name) | 1;
    dv.setUint32(0x00, BOOT_STACK, true);
    dv.setUint32(0x04, fn('boot'), true);
    dv.setUint32(0x08, fn('nmi'), true);
    dv.setUint32(0x0c, fn('hardfault'), true);
    rom.set([0x4d, 0x75, 0x01, ROM_VERSION], 0x10);
    dv.setUint16(0x14, FUNC_TABLE, true);
    dv.setUint16(0x16, DATA_TABLE, true);
    dv.setUint16(0x18, fn('lookup'), true);
    let a = FUNC_TABLE;
    for (const [c, name] of this.funcCodes) {
      dv.setUint16(a, c, true);
      dv.setUint16(a + 2, fn(name), true);
      a += 4;
    }
    dv.setUint16(a, 0, true);
    // Soft float/double tables; the byte two before each holds its length in words
    // (pico-sdk's float/double init asserts on it in debug builds).
    rom[SF_TABLE - 2] = TABLE_WORDS;
    rom[SD_TABLE - 2] = TABLE_WORDS;
    for (let i = 0; i < TABLE_WORDS; i++) {
      dv.setUint32(SF_TABLE + 4 * i, fn(FLOAT_FUNCS[i][0]), true);
      dv.setUint32(SD_TABLE + 4 * i, fn(DOUBLE_FUNCS[i][0]), true);
    }
    const cr = 'tesctl hil: emulated RP2040 bootrom services (not the Raspberry Pi ROM)\0';
    const gr = 'hle\0';
    for (let i = 0; i < cr.length; i++) rom[STRINGS + i] = cr.charCodeAt(i);
    const grAt = STRINGS + 0x60;
    for (let i = 0; i < gr.length; i++) rom[grAt + i] = gr.charCodeAt(i);
    const data = [['CR', STRINGS], ['GR', grAt], ['SF', SF_TABLE], ['SD', SD_TABLE],
      ['FS', STUBS + 4 * this.floatBase], ['FE', STUBS + 4 * this.services.length]];
    a = DATA_TABLE;
    for (const [c, ptr] of data) {
      dv.setUint16(a, code(c), true);
      dv.setUint16(a + 2, ptr, true);
      a += 4;
    }
    dv.setUint16(a, 0, true);
    return new Uint32Array(rom.buffer);
  }

  /** Install the ROM image and the trap handler into an RP2040 (before core.reset()). */
  attach(rp2040) {
    rp2040.bootrom.set(this.image);
    rp2040.onBreak = (n) => this.trap(rp2040, n);
  }

  trap(rp2040, n) {
    const core = rp2040.core;
    core.breakRewind = 0;
    const svc = this.services[n];
    if (!svc) {
      this._fatal(`bkpt #${n} at 0x${((core.PC - 2) >>> 0).toString(16)}: not a ROM service`);
      return;
    }
    this.calls.set(svc.name, (this.calls.get(svc.name) || 0) + 1);
    const r = core.registers;
    const out = svc.fn(rp2040, [r[0], r[1], r[2], r[3]]);
    if (out === null) return; // the service moved PC itself (boot) or halted
    if ('r0' in out) r[0] = out.r0 >>> 0;
    if ('r1' in out) r[1] = out.r1 >>> 0;
    if ('r2' in out) r[2] = out.r2 >>> 0;
    if ('r3' in out) r[3] = out.r3 >>> 0;
    if (out.flags) Object.assign(core, out.flags);
    core.cycles += out.cycles ?? svc.cycles ?? 0;
    core.BXWritePC(core.LR);
  }

  // ---- services -----------------------------------------------------------------------
  _boot(rp) {
    // Cold boot: run boot2 from flash with LR = 0, so it vectors into the image itself
    // (pico-sdk boot2 exit_from_boot2.S). A watchdog reboot with the pico-sdk magic in
    // SCRATCH4..7 (watchdog_reboot(pc, sp, ...)) jumps to that pc/sp instead.
    const core = rp.core;
    const wd = rp.peripherals[0x40058];
    const s = wd && wd.scratchData;
    if (s && s[4] === WATCHDOG_MAGIC && s[5] === ((s[7] ^ -WATCHDOG_MAGIC) >>> 0)) {
      s[4] = 0;
      core.SP = s[6];
      core.LR = 0;
      core.PC = s[7] & ~1;
      this.log(`boot: watchdog vector to 0x${s[7].toString(16)}`);
    } else {
      core.SP = BOOT_STACK;
      core.LR = 0;
      core.PC = 0x10000000;
    }
    core.cycles += this.us(500); // the ROM's own start-up before boot2 (approximate)
    return null;
  }

  _lookup(rp, table, c) {
    let a = table >>> 0;
    for (let i = 0; i < 64; i++, a += 4) {
      const k = rp.readUint16(a);
      if (k === 0) break;
      if (k === (c & 0xffff)) return { r0: rp.readUint16(a + 2), cycles: 10 + 5 * i };
    }
    if (!this.unknownCodes.has(c)) {
      this.unknownCodes.add(c);
      this.log(`ROM LOOKUP OF UNKNOWN CODE '${codeName(c)}' (0x${c.toString(16)}) in table 0x${table.toString(16)}: `
        + 'returned NULL; the firmware may crash where it calls it');
    }
    return { r0: 0, cycles: 10 + 5 * 64 };
  }

  _memset(rp, ptr, c, n) {
    const aligned = (ptr & 3) === 0;
    const sram = sramRange(rp, ptr, n);
    if (sram) sram.arr.fill(c & 0xff, sram.off, sram.off + n);
    else for (let i = 0; i < n; i++) rp.writeUint8((ptr + i) >>> 0, c & 0xff);
    return { r0: ptr, cycles: memCycles(n, aligned, true) };
  }

  _memcpy(rp, dst, src, n) {
    const aligned = ((dst | src) & 3) === 0;
    const d = sramRange(rp, dst, n);
    const s = d && (sramRange(rp, src, n) || flashRange(rp, src, n));
    if (d && s) {
      d.arr.set(s.arr.subarray(s.off, s.off + n), d.off); // set() copies as memmove would
    } else {
      for (let i = 0; i < n; i++) rp.writeUint8((dst + i) >>> 0, rp.readUint8((src + i) >>> 0));
    }
    return { r0: dst, cycles: memCycles(n, aligned, false) };
  }

  _erase(addr, count, blockSize, blockCmd) {
    // The ROM uses the large block erase wherever an aligned block fits, sectors elsewhere.
    let us = FLASH_US.xipCmd;
    let a = addr;
    const end = addr + count;
    while (a < end) {
      if (blockCmd && blockSize === 65536 && a % 65536 === 0 && end - a >= 65536) {
        us += FLASH_US.block64;
        a += 65536;
      } else {
        us += FLASH_US.sector;
        a += SECTOR;
      }
    }
    this.flash.erase(addr, count);
    return { cycles: this.us(us) };
  }

  _program(rp, addr, data, count) {
    const bytes = new Uint8Array(count);
    const s = sramRange(rp, data, count);
    if (s) bytes.set(s.arr.subarray(s.off, s.off + count));
    else for (let i = 0; i < count; i++) bytes[i] = rp.readUint8((data + i) >>> 0);
    this.flash.program(addr, bytes);
    return { cycles: this.us(FLASH_US.xipCmd + FLASH_US.page * Math.ceil(count / 256)) };
  }

  _usbBoot(gpioMask, disable) {
    this.log(`reset_usb_boot(0x${gpioMask.toString(16)}, ${disable}): the chip would enter BOOTSEL `
      + '(USB mass storage), which is not emulated; halted until a power cycle');
    this.onUsbBoot();
    return null;
  }

  _fatal(msg) {
    this.log(msg + '; the core is halted until a power cycle');
    this.onHalt(msg);
    return null;
  }
}

const SRAM_BASE = 0x20000000;
const FLASH_BASE = 0x10000000;

function sramRange(rp, addr, n) {
  const off = (addr >>> 0) - SRAM_BASE;
  return off >= 0 && off + n <= rp.sram.length ? { arr: rp.sram, off } : null;
}

function flashRange(rp, addr, n) {
  // XIP and its three aliases (0x10.., 0x11.., 0x12.., 0x13..) all read the same flash.
  const a = addr >>> 0;
  if (a < FLASH_BASE || a >= 0x14000000) return null;
  const off = a & 0xffffff;
  return off + n <= rp.flash.length ? { arr: rp.flash, off } : null;
}

export function popcount(x) {
  x >>>= 0;
  let n = 0;
  while (x) {
    x &= x - 1;
    n++;
  }
  return n;
}

export function reverse32(x) {
  let r = 0;
  for (let i = 0; i < 32; i++) r = (r << 1) | ((x >>> i) & 1);
  return r >>> 0;
}

export function ctz32(x) {
  x >>>= 0;
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}
