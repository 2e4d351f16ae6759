#!/usr/bin/env node
// tesctl hil harness: a stock MicroPython RPI_PICO image on an emulated RP2040 (rp2040js)
// with the board's analog stage modelled. Started by host/tesctl/hil.py, which owns the
// pseudo-terminal. Channels:
//   --serial-in FD: host -> device bytes (USB CDC OUT)   --serial-out FD: device -> host (CDC IN)
//   stdin control lines: reset | stats | profile | fault liftoff|short|clear [ELECTRODE] | quit
//   stdout events, one JSON per line
//   stderr log lines. SIGUSR1 power-cycles, SIGUSR2 reports statistics, stdin EOF quits.
import { writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Profiler } from './lib/profile.mjs';
import { boardParams, BoardError, readJson } from './lib/board.mjs';
import { DacLog } from './lib/daclog.mjs';
import { FlashError, FlashStore } from './lib/flash.mjs';
import { readUf2, Uf2Error } from './lib/uf2.mjs';
import { Runner } from './lib/runner.mjs';
import { VirtualBoard } from './lib/vboard.mjs';

// rp2040js (and anything else) must never print to stdout: it carries our events. Its
// direct console messages (e.g. "Read from invalid SIO address") go to stderr, each once.
const consoleSeen = new Set();
for (const k of ['log', 'info', 'debug', 'warn', 'error']) {
  console[k] = (...a) => {
    const line = a.join(' ');
    if (consoleSeen.has(line)) return;
    consoleSeen.add(line);
    process.stderr.write(`hil: rp2040js: ${line}\n`);
  };
}

const HELP = `usage: harness.mjs --uf2 IMAGE --board BOARD.json [--load SIM.json] [--model K=V]...
  [--flash FILE] [--erase] [--cpu-mhz 125] [--dac-log FILE] [--stats FILE] [--fast] [--profile ELF]
  [--serial-in FD] [--serial-out FD]`;

function fail(msg, code = 2) {
  // One error event; hil.py turns it into the CLI's one-sentence error (no stderr copy).
  if (process.stdout.isTTY) process.stderr.write(`hil: ${msg}\n`);
  emit({ event: 'error', message: msg, code });
  process.exit(code);
}

process.stdout.on('error', () => {}); // the host side went away: nothing left to tell

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let args;
try {
  args = parseArgs({
    options: {
      uf2: { type: 'string' },
      board: { type: 'string' },
      load: { type: 'string' },
      model: { type: 'string', multiple: true, default: [] },
      flash: { type: 'string' },
      erase: { type: 'boolean', default: false },
      'cpu-mhz': { type: 'string', default: '125' },
      'dac-log': { type: 'string' },
      stats: { type: 'string' },
      profile: { type: 'string' },
      fast: { type: 'boolean', default: false },
      'serial-in': { type: 'string', default: '3' },
      'serial-out': { type: 'string', default: '4' },
      help: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) {
  fail(`${e.message}\n${HELP}`);
}
if (args.help) {
  process.stderr.write(HELP + '\n');
  process.exit(0);
}
if (!args.uf2 || !args.board) fail(`--uf2 and --board are required\n${HELP}`);
const cpuMhz = Number(args['cpu-mhz']);
if (!(cpuMhz >= 1 && cpuMhz <= 1000)) fail(`--cpu-mhz ${args['cpu-mhz']}: must be 1..1000`);

let params;
let flash;
let blocks;
try {
  const overrides = {};
  for (const kv of args.model) {
    const [k, v] = kv.split('=');
    if (v === undefined || !Number.isFinite(Number(v))) fail(`--model ${kv}: expected KEY=NUMBER`);
    overrides[k] = Number(v);
  }
  params = boardParams(readJson(args.board), args.load ? readJson(args.load) : {}, overrides);
  blocks = readUf2(args.uf2);
  flash = new FlashStore(args.flash || null).open(args.erase);
  flash.loadBlocks(blocks);
} catch (e) {
  if (e instanceof BoardError || e instanceof Uf2Error || e instanceof FlashError || e.code === 'ENOENT') fail(e.message);
  throw e;
}

const dacLog = args['dac-log'] ? new DacLog(args['dac-log']) : null;
// Pipes as libuv stream handles (net.Socket), not fs streams: a pending fs read on a pipe
// ties up a threadpool thread and makes process.exit() hang.
const serialOut = new Socket({ fd: Number(args['serial-out']), readable: false, writable: true });
const serialIn = new Socket({ fd: Number(args['serial-in']), readable: true, writable: false });
const log = (line) => process.stderr.write(line + '\n');
const reports = [];

const board = new VirtualBoard({
  params,
  flash,
  cpuMhz,
  dacLog,
  log,
  onSerial: (buf) => serialOut.write(Buffer.from(buf)),
  onEvent: emit,
});
const runner = new Runner(board, { realtime: !args.fast });
if (args.profile) runner.profiler = Profiler.fromFile(args.profile);

function stats(label, keep = false) {
  const s = { ...board.stats(keep), label, at: new Date().toISOString() };
  reports.push(s);
  if (args.stats) writeFileSync(args.stats, JSON.stringify({ latest: s, reports }, null, 1) + '\n');
  emit({ event: 'stats', stats: s });
  return s;
}

let ending = false;
function quit(why) {
  if (ending) return;
  ending = true;
  runner.stop();
  stats(`end (${why})`, true);
  if (dacLog) dacLog.close();
  flash.close();
  emit({ event: 'exit', why });
  serialOut.end(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

serialIn.on('data', (chunk) => {
  board.write(new Uint8Array(chunk));
  if (board.cdc.backlog() > 262144) serialIn.pause();
  runner.kick();
});
serialIn.on('error', () => {});
serialOut.on('error', () => {});
setInterval(() => {
  if (serialIn.isPaused() && board.cdc.backlog() < 65536) serialIn.resume();
  if (dacLog) dacLog.flush();
}, 50).unref();

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'reset') {
    board.powerCycle();
    runner.kick();
  } else if (cmd === 'stats') {
    stats('on request');
  } else if (cmd === 'profile' && runner.profiler) {
    emit({ event: 'profile', profile: runner.profiler.report() });
  } else if (cmd.startsWith('fault ') || cmd === 'fault') {
    const why = board.faultCommand(cmd.slice(5));
    if (why) log(why);
  } else if (cmd === 'quit') {
    quit('quit');
  } else if (cmd) {
    log(`hil: unknown command ${JSON.stringify(cmd)} (reset, stats, profile, fault KIND, quit)`);
  }
}).on('close', () => quit('stdin closed'));

process.on('SIGUSR1', () => {
  board.powerCycle();
  runner.kick();
});
process.on('SIGUSR2', () => stats('on request'));
process.on('SIGINT', () => quit('SIGINT'));
process.on('SIGTERM', () => quit('SIGTERM'));

board.start();
emit({ event: 'ready', blocks: blocks.length, flash: args.flash || null, cpu_mhz: cpuMhz, board: params.id, adc: params.sense.kind });
runner.start();
