// ADS1115 16-bit delta-sigma ADC on I2C (TI SBAS444), register level.
//   Write: address, pointer byte (P1:P0: 0 conversion, 1 config, 2 Lo_thresh, 3 Hi_thresh),
//   then MSB, LSB of that register. A write of the pointer alone selects what reads return.
//   Read: MSB then LSB of the pointed register (further bytes repeat it).
//   Config: OS(15) MUX(14:12) PGA(11:9) MODE(8: 1 single-shot) DR(7:5) COMP(4:0);
//   power-on 0x8583. Single-shot: writing OS=1 starts one conversion; while it runs OS
//   reads 0 and a new start is ignored (the register still takes the other bits, used from
//   the next conversion on). Continuous: a config write restarts conversions back to back.
// Conversion: 1/DR, plus a wake-up from power-down in single-shot mode; the result is the
// differential input at the end of the conversion (the sinc filter's averaging over the
// conversion is not modelled), rounded, clamped to -32768..32767, plus seeded noise.
// The comparator and the ALERT/RDY pin are stored but have no effect.

export const PGA_MV = [6144, 4096, 2048, 1024, 512, 256, 256, 256];
export const DR_SPS = [8, 16, 32, 64, 128, 250, 475, 860];
export const CONFIG_DEFAULT = 0x8583;
// Inputs of each MUX setting: [positive, negative]; 4 = GND.
const MUX = [[0, 1], [0, 3], [1, 3], [2, 3], [0, 4], [1, 4], [2, 4], [3, 4]];

export class Ads1115 {
  /**
   * inputs(tNs) -> [AIN0..AIN3] in volts at that time; sched: {now(), at(tNs, fn)};
   * wakeupUs: extra time of a single-shot conversion; noise(): LSB to add (0 for none).
   */
  constructor({ address = 0x48, inputs, sched, wakeupUs = 25, noise = () => 0, trace = null }) {
    this.address = address;
    this.trace = trace; // (line) for TESCTL_HIL_TRACE=ads
    this.inputs = inputs;
    this.sched = sched;
    this.wakeupUs = wakeupUs;
    this.noise = noise;
    this.powerOn();
  }

  powerOn() {
    this.pointer = 0;
    this.config = CONFIG_DEFAULT & 0x7fff; // OS reads 1 when idle: see configRead()
    this.conversion = 0;
    this.loThresh = 0x8000;
    this.hiThresh = 0x7fff;
    this.converting = false;
    this.token = 0; // invalidates a scheduled completion after a restart or power-on
    this.rx = [];
    this.readIdx = 0;
    this.conversions = 0;
    this.ignoredStarts = 0;
  }

  get continuous() {
    return !(this.config & 0x0100);
  }

  configRead() {
    const os = this.continuous ? 0 : this.converting ? 0 : 0x8000;
    return (this.config & 0x7fff) | os;
  }

  registerRead(p) {
    return [this.conversion & 0xffff, this.configRead(), this.loThresh, this.hiThresh][p];
  }

  conversionNs(cfg) {
    const dr = DR_SPS[(cfg >> 5) & 7];
    return 1e9 / dr + (cfg & 0x0100 ? this.wakeupUs * 1000 : 0);
  }

  // ---- I2C target ---------------------------------------------------------------------
  /** Address phase: true = ACK. */
  connect(addr, read) {
    if (addr !== this.address) return false;
    this.rx = [];
    if (read) this.readIdx = 0;
    return true;
  }

  writeByte(b) {
    this.rx.push(b & 0xff);
    if (this.rx.length === 1) {
      this.pointer = b & 3;
    } else if (this.rx.length === 3) {
      this._writeRegister(this.pointer, (this.rx[1] << 8) | this.rx[2]);
      this.rx = [this.rx[0]];
    }
    return true;
  }

  readByte() {
    const v = this.registerRead(this.pointer);
    if (this.trace && this.readIdx % 2 === 0) this._t(`read reg ${this.pointer} = 0x${v.toString(16)}`);
    const b = this.readIdx % 2 === 0 ? v >> 8 : v & 0xff;
    this.readIdx++;
    return b;
  }

  stop() {
    this.rx = [];
  }

  _writeRegister(p, v) {
    if (p === 0) return; // the conversion register is read-only
    if (p === 2) this.loThresh = v;
    else if (p === 3) this.hiThresh = v;
    else this._writeConfig(v);
  }

  _t(msg) {
    this.trace(`ads1115 ${(this.sched.now() / 1e6).toFixed(3)} ms: ${msg}`);
  }

  _writeConfig(v) {
    const start = v & 0x8000;
    if (this.trace) this._t(`config 0x${v.toString(16)} (mux ${(v >> 12) & 7})${start && this.converting ? ': start IGNORED, converting' : ''}`);
    this.config = v & 0x7fff;
    if (this.continuous) {
      this._start(true);
    } else if (start) {
      if (this.converting) this.ignoredStarts++;
      else this._start(false);
    }
  }

  _start(restart) {
    if (this.converting && !restart) return;
    this.converting = true;
    const token = ++this.token;
    const cfg = this.config;
    const end = this.sched.now() + this.conversionNs(cfg);
    this.sched.at(end, () => this._complete(token, cfg, end));
  }

  _complete(token, cfg, tNs) {
    if (token !== this.token) return;
    this.conversion = this.code(cfg, tNs);
    this.conversions++;
    if (this.trace) this._t(`conversion done (mux ${(cfg >> 12) & 7}): ${this.conversion}`);
    this.converting = false;
    if (this.continuous) this._start(true);
  }

  /** The conversion result for config cfg at time tNs. */
  code(cfg, tNs) {
    const ain = this.inputs(tNs);
    const [p, n] = MUX[(cfg >> 12) & 7];
    const vp = p === 4 ? 0 : ain[p];
    const vn = n === 4 ? 0 : ain[n];
    const fsr = PGA_MV[(cfg >> 9) & 7] / 1000;
    const c = Math.round(((vp - vn) / fsr) * 32768 + this.noise());
    return Math.max(-32768, Math.min(32767, c));
  }
}
