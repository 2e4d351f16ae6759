// UF2 images (https://github.com/microsoft/uf2): 512-byte blocks, each carrying up to 476
// bytes for one flash address. Only blocks for the RP2040 family (or with no family) and
// not flagged "not main flash" are kept.
import { readFileSync } from 'node:fs';

export const UF2_MAGIC0 = 0x0a324655;
export const UF2_MAGIC1 = 0x9e5d5157;
export const UF2_MAGIC_END = 0x0ab16f30;
export const RP2040_FAMILY = 0xe48bff56;
const FLAG_NOT_MAIN_FLASH = 0x00000001;
const FLAG_FAMILY_ID = 0x00002000;
export const FLASH_BASE = 0x10000000;

export class Uf2Error extends Error {}

/** Parse UF2 bytes -> [{addr, data}] (addr: offset from the start of flash). */
export function parseUf2(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (bytes.length === 0 || bytes.length % 512) {
    throw new Uf2Error(`not a UF2 image: ${bytes.length} bytes is not a whole number of 512-byte blocks`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = [];
  for (let off = 0; off < bytes.length; off += 512) {
    const m0 = view.getUint32(off, true);
    const m1 = view.getUint32(off + 4, true);
    const mEnd = view.getUint32(off + 508, true);
    if (m0 !== UF2_MAGIC0 || m1 !== UF2_MAGIC1 || mEnd !== UF2_MAGIC_END) {
      throw new Uf2Error(`not a UF2 image: bad magic in block ${off / 512}`);
    }
    const flags = view.getUint32(off + 8, true);
    const target = view.getUint32(off + 12, true);
    const size = view.getUint32(off + 16, true);
    const family = view.getUint32(off + 28, true);
    if (flags & FLAG_NOT_MAIN_FLASH) continue;
    if (flags & FLAG_FAMILY_ID && family !== RP2040_FAMILY) continue;
    if (size > 476) throw new Uf2Error(`bad UF2 block ${off / 512}: payload of ${size} bytes`);
    if (target < FLASH_BASE || target + size > FLASH_BASE + 0x1000000) {
      throw new Uf2Error(`UF2 block ${off / 512} targets 0x${target.toString(16)}, outside flash`);
    }
    blocks.push({ addr: target - FLASH_BASE, data: bytes.slice(off + 32, off + 32 + size) });
  }
  if (!blocks.length) throw new Uf2Error('UF2 image has no RP2040 flash blocks');
  return blocks;
}

export function readUf2(path) {
  return parseUf2(readFileSync(path));
}

/** Build a UF2 image from [{addr, data}] (tests; 256-byte payloads as picotool writes). */
export function buildUf2(blocks, family = RP2040_FAMILY) {
  const out = new Uint8Array(blocks.length * 512);
  const view = new DataView(out.buffer);
  blocks.forEach((b, i) => {
    const off = i * 512;
    view.setUint32(off, UF2_MAGIC0, true);
    view.setUint32(off + 4, UF2_MAGIC1, true);
    view.setUint32(off + 8, FLAG_FAMILY_ID, true);
    view.setUint32(off + 12, FLASH_BASE + b.addr, true);
    view.setUint32(off + 16, b.data.length, true);
    view.setUint32(off + 20, i, true);
    view.setUint32(off + 24, blocks.length, true);
    view.setUint32(off + 28, family, true);
    out.set(b.data, off + 32);
    view.setUint32(off + 508, UF2_MAGIC_END, true);
  });
  return out;
}
