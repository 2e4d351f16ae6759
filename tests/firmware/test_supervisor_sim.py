"""The supervisor in the device app on the simulated board (the firmware's own loop):
clean sessions complete with their charge on normal loads, slow and fast load changes
stop them the right way, and the watchdog catches a stalled loop.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import json

from devrun import BOARD, DeviceRun


def stim(**kw):
    seg = {"kind": "stim", "waveform": "dc", "amplitude_uA": 2000, "offset_uA": 0,
           "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0,
           "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False, "duration_ms": 3000,
           "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    seg.update(kw)
    return seg


def proto(segments, fs=1000, z_max=20000):
    return {"schema": 1, "name": "t", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segments, "sham": None, "safety": {"impedance_max_ohm": z_max}}


def board(**model):
    b = json.loads(json.dumps(BOARD))
    b["model"].update(model)
    return b


def test_clean_sessions_complete_with_their_charge():
    d = DeviceRun(proto([stim()]), "clean-dc")
    d.run_to_end()
    rec = d.last_record()
    assert (rec["outcome"], rec["reason"]) == ("completed", "completed")
    assert abs(rec["delivered_charge_uC"] - 7000) <= 20, rec     # 2 mA * (3 s + 2 * 0.25 s)
    assert d.hal.peak_uA <= 2010
    for wf, extra in (("sine", {"frequency_mHz": 10000}), ("noise", {"band_mHz": [101000, 640000],
                                                                    "noise_sd_uA": 500, "seed": 4}),
                      ("pulse", {"frequency_mHz": 40000, "pulse_width_us": 2000, "biphasic": True})):
        seg = stim(waveform=wf, amplitude_uA=1500, **extra)
        d = DeviceRun(proto([seg], fs=5000), "clean-" + wf)
        d.run_to_end()
        assert d.outcome() == ("completed", "completed"), (wf, d.outcome())


def test_trns_at_the_rate_terney_used_completes():
    # 101-640 Hz noise at 1280 S/s: the lowest rate the validator accepts for that band.
    seg = stim(waveform="noise", amplitude_uA=1000, band_mHz=[101000, 640000], noise_sd_uA=333, seed=9,
               duration_ms=8000)
    d = DeviceRun(proto([seg], fs=1280), "trns-1280")
    d.run_to_end()
    assert d.outcome() == ("completed", "completed"), d.outcome()


def test_slow_drift_soft_stops_on_impedance():
    d = DeviceRun(proto([stim(duration_ms=20000)]), "drift", board=board(fault_drift_ohm_per_s=2000),
                  faults=[("drift", 1000)])
    d.run_to_end()
    assert d.outcome() == ("fault", "impedance-high"), d.outcome()
    assert d.stop_index - d.first < 6000       # passes the 25.5 V headroom within 6 s


def test_the_protocols_impedance_limit_applies():
    # 500 uA: the voltage is far from compliance; the 10 kOhm lockout stops it.
    d = DeviceRun(proto([stim(amplitude_uA=500, duration_ms=20000)], z_max=10000), "zmax",
                  board=board(fault_drift_ohm_per_s=2000), faults=[("drift", 1000)])
    d.run_to_end()
    assert d.outcome() == ("fault", "impedance-high")
    # 8.5 kOhm + 2 kOhm/s reaches 10 kOhm after ~0.75 s, then two 100 ms windows.
    t = d.stop_index - d.first
    assert 1600 <= t <= 2400, t


def test_fast_load_rise_stops_hard_before_harm():
    d = DeviceRun(proto([stim()]), "fast-drift", board=board(fault_drift_ohm_per_s=200000),
                  faults=[("drift", 1500)])
    d.run_to_end()
    assert d.outcome()[1] in ("impedance-high", "compliance", "tracking-error"), d.outcome()
    assert d.hal.peak_uA <= 2010


def test_host_lost_soft_stop_after_3s():
    d = DeviceRun(proto([stim(duration_ms=10000)]), "lost")
    d.run_until(1000)
    d.run_to_end(host_alive=False)
    assert d.outcome() == ("fault", "host-lost")
    # the host's last frame was at 1000 ms of the clock; the rule fires 3 s later
    stop_ms = d.t0 + (d.stop_index - d.first) * 1000 // 1000
    assert 3995 <= stop_ms <= 4010, stop_ms


def test_stall_is_caught_by_the_watchdog():
    from hal.sim import SimReset
    d = DeviceRun(proto([stim()]), "stall", faults=[("stall", 1700)])
    try:
        d.run_to_end()
        raise AssertionError("a stalled loop ran on")
    except SimReset as e:
        assert e.args[0] == "watchdog"
    assert not d.hal.en
    onset = [ms for ms, ev in d.hal.log() if ev == "stall"][0]
    assert d.hal.zero_at_us - onset * 1000 <= 1000 * 1000 + 1000   # the 1 s session watchdog
