// The execute loop (after rp2040js's Simulator.execute, with our own time rules):
//  - emulated time comes only from the core: each instruction advances the chip clock by
//    its cycles at clk_sys; in WFI/WFE the clock jumps to the next alarm (timer, USB,
//    peripheral) and those cycles count as idle;
//  - emulated time never runs ahead of wall time (realtime): the host's heartbeats are
//    wall-clock, the device's host-lost rule is emulated time, so a device ahead of the
//    wall would see a silent host. When busy it lags (rp2040js is slower than silicon);
//    when asleep it catches up to the wall clock and then sleeps for real;
//  - work is done in slices of a few ms of wall time so Node can move the serial bytes.
import { performance } from 'node:perf_hooks';

/**
 * Move the chip clock to board time t1 with the PIO in step: alarms (DMA, ADC, timers) and
 * PIO instructions happen in time order, so the analog model never sees time go back.
 */
export function advanceTo(clock, base, t1, pio) {
  for (let guard = 0; ; guard++) {
    const now = base + clock.nanos;
    const pe = pio.nextEvent();
    const ae = clock.nextAlarm ? base + clock.nextAlarm.nanos : Infinity;
    const e = Math.min(pe, ae);
    if (e > t1) break;
    if (guard === 1000000) {
      process.stderr.write(`hil: stuck at ${now} ns: next PIO event ${pe}, next alarm ${ae} `
        + `(${String(clock.nextAlarm && clock.nextAlarm.callback).slice(0, 160).replace(/\s+/g, ' ')})\n`);
    }
    if (ae <= pe) {
      // To the alarm in the chip's own time: base + nanos loses the fraction of a ns that
      // decides whether the alarm is due.
      clock.tick(Math.max(0, clock.nextAlarm.nanos - clock.nanos));
    } else {
      clock.tick(e > now ? e - now : 0);
    }
    pio.advance(base + clock.nanos);
  }
  const now = base + clock.nanos;
  if (t1 > now) clock.tick(t1 - now);
  pio.advance(base + clock.nanos);
}

export class Runner {
  /** board: VirtualBoard; realtime: pace to the wall clock (false: as fast as possible). */
  constructor(board, { realtime = true, sliceMs = 10 } = {}) {
    this.board = board;
    this.realtime = realtime;
    this.sliceMs = sliceMs;
    this.timer = null;
    this.running = false;
    this.w0 = 0;
    this.t0 = 0;
  }

  start() {
    this.running = true;
    this.w0 = performance.now();
    this.t0 = this.board.now();
    this.board.cpu.start(this.t0);
    this._schedule(0);
  }

  stop() {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Something happened (host bytes, a command): run now instead of sleeping on. */
  kick() {
    if (this.running) this._schedule(0);
  }

  /** Board time the emulation may reach now. */
  limit() {
    return this.realtime ? this.t0 + (performance.now() - this.w0) * 1e6 : Infinity;
  }

  _schedule(ms) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.running) return;
      const w = performance.now();
      const wait = this.run(this.limit(), w + this.sliceMs);
      this.board.cpu.addCompute(performance.now() - w);
      if (this.running) this._schedule(wait);
    }, ms);
  }

  /**
   * Run until board time `limit` or wall time `wallEnd` (ms). Returns how long to sleep (ms)
   * before the next slice: 0 if there is more to do now.
   */
  run(limit, wallEnd = Infinity) {
    const b = this.board;
    const cpu = b.cpu;
    let n = 0;
    for (;;) {
      if (b.resetPending) b.performReset();
      const { core, clock } = b.chip;
      const nsPerCycle = 1e9 / b.cpuHz;
      const base = b.bclock.base;
      let t = base + clock.nanos;
      if (t >= limit) return 1;
      const pio = b.pio && b.pio.active ? b.pio : null;
      if (b.halted || core.waiting) {
        let next = clock.nextAlarm ? base + clock.nextAlarm.nanos : Infinity;
        if (pio) next = Math.min(next, pio.nextEvent());
        const target = Math.min(next, limit);
        if (target === Infinity) return 5; // asleep, nothing scheduled, no pacing: wait for input
        const d = target - t;
        if (pio) {
          advanceTo(clock, base, Math.max(target, t), pio);
          if (d > 0) cpu.addIdle(d);
        } else if (d > 0) {
          clock.tick(d);
          cpu.addIdle(d);
        } else {
          clock.tick(0); // fire what is due
        }
        if (target === limit && next > limit && (b.halted || core.waiting)) {
          // Asleep until after the wall clock: sleep for real, up to the next alarm.
          return Math.max(1, Math.min(50, (next - limit) / 1e6));
        }
        // Many events at one instant (DMA chains): let Node move serial bytes now and then.
        if ((++n & 255) === 0 && performance.now() >= wallEnd) return 0;
        continue;
      }
      // Busy: instructions back to back, checking the limits every 256.
      const prof = this.profiler;
      for (let k = 0; k < 256; k++) {
        const c0 = core.cycles;
        if (prof) prof.tick(core);
        core.executeInstruction();
        const dc = core.cycles - c0;
        cpu.addBusy(dc);
        if (pio) advanceTo(clock, base, base + clock.nanos + dc * nsPerCycle, pio);
        else clock.tick(dc * nsPerCycle);
        if (core.waiting || b.resetPending || b.halted) break;
      }
      t = base + clock.nanos;
      if (t >= limit) return 1;
      if ((++n & 15) === 0 && performance.now() >= wallEnd) return 0;
    }
  }
}
