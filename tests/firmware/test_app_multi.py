"""The device app (tes.app) running sessions of several driven electrodes (issue 12):
first on the fake HAL of tests/firmware/test_multicontrol.py (exact: what each source puts
out, when zero() comes), then on the simulated board's electrode network (hal.simnet) the
way a host drives it: LOAD's rule, the HAL told the electrodes before start(fs, C), a 3-
electrode tACS in and anti-phase and a 4x1 HD-tDCS completing at zero, a liftoff naming its
electrode (the fault event, the END event, the journal record) within the two-electrode
bound, a return liftoff naming the return, TELEM rows summing to zero.
Runs under the unix port (tools/mptest.py), the 32-bit WebAssembly port and CPython."""
import json

from array import array

from tes import journal
from tes import link as L
from tes import supervisor as S
from tes.app import App

from devrun import BOARD, DeviceRun, Port
from test_multicontrol import FakeHal, cur, mproto


class AppRun:
    """The app on a given HAL, frames in through a port, every frame out decoded."""

    def __init__(self, proto, hal, board=BOARD):
        self.hal = hal
        self.port = Port()
        self.frames = []
        dec = L.Decoder()
        self.port.write = lambda data: self.frames.extend(dec.feed(bytes(data)))
        self.app = App(hal, board, self.port, "x")
        self.proto = proto
        self.seq = 0

    def send(self, typ, obj=None):
        self.port.inq += L.encode(typ, self.seq, json.dumps(obj or {}).encode())
        self.seq += 1
        self.app.service()

    def load(self):
        for payload in L.load_payloads(L.dumps(self.proto).encode()):
            self.port.inq += L.encode(L.LOAD, self.seq, payload)
            self.seq += 1
        self.app.service()

    def start(self):
        self.load()
        self.send(L.CHECK)
        while self.app.state == L.CHECKING:
            self.step()
        assert self.app.state == L.READY, L.STATE_NAMES[self.app.state]
        self.send(L.START, {"sha256": self.app.sha})
        assert self.app.session is not None, self.errors()

    def step(self, host_alive=True):
        if host_alive:
            self.app.last_rx = self.hal.ticks_ms()
        self.app.control_step()

    def run_to_end(self, host_alive=True, limit=2000000):
        for _ in range(limit):
            if self.app.session is None:
                return
            self.step(host_alive)
        raise AssertionError("the session did not end")

    def json(self, typ):
        return [L.decode_json(f[2])[0] for f in self.frames if f[0] == typ]

    def events(self, ev):
        return [e for e in self.json(L.EVENT) if e["ev"] == ev]

    def errors(self):
        return self.json(L.ERROR)

    def telem(self):
        return [f[2] for f in self.frames if f[0] == L.TELEM]


def three(fs=2000, duration_ms=400):
    return mproto([cur("F4", 1000, "sine", 6000), cur("P4", 1000, "sine", 6000, 180), cur("T8", 400)], ret="Cz",
                  fs=fs, duration_ms=duration_ms, names=["F4", "Cz", "P4", "T8"])


def test_load_needs_a_source_per_driven_electrode():
    p = three()
    for channels, board_sources, ok in ((8, 8, True), (3, 8, True), (2, 8, False), (8, 2, False), (1, 1, False)):
        board = dict(BOARD)
        board["current_sources"] = board_sources
        r = AppRun(p, FakeHal(channels=channels), board)
        r.load()
        if ok:
            assert r.app.state == L.LOADED, r.errors()
            continue
        err = r.errors()[-1]
        have = min(channels, board_sources)
        assert err["error"] == "invalid-protocol"
        assert err["detail"] == "this board drives %d current source(s); the montage needs 3" % have, err
        assert r.app.proto is None and r.app.state == L.IDLE
    # Two electrodes (one driven) need one source: the single path on any board.
    two = mproto([cur("F4", 1000)], ret="Cz")
    r = AppRun(two, FakeHal(channels=1))
    r.load()
    assert r.app.state == L.LOADED, r.errors()


