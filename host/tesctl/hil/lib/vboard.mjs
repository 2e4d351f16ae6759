// The virtual board: an emulated RP2040 (rebuilt at every chip reset) and the parts that
// outlive a chip reset because they are separate chips or physics: the flash, the MCP4922,
// the ADS1115, the current source and the load. A power cycle resets those chips too.
//
// Chip resets: a watchdog timeout or TRIGGER write (rp2040js RPWatchdog calls
// onWatchdogTrigger; machine.reset() and watchdog_reboot() end there) and SYSRESETREQ (an
// AIRCR write with VECTKEY 0x05FA, which rp2040js ignores: we watch for it). The reset is
// done between instructions: the chip is rebuilt from scratch, keeping the flash, and the
// watchdog's SCRATCH and REASON registers (they survive a watchdog reset on silicon). USB
// re-enumerates with the new chip; host bytes queued for the old one are dropped, as a real
// port that vanished would drop them.
import { GPIOPinState, RP2040 } from 'rp2040js';
import { Ads1115 } from './ads1115.mjs';
import { AnalogStage, FAULT_KINDS } from './analog.mjs';
import { BootromHle } from './romhle.mjs';
import { CdcBridge } from './cdc.mjs';
import { CpuAccount } from './cpu.mjs';
import { attachDac } from './dacbus.mjs';
import { attachI2c } from './i2cbus.mjs';
import { QuietLogger } from './logger.mjs';
import { Mcp4922 } from './mcp4922.mjs';
import { Network, networkAdcChannels } from './network.mjs';
import { PioClock } from './pioclock.mjs';
import { attachRpAdc } from './rpadc.mjs';
import { BoardClock } from './sched.mjs';
import { ads1115Inputs, gaussian, rpAdcChannels } from './sense.mjs';

const AIRCR = 0xd0c;
const WATCHDOG = 0x40058;

export class VirtualBoard {
  /**
   * params: lib/board.mjs boardParams(); flash: FlashStore (opened, image loaded);
   * log(line): stderr; onSerial(Uint8Array): device -> host bytes; onEvent(obj): events;
   * dacLog: DacLog or null.
   */
  constructor({ params, flash, cpuMhz = 125, dacLog = null, log = () => {}, onSerial = () => {}, onEvent = () => {} }) {
    this.params = params;
    this.flash = flash;
    this.cpuHz = cpuMhz * 1e6;
    this.dacLog = dacLog;
    this.log = log;
    this.onSerial = onSerial;
    this.onEvent = onEvent;
    this.bclock = new BoardClock();
    // TESCTL_HIL_TRACE=ads,flash,wdt: log every ADS1115 transaction, flash operation,
    // watchdog load (feed).
    const trace = (process.env.TESCTL_HIL_TRACE || '').split(',');
    this.traceWdt = trace.includes('wdt');
    if (trace.includes('flash')) flash.trace = (l) => this.log(`hil: trace flash ${(this.now() / 1e6).toFixed(3)} ms: ${l}`);
    this.cpu = new CpuAccount(this.cpuHz);
    this.rom = new BootromHle({
      flash,
      cpuHz: this.cpuHz,
      log: (m) => this.log(`hil: ROM: ${m}`),
      onUsbBoot: () => this.halt('reset_usb_boot (BOOTSEL) requested'),
      onHalt: (why) => this.halt(why),
    });
    this.dac = new Mcp4922({ vrefMv: params.dac.vrefMv, vddMv: params.dac.vddMv, onOutput: (t) => this._dacOut(t) });
    // Two sources (board.mjs: current_channels): lib/network.mjs, DAC channel A = source 1,
    // B = source 2, faults per electrode. One source: lib/analog.mjs, B = the pump's reference.
    this.multi = (params.stage.sources ?? 1) > 1;
    this.stage = this.multi ? new Network(params.stage) : new AnalogStage(params.stage);
    this.enabled = false;
    this.periods = []; // CPU figures of each stretch with the output enabled (a check, a session)
    this.period = null;
    const s = params.sense;
    this.noise = gaussian(s.seed, s.noiseLsb);
    if (s.kind === 'ads1115') {
      this.ads = new Ads1115({
        address: s.i2c.addr,
        inputs: ads1115Inputs(this.stage, s),
        sched: this.bclock,
        wakeupUs: s.wakeupUs,
        noise: this.noise,
        trace: trace.includes('ads') ? (l) => this.log(`hil: trace ${l}`) : null,
      });
    }
    this.chip = null;
    this.pio = null;
    this.pioNow = null;
    this.halted = null;
    this.resetPending = null;
    this.resets = [];
    this.boots = [];
    this.firmwareClkHz = null;
    this.unsub = [];
  }

