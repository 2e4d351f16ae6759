// Run a Thumb function's machine code (an @micropython.asm_thumb body as mpy-cross
// -march=armv6m assembles it) on rp2040js's Cortex-M0+ core, without MicroPython: the code
// and the memory it reads are placed in SRAM, r0-r3 set, and the core runs until the
// function returns to a breakpoint. Tests use it to hold firmware/hal/check_thumb.py to its
// viper reference in CI, where no RPI_PICO image exists.
//
// stdin: {"code": hex, "calls": [{"mem": [[addr, [int32...]], ...], "regs": [r0, r1, r2, r3],
//          "read": [[addr, nwords], ...]}, ...]}
// stdout: {"results": [{"r0": int32, "cycles": n, "early_div_reads": n, "read": [[int32...], ...]}, ...]}
//
// The SIO divider is modelled with its latency: rp2040js computes at once, but the chip's
// results are readable only from the 9th cycle after a dividend or divisor write (the pico-sdk's
// "over the next 8 cycles, and on the 9th cycle the results can be read"; its own sequence: the
// write, four taken branches, the read). A quotient or remainder read earlier returns POISON and
// counts in early_div_reads, and DIV_CSR's READY bit reads 0 until then.
import { RP2040 } from 'rp2040js';

export const CODE_AT = 0x20000000;
const RETURN_AT = 0x20000ff0;     // a bkpt the function returns to
const STACK_AT = 0x20040000;
const MAX_STEPS = 50_000_000;
const DIV_REGS = [0x60, 0x64, 0x68, 0x6c];     // U/S DIVIDEND, U/S DIVISOR: a write starts a division
const DIV_RESULTS = [0x70, 0x74];              // QUOTIENT, REMAINDER
const DIV_CSR = 0x78;
export const DIV_READY_AFTER = 9;              // cycles from the write's start to the first good read
export const POISON = 0x5a5a5a5a;

// Wrap rp2040js's SIO so the divider answers only after its latency. The write's own cycle count
// is left alone (rp2040js adds 8 cycles to a divider write); the window is measured from the
// instruction after the write, so it holds with or without that addition.
function modelDividerLatency(mcu) {
  const { sio, core } = mcu;
  const read = sio.readUint32.bind(sio);
  const write = sio.writeUint32.bind(sio);
  let next = -Infinity;          // cycles when the instruction after the last divider write starts
  mcu.earlyDivReads = 0;
  sio.writeUint32 = (offset, value) => {
    write(offset, value);
    if (DIV_REGS.includes(offset)) next = core.cycles + 1;   // an SIO store is one cycle
  };
  sio.readUint32 = (offset) => {
    const ready = core.cycles - next >= DIV_READY_AFTER - 1;
    if (DIV_RESULTS.includes(offset) && !ready) {
      mcu.earlyDivReads++;
      return POISON;
    }
    if (offset === DIV_CSR && !ready) return read(offset) & ~1;
    return read(offset);
  };
}

export function call(mcu, code, { mem = [], regs = [], read = [] }) {
  for (const [addr, words] of mem) {
    words.forEach((w, k) => mcu.writeUint32(addr + 4 * k, w >>> 0));
  }
  const core = mcu.core;
  mcu.writeUint16(RETURN_AT, 0xbe00);
  for (let r = 0; r < 13; r++) core.registers[r] = 0;
  regs.forEach((v, r) => { core.registers[r] = v >>> 0; });
  core.SP = STACK_AT;
  core.LR = RETURN_AT | 1;
  core.PC = CODE_AT;
  const c0 = core.cycles;
  mcu.earlyDivReads = 0;
  let steps = 0;
  while (core.PC !== RETURN_AT) {
    if (++steps > MAX_STEPS) throw new Error(`no return after ${MAX_STEPS} instructions (PC 0x${core.PC.toString(16)})`);
    const pc = core.PC;
    if (pc < CODE_AT || pc >= CODE_AT + code.length) {
      throw new Error(`PC left the code: 0x${pc.toString(16)}`);
    }
    core.executeInstruction();
  }
  return {
    r0: core.registers[0] | 0,
    cycles: core.cycles - c0,
    early_div_reads: mcu.earlyDivReads,
    read: read.map(([addr, n]) => Array.from({ length: n }, (_, k) => mcu.readUint32(addr + 4 * k) | 0)),
  };
}

export function load(code) {
  const mcu = new RP2040();
  code.forEach((b, k) => mcu.writeUint8(CODE_AT + k, b));
  modelDividerLatency(mcu);
  return mcu;
}

async function main() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const job = JSON.parse(Buffer.concat(chunks).toString());
  const code = Buffer.from(job.code, 'hex');
  const mcu = load(code);
  const results = job.calls.map((c) => call(mcu, code, c));
  process.stdout.write(JSON.stringify({ results }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => { process.stderr.write(`thumbcall: ${e.message}\n`); process.exit(1); });
}