def test_a_multi_session_on_the_fake_hal():
    hal = FakeHal()
    r = AppRun(three(duration_ms=1000), hal)
    r.start()
    assert hal.names == ["F4", "P4", "T8", "Cz"]      # driven order, the return last
    assert hal.started == (2000, 3)
    r.run_to_end()
    assert r.app.state == L.LOADED
    end = r.events("end")[-1]
    assert (end["outcome"], end["reason"]) == ("completed", "completed") and "electrode" not in end
    rec = journal.sessions(r.app.storage)[-1]
    assert rec["outcome"] == "completed" and "electrode" not in rec
    assert rec["delivered_charge_uC"] == end["delivered_charge_uC"] > 0
    assert all(hal.level[c] == 0 for c in range(9)) and hal.zeros >= 1 and not hal.en
    # TELEM: the extension on every session frame, montage order, each column summing to 0;
    # the main set is the total current (the driven rows' sum)
    ext = [p for p in r.telem() if len(p) > L.TELEM_SIZE]
    assert len(ext) >= 10
    for p in ext:
        rows = L.unpack_telem_electrodes(p)
        assert len(rows) == 4
        assert sum(x[0] for x in rows) == 0 and sum(x[1] for x in rows) == 0
        assert rows[1][2] == 0 and rows[1][3] is None and rows[1][6] == 0      # Cz, the return
        main = L.unpack_telem(p)
        assert main[2] == -rows[1][0] and main[3] == -rows[1][1] and main[5] is None
        assert abs(main[4]) == max(abs(rows[k][2]) for k in (0, 2, 3))
    # a plateau frame: T8's DC 400 uA (5 kOhm: 2 V, z 5000); F4 and P4 1 mA sines in anti-phase
    rows = L.unpack_telem_electrodes(ext[len(ext) * 3 // 4])      # 0.9 s: the plateau's whole periods
    assert 395 <= rows[3][0] <= 405 and 1950 <= rows[3][2] <= 2050 and 4900 <= rows[3][3] <= 5100, rows
    assert 690 <= rows[0][4] <= 720 and 690 <= rows[2][4] <= 720, rows       # RMS = 1000 / sqrt 2
    # the frames outside the session: no extension
    assert len(r.telem()[-1]) == L.TELEM_SIZE


def test_a_hard_fault_zeroes_every_source_and_names_the_electrode():
    hal = FakeHal()
    hal.later = {1: ("open", 500)}       # P4 (driven index 1), on the plateau
    r = AppRun(three(), hal)
    r.start()
    r.run_to_end()
    assert hal.zeros >= 1 and not hal.en and all(hal.level[c] == 0 for c in range(9))
    assert hal.k <= 500 + 4, "output went on after the fault"      # one block queued ahead, at most
    f = r.events("fault")[-1]
    assert (f["fault"], f["detail"], f["electrode"]) == ("open-circuit", "hard", "P4"), f
    assert max(abs(x) for x in f["block"]["i_uA"]) <= 2            # P4's block: no current
    end = r.events("end")[-1]
    assert (end["outcome"], end["reason"], end["electrode"]) == ("fault", "open-circuit", "P4")
    rec = journal.sessions(r.app.storage)[-1]
    assert (rec["outcome"], rec["reason"], rec["electrode"]) == ("fault", "open-circuit", "P4")
    assert r.app.state == L.FAULT


def test_a_boards_fast_trip_names_the_source_it_tripped_on():
    # hal.rp2_multi's trip (an interrupt, ahead of the supervisor) zeroes the output and
    # reports its code through room(); the electrode comes from hal.tripped_source().
    hal = FakeHal()
    hal.later_trip = (S.OVERCURRENT, 2, 600)     # T8 (driven index 2), on the plateau
    r = AppRun(three(), hal)
    r.start()
    r.run_to_end()
    assert hal.zeros >= 1 and not hal.en
    f = r.events("fault")[-1]
    assert (f["fault"], f["detail"], f["electrode"]) == ("overcurrent", "hard", "T8"), f
    end = r.events("end")[-1]
    assert (end["outcome"], end["reason"], end["electrode"]) == ("fault", "overcurrent", "T8")
    assert r.app.state == L.FAULT


def test_a_soft_fault_ramps_every_source_down_together():
    hal = FakeHal()
    r = AppRun(three(duration_ms=6000), hal)
    r.start()
    first = 0
    while hal.ticks_ms() < 300 + r.app.session.t0_ms:
        r.step()
    r.run_to_end(host_alive=False)             # host-lost after 3 s of silence
    f = r.events("fault")[-1]
    assert (f["fault"], f["detail"]) == ("host-lost", "ramp-down") and "electrode" not in f
    end = r.events("end")[-1]
    assert (end["outcome"], end["reason"]) == ("fault", "host-lost") and "electrode" not in end
    # the soft stop: every channel to zero at the same sample, over SOFT_RAMP_MS
    C = 3
    last = hal.k - 1
    nz = [max(k for k in range(first, hal.k) if hal.out[k * C + c] != 0) for c in range(C)]
    assert max(nz) - min(nz) <= 8, nz          # (a 400 uA ramp rounds to 0 a few samples early)
    assert last - max(nz) >= 0
    stop = max(nz) - S.SOFT_RAMP_MS * 2000 // 1000      # (2 kS/s)
    # DC T8 falls from its plateau to zero over the soft ramp, never back up
    t8 = [hal.out[k * C + 2] for k in range(stop - 10, max(nz) + 1)]
    assert all(t8[k + 1] <= t8[k] for k in range(len(t8) - 1)), "T8 did not ramp down"
    assert t8[0] >= 390 and t8[-1] < 10


def test_a_two_electrode_session_has_no_extension_and_no_electrode():
    from test_app_faults import protocol
    hal = FakeHal()
    hal.later = {0: ("open", 1500)}
    r = AppRun(protocol(1000, "dc", 2000), hal)
    r.start()
    assert hal.started == (1000, 1) and hal.names == ["F3", "Fp2"]
    r.run_to_end()
    assert all(len(p) == L.TELEM_SIZE for p in r.telem())
    f = r.events("fault")[-1]
    assert f["fault"] == "open-circuit" and "electrode" not in f
    assert "electrode" not in r.events("end")[-1]


# ---- the simulated board's electrode network ------------------------------------------------

def ring4x1(fs=1000, duration_ms=1500, ramp_ms=200):
    """4x1 HD-tDCS as protocols/hd-tdcs-4x1.toml (the ring driven at -500 uA each, the
    centre C3 the return), shorter."""
    seg = {"kind": "stim", "duration_ms": duration_ms, "ramp_up_ms": ramp_ms, "ramp_down_ms": ramp_ms,
           "ramp_shape": "linear", "currents": [cur(n, -500) for n in ("C1", "C5", "FC3", "CP3")]}
    return {"schema": 1, "name": "4x1", "sample_rate_hz": fs,
            "montage": {"electrodes": [{"name": n, "area_mm2": 0} for n in ("C1", "C5", "FC3", "CP3", "C3")],
                        "return": "C3"},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


def tacs3(phase, fs=1000, duration_ms=1500):
    """protocols/tacs-theta-{in,anti}phase-2site.toml, shorter: F3 and P3 at 6 Hz, return Cz."""
    seg = {"kind": "stim", "duration_ms": duration_ms, "ramp_up_ms": 300, "ramp_down_ms": 300,
           "ramp_shape": "cosine", "currents": [cur("F3", 1000, "sine", 6000), cur("P3", 1000, "sine", 6000, phase)]}
    return {"schema": 1, "name": "tacs", "sample_rate_hz": fs,
            "montage": {"electrodes": [{"name": n, "area_mm2": a} for n, a in (("F3", 2500), ("P3", 2500),
                                                                                  ("Cz", 3500))],
                        "return": "Cz"},
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}


class Rec:
    """Every word the simulated board is given, C per sample, kept independently of devrun's
    RecordingHal (completes() checks the two agree). Preallocated: write() runs heap-locked."""

    def __init__(self, hal, cap):
        self.hal = hal
        self.w = array("i", [0] * cap)
        self.n = 0
        self.sim_write = hal.write

    def write(self, buf, n):
        net = self.hal.net
        m = n * (net.C if net is not None else 1)
        k = self.n
        w = self.w
        for j in range(m if k + m <= len(w) else len(w) - k):
            w[k + j] = buf[j]
        self.n = k + m
        self.sim_write(buf, n)


def sim_run(proto, tag, faults=()):
    d = DeviceRun(proto, tag, faults=faults, start=False)
    d.rec = Rec(d.hal, 4 * 4000 * 5)
    d.hal.write = d.rec.write
    frames = []
    dec = L.Decoder()
    d.port.write = lambda data: frames.extend(dec.feed(bytes(data)))
    d.load()
    d.check()
    d.first = d.rec.n
    d.t0 = d.hal.ticks_ms()
    d.send(L.START, {"sha256": d.app.sha})
    assert d.app.session is not None, [L.decode_json(f[2])[0] for f in frames if f[0] == L.ERROR]
    d.frames = frames
    return d


def sim_events(d, ev):
    return [e for e in (L.decode_json(f[2])[0] for f in d.frames if f[0] == L.EVENT) if e["ev"] == ev]


def completes(d, C):
    d.run_to_end()
    assert d.outcome() == ("completed", "completed"), d.last_record()
    assert not d.hal.en
    # the ramp's last samples near zero on every source, then hal.zero: every source at its
    # zero code (hal.simnet's DAC words), after the last sample's time
    w = d.rec.w
    n = d.rec.n
    fs = d.app.proto["sample_rate_hz"]
    assert (n - d.first) % C == 0 and n - d.first >= C * fs
    k = d.hal.n                     # devrun's RecordingHal keeps every word too (up to its capacity)
    assert k == min(n, len(d.hal.rec)) and list(d.hal.rec[:k]) == list(w[:k])
    assert all(abs(w[n - 1 - c]) <= 10 for c in range(C)), list(w[n - 2 * C:n])
    assert max(abs(w[k]) for k in range(d.first, n)) >= 500
    assert all(d.hal.net.code[c] == d.hal.z for c in range(C))
    assert d.hal.zero_at_us >= d.t0 * 1000 + (n - d.first) // C * 1000000 // fs
    rows = [L.unpack_telem_electrodes(f[2]) for f in d.frames if f[0] == L.TELEM and len(f[2]) > L.TELEM_SIZE]
    assert len(rows) >= 20
    for r in rows:
        assert len(r) == C + 1
        assert sum(x[0] for x in r) == 0 and sum(x[1] for x in r) == 0
    return rows


def test_sim_tacs_in_and_anti_phase_complete():
    rows = completes(sim_run(tacs3(0), "h24-tacs-in"), 2)
    mid = rows[len(rows) // 2]
    assert 650 <= mid[0][5] <= 760 and 650 <= mid[1][5] <= 760, mid       # each 1 mA peak: RMS ~707
    assert 1300 <= mid[2][5] <= 1520, mid                                 # the return carries both
    rows = completes(sim_run(tacs3(180), "h24-tacs-anti"), 2)
    mid = rows[len(rows) // 2]
    assert 650 <= mid[0][5] <= 760 and mid[2][5] <= 60, mid               # anti-phase: the return ~0


def test_sim_4x1_completes():
    d = sim_run(ring4x1(), "h24-4x1")
    assert d.hal.names == ("C1", "C5", "FC3", "CP3", "C3")
    rows = completes(d, 4)
    mid = rows[len(rows) // 2]
    assert [x[0] for x in mid] == [-500, -500, -500, -500, 2000], mid


def liftoff(proto, name, at_ms, tag):
    d = sim_run(proto, tag, faults=[("liftoff", at_ms, name)])
    d.run_to_end()
    onset = [ms for ms, ev in d.hal.log() if ev == "liftoff"][0]
    f = sim_events(d, "fault")[-1]
    end = sim_events(d, "end")[-1]
    rec = d.last_record()
    assert not d.hal.en
    return d.hal.zero_at_us - onset * 1000, f, end, rec


def test_sim_liftoff_names_the_electrode_within_the_two_electrode_bound():
    for proto, name, tag in ((ring4x1(), "FC3", "h24-lift-fc3"), (ring4x1(), "C3", "h24-lift-c3"),
                             (tacs3(0), "P3", "h24-lift-p3"), (tacs3(0), "Cz", "h24-lift-cz"),
                             (ring4x1(fs=5000), "C3", "h24-lift-c3-5k")):
        latency, f, end, rec = liftoff(proto, name, 800, tag)
        assert f["fault"] in ("open-circuit", "compliance") and f["detail"] == "hard", f
        assert f["electrode"] == name, (name, f)
        assert end["electrode"] == name and rec["electrode"] == name, (end, rec)
        assert rec["outcome"] == "fault" and rec["reason"] == f["fault"]
        assert 0 <= latency <= 2000, (name, latency)      # test_app_faults.check_hard's bound


def fault_named(proto, kind, name, at_ms, tag):
    d = sim_run(proto, tag, faults=[(kind, at_ms, name)])
    d.run_to_end()
    onset = [ms for ms, ev in d.hal.log() if ev == kind][0]
    return d, onset, sim_events(d, "fault")[-1], sim_events(d, "end")[-1], d.last_record()


def test_sim_short_names_the_driven_electrode():
    # after SIGN_HOLD_MS of one sign, within the two-electrode bound (test_app_faults: 2 ms)
    d, onset, f, end, rec = fault_named(ring4x1(duration_ms=3000), "short", "FC3", 1500, "h24-short")
    assert (f["fault"], f["electrode"], end["electrode"], rec["electrode"]) == ("short", "FC3", "FC3", "FC3"), f
    assert 0 <= d.hal.zero_at_us - onset * 1000 <= 2000


def test_sim_drift_names_the_electrode_or_the_return():
    # A contact drifting up: its own impedance rises, or, the return's, every electrode's
    # alike (the return's voltage is in each): impedance-high, soft, names which.
    for name, tag in (("CP3", "h24-drift-cp3"), ("C3", "h24-drift-c3")):
        d, onset, f, end, rec = fault_named(ring4x1(duration_ms=30000), "drift", name, 1000, tag)
        assert (f["fault"], f["detail"], f["electrode"]) == ("impedance-high", "ramp-down", name), (name, f)
        assert (rec["outcome"], rec["reason"], rec["electrode"]) == ("fault", "impedance-high", name)


def test_sim_two_electrodes_of_the_multi_form_run_the_single_path():
    # protocols/tdcs-bilateral.toml, shorter: one driven electrode (C4), the return C3. The
    # same samples as its anode/cathode twin, TELEM without the extension, start(fs) alone.
    seg = {"kind": "stim", "duration_ms": 1000, "ramp_up_ms": 200, "ramp_down_ms": 200, "ramp_shape": "linear",
           "currents": [cur("C4", 1000)]}
    multi = {"schema": 1, "name": "bilateral", "sample_rate_hz": 1000,
             "montage": {"electrodes": [{"name": "C4", "area_mm2": 2500}, {"name": "C3", "area_mm2": 2500}],
                         "return": "C3"},
             "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 20000}}
    flat = dict(seg)
    del flat["currents"]
    flat.update(cur("C4", 1000))
    del flat["electrode"]
    two = {"schema": 1, "name": "bilateral", "sample_rate_hz": 1000,
           "montage": {"anode": "C4", "cathode": "C3", "electrode_area_mm2": 2500},
           "segments": [flat], "sham": None, "safety": {"impedance_max_ohm": 20000}}
    runs = []
    for p, tag in ((multi, "h24-bi-multi"), (two, "h24-bi-flat")):
        d = sim_run(p, tag)
        assert d.app.session.channels == 1 and d.hal.names == ("C4", "C3") and d.hal.net is None
        d.run_to_end()
        assert d.outcome() == ("completed", "completed")
        assert all(len(f[2]) == L.TELEM_SIZE for f in d.frames if f[0] == L.TELEM)
        assert "electrode" not in sim_events(d, "end")[-1] and "electrode" not in d.last_record()
        runs.append(list(d.rec.w[d.first:d.rec.n]))
    assert runs[0] == runs[1] and max(runs[0]) == 1000


def test_raw_streaming_carries_the_total_current():
    hal = FakeHal()
    r = AppRun(three(), hal)
    r.start()
    r.send(L.RAWREQ, {"on": True})
    r.run_to_end()
    raws = [L.unpack_raw(f[2]) for f in r.frames if f[0] == L.RAW]
    assert raws and all(ch == L.CH_SET for _, ch, _ in raws)
    n = 0
    for first, _, vals in raws:
        for k, v in enumerate(vals):
            i = first + k
            assert v == hal.out[3 * i] + hal.out[3 * i + 1] + hal.out[3 * i + 2], i
            n += 1
    assert n >= hal.k // 2 and max(abs(v) for _, _, vals in raws for v in vals) >= 390


def test_a_soft_stop_ends_on_a_driver_that_senses_several_blocks_at_once():
    # hal.rp2 hands over up to 4 blocks a sense: during a soft stop the persistent code
    # (host-lost) must not leave samples unchecked, or the session never reaches its end.
    hal = FakeHal()
    hal.lead = 8                    # 4 blocks of 2 samples written and sensed at once
    r = AppRun(three(duration_ms=6000), hal)
    r.start()
    while hal.ticks_ms() < 300 + r.app.session.t0_ms:
        r.step()
    c = r.app.session.control
    r.run_to_end(host_alive=False, limit=100000)
    assert (r.events("end")[-1]["reason"], c.checked) == ("host-lost", c.written)
    assert c.written < 2000 * 6                 # cut short: 3 s after the host went silent


def test_an_operator_stop_ramps_every_source_down():
    hal = FakeHal()
    r = AppRun(three(duration_ms=3000), hal)
    r.start()
    while hal.ticks_ms() < 1000 + r.app.session.t0_ms:
        r.step()
    r.send(L.STOP)
    stop_k = hal.k
    r.run_to_end()
    end = r.events("end")[-1]
    assert (end["outcome"], end["reason"]) == ("stopped", "operator-stop") and "electrode" not in end
    assert not r.events("fault")
    # the segment's own 100 ms ramp-down, every source together, from the plateau: T8 400 -> 0
    t8 = [hal.out[3 * k + 2] for k in range(stop_k, hal.k)]
    assert t8[0] >= 390 and all(t8[k + 1] <= t8[k] for k in range(len(t8) - 1)) and t8[-1] <= 5
    assert hal.k - stop_k <= 100 * 2 + 8
    assert all(abs(hal.out[3 * (hal.k - 1) + c]) <= 10 for c in range(3)) and hal.zeros >= 1 and not hal.en


def test_multicontrol_is_loaded_only_by_a_multi_session():
    import sys

    import tes
    from tes import app, session
    from tes import multicontrol as mc
    for mod in (app, session):      # no module-level import of it...
        assert not any(getattr(mod, k, None) is mc for k in dir(mod)), mod
    # ...and none while a two-electrode session runs
    old = sys.modules.pop("tes.multicontrol", None)
    if hasattr(tes, "multicontrol"):
        delattr(tes, "multicontrol")
    try:
        from test_app_faults import protocol
        r = AppRun(protocol(1000, "dc", 300), FakeHal())
        r.start()
        r.run_to_end()
        assert "tes.multicontrol" not in sys.modules     # a two-electrode session never imports it
        r = AppRun(mproto([cur("F4", 500), cur("P4", 500)], duration_ms=100), FakeHal())
        r.start()
        assert "tes.multicontrol" in sys.modules
        r.run_to_end()
    finally:
        if old is not None:
            sys.modules["tes.multicontrol"] = old
            tes.multicontrol = old


def test_sim_board_wide_converter_faults_name_no_electrode():
    # a stuck DAC (every source holds its code: the return's sums see it first) and stuck
    # ADCs (every driven electrode at once) are the board's, not one electrode's
    for proto, kind, tag in ((tacs3(0), "dac-stuck", "h28-dac"), (ring4x1(), "adc-stuck", "h28-adc")):
        d = sim_run(proto, tag, faults=[(kind, 800)])
        d.run_to_end()
        f = sim_events(d, "fault")[-1]
        end = sim_events(d, "end")[-1]
        assert (f["fault"], f["detail"]) == (kind, "hard"), f
        assert "electrode" not in f and "electrode" not in end, (f, end)
        assert "electrode" not in d.last_record() and not d.hal.en
