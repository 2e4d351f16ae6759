"""Soft stops through the real device app, checked on the samples the HAL receives.

Whatever asks for it (the operator's STOP with the segment's own ramp-down, or a safety
rule: host lost, impedance high, a charge or time budget, with the 1 s safety ramp), and
whatever phase it lands in, a soft stop must:
  - start from the level the output had (no jump up, no step down),
  - never rise: the envelope falls linearly and |sample| stays under it,
  - last its ramp (not cut short), and end at zero with the output off,
  - keep the waveform going (a sine keeps its phase) while it fades.
Runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import link as L
from tes import supervisor as S
from tes.supervisor import SOFT_RAMP_MS

from devrun import DeviceRun

FS = 5000
AMP_DC = 2000
AMP_AC = 1500
F_MHZ = 10300                 # 10.3 Hz: a non-integer number of cycles in every phase
UP_MS = 2000
DOWN_MS = 1500


def protocol(waveform="dc", up=UP_MS, flat=6000, down=DOWN_MS, offset=0, pause_after=False):
    amp = AMP_DC if waveform == "dc" else AMP_AC
    seg = {"kind": "stim", "waveform": waveform, "amplitude_uA": amp, "offset_uA": offset,
           "frequency_mHz": F_MHZ if waveform == "sine" else 0, "phase_deg": 0,
           "band_mHz": [101000, 640000] if waveform == "noise" else [0, 0], "seed": 3,
           "noise_sd_uA": amp // 3 if waveform == "noise" else 0, "pulse_width_us": 0, "biphasic": False,
           "duration_ms": flat, "ramp_up_ms": up, "ramp_down_ms": down, "ramp_shape": "linear"}
    segs = [seg]
    if pause_after:
        segs = [seg, {"kind": "pause", "duration_ms": 3000}, dict(seg)]
    return {"schema": 1, "name": "soft-stop", "sample_rate_hz": FS,
            "montage": {"anode": "F3", "cathode": "Fp2", "electrode_area_mm2": 3500},
            "segments": segs, "sham": None, "safety": {"impedance_max_ohm": 20000}}


def envelope_at(k, up_n, flat_n, down_n):
    """Protocol envelope (0..1 as a fraction num/den) at sample k of a one-segment run."""
    if k < up_n:
        return k, up_n
    if k < up_n + flat_n:
        return 1, 1
    if k < up_n + flat_n + down_n:
        return up_n + flat_n + down_n - k, down_n
    return 0, 1


def check_fade(d, level, ramp_ms, dc):
    """The samples from d.stop_index on fade linearly from `level` (peak uA) to zero."""
    x = d.samples
    s = d.stop_index
    assert s > 0, "no stop was recorded"
    n = ramp_ms * FS // 1000
    after = d.n - s
    # Lasts its ramp: not cut short (one 1 ms block of slack), not longer than it.
    assert n - FS // 1000 <= after <= n + FS // 1000, (after, n)
    tol = 2 + level // n
    for k in range(after):
        bound = level * (n - k) // n + tol
        assert -bound <= x[s + k] <= bound, ("above the falling envelope", k, x[s + k], bound)
    if dc:
        # Starts where the output was: within one ramp step of the last sample before it.
        assert abs(x[s] - x[s - 1]) <= tol, (x[s - 1], x[s])
        for k in range(1, after):
            assert abs(x[s + k]) <= abs(x[s + k - 1]), ("rose", k, x[s + k - 1], x[s + k])
    else:
        # No step down: the first cycle of the fade keeps >= 90 % of the level.
        cyc = FS * 1000 // F_MHZ + 1
        first = max(abs(x[s + k]) for k in range(min(cyc, after)))
        assert first * 10 >= level * 9, ("stepped down", first, level)
        # Never rising: cycle peaks fall.
        peaks = [max(abs(x[s + k]) for k in range(a, min(a + cyc, after))) for a in range(0, after - cyc, cyc)]
        for a, b in zip(peaks, peaks[1:]):
            assert b <= a + 2, ("rose", peaks)
    # Ends at zero, output off.
    assert abs(x[d.n - 1]) <= tol, x[d.n - 1]
    assert not d.hal.en and not d.running()


def level_at(d, waveform):
    up_n, flat_n, down_n = UP_MS * FS // 1000, 6000 * FS // 1000, DOWN_MS * FS // 1000
    num, den = envelope_at(d.stop_index - d.first, up_n, flat_n, down_n)
    amp = AMP_DC if waveform == "dc" else AMP_AC
    return amp * num // den


def operator_stop(waveform, at_ms, tag):
    d = DeviceRun(protocol(waveform), tag)
    d.run_until(at_ms)
    d.send(L.STOP)
    assert d.stop_index > 0
    level = level_at(d, waveform)
    d.run_to_end()
    assert d.outcome() == ("stopped", "operator-stop"), d.outcome()
    return d, level


def test_operator_stop_from_every_phase_dc():
    for at_ms, what in ((700, "ramp-up"), (5000, "plateau"), (8600, "ramp-down")):
        d, level = operator_stop("dc", at_ms, "op-dc-" + what)
        assert level > 100, (what, level)
        check_fade(d, level, DOWN_MS, dc=True)


def test_operator_stop_from_every_phase_sine():
    for at_ms, what in ((1300, "ramp-up"), (4321, "plateau"), (8400, "ramp-down")):
        d, level = operator_stop("sine", at_ms, "op-sine-" + what)
        check_fade(d, level, DOWN_MS, dc=False)


def test_safety_stop_host_lost_from_every_phase():
    # The host falls silent; the device stops HOST_LOST_MS later with its own 1 s ramp.
    for waveform in ("dc", "sine"):
        for lost_ms, what in ((100, "ramp-up"), (2500, "plateau")):
            d = DeviceRun(protocol(waveform, up=6000, flat=8000), "lost-%s-%s" % (waveform, what))
            d.run_until(lost_ms)
            d.run_to_end(host_alive=False)
            assert d.outcome() == ("fault", "host-lost"), d.outcome()
            up_n = 6000 * FS // 1000
            s = d.stop_index - d.first
            amp = AMP_DC if waveform == "dc" else AMP_AC
            level = amp * min(s, up_n) // up_n
            assert level > 100
            check_fade(d, level, SOFT_RAMP_MS, dc=waveform == "dc")


def test_safety_stop_takes_over_the_protocol_ramp_down():
    # Lost during the protocol's own 5 s ramp-down: the 1 s safety ramp starts from where
    # the ramp-down had got to.
    d = DeviceRun(protocol("dc", up=500, flat=1000, down=10000), "lost-in-ramp-down")
    d.run_until(1700)
    d.run_to_end(host_alive=False)
    assert d.outcome() == ("fault", "host-lost")
    s = d.stop_index - d.first
    up_n, flat_n, down_n = 500 * FS // 1000, 1000 * FS // 1000, 10000 * FS // 1000
    num, den = envelope_at(s, up_n, flat_n, down_n)
    level = AMP_DC * num // den
    assert 200 < level < AMP_DC
    check_fade(d, level, SOFT_RAMP_MS, dc=True)


def test_budget_stop_ramps_from_the_plateau():
    d = DeviceRun(protocol("sine"), "budget")
    d.run_until(3000)
    sup = d.app.session.sup
    sup.st[S.T_QMAX] = sup.charge_uC + 100    # the charge budget runs out now
    d.run_to_end()
    assert d.outcome() == ("fault", "charge-budget"), d.outcome()
    check_fade(d, AMP_AC, SOFT_RAMP_MS, dc=False)
    d = DeviceRun(protocol("dc"), "budget-time")
    d.run_until(3000)
    sup = d.app.session.sup
    sup.st[S.T_TMAX] = sup.st[S.S_STIM] + 50 * FS // 1000     # 50 ms of stimulation left
    d.run_to_end()
    assert d.outcome() == ("fault", "duration-budget"), d.outcome()
    check_fade(d, AMP_DC, SOFT_RAMP_MS, dc=True)
    # The safety ramp is 1 s (docs/safety.md), to the sample.
    assert d.n - d.stop_index == 1 * FS, d.n - d.stop_index


def test_impedance_stop_ramps_down():
    d = DeviceRun(protocol("dc", flat=60000), "drift", faults=[("drift", 2500)])
    d.run_to_end()
    assert d.outcome() == ("fault", "impedance-high"), d.outcome()
    check_fade(d, AMP_DC, SOFT_RAMP_MS, dc=True)


def test_stop_during_a_pause_ends_at_once():
    d = DeviceRun(protocol("dc", up=500, flat=1000, down=500, pause_after=True), "pause")
    d.run_until(3500)                         # 2 s into the 3 s pause
    assert d.samples[d.n - 1] == 0
    d.send(L.STOP)
    n_at_stop = d.n
    d.run_to_end()
    assert d.outcome() == ("stopped", "operator-stop")
    for k in range(n_at_stop, d.n):           # nothing but zeros after: no new segment starts
        assert d.samples[k] == 0, k
    assert d.n - n_at_stop <= FS // 1000
    assert not d.hal.en


def test_abort_is_a_step_to_zero():
    d = DeviceRun(protocol("dc"), "abort")
    d.run_until(4000)
    n_before = d.n
    d.send(L.ABORT)
    assert not d.running() and not d.hal.en and d.n == n_before
    assert d.outcome() == ("aborted", "operator-abort")
    assert d.hal.i_true == 0 or not d.hal.en


def test_stop_right_after_start_ends_before_any_current():
    # STOP in the same batch of frames as START: before the first block was made.
    d = DeviceRun(protocol("dc"), "stop-at-start", start=False)
    d.load()
    d.check()
    n0 = d.hal.n
    d.port.inq += L.encode(L.START, d.seq, ('{"sha256":"%s"}' % d.app.sha).encode())
    d.port.inq += L.encode(L.STOP, d.seq + 1, b"{}")
    d.seq += 2
    d.app.service()
    d.run_to_end()
    assert d.outcome() == ("stopped", "operator-stop")
    assert all(d.samples[k] == 0 for k in range(n0, d.n))
    assert d.hal.peak_uA <= 110          # the check's test current, nothing more
