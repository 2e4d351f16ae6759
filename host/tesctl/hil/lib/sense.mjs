// The sense chain between the load and the ADC (docs/hardware.md, "Sense chain"), as the
// firmware's drivers assume it:
//   ADS1115 (firmware/hal/mcu.py sense()): AIN0 - AIN1 = I * shunt * current_gain (INA826
//   output against its 1.65 V reference); AIN2 - AIN3 = anode voltage / voltage_divider,
//   where the anode sits the shunt drop above the electrode voltage (the cathode returns
//   through the shunt), so anode = v + I * shunt. AIN1 and AIN3 are the 1.65 V reference.
//   RP2040 ADC: current channel mV = mid_mV + I_uA * shunt * gain / 1000; voltage channel
//   mV = mid_mV + v_mV / voltage_divider (v = anode minus cathode); the temperature sensor
//   (channel 4) reads 706 mV (27 C); other inputs read 0.

/** Seeded uniform PRNG (mulberry32): the same seed gives the same noise, run after run. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian noise with standard deviation sd (Box-Muller on the seeded PRNG). */
export function gaussian(seed, sd) {
  const u = rng(seed);
  if (!sd) return () => 0;
  return () => sd * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

export function ads1115Inputs(stage, s) {
  const ref = s.refAmpMv / 1000;
  return (tNs) => {
    const x = stage.sample(tNs);
    const anode = x.v + x.i * s.shuntOhm;
    return [ref + x.i * s.shuntOhm * s.gain, ref, ref + anode / s.divider, ref];
  };
}

export function rpAdcChannels(stage, s, dac = null) {
  return (ch, tNs) => {
    if (dac && ch === s.readbackChannel) return dac.volts(0); // DAC channel A's output, mV
    if (ch === s.currentChannel) {
      const x = stage.sample(tNs);
      return s.midMv + (x.i * 1e6 * s.shuntOhm * s.gain) / 1000;
    }
    if (ch === s.voltageChannel) {
      const x = stage.sample(tNs);
      return s.midMv + (x.v * 1000) / s.divider;
    }
    if (ch === 4) return 706;
    return null;
  };
}