  now() {
    // While the PIO steps, its listeners see the instruction's own time (PioClock).
    return this.pioNow === null ? this.bclock.now() : this.pioNow;
  }

  // ---- the chip ---------------------------------------------------------------------
  /** Build a fresh RP2040 (power-on, or after a chip reset with `carry` from the old one). */
  _build(reason, carry = null) {
    const rp = new RP2040();
    rp.logger = new QuietLogger((l) => this.log(l));
    this.flash.attach(rp);
    this.rom.attach(rp);
    rp.core.VTOR = 0;
    rp.core.reset(); // SP and PC from our ROM: PC at the boot service
    if (carry) {
      const wd = rp.peripherals[WATCHDOG];
      wd.scratchData.set(carry.scratch);
      wd.reason = carry.reason;
    }
    this.bclock.bind(rp.clock);
    this.pio = new PioClock(rp.pio, this.cpuHz, (t) => {
      this.pioNow = t;
    });
    const chipAlarm = (delayNs, fn) => rp.clock.createAlarm(fn).schedule(delayNs);
    this._hookResets(rp);
    this.unsub = [];
    this.unsub.push(attachDac(rp, this.dac, this.params.dac, { now: () => this.now(), alarm: chipAlarm }));
    const en = this.params.enablePin;
    if (en !== null) {
      const pin = rp.gpio[en];
      // Relay on only while the pin is driven high (the driver's gate has a pull-down).
      this.unsub.push(pin.addListener((st) => this._setEnable(st === GPIOPinState.High)));
    }
    this._setEnable(false); // a fresh chip's pins are inputs: the relay drops out
    const s = this.params.sense;
    if (this.ads) {
      this.ads.stop();
      attachI2c(rp.i2c[s.i2c.bus], [this.ads], { alarm: chipAlarm, cpuHz: this.cpuHz, fallbackHz: s.i2c.freq });
    } else {
      const channelMv = this.multi ? networkAdcChannels(this.stage, s) : rpAdcChannels(this.stage, s, this.dac);
      attachRpAdc(rp.adc, { channelMv, now: () => this.now(), refMv: s.refMv, noise: this.noise });
    }
    // clk_sys passes through ROSC, XOSC and PLL settings while the firmware boots; it is
    // compared with --cpu-mhz once USB is up.
    rp.addClockListener((hz) => {
      this.firmwareClkHz = hz;
    });
    const boot = { reason, t: this.now(), wall: Date.now(), usb_s: null, first_byte_s: null };
    this.boots.push(boot);
    this.cdc = new CdcBridge(rp.usbCtrl, {
      onData: (buf) => {
        if (boot.first_byte_s === null) boot.first_byte_s = (this.now() - boot.t) / 1e9;
        this.onSerial(buf);
      },
      onConnected: () => {
        boot.usb_s = (this.now() - boot.t) / 1e9;
        const hz = this.firmwareClkHz;
        if (hz && Math.abs(hz - this.cpuHz) > 1) {
          this.log(`hil: the firmware runs clk_sys at ${hz / 1e6} MHz but --cpu-mhz is ${this.cpuHz / 1e6}: `
            + 'emulated time does not match the firmware\'s idea of its clock');
        }
        this.onEvent({ event: 'usb', connected: true, after_s: boot.usb_s, t_s: this.now() / 1e9 });
      },
    });
    this.chip = { rp, core: rp.core, clock: rp.clock };
    this.halted = null;
  }

  _hookResets(rp) {
    const wd = rp.peripherals[WATCHDOG];
    if (this.traceWdt) {
      const wdWrite = wd.writeUint32.bind(wd);
      wd.writeUint32 = (off, v) => {
        if (off === 4) this.log(`hil: trace wdt ${(this.now() / 1e6).toFixed(3)} ms: load ${v}`);
        wdWrite(off, v);
      };
    }
    wd.onWatchdogTrigger = () => {
      // The chip is in reset from here: stop its watchdog. rp2040js 1.4.1 would otherwise
      // re-arm the expired alarm 0 ns ahead (Timer32PeriodicAlarm, decrementing, full-range
      // top: cycleDelta 2**33 >>> 0 = 0) and fire it forever at the same instant.
      wd.alarm.enable = false;
      wd.timer.enable = false;
      this.requestReset(wd.reason === 1 ? 'watchdog timeout' : 'watchdog trigger (machine.reset / watchdog_reboot)');
    };
    const ppb = rp.ppb;
    const write = ppb.writeUint32.bind(ppb);
    const read = ppb.readUint32.bind(ppb);
    ppb.writeUint32 = (off, v) => {
      if (off !== AIRCR) return write(off, v);
      if (v >>> 16 === 0x05fa && v & 4) this.requestReset('SYSRESETREQ (AIRCR)');
    };
    ppb.readUint32 = (off) => (off === AIRCR ? 0xfa050000 : read(off));
  }

