// rp2040js's I2C controller (RPI2C) wired to target devices, with bus timing: rp2040js
// completes every bus phase at once unless the callbacks delay it, which would make I2C
// free for the CPU. Here each phase takes its time on the wire: START/STOP half a bit
// each, an address or data byte 9 bits (8 + ACK). The SCL period is the controller's own
// (IC_FS_SCL_HCNT + LCNT) / clk_sys, as the firmware programmed it, else the board's freq.

export function sclPeriodNs(i2c, cpuHz, fallbackHz) {
  const counts = i2c.sclHighPeriod + i2c.sclLowPeriod;
  const ns = (counts / cpuHz) * 1e9;
  // Counts the firmware has not set yet (reset values) still give a sane period.
  if (counts > 0 && ns >= 1000 && ns <= 100000) return ns;
  return 1e9 / fallbackHz;
}

/**
 * Attach devices (objects with connect/writeByte/readByte/stop) to rp2040.i2c[bus].
 * alarm(delayNs, fn): run fn after delayNs of emulated time (chip clock).
 */
export function attachI2c(i2c, devices, { alarm, cpuHz, fallbackHz }) {
  let target = null;
  const bit = () => sclPeriodNs(i2c, cpuHz, fallbackHz);
  i2c.onStart = () => alarm(bit() / 2, () => i2c.completeStart());
  i2c.onConnect = (addr, mode) => {
    target = devices.find((d) => d.connect(addr, mode === 1)) || null;
    const ack = target !== null;
    alarm(9 * bit(), () => i2c.completeConnect(ack));
  };
  i2c.onWriteByte = (b) => {
    const ack = target ? target.writeByte(b) : false;
    alarm(9 * bit(), () => i2c.completeWrite(ack));
  };
  i2c.onReadByte = () => {
    const v = target ? target.readByte() : 0xff;
    alarm(9 * bit(), () => i2c.completeRead(v));
  };
  i2c.onStop = () => {
    if (target) target.stop();
    target = null;
    alarm(bit() / 2, () => i2c.completeStop());
  };
}
