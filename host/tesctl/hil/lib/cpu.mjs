// CPU accounting: busy cycles (instructions and the cycles charged for ROM services) and
// idle cycles (board time the core spent asleep in WFI/WFE, at clk_sys). Emulated time is
// board time; wall time is this process's monotonic clock. Figures for the whole run and
// for the interval since the last report:
//   speed       emulated s / wall s (an idle chip keeps up with the wall clock, so this
//               mixes idle and busy stretches);
//   busy_speed  busy emulated s / wall s the harness spent computing: how fast rp2040js
//               runs the core when it is busy;
//   lag_s       how far board time is behind the wall clock at the end (it only catches up
//               while the chip sleeps).
import { performance } from 'node:perf_hooks';

export class CpuAccount {
  constructor(cpuHz, wallNow = () => performance.now()) {
    this.cpuHz = cpuHz;
    this.wallNow = wallNow;
    this.busy = 0;
    this.idleNs = 0;
    this.computeMs = 0;
    this.t0 = null; // board ns at start
    this.w0 = null; // wall ms at start
    this.mark = null;
  }

  start(boardNs) {
    this.t0 = boardNs;
    this.w0 = this.wallNow();
    this.mark = { t: boardNs, w: this.w0, busy: 0, idleNs: 0, computeMs: 0 };
  }

  addCompute(ms) {
    this.computeMs += ms;
  }

  addBusy(cycles) {
    this.busy += cycles;
  }

  addIdle(ns) {
    this.idleNs += ns;
  }

  _figures(t0, w0, busy, idleNs, computeMs, boardNs, wall) {
    const emu = (boardNs - t0) / 1e9;
    const wallS = (wall - w0) / 1000;
    const idle = (idleNs * this.cpuHz) / 1e9;
    const all = busy + idle;
    return {
      emulated_s: round(emu, 6),
      wall_s: round(wallS, 3),
      speed: wallS > 0 ? round(emu / wallS, 4) : null,
      busy_speed: computeMs > 0 && busy > 0 ? round(busy / this.cpuHz / (computeMs / 1000), 4) : null,
      lag_s: round((wall - this.w0) / 1000 - (boardNs - this.t0) / 1e9, 3),
      busy_cycles: Math.round(busy),
      idle_cycles: Math.round(idle),
      idle_share: all > 0 ? round(idle / all, 4) : null,
    };
  }

  /** {run, interval}; starts a new interval unless keep. */
  report(boardNs, keep = false) {
    const wall = this.wallNow();
    const run = this._figures(this.t0, this.w0, this.busy, this.idleNs, this.computeMs, boardNs, wall);
    const m = this.mark;
    const interval = this._figures(m.t, m.w, this.busy - m.busy, this.idleNs - m.idleNs,
      this.computeMs - m.computeMs, boardNs, wall);
    if (!keep) this.mark = { t: boardNs, w: wall, busy: this.busy, idleNs: this.idleNs, computeMs: this.computeMs };
    return { run, interval };
  }
}

function round(x, d) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
