// USB CDC between the emulated chip and the host byte stream, on rp2040js's USBCDC (which
// enumerates the device and sends SET_CONTROL_LINE_STATE with DTR and RTS set, so
// MicroPython's tud_cdc_connected() is true and it writes to the port).
//
// One change: rp2040js answers every OUT buffer the device arms at once, with zero bytes
// when the host has nothing, and TinyUSB re-arms at once: an idle REPL would then take a
// USB interrupt every ~10 us and never sleep. A real host only sends OUT data when it has
// some, so here an armed OUT buffer waits until host bytes arrive. Host bytes are queued
// without limit (the caller pauses its input when backlog() grows).
import { USBCDC } from 'rp2040js';

export class CdcBridge extends USBCDC {
  constructor(usb, { onData = () => {}, onConnected = () => {} } = {}) {
    super(usb);
    this.queue = [];
    this.queued = 0;
    this.armed = 0; // size of the OUT buffer the device waits to fill, 0 if none
    this.connected = false;
    this.onSerialData = (buf) => onData(buf);
    this.onDeviceConnected = () => {
      this.connected = true;
      onConnected();
      this._fill();
    };
    usb.onEndpointRead = (ep, size) => {
      if (ep !== this.outEndpoint) return;
      this.armed = size;
      this._fill();
    };
  }

  /** Host -> device bytes (Uint8Array). */
  write(bytes) {
    if (!bytes.length) return;
    this.queue.push(bytes);
    this.queued += bytes.length;
    this._fill();
  }

  backlog() {
    return this.queued;
  }

  _fill() {
    if (!this.connected || !this.armed || !this.queued) return;
    const n = Math.min(this.armed, this.queued);
    const out = new Uint8Array(n);
    let k = 0;
    while (k < n) {
      const head = this.queue[0];
      const take = Math.min(head.length, n - k);
      out.set(head.subarray(0, take), k);
      k += take;
      if (take === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take);
    }
    this.queued -= n;
    this.armed = 0;
    this.usb.endpointReadDone(this.outEndpoint, out);
  }
}
