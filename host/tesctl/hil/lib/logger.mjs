// rp2040js logs through a ConsoleLogger that prints to stdout (our serial channel) and
// throws on errors. This one writes to a sink (stderr), prints each distinct warning once
// (unimplemented registers are touched thousands of times), counts them, and never throws:
// an emulator error is reported, the run goes on.
import { LogLevel } from 'rp2040js';

export class QuietLogger {
  constructor(sink = (line) => process.stderr.write(line + '\n'), level = LogLevel.Warn) {
    this.sink = sink;
    this.level = level;
    this.seen = new Map();
  }

  _emit(kind, component, message) {
    const key = `${component}: ${message}`;
    const n = (this.seen.get(key) || 0) + 1;
    this.seen.set(key, n);
    if (n === 1) this.sink(`hil: rp2040js ${kind}: ${key}`);
  }

  debug() {}

  info(component, message) {
    if (this.level <= LogLevel.Info) this._emit('info', component, message);
  }

  warn(component, message) {
    if (this.level <= LogLevel.Warn) this._emit('warning', component, message);
  }

  error(component, message) {
    this._emit('error', component, message);
  }
}
