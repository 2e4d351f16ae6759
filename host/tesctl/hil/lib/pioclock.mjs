// The PIO state machines, stepped in emulated time.
//
// rp2040js 1.4.1 runs the PIO from setTimeout (1000 instructions per Node tick), in wall
// time, ignoring every state machine's clock divider: a PIO-paced output would run at
// whatever speed Node manages. Here each enabled state machine executes its next
// instruction when its own clock (clk_sys / CLKDIV, 16.8 fixed point) reaches it: an
// instruction with a delay [n] takes 1 + n cycles, a stalled one (pull on an empty FIFO)
// waits in the present and resumes when data arrives. The runner calls advance(t) after
// every CPU instruction and, while the core sleeps, jumps no further than nextEvent().
// Pin changes reach their listeners (the DAC's pin decoder) at the instruction's own time.
//
// A `jmp y-- self` loop (a delay count) is fast-forwarded: one step for all its turns that
// fit before t, so a program that pads each sample with thousands of cycles costs a few
// dozen JS steps per sample, not thousands.
//
// The FIFOs follow SHIFTCTRL's join bits as silicon's do (lib/piofifo.mjs: rp2040js keeps
// queued words through the flush hal.rp2 does on a hard fault).

import { patchFifoJoin } from './piofifo.mjs';

const JMP_Y_DEC = 0b100;

export class PioClock {
  /** pios: rp2040js RPPIO[]; cpuHz: clk_sys; setNow(ns|null): the time pin listeners see. */
  constructor(pios, cpuHz, setNow = () => {}) {
    this.pios = pios;
    this.cpuHz = cpuHz;
    this.setNow = setNow;
    this.next = pios.map(() => [-1, -1, -1, -1]); // -1: disabled; starts when enabled
    this.steps = 0;
    for (const p of pios) {
      p.run = () => {}; // never from setTimeout: advance() steps them
    }
    patchFifoJoin(pios);
  }

  nsPerCycle(sm) {
    const div = sm.clockDivInt + sm.clockDivFrac / 256;
    return ((div === 0 ? 65536 : div) * 1e9) / this.cpuHz;
  }

  /** True if a state machine is enabled (the runner skips advance() otherwise). */
  get active() {
    for (const p of this.pios) for (const sm of p.machines) if (sm.enabled) return true;
    return false;
  }

  /** Run every enabled state machine up to emulated time t (ns). */
  advance(t) {
    for (let i = 0; i < this.pios.length; i++) {
      const p = this.pios[i];
      for (let j = 0; j < 4; j++) {
        const sm = p.machines[j];
        if (!sm.enabled) {
          this.next[i][j] = -1;
          continue;
        }
        const per = this.nsPerCycle(sm);
        let n = this.next[i][j];
        if (n < 0) n = t; // just enabled: its clock starts now
        let guard = 0;
        while (n <= t) {
          if (++guard > 2e6) {
            process.stderr.write(`hil: PIO state machine ${i}.${j} pc ${sm.pc} y ${sm.y} n ${n} t ${t} per ${per} waiting ${sm.waiting}: 2e6 steps in one advance, giving up this advance\n`);
            break;
          }
          if (sm.waiting) {
            this.setNow(n);
            sm.step();
            p.checkChangedPins();
            if (sm.waiting) {
              n = t + per; // stalled: its clock runs on with the present
              break;
            }
            n += per;
            continue;
          }
          const op = p.instructions[sm.pc];
          if (!sm.execValid && op >>> 13 === 0 && ((op >> 5) & 7) === JMP_Y_DEC && (op & 0x1f) === sm.pc && sm.y > 0) {
            const cost = 1 + this.delayOf(sm, op);
            const k = Math.min(sm.y, Math.floor((t - n) / (per * cost)));
            if (k > 0) {
              sm.y -= k;
              sm.cycles += k * cost;
              n += k * cost * per;
              this.steps++;
              continue;
            }
          }
          this.setNow(n);
          const c0 = sm.cycles;
          sm.step();
          p.checkChangedPins();
          this.steps++;
          n += Math.max(1, sm.cycles - c0) * per;
        }
        this.next[i][j] = n;
      }
    }
    this.setNow(null);
  }

  /** The earliest time an enabled state machine does something (Infinity: none, or all
   * stalled until data arrives). A `jmp y-- self` loop counts as one event at its end. */
  nextEvent() {
    let best = Infinity;
    for (let i = 0; i < this.pios.length; i++) {
      const p = this.pios[i];
      for (let j = 0; j < 4; j++) {
        const sm = p.machines[j];
        if (!sm.enabled || sm.waiting) continue;
        let n = this.next[i][j];
        if (n < 0) return -Infinity; // enabled since the last advance: step it now
        const op = p.instructions[sm.pc];
        if (!sm.execValid && op >>> 13 === 0 && ((op >> 5) & 7) === JMP_Y_DEC && (op & 0x1f) === sm.pc && sm.y > 0) {
          n += sm.y * (1 + this.delayOf(sm, op)) * this.nsPerCycle(sm);
        }
        if (n < best) best = n;
      }
    }
    return best;
  }

  delayOf(sm, op) {
    const bits = (op >> 8) & 0x1f;
    return bits & ((1 << (5 - sm.sidesetCount)) - 1);
  }
}
