// Where the emulated CPU spends its busy cycles: the program counter sampled every
// `every` instructions, attributed to the firmware's functions by the ELF symbol table
// of the image (the .elf built with the .uf2), the SDK's RAM functions included. Other code
// in RAM (MicroPython's native and viper code loaded from .mpy) counts as "RAM". Frozen
// Python functions (mpy-tool's fun_data_<module>_<name> arrays: native code runs there) are
// named too, and each sample is also charged to the innermost frozen Python function found on
// the stack (its PC, else the first return address into one): the Python-level view, inclusive
// of the runtime it calls. A developer's aid: `tesctl hil --profile ELF`, read with the
// `profile` control line.
import { readFileSync } from 'node:fs';

const FROZEN = 'fun_data_';

/** Parse an ELF32 little-endian file's function symbols, and the frozen Python functions'
 * code arrays (objects named fun_data_*), -> sorted [{start, end, name}]. */
export function elfFunctions(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, false) !== 0x7f454c46 || b[4] !== 1 || b[5] !== 1) {
    throw new Error('not a 32-bit little-endian ELF file');
  }
  const shoff = v.getUint32(32, true);
  const shentsize = v.getUint16(46, true);
  const shnum = v.getUint16(48, true);
  const sec = (i) => {
    const o = shoff + i * shentsize;
    return { type: v.getUint32(o + 4, true), offset: v.getUint32(o + 16, true), size: v.getUint32(o + 20, true),
      link: v.getUint32(o + 24, true), entsize: v.getUint32(o + 36, true) };
  };
  const out = [];
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== 2) continue; // SHT_SYMTAB
    const str = sec(s.link);
    for (let o = s.offset; o + 16 <= s.offset + s.size; o += s.entsize || 16) {
      const type = b[o + 12] & 0xf;
      if (type !== 2 && type !== 1) continue; // STT_FUNC, STT_OBJECT
      const size = v.getUint32(o + 8, true);
      let p = str.offset + v.getUint32(o, true);
      let name = '';
      while (b[p]) name += String.fromCharCode(b[p++]);
      if (type === 1 && !name.startsWith(FROZEN)) continue; // data, not code
      const value = type === 2 ? v.getUint32(o + 4, true) & ~1 : v.getUint32(o + 4, true); // Thumb bit
      out.push({ start: value, end: value + Math.max(size, 2), name });
    }
  }
  return out.sort((x, y) => x.start - y.start);
}

export class Profiler {
  constructor(functions, every = 97) {
    this.fns = functions;
    this.every = every;
    this.countdown = every;
    this.hits = new Map();
    this.samples = 0;
    this.watch = new Set(['gc_alloc', 'memmove']);   // who allocates, who copies: a stack scan
    this.callers = new Map();
    this.python = new Map();
  }

  /** The names of the code that odd words on the stack from sp up return into (at most
   * `words` words read; `top` bounds the addresses taken: flash only, or RAM too). */
  *returns(core, words, top) {
    let sp = core.SP;
    for (let k = 0; k < words && sp < 0x20042000; k++, sp += 4) {
      let w;
      try {
        w = core.readUint32(sp);
      } catch {
        return;
      }
      if ((w & 1) && w >= 0x10000000 && w < top) yield this.name((w & ~1) - 2);
    }
  }

  /** The innermost frozen Python function: the one holding the PC, else the first return
   * address on the stack into one, else null. */
  pythonFrame(core, here) {
    if (here.startsWith(FROZEN)) return here;
    for (const n of this.returns(core, 256, 0x20042000)) if (n.startsWith(FROZEN)) return n;
    return null;
  }

  /** Return addresses found on the stack from sp up (odd words into flash code), as
   * function names: a heuristic call chain, good enough to tell who allocates. */
  chain(core, depth = 5) {
    const out = [];
    for (const n of this.returns(core, 96, 0x10200000)) {
      if (!n.startsWith('0x') && out[out.length - 1] !== n) out.push(n);
      if (out.length >= depth) break;
    }
    return out.join(' < ');
  }

  static fromFile(path, every) {
    return new Profiler(elfFunctions(readFileSync(path)), every);
  }

  name(pc) {
    const f = this.fns;
    let lo = 0;
    let hi = f.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid].start <= pc) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi >= 0 && pc < f[hi].end) return f[hi].name;
    return pc >= 0x20000000 && pc < 0x20042000 ? 'RAM (native/viper code)' : `0x${pc.toString(16)}`;
  }

  /** Call once per busy instruction with the core (before the instruction runs). */
  tick(core) {
    if (--this.countdown > 0) return;
    this.countdown = this.every;
    this.samples++;
    const n = this.name(core.PC);
    this.hits.set(n, (this.hits.get(n) || 0) + 1);
    if (this.watch.has(n)) {
      const c = `${n} < ${this.chain(core)}`;
      this.callers.set(c, (this.callers.get(c) || 0) + 1);
    }
    const py = this.pythonFrame(core, n) || '(no frozen Python function on the stack)';
    this.python.set(py, (this.python.get(py) || 0) + 1);
  }

  /** Top functions by share of busy samples since the last report (then cleared). */
  report(top = 30) {
    const rows = [...this.hits.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    const total = this.samples || 1;
    const calls = [...this.callers.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
    const py = [...this.python.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    const out = { samples: this.samples, top: rows.map(([name, n]) => ({ name, share: n / total })),
      callers: calls.map(([name, n]) => ({ name, share: n / total })),
      python: py.map(([name, n]) => ({ name: name.startsWith(FROZEN) ? name.slice(FROZEN.length) : name,
        share: n / total })) };
    this.callers.clear();
    this.python.clear();
    this.hits.clear();
    this.samples = 0;
    return out;
  }
}