  start() {
    this._build('power on');
    this.log('hil: power on');
  }

  requestReset(reason) {
    if (!this.resetPending) this.resetPending = reason;
  }

  /** Chip reset between instructions (the runner calls this). */
  performReset() {
    const reason = this.resetPending;
    this.resetPending = null;
    const wd = this.chip.rp.peripherals[WATCHDOG];
    const carry = { scratch: Uint32Array.from(wd.scratchData), reason: wd.reason };
    this._teardown();
    this.resets.push({ reason, t_s: this.now() / 1e9 });
    this.log(`hil: chip reset at ${(this.now() / 1e9).toFixed(3)} s (board time): ${reason}; flash kept`);
    this.onEvent({ event: 'reset', reason, t_s: this.now() / 1e9 });
    this._build(reason, carry);
  }

  /** Power cycle: every chip on the board restarts; the load (the subject) keeps its charge. */
  powerCycle() {
    this._teardown();
    const t = this.now();
    this.dac.powerOn();
    this._dacOut(t);
    if (this.ads) {
      this.ads.powerOn();
      for (const p of [...this.bclock.pending]) this.bclock.cancel(p);
    }
    this.resets.push({ reason: 'power cycle', t_s: t / 1e9 });
    this.log(`hil: power cycle at ${(t / 1e9).toFixed(3)} s (board time)`);
    this.onEvent({ event: 'reset', reason: 'power cycle', t_s: t / 1e9 });
    this.resetPending = null;
    this._build('power cycle');
  }

  _teardown() {
    for (const f of this.unsub) f();
    this.unsub = [];
    if (this.cdc && this.cdc.backlog()) this.log(`hil: ${this.cdc.backlog()} host bytes dropped at the reset`);
  }

  halt(why) {
    this.halted = why;
    this.log(`hil: chip halted: ${why}`);
    this.onEvent({ event: 'halt', why, t_s: this.now() / 1e9 });
  }

  /** Host -> device serial bytes. */
  write(bytes) {
    this.cdc.write(bytes);
  }

  // ---- the analog side ----------------------------------------------------------------
  /**
   * Fault injection at the current emulated time: 'liftoff', 'short' (lib/analog.mjs) or
   * null (clear). -> the event it reports: {event: 'fault', kind, t_us, ...} (kind 'clear').
   */
  fault(kind, electrode = null) {
    if (this.multi) return this._faultMulti(kind, electrode);
    const t = this.now();
    const was = this.stage.fault;
    this.stage.setFault(t, kind);
    const x = this.stage.sample(t);
    const ev = {
      event: 'fault',
      kind: kind ?? 'clear',
      was: was ?? null,
      t_us: Math.round(t) / 1e3, // ns resolution
      t_s: t / 1e9,
      enabled: this.enabled,
      series_ohm: this.stage.rs,
      i_uA: round3(x.i * 1e6),
      v_V: round3(x.v),
    };
    this.log(`hil: fault ${ev.kind} at ${(t / 1e6).toFixed(3)} ms (board time)`);
    this.onEvent(ev);
    return ev;
  }

  /**
   * The harness's `fault KIND [ELECTRODE]` line (after `fault`): KIND liftoff, short or
   * clear; ELECTRODE 0..C (C the return) on a board of several sources only.
   * -> null once injected, or the log line saying why not.
   */
  faultCommand(rest) {
    const [kind, el] = rest.trim().split(/\s+/);
    const e = el === undefined ? null : Number(el);
    if (e !== null && !this.multi) return `hil: fault ${kind} ${el}: this board has one load: no electrode`;
    if (e !== null && !(Number.isInteger(e) && e >= 0 && e <= this.stage.C)) {
      return `hil: fault ${kind} ${el}: electrode 0..${this.stage.C} (${this.stage.C} the return)`;
    }
    if (kind === 'clear') this.fault(null, e);
    else if (FAULT_KINDS.includes(kind)) this.fault(kind, e);
    else return `hil: fault ${JSON.stringify(kind)}: expected ${FAULT_KINDS.join(', ')} or clear`;
    return null;
  }

