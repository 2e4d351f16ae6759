"""RP2040 driver for a board of two current sources (boards/pico2-mcp4922.json, docs/hardware.md
"Two current sources"): one MCP4922, channel A drives source 1 and channel B source 2, each
pump against its own fixed mid-scale reference, so zero current is the zero code on both
channels (code 0 would be about -4.5 mA).

Everything hal.rp2 does (the PIO + DMA ring that Z clears behind the DMA, so a ring slot the
CPU has not refilled puts out zero current; the ADC round robin by DMA; the fast trip in a
hard timer interrupt; the cut) with two words per sample and four conversions per sample:
current and voltage of each source, in ADC-input order, no DAC readback (the RP2040 has four
inputs). The kernels are hal.blocks_multi_fast's: put_words_multi, get_sense_multi (its
"readback" is the set value: a DAC that does not follow shows as a tracking error; a session
of two driven electrodes senses through hal.split_thumb, get_sense_split's samples per
electrode in Thumb code, and writes through hal.put_thumb, put_words_multi's words of one block
per source in Thumb code) and
trip_scan_multi (every source on hal.blocks.trip_scan's rules, the source that tripped in
q[Q_TSRC]).

A session of one driven electrode (an anode/cathode protocol) drives source 1 alone: the
single-source kernel puts channel B's zero word beside every sample, and sense and trip look
at source 1 only. Run on an emulated RP2040 (rp2040js, tesctl hil), not on silicon.
"""
from array import array

import micropython
import uctypes
from micropython import const

from hal import blocks, blocks_multi, check_thumb, mcp4922, put_thumb, sine_thumb, split_thumb
from hal import blocks_fast as _kern
from hal import blocks_multi_fast as _mkern
from hal.rp2 import _M32, K_MASK, Rp2Hal

_qroom = _kern.queue_room
_qblock = _kern.queue_block
_split = split_thumb.split
_put = put_thumb.put
_Q_KW = const(5)            # hal.blocks.Q_KW, Q_KS, Q_UNDER
_Q_KS = const(6)
_Q_UNDER = const(9)


