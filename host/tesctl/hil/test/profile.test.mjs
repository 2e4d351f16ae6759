import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Profiler, elfFunctions } from '../lib/profile.mjs';

/** A minimal ELF32 LE file: sections null, .symtab (3 symbols), .strtab. */
function tinyElf(symbols) {
  const names = ['', ...symbols.map((s) => s.name)];
  const strtab = Buffer.from(names.join('\0') + '\0');
  const offsets = [];
  let o = 0;
  for (const n of names) {
    offsets.push(o);
    o += n.length + 1;
  }
  const sym = Buffer.alloc(16 * (symbols.length + 1));
  symbols.forEach((s, i) => {
    const at = 16 * (i + 1);
    sym.writeUInt32LE(offsets[i + 1], at);
    sym.writeUInt32LE(s.value, at + 4);
    sym.writeUInt32LE(s.size, at + 8);
    sym[at + 12] = s.type ?? 2; // STT_FUNC
  });
  const shoff = 52 + sym.length + strtab.length;
  const sh = Buffer.alloc(40 * 3);
  sh.writeUInt32LE(2, 40 + 4); // SHT_SYMTAB
  sh.writeUInt32LE(52, 40 + 16);
  sh.writeUInt32LE(sym.length, 40 + 20);
  sh.writeUInt32LE(2, 40 + 24); // link -> strtab
  sh.writeUInt32LE(16, 40 + 36);
  sh.writeUInt32LE(3, 80 + 4); // SHT_STRTAB
  sh.writeUInt32LE(52 + sym.length, 80 + 16);
  sh.writeUInt32LE(strtab.length, 80 + 20);
  const hdr = Buffer.alloc(52);
  hdr.writeUInt32BE(0x7f454c46, 0);
  hdr[4] = 1; // 32-bit
  hdr[5] = 1; // little-endian
  hdr.writeUInt32LE(shoff, 32);
  hdr.writeUInt16LE(40, 46);
  hdr.writeUInt16LE(3, 48);
  return new Uint8Array(Buffer.concat([hdr, sym, strtab, sh]));
}

const SYMS = [
  { name: 'gc_alloc', value: 0x10001001, size: 0x40 },
  { name: 'mp_execute_bytecode', value: 0x10002001, size: 0x800 },
  { name: 'a_table', value: 0x10003000, size: 0x100, type: 1 }, // an object: not a function
];

test('function symbols come out sorted, Thumb bit cleared, objects left out', () => {
  const f = elfFunctions(tinyElf(SYMS));
  assert.deepEqual(f.map((x) => [x.name, x.start, x.end]), [
    ['gc_alloc', 0x10001000, 0x10001040],
    ['mp_execute_bytecode', 0x10002000, 0x10002800],
  ]);
  assert.throws(() => elfFunctions(new Uint8Array(64)), /not a 32-bit little-endian ELF/);
});

test('samples are attributed to the function holding the PC, RAM code apart', () => {
  const p = new Profiler(elfFunctions(tinyElf(SYMS)), 1);
  assert.equal(p.name(0x10001010), 'gc_alloc');
  assert.equal(p.name(0x10002400), 'mp_execute_bytecode');
  assert.equal(p.name(0x10001050), '0x10001050');
  assert.equal(p.name(0x20010000), 'RAM (native/viper code)');
  const core = { PC: 0x10002400, SP: 0x20040000, readUint32: () => 0 };
  for (let k = 0; k < 3; k++) p.tick(core);
  core.PC = 0x10001010;
  p.tick(core);
  const r = p.report();
  assert.equal(r.samples, 4);
  assert.deepEqual(r.top.map((x) => [x.name, x.share]), [['mp_execute_bytecode', 0.75], ['gc_alloc', 0.25]]);
  assert.equal(r.callers.length, 1);            // who called gc_alloc (the stack scan found nothing)
  assert.equal(p.report().samples, 0);          // a report clears the counts
});

test('every Nth instruction is sampled', () => {
  const p = new Profiler([], 10);
  const core = { PC: 0x20000000, SP: 0, readUint32: () => 0 };
  for (let k = 0; k < 95; k++) p.tick(core);
  assert.equal(p.report().samples, 9);
});

test('frozen Python functions and RAM functions are named; samples go to the innermost Python function', () => {
  const syms = [...SYMS,
    { name: 'fun_data_tes_app_App_tick', value: 0x10040100, size: 0x80, type: 1 },   // frozen native code
    { name: 'fun_data_hal_rp2_sense', value: 0x10040201, size: 0x40, type: 1 },       // bytecode: odd is fine
    { name: 'mp_usbd_schedule_task', value: 0x200000c1, size: 0x14 },                 // an SDK function in RAM
  ];
  const p = new Profiler(elfFunctions(tinyElf(syms)), 1);
  assert.equal(p.name(0x10040140), 'fun_data_tes_app_App_tick');
  assert.equal(p.name(0x200000c8), 'mp_usbd_schedule_task');
  assert.equal(p.name(0x20010000), 'RAM (native/viper code)');
  const stack = { 0x2003ff00: 0x1000, 0x2003ff04: 0x10040141, 0x2003ff08: 0x10040211 };  // even word, then returns
  const core = { PC: 0x10001010, SP: 0x2003ff00, readUint32: (a) => stack[a] ?? 0 };
  p.tick(core);                        // gc_alloc called from App.tick
  core.PC = 0x10040150;
  p.tick(core);                        // in App.tick's own code
  core.PC = 0x10002400;
  core.SP = 0x2003ff08;
  p.tick(core);                        // the VM; the first return address on the stack is into sense
  core.SP = 0x2003ff0c;
  p.tick(core);                        // nothing frozen above
  const r = p.report();
  assert.deepEqual(r.python.map((x) => [x.name, x.share]), [['tes_app_App_tick', 0.5], ['hal_rp2_sense', 0.25],
    ['(no frozen Python function on the stack)', 0.25]]);
  assert.deepEqual(r.callers.map((x) => [x.name, x.share]), [['gc_alloc < fun_data_tes_app_App_tick < fun_data_hal_rp2_sense', 0.25]]);
  assert.equal(p.report().python.length, 0);
});
