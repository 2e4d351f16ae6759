// The PIO FIFOs as the RP2040 has them, where rp2040js 1.4.1 does not.
//
// rp2040js stores SMx_SHIFTCTRL as written and keeps 4-word TX and RX FIFOs whatever its
// FJOIN bits say. On silicon (RP2040 datasheet, SMx_SHIFTCTRL): FJOIN_TX (bit 30) makes the
// TX FIFO 8 deep and disables RX (FJOIN_RX, bit 31, the other way round), and "FIFOs are
// flushed when this bit is changed". hal.rp2 relies on that flush: on a hard fault it
// aborts the DMA and toggles FJOIN_TX, so the samples already queued in the FIFO are
// dropped and the zero-current word it then pushes is the next one out. Without the flush
// the emulated DAC put out up to 4 stale samples first (0.8 ms at 5 kS/s), so the virtual
// board's fault-to-zero-word latency read ~1 ms longer than the chip's.

const SHIFTCTRL = 0x0d0 - 0x0c8; // a state machine's registers start at its CLKDIV
const FJOIN_TX = 1 << 30;
const FJOIN_RX = 1 << 31;

/** FIFO depths (tx, rx) for a SHIFTCTRL value: 4 each, or 8 and 0 when one steals the other's. */
export function fifoDepths(shiftCtrl) {
  if (shiftCtrl & FJOIN_TX) return [8, 0];
  if (shiftCtrl & FJOIN_RX) return [0, 8];
  return [4, 4];
}

/** Make every state machine of the given PIOs flush (and resize) its FIFOs when a
 * SHIFTCTRL write changes FJOIN_TX or FJOIN_RX, as silicon does. */
export function patchFifoJoin(pios) {
  for (const pio of pios) {
    for (const sm of pio.machines) {
      const write = sm.writeUint32.bind(sm);
      sm.writeUint32 = (offset, value) => {
        const before = sm.shiftCtrl;
        write(offset, value);
        if (offset === SHIFTCTRL && (before ^ sm.shiftCtrl) & (FJOIN_TX | FJOIN_RX)) {
          const [tx, rx] = fifoDepths(sm.shiftCtrl);
          const Fifo = sm.txFIFO.constructor; // rp2040js's FIFO (its package exports no path to it)
          sm.txFIFO = new Fifo(tx);
          sm.rxFIFO = new Fifo(rx);
          sm.updateDMATx(); // the DMA sees the empty FIFOs at once
          sm.updateDMARx();
          sm.pio.checkInterrupts();
        }
      };
    }
  }
}
