// MCP4922 dual 12-bit DAC (Microchip DS21897): a 16-bit shift register clocked while CS is
// low, two input registers and two output (DAC) registers.
//   command word, MSB first: bit 15 A/B (0 = A), 14 BUF, 13 GA (1 = 1x gain, 0 = 2x),
//   12 SHDN (1 = active, 0 = that channel shut down: output ~0 V through ~500 kOhm), 11..0 D.
//   CS rising after exactly 16 clocks loads the word into its channel's input register
//   (other counts: the word is ignored and counted as bad). LDAC falling copies both input
//   registers to the outputs; while LDAC is low the outputs follow at CS rising.
// Vout = VREF * D / 4096 * (GA ? 1 : 2), at most VDD. Power-on: all registers 0 (0 V).
// Shutting one channel down is dangerous on this board: the Howland pump turns A = 0 V
// against B at mid-scale into full negative current (firmware/hal/mcp4922.py).

export class Mcp4922 {
  constructor({ vrefMv = 2048, vddMv = 3300, onOutput = () => {} } = {}) {
    this.vrefMv = vrefMv;
    this.vddMv = vddMv;
    this.onOutput = onOutput; // (tNs, dac) after every output change (latch)
    this.powerOn();
  }

  powerOn() {
    const reg = () => ({ code: 0, buf: false, gain1x: true, active: true });
    this.input = [reg(), reg()];
    this.output = [reg(), reg()];
    this.shift = 0;
    this.bits = 0;
    this.cs = 1;
    this.ldac = 1;
    this.words = 0;
    this.badWords = 0;
    this.latches = 0;
  }

  static decode(w) {
    return {
      channel: (w >> 15) & 1,
      buf: !!(w & 0x4000),
      gain1x: !!(w & 0x2000),
      active: !!(w & 0x1000),
      code: w & 0x0fff,
    };
  }

  /** Output voltage of a channel, mV. */
  volts(ch) {
    const r = this.output[ch];
    if (!r.active) return 0;
    const v = (this.vrefMv * r.code) / 4096 * (r.gain1x ? 1 : 2);
    return Math.min(v, this.vddMv);
  }

  /** The output as a 1x-gain code (what the pump sees): SHDN gives 0, 2x gain doubles. */
  effectiveCode(ch) {
    return Math.round((this.volts(ch) * 4096) / this.vrefMv);
  }

  // ---- the serial interface ---------------------------------------------------------
  setCs(level, tNs) {
    if (level === this.cs) return;
    this.cs = level;
    if (!level) {
      this.shift = 0;
      this.bits = 0;
      return;
    }
    if (this.bits === 16) {
      const d = Mcp4922.decode(this.shift & 0xffff);
      this.input[d.channel] = { code: d.code, buf: d.buf, gain1x: d.gain1x, active: d.active };
      this.words++;
      if (!this.ldac) this._latch(tNs, [d.channel]);
    } else if (this.bits) {
      this.badWords++;
    }
    this.bits = 0;
  }

  setLdac(level, tNs) {
    if (level === this.ldac) return;
    this.ldac = level;
    if (!level) this._latch(tNs, [0, 1]);
  }

  /** n bits (MSB first) clocked in while CS is low: one SPI frame or one SCK edge. */
  clockIn(value, n) {
    if (this.cs) return;
    this.shift = ((this.shift << n) | (value & ((1 << n) - 1))) & 0xffffffff;
    this.bits += n;
  }

  _latch(tNs, channels) {
    let changed = false;
    for (const ch of channels) {
      const a = this.input[ch];
      const o = this.output[ch];
      if (a.code !== o.code || a.active !== o.active || a.gain1x !== o.gain1x || a.buf !== o.buf) changed = true;
      this.output[ch] = { ...a };
    }
    this.latches++;
    this.onOutput(tNs, this, changed);
  }
}
