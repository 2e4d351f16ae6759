// The RP2040's own ADC as a sense input (board sense.adc.kind "rp2040"). rp2040js emulates
// the peripheral (CS, FIFO, DMA, round robin); we supply the sampled value: the input at
// the end of the 2 us conversion, code = round(mV / ref_mV * 4096) clamped to 0..4095,
// plus seeded noise.
//
// rp2040js 1.4.1 bug: RPADC's activeChannel setter masks the channel with CS_AINSEL_SHIFT
// (12) instead of CS_AINSEL_MASK (7): `(channel & 12) << 12`, so channels 1..3 become 0 and
// round robin over channels 0 and 1 never leaves channel 0. patchRoundRobin() defines the
// correct accessor on the instance.

const CS_AINSEL_SHIFT = 12;
const CS_AINSEL_MASK = 0x7;

export function patchRoundRobin(adc) {
  Object.defineProperty(adc, 'activeChannel', {
    configurable: true,
    get() {
      return (this.cs >> CS_AINSEL_SHIFT) & CS_AINSEL_MASK;
    },
    set(channel) {
      this.cs = (this.cs & ~(CS_AINSEL_MASK << CS_AINSEL_SHIFT)) | ((channel & CS_AINSEL_MASK) << CS_AINSEL_SHIFT);
    },
  });
}

/** mV -> 12-bit code (no noise). */
export function adcCode(mV, refMv) {
  return Math.max(0, Math.min(4095, Math.round((mV / refMv) * 4096)));
}

/**
 * Install the sense model: channelMv(channel, tNs) -> mV or null (an unconnected input
 * reads 0); now() -> board time; noise() -> LSB to add.
 */
export function attachRpAdc(adc, { channelMv, now, refMv, noise = () => 0 }) {
  patchRoundRobin(adc);
  let pending = null;
  adc.onADCRead = (channel) => {
    adc.currentChannel = channel;
    pending = channel;
    adc.sampleAlarm.schedule(adc.sampleTime * 1000);
  };
  // rp2040js's alarm completes with channelValues[currentChannel]: hand it the model's
  // value for that instant instead.
  adc.sampleAlarm.callback = () => {
    const ch = pending;
    const mV = channelMv(ch, now());
    const code = mV === null ? 0 : Math.max(0, Math.min(4095, Math.round((mV / refMv) * 4096 + noise())));
    adc.completeADCRead(code, false);
  };
}
