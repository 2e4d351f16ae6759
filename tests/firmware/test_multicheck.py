"""The per-electrode impedance check (tes.multicheck, issue 12) on the simulated board's
electrode network (hal.simnet): a CHECK with a montage of C >= 2 driven electrodes loaded runs
C + 1 steps and reports each contact. boards/sim.json's fresh contact is series 500 + skin
8000 ohm at DC, so every contact solves to about 8.5 kOhm and every path (a contact plus
the return's) to about 17 kOhm. A liftoff on a driven electrode fails the check naming it;
on the return, every path fails and the return is named. The two-electrode CHECK stays as
it was (test_app*.py). Every step runs through the app's heap-locked block path (an
allocation there would fault the step as `memory`, not pass). Runs under the unix port
(tools/mptest.py), the 32-bit WebAssembly port and CPython."""
import sys

from tes import link as L

from devrun import DeviceRun
from test_app_multi import ring4x1, tacs3


def checked(proto, tag, fault=None, expect_pass=True):
    """LOAD, (a fault from the check's first sample), CHECK to its result: (the EVENT check,
    every event, the device)."""
    d = DeviceRun(proto, tag, start=False)
    frames = []
    dec = L.Decoder()
    d.port.write = lambda data: frames.extend(dec.feed(bytes(data)))
    d.load()
    assert d.app.state == L.LOADED
    if fault is not None:
        d.hal.inject(fault[0], d.hal.ticks_ms(), fault[1])
    d.check(expect_pass)
    evs = [L.decode_json(f[2])[0] for f in frames if f[0] == L.EVENT]
    checks = [e for e in evs if e["ev"] == "check"]
    assert len(checks) == 1, checks
    return checks[0], evs, d


def rows(ev):
    return dict((r["name"], r) for r in ev["electrodes"])


def near(x, want, tol):
    return x is not None and abs(x - want) <= tol


def test_fresh_contacts_solve_to_the_board_model():
    ev, evs, d = checked(ring4x1(), "h28-mc-4x1")
    assert ev["pass"] is True and "reason" not in ev and "electrode" not in ev, ev
    assert [r["name"] for r in ev["electrodes"]] == ["C1", "C5", "FC3", "CP3", "C3"]    # montage order
    r = rows(ev)
    for n in ("C1", "C5", "FC3", "CP3", "C3"):
        assert near(r[n]["z_ohm"], 8500, 400), (n, r[n])
    for n in ("C1", "C5", "FC3", "CP3"):
        assert near(r[n]["path_ohm"], 17000, 600), (n, r[n])
        assert r[n]["path_ohm"] == r[n]["z_ohm"] + r["C3"]["z_ohm"]
    assert r["C3"]["path_ohm"] is None
    assert ev["z_ohm"] == max(r[n]["path_ohm"] for n in ("C1", "C5", "FC3", "CP3"))
    assert ev["limit_ohm"] == 20000 and ev["current_uA"] == 100
    # C + 1 steps, all in CHECKING; then READY and START runs the session
    st = [e["state"] for e in evs if e["ev"] == "state"]
    assert st[-2:] == ["checking", "ready"], st
    d.send(L.START, {"sha256": d.app.sha})
    assert d.app.session is not None and d.app.session.kind == 0


def test_three_electrodes_and_the_return_listed_last_or_between():
    ev, _, _ = checked(tacs3(0), "h28-mc-tacs")
    assert ev["pass"] is True, ev
    assert [r["name"] for r in ev["electrodes"]] == ["F3", "P3", "Cz"]
    for r in ev["electrodes"]:
        assert near(r["z_ohm"], 8500, 400), r
    assert near(ev["z_ohm"], 17000, 600)


def test_a_liftoff_on_a_driven_electrode_fails_naming_it():
    ev, _, d = checked(ring4x1(), "h28-mc-lift-fc3", ("liftoff", "FC3"), expect_pass=False)
    assert ev["pass"] is False and ev["reason"] == "open-circuit" and ev["electrode"] == "FC3", ev
    r = rows(ev)
    assert r["FC3"]["path_ohm"] is None and r["FC3"]["z_ohm"] is None
    assert ev["z_ohm"] is None                     # a path is open: no largest one
    for n in ("C1", "C5", "CP3"):                  # the others measured all the same
        assert near(r[n]["path_ohm"], 17000, 600), r[n]
    assert d.app.state == L.LOADED and not d.hal.en
    # the first driven electrode too (the pair step then fails as well)
    ev, _, _ = checked(ring4x1(), "h28-mc-lift-c1", ("liftoff", "C1"), expect_pass=False)
    assert ev["pass"] is False and ev["electrode"] == "C1" and ev["reason"] == "open-circuit", ev
    assert rows(ev)["C1"]["path_ohm"] is None and rows(ev)["C3"]["z_ohm"] is None


def test_a_liftoff_on_the_return_fails_every_path_and_names_it():
    for proto, ret, tag in ((ring4x1(), "C3", "h28-mc-lift-c3"), (tacs3(0), "Cz", "h28-mc-lift-cz")):
        ev, _, d = checked(proto, tag, ("liftoff", ret), expect_pass=False)
        assert ev["pass"] is False and ev["reason"] == "open-circuit" and ev["electrode"] == ret, ev
        assert all(r["path_ohm"] is None for r in ev["electrodes"]), ev
        assert ev["z_ohm"] is None
        assert d.app.state == L.LOADED


def test_a_high_path_fails_without_a_fault():
    p = ring4x1()
    p["safety"]["impedance_max_ohm"] = 12000       # the 17 kOhm paths are over it
    ev, _, _ = checked(p, "h28-mc-high", expect_pass=False)
    assert ev["pass"] is False and "reason" not in ev and ev["limit_ohm"] == 12000, ev
    assert near(ev["z_ohm"], 17000, 600)


def test_two_electrode_check_unchanged_and_multicheck_not_loaded():
    sys.modules.pop("tes.multicheck", None)
    two = tacs3(0)
    two["montage"]["electrodes"] = two["montage"]["electrodes"][1:]        # P3 driven, Cz the return
    two["segments"][0]["currents"] = two["segments"][0]["currents"][1:]
    ev, evs, _ = checked(two, "h28-mc-two")
    assert sorted(ev) == ["current_uA", "ev", "limit_ohm", "pass", "t_ms", "z_ohm"], ev
    assert ev["pass"] is True and near(ev["z_ohm"], 8500, 300)     # hal.sim's one-contact model
    assert "tes.multicheck" not in sys.modules


def test_abort_mid_check_ends_it_without_another_step():
    d = DeviceRun(tacs3(0), "h28-mc-abort", start=False)
    frames = []
    dec = L.Decoder()
    d.port.write = lambda data: frames.extend(dec.feed(bytes(data)))
    d.load()
    d.send(L.CHECK)
    while d.app.session.mcheck.k < 1:          # into the second step
        d.step()
    d.send(L.ABORT)
    assert d.app.session is None and d.app.state == L.LOADED and not d.hal.en
    ev = [e for e in (L.decode_json(f[2])[0] for f in frames if f[0] == L.EVENT) if e["ev"] == "check"]
    assert len(ev) == 1 and ev[0]["pass"] is False and ev[0]["reason"] == "aborted", ev
    assert [r["path_ohm"] is not None for r in ev[0]["electrodes"]] == [True, False, False]
    for _ in range(50):                         # nothing starts again
        d.app.control_step() if d.app.session is not None else d.app.idle_step()
    assert d.app.session is None
