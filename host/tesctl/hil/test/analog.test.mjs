import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnalogStage } from '../lib/analog.mjs';
import { adcCode } from '../lib/rpadc.mjs';
import { ads1115Inputs, rpAdcChannels } from '../lib/sense.mjs';

// Round numbers: 2000 nA per code, so 500 codes = 1 mA; the sim's load 500 + 8000 || 2 uF.
const P = { vrefMv: 2048, nAPerCode: 2000, zeroCode: 2048, hwLimitUa: 4500, complianceV: 30, seriesOhm: 500, skinOhm: 8000, skinNf: 2000 };
const MID = 1024; // channel B at code 2048, mV
const ms = (x) => x * 1e6;
const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

function stage(uA, p = P) {
  const s = new AnalogStage(p);
  s.setEnable(0, true);
  s.setDac(0, MID + (uA / 2) * 0.5, MID); // uA/2 codes of 0.5 mV
  return s;
}

test('DC into the skin RC: vc = I*Rskin*(1 - exp(-t/tau)), tau = 16 ms', () => {
  const s = stage(1000);
  const x = s.sample(ms(16));
  near(x.i, 1e-3, 1e-12, 'current');
  near(x.vc, 8 * (1 - Math.exp(-1)), 1e-9, 'vc at one tau');
  near(x.v, 0.5 + 8 * (1 - Math.exp(-1)), 1e-9, 'electrode voltage');
  near(s.sample(ms(2000)).v, 8.5, 1e-9, 'steady state 1 mA * 8.5 kOhm');
  near(s.chargeC, 2000e-6, 1e-12, 'charge over 2 s');
});

test('compliance: 4 mA into 8.5 kOhm saturates at 30 V when vc reaches 28 V (t = tau ln 8)', () => {
  const s = stage(4000);
  const tc = 16e-3 * Math.log(8);
  assert.equal(s.sample((tc - 1e-5) * 1e9).saturated, false);
  const y = s.sample((tc + 1e-5) * 1e9);
  assert.equal(y.saturated, true);
  near(y.v, 30, 1e-9, 'clamped at compliance');
  const z = s.sample(ms(1000));
  near(z.i, 30 / 8500, 1e-12, 'steady current = compliance / (Rs + Rskin)');
  near(z.vc, (30 * 8000) / 8500, 1e-9, 'vc = compliance * Rskin / (Rs + Rskin)');
});

test('the integration is exact: one step equals many small ones, through saturation and back', () => {
  const a = stage(4000);
  const b = stage(4000);
  for (let k = 1; k <= 1000; k++) b.advance(ms(0.1 * k));
  a.advance(ms(100));
  near(a.vc, b.vc, 1e-9, 'vc');
  near(a.chargeC, b.chargeC, 1e-12, 'charge');
  // Down to 1 mA: leaves saturation when the linear regime can carry it again.
  a.setDac(ms(100), MID + 250, MID);
  b.setDac(ms(100), MID + 250, MID);
  for (let k = 1; k <= 1000; k++) b.advance(ms(100 + 0.1 * k));
  a.advance(ms(200));
  near(a.vc, b.vc, 1e-9, 'vc after');
  assert.equal(a.sample(ms(200)).saturated, false);
});

test('hardware limit, SHDN on channel A, and the relay', () => {
  const s = new AnalogStage({ ...P, nAPerCode: 2200 });
  s.setEnable(0, true);
  s.setDac(0, 2047.5, MID); // code 4095 against 2048: 2047 codes * 2.2 uA = 4503 uA
  near(s.current(), 4500e-6, 1e-12, 'clamped at +4500 uA');
  s.setDac(1, 0, MID); // A shut down: 0 V against mid-scale
  near(s.current(), -4500e-6, 1e-12, 'full negative, clamped');
  s.setEnable(2, false);
  assert.equal(s.current(), 0);
  const vc = s.vc;
  near(s.sample(ms(16) + 2).vc, vc * Math.exp(-1), 1e-9, 'the open relay lets vc decay through Rskin');
});

test('sense inputs as the firmware reads them (ADS1115 and RP2040 ADC), by hand', () => {
  const s = stage(1000);
  s.advance(ms(5000)); // steady: v = 8.5 V
  const ain = ads1115Inputs(s, { refAmpMv: 1650, shuntOhm: 100, gain: 3, divider: 20 })(ms(5000));
  near(ain[0] - ain[1], 0.3, 1e-12, 'AIN0-AIN1 = 1 mA * 100 ohm * 3');
  near(ain[2] - ain[3], (8.5 + 0.1) / 20, 1e-12, 'AIN2-AIN3 = (v + I*shunt) / 20');
  const ch = rpAdcChannels(s, { midMv: 1650, shuntOhm: 100, gain: 3, divider: 20, currentChannel: 0, voltageChannel: 1 });
  near(ch(0, ms(5000)), 1950, 1e-9, 'current channel mV');
  near(ch(1, ms(5000)), 2075, 1e-9, 'voltage channel mV');
  assert.equal(adcCode(1950, 3300), 2420);
  assert.equal(adcCode(2075, 3300), 2576);
  assert.equal(ch(2, 0), null);
});

test('the RP2040 ADC readback channel sees the output voltage of DAC channel A', () => {
  const s = stage(1000);
  const dac = { volts: (ch) => (ch === 0 ? 1200.5 : 1024) };
  const ch = rpAdcChannels(s, { midMv: 1650, shuntOhm: 100, gain: 3, divider: 20, currentChannel: 0,
    voltageChannel: 1, readbackChannel: 2 }, dac);
  assert.equal(ch(2, 0), 1200.5);
  assert.equal(adcCode(1200.5, 3300), 1490);   // 1200.5 / 3300 * 4096
  assert.equal(ch(3, 0), null);
});
