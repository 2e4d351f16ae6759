// Board time: one emulated clock that runs on across chip resets. Each chip rebuild brings
// a fresh rp2040js SimulationClock (its timer restarts at 0, as silicon's does); board time
// = base + that clock's nanos. Parts that outlive a chip reset (the DAC, the ADS1115, the
// load) schedule on board time here and are carried over to the next chip's clock.

export class BoardClock {
  constructor() {
    this.base = 0;
    this.clock = null;
    this.pending = new Set(); // {t, fn, alarm}
  }

  now() {
    return this.base + (this.clock ? this.clock.nanos : 0);
  }

  /** Switch to a new chip clock that starts at board time `now()`; re-arm what is pending. */
  bind(clock) {
    const t = this.now();
    for (const p of this.pending) if (p.alarm) p.alarm.cancel();
    this.clock = clock;
    this.base = t - clock.nanos;
    for (const p of this.pending) this._arm(p);
  }

  /** Run fn at board time t (now if t is past). */
  at(t, fn) {
    const p = { t, fn, alarm: null };
    this.pending.add(p);
    this._arm(p);
    return p;
  }

  cancel(p) {
    if (p.alarm) p.alarm.cancel();
    this.pending.delete(p);
  }

  _arm(p) {
    if (!this.clock) return;
    p.alarm = this.clock.createAlarm(() => {
      this.pending.delete(p);
      p.fn();
    });
    p.alarm.schedule(Math.max(0, p.t - this.now()));
  }
}
