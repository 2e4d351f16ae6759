// The board file (boards/NAME.json) -> the numbers the models need. The load comes from a
// board file's "model" (boards/sim.json, the simulated board's electrode-skin model) and
// single values can be overridden (--model KEY=VALUE).
import { readFileSync } from 'node:fs';

export class BoardError extends Error {}

// Model keys the harness reads, with defaults for those the sim's model does not carry.
export const MODEL_DEFAULTS = {
  series_ohm: 500,
  skin_ohm: 8000,
  skin_nF: 2000,
  seed: 1,
  liftoff_ohm: 10000000, // series R once the electrodes come off (fault liftoff), as the sim
  short_ohm: 10, // series R once they touch (fault short; skin R and C bridged)
  adc_noise_lsb: null, // null: 2 LSB for the RP2040 ADC, 1 for the ADS1115
  dac_vdd_mV: 3300, // MCP4922 supply: a 2x-gain output clips here
  sense_ref_mV: 1650, // the INA826 REF and the voltage difference amp's reference
  ads1115_wakeup_us: 25, // single-shot wake-up added to 1/DR
};

function need(obj, path) {
  let v = obj;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(k in v)) throw new BoardError(`board file: ${path} missing`);
    v = v[k];
  }
  return v;
}

function num(obj, path) {
  const v = need(obj, path);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BoardError(`board file: ${path} must be a number`);
  return v;
}

export function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new BoardError(`cannot read ${path}: ${e.message}`);
  }
}

function nAPerCode(cs) {
  if (typeof cs.nA_per_code === 'number') return cs.nA_per_code;
  if (Array.isArray(cs.uA_per_code) && cs.uA_per_code.length === 2) return (cs.uA_per_code[0] * 1000) / cs.uA_per_code[1];
  throw new BoardError('board file: current_source needs nA_per_code or uA_per_code');
}

/** board: parsed board JSON; load: parsed JSON with a "model"; overrides: {key: number}. */
export function boardParams(board, load = {}, overrides = {}) {
  const model = { ...MODEL_DEFAULTS, ...(load.model || {}) };
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in model)) throw new BoardError(`--model ${k}: not a model parameter (known: ${Object.keys(model).join(', ')})`);
    model[k] = Number(v);
  }
  const adc = need(board, 'sense.adc');
  const kind = adc.kind;
  if (kind !== 'ads1115' && kind !== 'rp2040') {
    throw new BoardError(`board file: sense.adc.kind ${JSON.stringify(kind)} is not modelled (ads1115, rp2040)`);
  }
  const dac = need(board, 'dac');
  if (dac.kind !== 'mcp4922') throw new BoardError(`board file: dac.kind ${JSON.stringify(dac.kind)} is not modelled (mcp4922)`);
  const p = {
    id: board.id,
    dac: {
      vrefMv: num(board, 'dac.vref_mV'),
      bus: num(board, 'dac.spi.bus'),
      sck: num(board, 'dac.spi.sck'),
      mosi: num(board, 'dac.spi.mosi'),
      baudrate: num(board, 'dac.spi.baudrate'),
      csPin: num(board, 'dac.cs_pin'),
      ldacPin: dac.ldac_pin ?? null,
      vddMv: model.dac_vdd_mV,
    },
    stage: {
      vrefMv: num(board, 'dac.vref_mV'),
      nAPerCode: nAPerCode(need(board, 'current_source')),
      zeroCode: num(board, 'current_source.zero_code'),
      hwLimitUa: num(board, 'hw_current_limit_uA'),
      complianceV: num(board, 'compliance_V'),
      seriesOhm: model.series_ohm,
      skinOhm: model.skin_ohm,
      skinNf: model.skin_nF,
      liftoffOhm: model.liftoff_ohm,
      shortOhm: model.short_ohm,
    },
    enablePin: board.enable_pin ?? null,
    sense: {
      kind,
      shuntOhm: num(board, 'sense.shunt_ohm'),
      gain: num(board, 'sense.current_gain'),
      divider: num(board, 'sense.voltage_divider'),
      refMv: num(board, 'sense.adc.ref_mV'),
      refAmpMv: model.sense_ref_mV,
      noiseLsb: model.adc_noise_lsb ?? (kind === 'rp2040' ? 2 : 1),
      seed: model.seed,
    },
  };
  if (kind === 'ads1115') {
    p.sense.i2c = {
      bus: num(board, 'sense.adc.i2c.bus'),
      freq: num(board, 'sense.adc.i2c.freq'),
      addr: num(board, 'sense.adc.i2c.addr'),
    };
    p.sense.wakeupUs = model.ads1115_wakeup_us;
  } else if (Array.isArray(adc.current_channels)) {
    twoSource(board, p);
  } else {
    p.sense.midMv = num(board, 'sense.adc.mid_mV');
    p.sense.currentChannel = num(board, 'sense.adc.current_channel');
    p.sense.voltageChannel = num(board, 'sense.adc.voltage_channel');
    // The DAC readback input (channel A's output voltage), if the board wires one.
    const rb = board.sense && board.sense.adc && board.sense.adc.readback_channel;
    p.sense.readbackChannel = rb === undefined ? null : rb;
  }
  return p;
}

// The two-source board (boards/pico2-mcp4922.json, firmware hal/rp2_multi.py, docs/hardware.md):
// sense.adc.current_channels / voltage_channels, one input per source each, no readback
// input; lib/network.mjs models it (p.stage.sources).
function twoSource(board, p) {
  const C = num(board, 'current_sources');
  const adc = board.sense.adc;
  for (const k of ['current_channels', 'voltage_channels']) {
    const a = adc[k];
    if (!Array.isArray(a) || a.length !== C || !a.every(Number.isInteger)) {
      throw new BoardError(`board file: sense.adc.${k} must list ${C} ADC inputs (current_sources)`);
    }
  }
  if (adc.readback_channel !== undefined && adc.readback_channel !== null) {
    throw new BoardError('board file: a board of several sources has no DAC readback input in this model');
  }
  if (C !== 2) throw new BoardError(`board file: current_channels: current_sources ${C} is not modelled (2: one MCP4922)`);
  p.stage.sources = C;
  p.sense.midMv = num(board, 'sense.adc.mid_mV');
  p.sense.currentChannels = adc.current_channels;
  p.sense.voltageChannels = adc.voltage_channels;
  p.sense.readbackChannel = null;
}
