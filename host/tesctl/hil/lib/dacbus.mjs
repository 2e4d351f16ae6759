// How the chip's pins reach the MCP4922. Two frontends feed the one DAC model:
//  - hardware SPI (what firmware/hal/mcu.py does today): rp2040js's SPI calls onTransmit
//    with each frame (8 or 16 bits); the frame counts if CS is low, and the peripheral is
//    told it finished after the frame's time on the wire (bits / SCK frequency).
//  - pin level (PIO- or bit-banged SPI on the same pins, SPI mode 0, MSB first): a rising
//    SCK edge while CS is low shifts in the MOSI level. Pins in the SPI function do not
//    move at GPIO level in rp2040js, so the two frontends never both see a frame.
// CS and LDAC are GPIO levels; a pin the chip does not drive follows its pad's pull (the
// RP2040 resets its pads to pull-down: LDAC low, CS low until the firmware drives them), or
// reads high with no pull (an external pull-up). No LDAC pin: LDAC is tied low.
import { GPIOPinState } from 'rp2040js';

export const levelPullUp = (s) => (s === GPIOPinState.Low || s === GPIOPinState.InputPullDown ? 0 : 1);

export function attachDac(rp2040, dac, p, { now, alarm }) {
  const pin = (n) => rp2040.gpio[n];
  const unsub = [];
  const listen = (n, fn) => unsub.push(pin(n).addListener((s, prev) => fn(s, prev)));
  // Start from the lines as they are now (a fresh chip: all inputs).
  dac.setCs(levelPullUp(pin(p.csPin).value), now());
  dac.setLdac(p.ldacPin === null ? 0 : levelPullUp(pin(p.ldacPin).value), now());
  listen(p.csPin, (s) => dac.setCs(levelPullUp(s), now()));
  if (p.ldacPin !== null) listen(p.ldacPin, (s) => dac.setLdac(levelPullUp(s), now()));
  listen(p.sck, (s, prev) => {
    if (s === GPIOPinState.High && prev === GPIOPinState.Low) dac.clockIn(pin(p.mosi).value === GPIOPinState.High ? 1 : 0, 1);
  });
  const spi = rp2040.spi[p.bus];
  spi.onTransmit = (value) => {
    const bits = spi.dataBits;
    dac.clockIn(value, bits);
    const hz = spi.clockFrequency || p.baudrate;
    alarm((bits / hz) * 1e9, () => spi.completeTransmit(0));
  };
  return () => unsub.forEach((f) => f());
}
