"""LSL outlets round trip over loopback: resolve by this test's own source_id, pull back.

No skip when liblsl is missing: pylsl's import error fails the test, so CI notices.
"""
import math
import time
import uuid

import pylsl
import pytest

from tesctl.lsl import CHANNELS, MARKER_TYPE, TELEMETRY_TYPE, LslOutlets

TIMEOUT = 5.0


def _resolve(source_id):
    for _ in range(3):
        found = pylsl.resolve_byprop("source_id", source_id, minimum=1, timeout=TIMEOUT / 2)
        if found:
            return found
    raise AssertionError("stream %s not found over LSL" % source_id)


def _pull(inlet, count, chunk=False):
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count and time.monotonic() < deadline:
        if chunk:
            samples, stamps = inlet.pull_chunk(timeout=0.2)
            got.extend(zip(samples, stamps))
        else:
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                got.append((sample, stamp))
    return got


def _channel_labels(info):
    ch = info.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append((ch.child_value("label"), ch.child_value("unit")))
        ch = ch.next_sibling()
    return labels


def test_markers_and_telemetry_round_trip():
    sid = "tesctl-test-%s" % uuid.uuid4().hex
    out = LslOutlets("tesctl-test", sid)
    try:
        (minfo,) = _resolve(out.marker_source_id)
        (tinfo,) = _resolve(out.telemetry_source_id)
        assert minfo.type() == MARKER_TYPE and minfo.channel_count() == 1
        assert minfo.name() == "tesctl-test-markers"
        assert tinfo.type() == TELEMETRY_TYPE and tinfo.channel_count() == len(CHANNELS)
        assert tinfo.nominal_srate() == 50

        markers = pylsl.StreamInlet(minfo)
        telem = pylsl.StreamInlet(tinfo)
        markers.open_stream(timeout=TIMEOUT)
        telem.open_stream(timeout=TIMEOUT)
        # The full description (channel labels) is fetched from the outlet by the inlet.
        labels = _channel_labels(telem.info(timeout=TIMEOUT))
        assert labels == [("set_uA", "microamperes"), ("meas_uA", "microamperes"), ("v_mV", "millivolts"),
                          ("z_ohm", "ohms"), ("charge_uC", "microcoulombs"), ("set_rms_uA", "microamperes"),
                          ("meas_rms_uA", "microamperes"), ("meas_peak_uA", "microamperes"),
                          ("v_rms_mV", "millivolts"), ("z_phase_deg", "degrees")]
        assert out.wait_for_consumers(TIMEOUT)
        time.sleep(0.2)           # let the inlets finish subscribing before the first push

        sent = ["ramp-up", "plateau", "ramp-down", "stop", "fault:open-circuit", "end:completed"]
        for m in sent:
            out.marker(m)
        # Link-1 frames (five values: the figures after them go out as NaN) and whole ones.
        frames = [(k * 10.0, k * 10.0 - 1, 1500.0 + k, None if k == 3 else 5000.0 + k, k * 0.5) for k in range(10)]
        frames += [(0.0, 1.0, 2.0, 6012.0, k * 0.5, 707.0, 706.0 + k, 1004.0, 4245.0, None if k & 1 else -41.8)
                   for k in range(10)]
        t0 = pylsl.local_clock()
        for k, f in enumerate(frames):
            out.telemetry(f, timestamp=t0 + k / 50)

        got_m = _pull(markers, len(sent))
        assert [s[0] for s, _ in got_m] == sent
        got_t = _pull(telem, len(frames), chunk=True)
        assert len(got_t) == len(frames)
        for (sample, stamp), f, k in zip(got_t, frames, range(len(frames))):
            assert len(sample) == len(CHANNELS)
            want = list(f) + [None] * (len(CHANNELS) - len(f))
            for a, b in zip(sample, want):
                assert math.isnan(a) if b is None else abs(a - b) < 1e-3, (sample, want)
            assert abs(stamp - (t0 + k / 50)) < 1e-3
    finally:
        out.close()


def test_telemetry_wrong_length():
    out = LslOutlets("tesctl-test-len", "tesctl-test-%s" % uuid.uuid4().hex)
    try:
        with pytest.raises(ValueError, match="10 values"):
            out.telemetry([1, 2, 3])
        with pytest.raises(ValueError, match="10 values"):
            out.telemetry([1, 2, 3, 4, 5, 6])
    finally:
        out.close()
