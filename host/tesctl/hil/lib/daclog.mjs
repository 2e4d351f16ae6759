// --dac-log: one CSV row per DAC latch, per output-enable change and per power-on (the
// DAC's registers clear), in board time (ns).
// dac_a/dac_b are the codes the Howland pump sees (the output voltage in 1x-gain codes: a
// shut-down channel logs 0, a 2x-gain word logs twice its code, clipped at VDD).
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const DACLOG_HEADER = 't_ns,dac_a,dac_b,enable\n';

export class DacLog {
  constructor(path) {
    this.path = path;
    this.fd = null;
    this.buf = [];
    this.size = 0;
    this.rows = 0;
    if (path) {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, 'w');
      writeSync(this.fd, DACLOG_HEADER);
    }
  }

  row(tNs, a, b, enable) {
    if (this.fd === null) return;
    const line = `${Math.round(tNs)},${a},${b},${enable ? 1 : 0}\n`;
    this.buf.push(line);
    this.size += line.length;
    this.rows++;
    if (this.size > 65536) this.flush();
  }

  flush() {
    if (this.fd === null || !this.buf.length) return;
    writeSync(this.fd, this.buf.join(''));
    this.buf = [];
    this.size = 0;
  }

  close() {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
