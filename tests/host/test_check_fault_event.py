"""The host's CHECK against a device whose check a device fault ends (Device.check): the
result the firmware sends comes back at once; an END with no result (older firmware) is a
one-line error at once, not a wait of CHECK_S. A scripted device on a fake transport."""
import time

import pytest

from tes import link as L
from tesctl.device import CHECK_S, Device, DeviceError


class ScriptedDevice:
    """Answers CHECK with its REPLY and then the given events, as the device would."""

    def __init__(self, events):
        self.events = events
        self.dec = L.Decoder()
        self.out = bytearray()
        self.seq = 0

    def _frame(self, typ, obj):
        self.out += L.encode_json(typ, self.seq, obj)
        self.seq += 1

    def write(self, data):
        for typ, seq, _payload in self.dec.feed(bytes(data)):
            if typ == L.CHECK:
                self._frame(L.REPLY, {"re": seq, "ok": True, "state": "checking"})
                for ev in self.events:
                    self._frame(L.EVENT, ev)

    def read(self, timeout=0.05):
        data, self.out = bytes(self.out), bytearray()
        if not data:
            time.sleep(0.01)
        return data


FAULT = {"ev": "fault", "fault": "dac-stuck", "detail": "hard", "t_ms": 5}
END = {"ev": "end", "outcome": "fault", "reason": "dac-stuck", "delivered_charge_uC": 0, "stim_duration_ms": 0,
       "sha256": None, "longest_tick_ms": 1, "t_ms": 6}


def test_a_failed_check_result_after_a_device_fault_is_returned():
    result = {"ev": "check", "z_ohm": None, "limit_ohm": 20000, "current_uA": 100, "pass": False,
              "reason": "dac-stuck", "t_ms": 5}
    dev = Device(ScriptedDevice([FAULT, result, END]))
    t = time.monotonic()
    ev = dev.check()
    assert ev["pass"] is False and ev["reason"] == "dac-stuck"
    assert time.monotonic() - t < CHECK_S / 10


def test_an_end_without_a_result_is_an_error_at_once():
    dev = Device(ScriptedDevice([FAULT, END]))
    t = time.monotonic()
    with pytest.raises(DeviceError, match="ended without a result: fault dac-stuck"):
        dev.check()
    assert time.monotonic() - t < CHECK_S / 10
