"""Every fault kind through the real device app (tes.app) on the simulated board: output
zero (and the enable off) within the bound, the right reason, and the journal record.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
import json

from hal.sim import SimHal, SimReset
from tes import journal
from tes import link as L
from tes import supervisor as S
from tes.app import App
from tes.session import ticks_diff

from devrun import BOARD, DeviceRun, Port, RecordingHal, storage_dir

DEFAULT_FS = 5000   # tesctl.protofile.DEFAULT_SAMPLE_RATE


def protocol(fs, waveform="dc", duration_ms=6000):
    seg = {"kind": "stim", "waveform": waveform, "amplitude_uA": 2000 if waveform == "dc" else 1500,
           "offset_uA": 0, "frequency_mHz": 10000 if waveform == "sine" else 0, "phase_deg": 0,
           "band_mHz": [0, 0], "seed": 1, "noise_sd_uA": 0, "pulse_width_us": 0, "biphasic": False,
           "duration_ms": duration_ms, "ramp_up_ms": 500, "ramp_down_ms": 500, "ramp_shape": "linear"}
    return {"schema": 1, "name": "faults", "sample_rate_hz": fs,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


def run(kind, at_ms, fs=DEFAULT_FS, waveform="dc", duration_ms=6000):
    """-> (latency_us from onset to zero, outcome, journal's last record)."""
    d = DeviceRun(protocol(fs, waveform, duration_ms), kind, faults=[(kind, at_ms)])
    try:
        d.run_to_end(host_alive=kind != "host-lost")
        outcome = d.app.faults[-1] if d.app.faults else "completed"
    except SimReset as e:
        App(d.hal, BOARD, d.port, "x", boot_reason=e.args[0])   # the board boots again
        outcome = e.args[0]
    onset_ms = [ms for ms, ev in d.hal.log() if ev == kind][0]
    assert not d.hal.en
    return d.hal.zero_at_us - onset_ms * 1000, outcome, d.last_record()


def check_hard(kind, fs=DEFAULT_FS, waveform="dc", bound_us=2000, reason=None):
    latency, outcome, rec = run(kind, 3000, fs, waveform)
    reason = reason or kind
    assert outcome == reason, (kind, outcome)
    assert 0 <= latency <= bound_us, (kind, fs, latency)
    assert (rec["outcome"], rec["reason"]) == ("fault", reason), rec
    assert rec["delivered_charge_uC"] > 0


def test_liftoff():
    check_hard("liftoff", reason="open-circuit")
    check_hard("liftoff", fs=1000, reason="open-circuit")
    check_hard("liftoff", waveform="sine", reason="open-circuit")


def test_short_on_a_steady_current_within_2ms():
    check_hard("short")
    check_hard("short", fs=1000)


def test_short_on_an_alternating_current_within_one_window():
    # An AC current through the skin capacitance passes voltage zero crossings: the short
    # rule judges it over SHORT_WIN_MS, so it shows within two such windows.
    check_hard("short", waveform="sine", bound_us=2 * S.SHORT_WIN_MS * 1000 + 1000)


def test_dac_stuck_on_a_moving_waveform():
    check_hard("dac-stuck", waveform="sine")
    check_hard("dac-stuck", fs=1000, waveform="sine")


def test_adc_stuck():
    check_hard("adc-stuck")
    # At 1 kS/s one sample a ms: ADC_STUCK_SAMPLES alike readings take that many ms.
    check_hard("adc-stuck", fs=1000, bound_us=S.ADC_STUCK_SAMPLES * 1000 + 1000)


def test_soft_stops_ramp_down_then_zero():
    for kind, reason, lo, hi in (("drift", "impedance-high", 200000, 15000000),
                                 ("host-lost", "host-lost", 3000000, 5000000)):
        latency, outcome, rec = run(kind, 1000, duration_ms=40000)
        assert outcome == reason, (kind, outcome)
        assert lo <= latency <= hi, (kind, latency)     # detection, then a ramp, not a drop
        assert (rec["outcome"], rec["reason"]) == ("fault", reason)


def test_stall_and_reset_boot_with_the_output_off():
    for kind, bound_us in (("stall", 1000000), ("reset", 0)):
        latency, outcome, rec = run(kind, 3000)
        assert outcome == ("watchdog" if kind == "stall" else "reset")
        assert 0 <= latency <= bound_us, (kind, latency)
        # The open record was closed at boot: the journal keeps the ending and the charge.
        assert (rec["outcome"], rec["reason"]) == ("fault", "reset"), rec
        # The charge comes from what the board retained through the reset (hal.retain),
        # not from a flash write mid-session: 3 s into the session it is not zero.
        assert rec["delivered_charge_uC"] > 0, rec
        # So does how long current flowed (retained every 100 ms): up to the fault at 3 s.
        assert 2800 <= rec["stim_ms"] <= 3000 and rec["boot_ms"] is not None, rec


def test_safety_stop_takes_over_a_long_operator_ramp():
    p = protocol(DEFAULT_FS, duration_ms=60000)
    p["segments"][0]["ramp_down_ms"] = 300000     # the longest ramp the limits allow
    d = DeviceRun(p, "stop-then-lost")
    d.run_until(3000)
    d.send(L.STOP)
    assert d.app.session.outcome == ("stopped", "operator-stop")
    t_stop = d.hal.ticks_ms()
    while d.running():                         # the host goes silent during the ramp
        d.step(host_alive=False)
        assert d.hal.ticks_ms() - t_stop < 10000, "host-lost did not cut the 5-minute ramp"
    assert d.outcome() == ("fault", "host-lost")
    assert not d.hal.en


def test_fault_while_streaming_needs_a_new_check():
    d = DeviceRun(protocol(DEFAULT_FS), "stream-fault", start=False)
    d.load()
    d.check()
    d.send(L.STREAM, {"on": True})
    assert d.app.state == L.STREAMING
    d.hal.inject("short", d.hal.ticks_ms() + 200)
    d.run_to_end()
    assert d.app.state == L.FAULT and not d.hal.en
    d.send(L.START, {"sha256": d.app.sha})
    assert d.app.session is None and not d.hal.en


def test_check_finds_an_open_electrode_without_latching_a_fault():
    d = DeviceRun(protocol(DEFAULT_FS), "check-open", start=False)
    d.load()
    d.hal.inject("liftoff", d.hal.ticks_ms())
    d.check(expect_pass=False)
    assert d.app.state == L.LOADED and not d.hal.en and d.app.faults == []


def test_check_ended_by_a_device_fault_still_sends_its_result():
    """A hard fault of the board's own (not the load's) during the impedance check latches the
    fault, and the EVENT check still comes, failed for that fault, between the fault and the
    end: a host waiting for the check's result hears why at once (before, it heard nothing
    and waited its whole timeout). One path and a montage of three (its steps)."""
    from test_app_multi import tacs3
    for proto, multi in ((protocol(DEFAULT_FS), False), (tacs3(180), True)):
        d = DeviceRun(proto, "check-dac-stuck", start=False)
        frames = []
        dec = L.Decoder()
        d.port.write = lambda data, frames=frames, dec=dec: frames.extend(dec.feed(bytes(data)))
        d.load()
        d.hal.inject("dac-stuck", d.hal.ticks_ms() + 30)
        d.send(L.CHECK)
        t0 = d.hal.ticks_ms()
        while d.app.state == L.CHECKING and d.hal.ticks_ms() - t0 < 60000:
            d.step()
        evs = [L.decode_json(f[2])[0] for f in frames if f[0] == L.EVENT]
        kinds = [e["ev"] for e in evs if e["ev"] in ("check", "fault", "end")]
        assert kinds == ["fault", "check", "end"], (multi, kinds)
        ev = [e for e in evs if e["ev"] == "check"][0]
        assert ev["pass"] is False and ev["reason"] == "dac-stuck", ev
        assert ("electrodes" in ev) == multi, ev
        assert d.app.state == L.FAULT and not d.hal.en


class WrappingClock(RecordingHal):
    """A board clock: ticks_ms wraps at 2**30 ms. Starts 4 s before the wrap."""
    OFFSET = (1 << 30) - 4000

    def ticks_ms(self):
        # (t + OFFSET) & (2**30 - 1), without an intermediate past 2**30 (a big int on a
        # 32-bit port, which the heap-locked block path would refuse)
        t = SimHal.ticks_ms(self)
        return t + self.OFFSET if t < 4000 else t - 4000


def test_session_runs_through_the_tick_wrap():
    p = protocol(DEFAULT_FS, duration_ms=6000)
    hal = WrappingClock(BOARD, storage_dir("wrap"), 100000)
    port = Port()
    app = App(hal, BOARD, port, "x")
    d = DeviceRun(p, "wrap", start=False)
    d.hal, d.port, d.app = hal, port, app
    d.load()
    d.check()
    d.send(L.START, {"sha256": app.sha})
    telem_before = app.last_telem
    while app.session is not None:
        d.step()
        assert SimHal.ticks_ms(hal) < 20000, "the session did not end across the wrap"
    assert app.last_telem != telem_before
    assert d.outcome() == ("completed", "completed")


def test_raw_streaming_allocates_nothing_in_the_block_path_and_resets_at_hello():
    # Under MicroPython the app runs its block path with the heap locked: one allocation
    # there would end the session as fault/memory instead of completed.
    d = DeviceRun(protocol(10000, duration_ms=3000), "raw-lock")
    d.send(L.RAWREQ, {"on": True})
    assert d.app.raw_on
    d.run_to_end()
    assert d.outcome() == ("completed", "completed")
    assert d.app.raw_dropped == 0 and d.app.raw_index == 30000 + 2 * 500 * 10
    d.app.raw_on = True
    d.port.inq += L.encode(L.HELLO, 0, L.dumps({"link": L.LINK_VERSION}).encode())
    d.app.service()
    assert d.app.raw_on is False


def test_a_memory_error_in_the_block_path_is_a_hard_fault():
    d = DeviceRun(protocol(DEFAULT_FS), "memory")
    d.run_until(2000)

    def explode(*a):
        raise MemoryError("heap locked")
    d.app.session.control._check = explode      # the kernel the block path calls
    d.step()
    assert not d.running() and not d.hal.en
    assert d.outcome() == ("fault", "memory")


def test_an_underrun_is_a_hard_fault():
    d = DeviceRun(protocol(DEFAULT_FS), "underrun")
    d.run_until(2000)
    d.hal.underruns = lambda: 3
    d.run_to_end()
    assert d.outcome() == ("fault", "underrun") and not d.hal.en


def test_journal_has_every_session():
    d = DeviceRun(protocol(DEFAULT_FS, duration_ms=500), "journal")
    d.run_to_end()
    recs = journal.sessions(d.app.storage)
    assert recs[-1]["outcome"] == "completed" and recs[-1]["delivered_charge_uC"] > 0
    assert json.loads(json.dumps(recs[-1])) == recs[-1]
    assert ticks_diff(5, 3) == 2


def test_closing_record_has_the_stimulation_time():
    # 500 ms ramps around a 500 ms plateau: 1.5 s with a nonzero set (the ramps' zero ends aside).
    d = DeviceRun(protocol(DEFAULT_FS, duration_ms=500), "journal-stim")
    d.run_to_end()
    rec = journal.sessions(d.app.storage)[-1]
    assert rec["outcome"] == "completed" and 1490 <= rec["stim_ms"] <= 1500, rec
    # A soft stop (host-lost) ends it early: current flowed from start to end, ramp-down included.
    latency, outcome, rec = run("host-lost", 1000)
    assert (rec["outcome"], rec["reason"]) == ("fault", "host-lost"), rec
    assert rec["stim_ms"] > 3000 and abs(rec["stim_ms"] - (rec["end_ms"] - rec["start_ms"])) <= 5, rec
