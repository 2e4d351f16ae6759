// The board's QSPI flash, kept in a file so the filesystem and the device journal outlive
// resets and harness restarts. rp2040js maps 16 MiB at 0x10000000 and reads it from a
// Uint8Array; we hand it ours (the same buffer across chip rebuilds). Erase and program
// follow NOR flash: erase sets 4 KiB sectors to 0xFF, program can only clear bits (AND).
import { closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const SECTOR = 4096;
export const PAGE = 256;
export const MAP_SIZE = 16 * 1024 * 1024; // the XIP window rp2040js models
export const PICO_FLASH = 2 * 1024 * 1024; // W25Q16JV on the Pico

export class FlashError extends Error {}

export class FlashStore {
  /** path: backing file (null: memory only); size: bytes of flash on the board. */
  constructor(path = null, size = PICO_FLASH) {
    this.path = path;
    this.size = size;
    this.mem = new Uint8Array(MAP_SIZE).fill(0xff);
    this.fd = null;
    this.erases = 0;
    this.programs = 0;
    this.trace = null; // (line) for TESCTL_HIL_TRACE=flash
  }

  /** Open (or create) the backing file; erase=true starts from an empty (0xFF) flash. */
  open(erase = false) {
    if (!this.path) return this;
    mkdirSync(dirname(this.path), { recursive: true });
    const fresh = erase || !existsSync(this.path);
    this.fd = openSync(this.path, fresh ? 'w+' : 'r+');
    if (!fresh) {
      const have = fstatSync(this.fd).size;
      if (have > this.size) {
        throw new FlashError(`flash file ${this.path} holds ${have} bytes, more than the board's ${this.size}`);
      }
      readSync(this.fd, this.mem, 0, have, 0);
    }
    ftruncateSync(this.fd, this.size);
    if (fresh) this._persist(0, this.size);
    return this;
  }

  close() {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Give rp2040js our buffer as its flash (call after every chip rebuild). */
  attach(rp2040) {
    rp2040.flash = this.mem;
    rp2040.flash16 = new Uint16Array(this.mem.buffer);
    rp2040.flashView = new DataView(this.mem.buffer);
  }

  /** Write UF2 blocks [{addr, data}]: only the bytes the image holds change. */
  loadBlocks(blocks) {
    for (const b of blocks) {
      this._check(b.addr, b.data.length);
      this.mem.set(b.data, b.addr);
      this._persist(b.addr, b.data.length);
    }
  }

  /** flash_range_erase: addr and count whole 4 KiB sectors (the ROM requires it). */
  erase(addr, count) {
    if (addr % SECTOR || count % SECTOR) {
      throw new FlashError(`flash erase at 0x${addr.toString(16)} of ${count} bytes is not sector-aligned`);
    }
    this._check(addr, count);
    this.mem.fill(0xff, addr, addr + count);
    this.erases += count / SECTOR;
    if (this.trace) this.trace(`erase 0x${addr.toString(16)} +${count}`);
    this._persist(addr, count);
  }

  /** flash_range_program: NOR programming clears bits only (new = old AND data). */
  program(addr, data) {
    if (addr % PAGE || data.length % PAGE) {
      throw new FlashError(`flash program at 0x${addr.toString(16)} of ${data.length} bytes is not page-aligned`);
    }
    this._check(addr, data.length);
    const m = this.mem;
    for (let i = 0; i < data.length; i++) m[addr + i] &= data[i];
    this.programs += data.length / PAGE;
    if (this.trace) this.trace(`program 0x${addr.toString(16)} +${data.length}`);
    this._persist(addr, data.length);
  }

  _check(addr, count) {
    if (addr < 0 || count < 0 || addr + count > this.size) {
      throw new FlashError(`flash access at 0x${addr.toString(16)} (+${count}) beyond the ${this.size}-byte flash`);
    }
  }

  _persist(addr, count) {
    // Write-through: the OS page cache makes this cheap, and a killed harness loses nothing.
    if (this.fd !== null && count > 0) writeSync(this.fd, this.mem, addr, count, addr);
  }
}