class Rp2MultiHal(Rp2Hal):      # (its block path's methods are native)
    channels = 2            # independent current sources (hal.base.Hal.channels)
    # A pass of two sources costs ~1 ms of calls whatever its length (three supervisors'
    # checks, the split, the DMA positions): passes half as often took the two-source
    # session at 5 kS/s from 64.5 to 62.0 % busy on the virtual RP2040. A hard fault is
    # still cut by the fast trip within its 1 ms scan; the supervisor's other rules are seen
    # up to 2 ms later than on the single-source driver.
    PASS_MS = 4
    # the supervisors' per-sample loop in Thumb code (hal.base.Hal.check_samples): ~180
    # cycles a sample against ~700 for the viper loop (tools/bench_check_mp.py)
    check_samples = staticmethod(check_thumb.samples)
    # the engine's sine plateau (hal.base.Hal.sine_flat): ~50 cycles a sample against ~290
    # for the viper osc_sine and env_flat (tests/hil/test_sine_thumb.py)
    sine_flat = staticmethod(sine_thumb.sine_flat)

    def _sources(self, board, cal):
        if board.get("current_sources", 1) != 2 or board["dac"].get("channels", 1) != 2:
            raise ValueError("hal.rp2_multi drives current_sources = 2 on one dual DAC")
        # A stored calibration (tesctl calibrate drives source 1 alone) is source 1's; source 2
        # keeps the board file's.
        bcal = board["calibration"]
        cals = [cal or (bcal[0] if isinstance(bcal, list) else bcal), bcal[1] if isinstance(bcal, list) else bcal]
        put2, get2 = blocks_multi.cfgs(board, self._out_h, len(self._set), self._adc_h, cals)
        # One session of one electrode: source 1 with hal.blocks' plain cfg (channel B at zero),
        # sensed by get_sense_multi with C = 1 and the same four conversions a sample.
        o = blocks_multi.M_HEAD
        get1 = array("i", get2)
        get1[blocks_multi.N_C] = 1
        self._put2, self._get2, self._get1 = put2, get2, get1
        self._zero_word = mcp4922.word(put2[o + blocks.P_Z])
        self._ref_word = mcp4922.word(put2[o + blocks_multi.M_SRC + blocks.P_Z], mcp4922.CH_B)  # B: source 2's zero
        p = self._put = array("i", [0] * blocks.P_LEN)
        for i in range(blocks.P_BASE + 1):
            p[i] = put2[o + i]
        p[blocks.P_W] = 2
        p[blocks.P_MASKW] = put2[blocks_multi.M_MASKW]
        p[blocks.P_MASKS] = put2[blocks_multi.M_MASKS]
        p[blocks.P_WORDB] = self._ref_word
        self._sget = get2       # the session's sense cfg (start())
        self._c = 2
        self._q = array("i", [0] * blocks_multi.Q_LEN_MULTI)
        adc = board["sense"]["adc"]
        self._q[blocks.Q_LAT] = max(adc["latency_samples"][0], adc["latency_samples"][1])
        self._nch = 4
        # sense_split's kernel (hal.split_thumb) reads its rings, arrays and scaling from here;
        # bound at a session's first sense_split (_bind_split)
        self._frame = array("i", [0] * (blocks_multi.SF_LEN + blocks_multi.SF_REC * (self.channels + 1)))
        self._frame_at = uctypes.addressof(self._frame)
        self._frame_for = None
        # write_blocks' (hal.put_thumb), bound at a session's first write_blocks (_bind_put)
        self._pframe = array("i", [0] * (blocks_multi.PF_LEN + blocks_multi.PF_REC * self.channels))
        self._pframe_at = uctypes.addressof(self._pframe)
        self._pframe_for = None
        self._pstride = 0
        return adc["current_channels"] + adc["voltage_channels"]

    def _bind_trip(self):
        _mkern.trip_bind_multi(self._adc, self._q, self._sget, uctypes.bytearray_at(self._r_s, 4), self._cut_cb)
        return _mkern.trip_scan_multi

    def start(self, fs, channels=1):
        self._c = channels
        self._sget = self._get2 if channels == 2 else self._get1
        q = self._q
        for i in range(blocks_multi.Q_TSRC, blocks_multi.Q_LEN_MULTI):
            q[i] = 0                    # the trip's per-source state (Rp2Hal.start clears the rest)
        self._bind_trip()
        self._frame_for = None          # the sense cfg may differ: bind the frames again
        self._pframe_for = None
        super().start(fs, channels)

    def arm_trip(self, iover_uA, vcomp_mV):
        q = self._q
        q[blocks.Q_TIOVER] = iover_uA
        q[blocks.Q_TVCOMP] = vcomp_mV
        blocks.trip_limits(q, self._get2)   # the scaling is shared: one set of code intervals

    def tripped_source(self):
        q = self._q
        return q[blocks_multi.Q_TSRC] if q[blocks.Q_TRIP] else -1

    @micropython.native
    def write(self, buf, n):
        q = self._q
        k = q[_Q_KW]
        if self._c == 2:
            _mkern.put_words_multi(self._out, self._set, buf, n, k, self._put2, 1, 2)
        else:
            _kern.put_words(self._out, self._set, buf, n, k, self._put)
        _qroom(q, _M32[self._r_d], _M32[self._r_s])     # too late counts as an underrun (Rp2Hal.write)
        q[_Q_KW] = (k + n) & K_MASK

    @micropython.native
    def write_blocks(self, buf, n, stride):
        """write() of a session of both sources, source c's n samples at buf[c*stride + j]
        (hal.base.Hal.write_blocks): no interleaving pass before the conversion, which is
        Thumb code (hal.put_thumb: ~100 cycles a sample and source against ~600 in viper)."""
        q = self._q
        k = q[_Q_KW]
        if buf is not self._pframe_for or stride != self._pstride:
            self._bind_put(buf, stride)
        _put(self._pframe_at, n, k)     # put_words_multi(out, set, buf, n, k, put2, stride, 1)
        _qroom(q, _M32[self._r_d], _M32[self._r_s])     # too late counts as an underrun (Rp2Hal.write)
        q[_Q_KW] = (k + n) & K_MASK

    @micropython.native
    def sense(self, set_out, i_out, v_out, d_out, n, b):
        q = self._q
        if q[_Q_UNDER]:
            return 0
        m = _qblock(q, n, b)
        if m:
            k = q[_Q_KS]
            _mkern.get_sense_multi(self._adc, self._set, set_out, i_out, v_out, d_out, m, k, self._sget)
            q[_Q_KS] = (k + m) & K_MASK
        return m

    @micropython.native
    def sense_split(self, sbs, ibs, vbs, dbs, n, b):
        """sense() with each electrode's samples in its own arrays and the return's (index C)
        as tes.multi.split gives them (hal.base.Hal.sense_split): hal.blocks_multi.
        get_sense_split's work in Thumb code (hal.split_thumb: ~120 cycles a sample and
        source against ~800 in viper)."""
        q = self._q
        if q[_Q_UNDER]:
            return 0
        m = _qblock(q, n, b)
        if m:
            if sbs is not self._frame_for:
                self._bind_split(sbs, ibs, vbs, dbs)
            k = q[_Q_KS]
            _split(self._frame_at, m, k)
            q[_Q_KS] = (k + m) & K_MASK
        return m

    def _bind_split(self, sbs, ibs, vbs, dbs):
        # at a session's first sense, heap-locked: split_frame allocates nothing (an address
        # below 2**30 is a small int)
        blocks_multi.split_frame(self._frame, self._sget, uctypes.addressof(self._adc), uctypes.addressof(self._set),
                                 sbs, ibs, vbs, dbs, uctypes.addressof)
        self._frame_for = sbs

    def _bind_put(self, buf, stride):
        # at a session's first write_blocks, heap-locked: put_frame allocates nothing
        blocks_multi.put_frame(self._pframe, self._put2, uctypes.addressof(self._out), uctypes.addressof(self._set),
                               uctypes.addressof(buf), stride)
        self._pframe_for = buf
        self._pstride = stride


Hal = Rp2MultiHal