  /** The two-source board: kind on electrode (0, 1 driven, 2 the return). */
  _faultMulti(kind, electrode) {
    const t = this.now();
    const st = this.stage;
    const e = electrode ?? st.C; // no electrode: the return (as hal.sim's faults)
    const was = st.fault[e];
    st.setFault(t, kind, e);
    const x = st.sample(t);
    const ev = {
      event: 'fault',
      kind: kind ?? 'clear',
      electrode: e,
      was: was ?? null,
      t_us: Math.round(t) / 1e3,
      t_s: t / 1e9,
      enabled: this.enabled,
      series_ohm: st.rs[e],
      i_uA: x.i.map((i) => round3(i * 1e6)),
      v_V: x.v.map(round3),
    };
    this.log(`hil: fault ${ev.kind} on electrode ${e} at ${(t / 1e6).toFixed(3)} ms (board time)`);
    this.onEvent(ev);
    return ev;
  }

  _dacOut(t) {
    if (this.multi) this.stage.setDac(t, [this.dac.volts(0), this.dac.volts(1)]);
    else this.stage.setDac(t, this.dac.volts(0), this.dac.volts(1));
    if (this.dacLog) this.dacLog.row(t, this.dac.effectiveCode(0), this.dac.effectiveCode(1), this.enabled);
  }

  _setEnable(on) {
    if (on === this.enabled) return;
    const t = this.now();
    this.enabled = on;
    this.stage.setEnable(t, on);
    if (on) {
      this.period = { t, busy: this.cpu.busy, idleNs: this.cpu.idleNs };
    } else if (this.period) {
      this.periods.push(this._periodFigures(t));
      if (this.periods.length > 50) this.periods.shift();
      this.period = null;
    }
    if (this.dacLog) this.dacLog.row(t, this.dac.effectiveCode(0), this.dac.effectiveCode(1), on);
  }

  // ---- statistics ---------------------------------------------------------------------
  /** CPU use while the output was enabled: the control path's own load. */
  _periodFigures(t) {
    const p = this.period;
    const busy = this.cpu.busy - p.busy;
    const idle = ((this.cpu.idleNs - p.idleNs) * this.cpuHz) / 1e9;
    return {
      from_s: round3(p.t / 1e9),
      emulated_s: Math.round(t - p.t) / 1e9,
      busy_cycles: Math.round(busy),
      idle_share: busy + idle > 0 ? Math.round((idle / (busy + idle)) * 1e4) / 1e4 : null,
    };
  }

  _loadMulti() {
    const st = this.stage;
    return {
      delivered_uC: round3(st.chargeC.reduce((a, q) => a + q, 0) * 1e6),
      peak_uA: round3(Math.max(...st.peakA) * 1e6),
      per_source: Array.from(st.chargeC, (q, c) => ({ delivered_uC: round3(q * 1e6), peak_uA: round3(st.peakA[c] * 1e6) })),
    };
  }

  stats(keep = false) {
    const { run, interval } = this.cpu.report(this.now(), keep);
    const calls = Object.fromEntries([...this.rom.calls.entries()].sort((a, b) => b[1] - a[1]));
    return {
      cpu_mhz: this.cpuHz / 1e6,
      firmware_clk_mhz: this.firmwareClkHz ? this.firmwareClkHz / 1e6 : null,
      run,
      interval,
      boots: this.boots.map((b) => ({ reason: b.reason, at_s: round3(b.t / 1e9), usb_s: b.usb_s, first_byte_s: b.first_byte_s })),
      resets: this.resets,
      halted: this.halted,
      dac: { words: this.dac.words, bad_words: this.dac.badWords, latches: this.dac.latches },
      adc: this.ads ? { conversions: this.ads.conversions, ignored_starts: this.ads.ignoredStarts } : null,
      load: this.multi ? this._loadMulti() : { delivered_uC: round3(this.stage.chargeC * 1e6), peak_uA: round3(this.stage.peakA * 1e6) },
      enabled_periods: this.period ? [...this.periods, { ...this._periodFigures(this.now()), open: true }] : this.periods,
      flash: { sector_erases: this.flash.erases, page_programs: this.flash.programs },
      rom_calls: calls,
      unknown_rom_codes: [...this.rom.unknownCodes],
    };
  }
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
