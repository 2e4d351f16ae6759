"""`tesctl dac-compare` on synthetic DAC logs built from a known preview: a session embedded
among other latches (idle zeros, an impedance check), with errors, drops, extras, jitter."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hal.calib import conversion, ua_to_code
from tesctl.boards import resolve
from tesctl.daccompare import CompareError, compare, report_lines
from tesctl.enginerun import write_csv, write_csv_multi

TESCTL = str(Path(sys.executable).parent / "tesctl")
FS = 1000
BOARD, _ = resolve("pico-mcp4922")
BOARD2, _ = resolve("pico2-mcp4922")       # two current sources: channel A source 1, B source 2
CONV = conversion(BOARD)
Z = CONV["zero_code"]


def preview_values(n=3000):
    # 10 Hz sine, 1 mA peak, under a 0.5 s linear ramp at each end (integer uA, as the engine).
    out = []
    for k in range(n):
        env = min(1.0, k / 500, (n - 1 - k) / 500)
        out.append(int(round(1000 * env * math.sin(2 * math.pi * 10 * k / FS))))
    return out


def write_log(path, rows):
    """rows: (t_ns, a, enable), channel B at zero code, or (t_ns, a, b, enable)."""
    with open(path, "w") as f:
        f.write("t_ns,dac_a,dac_b,enable\n")
        for row in rows:
            t, a, b, en = row if len(row) == 4 else (row[0], row[1], Z, row[2])
            f.write("%d,%d,%d,%d\n" % (t, a, b, en))


def session_log(values, t0=2_000_000_000, jitter_ns=0, code_err=None, drop=(), extra=(), stop_at=None,
                lead_latches=0, values_b=None, code_err_b=None):
    """values_b: channel B's currents in the session (rows then carry B; zero code outside)."""
    if values_b is not None:
        rows = session_log(values, t0, jitter_ns, code_err, drop, extra, stop_at, lead_latches)
        k = -1
        out = []
        for t, a, en in rows:
            # The session's latches are the ones on or just after its grid (extras are +0.4 ms).
            g = (t - t0 + 450_000) // 1_000_000
            if t >= t0 - 450_000 and g < len(values) and (t - t0 + 450_000) % 1_000_000 <= 900_000:
                k = g
                b = ua_to_code(CONV, values_b[k]) + (code_err_b or {}).get(k, 0)
            else:
                b = Z
            out.append((t, a, b, en))
        return out
    rows = [(0, 0, 0), (1_000_000, Z, 0)]
    t = 1_000_000_000
    rows.append((t, Z, 1))                         # impedance check: enable, 300 latches at 100 uA
    for k in range(300):
        rows.append((t + k * 1_000_000, ua_to_code(CONV, 100), 1))
    rows.append((t + 300 * 1_000_000, Z, 0))
    for k in range(200):                           # idle zero latches at the old rate
        rows.append((1_400_000_000 + k * 1_000_000, Z, 0))
    rows.append((t0 - 1000 - lead_latches * 1_000_000, Z, 1))     # the session enables the output
    for k in range(lead_latches):                  # a board's queue: zeros before the first sample
        rows.append((t0 - (lead_latches - k) * 1_000_000, Z, 1))
    for k, uA in enumerate(values):
        if k in drop:
            continue
        code = ua_to_code(CONV, uA) if stop_at is None or k < stop_at else Z
        if code_err and k in code_err:
            code += code_err[k]
        jit = jitter_ns if k % 2 else -jitter_ns
        rows.append((t0 + k * 1_000_000 + jit, code, 1))
        if k in extra:
            rows.append((t0 + k * 1_000_000 + 400_000, code, 1))
    end = t0 + len(values) * 1_000_000
    rows.append((end, Z, 0))
    for k in range(100):
        rows.append((end + (k + 1) * 1_000_000, Z, 0))
    return rows


@pytest.fixture
def files(tmp_path):
    values = preview_values()
    preview = tmp_path / "preview.csv"
    write_csv(str(preview), values, FS)
    return values, preview, tmp_path / "dac.csv"


def test_a_faithful_session_passes_and_is_found_where_it_is(files):
    values, preview, log = files
    write_log(log, session_log(values, jitter_ns=3000))
    r = compare(log, preview, BOARD)
    assert r.ok
    assert (r.samples, r.compared, r.within0, r.missing, r.extra) == (3000, 3000, 3000, 0, 0)
    assert r.first_bad_s is None
    assert r.t0_s == pytest.approx(2.0, abs=1e-5)
    assert r.worst_grid_us == pytest.approx(6.0, abs=0.01)   # the grid is anchored on a late first latch
    assert r.interval_mean_us == pytest.approx(1000.0, abs=0.01)
    assert "PASS" in report_lines(r)[-1]


def test_a_session_whose_first_sample_comes_latches_after_the_enable_is_found(files):
    # hal.rp2 puts out zeros for GAP_MS (and the queue's priming) after the enable: at
    # 1 kS/s 32 latches, more than the old search window; the ramp's first samples are zero
    # codes too, so only the whole session tells where it starts.
    values, preview, log = files
    write_log(log, session_log(values, lead_latches=32))
    r = compare(log, preview, BOARD)
    assert r.ok and r.within0 == 3000 and r.t0_s == pytest.approx(2.0, abs=1e-5)


def test_one_code_off_passes_two_codes_off_fails(files):
    values, preview, log = files
    write_log(log, session_log(values, code_err={k: 1 for k in range(600, 700)}))
    r = compare(log, preview, BOARD)
    assert r.ok and r.within0 == 2900 and r.within1 == 3000
    write_log(log, session_log(values, code_err={k: -2 for k in range(600, 604)}))
    r = compare(log, preview, BOARD)
    assert r.within1 == 2996 and not r.ok                     # 99.87 % < 99.9 %
    assert r.worst_codes == -2
    assert r.worst_uA == pytest.approx(-2 * 3960 / 1800)
    assert r.worst_at_s == pytest.approx(0.600)
    assert r.first_bad_s == pytest.approx(0.600)


def test_missing_and_extra_latches_are_counted(files):
    values, preview, log = files
    write_log(log, session_log(values, drop={1500}, extra={2000, 2001}))
    r = compare(log, preview, BOARD)
    assert r.missing == 1 and r.extra == 2
    assert not r.ok
    assert "FAIL" in report_lines(r)[-1]


def test_a_session_that_stopped_early_is_still_found(files):
    values, preview, log = files
    write_log(log, session_log(values, stop_at=380))
    r = compare(log, preview, BOARD)
    assert r.t0_s == pytest.approx(2.0, abs=1e-5)
    assert r.within0 >= 380
    assert r.share1 < 0.5 and not r.ok
    assert 0.380 <= r.first_bad_s < 0.5


def test_without_enable_events_the_codes_find_the_session(files):
    # A board with no enable pin: the log's enable column never changes.
    values, preview, log = files
    rows = [(t, a, 1) for t, a, _ in session_log(values, drop={700})]
    write_log(log, rows)
    r = compare(log, preview, BOARD)
    assert r.t0_s == pytest.approx(2.0, abs=1e-5)
    assert (r.missing, r.within1) == (1, 2999)


def test_cli_exit_codes(files, tmp_path):
    values, preview, log = files
    write_log(log, session_log(values))
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(preview), "--board", "pico-mcp4922"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "within 1 code 3000 (100.00%)" in p.stdout
    write_log(log, session_log(values, drop={10}))
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(preview)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "missing 1" in p.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    p = subprocess.run([TESCTL, "dac-compare", str(bad), str(preview)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("tesctl: ") and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(tmp_path / "none.csv")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "cannot read" in p.stderr


# Two current sources (pico2-mcp4922): channel A drives the first electrode, B the second.

def antiphase_values(n=3000):
    # Source 2: a 7 Hz sine, 600 uA peak, in antiphase, under the same ramps (not a mirror of A).
    out = []
    for k in range(n):
        env = min(1.0, k / 500, (n - 1 - k) / 500)
        out.append(int(round(-600 * env * math.sin(2 * math.pi * 7 * k / FS))))
    return out


@pytest.fixture
def files2(tmp_path):
    va, vb = preview_values(), antiphase_values()
    preview = tmp_path / "preview2.csv"
    write_csv_multi(str(preview), [("F3", va), ("P3", vb), ("Cz", [-(x + y) for x, y in zip(va, vb)])], FS)
    return va, vb, preview, tmp_path / "dac2.csv"


def test_the_multi_preview_header_drives_the_columns_before_the_return(files2):
    from tesctl.daccompare import read_preview
    va, vb, preview, _ = files2
    assert preview.read_text().splitlines()[0] == "t_s,F3_uA,P3_uA,Cz_uA"
    fs, cols = read_preview(preview)
    assert fs == FS and [name for name, _ in cols] == ["F3", "P3"]
    assert cols[0][1] == va and cols[1][1] == vb


def test_two_channels_that_match_pass(files2):
    va, vb, preview, log = files2
    write_log(log, session_log(va, values_b=vb, jitter_ns=2000))
    r = compare(log, preview, BOARD2)
    assert r.ok
    assert (r.samples, r.compared, r.within0, r.within1, r.missing, r.extra) == (3000, 3000, 3000, 3000, 0, 0)
    assert r.t0_s == pytest.approx(2.0, abs=1e-5)
    assert [(c["channel"], c["electrode"], c["within0"]) for c in r.channels] == [("A", "F3", 3000), ("B", "P3", 3000)]
    lines = report_lines(r)
    assert any(line.startswith("channel B (P3): within 0 codes 3000") for line in lines)
    assert "PASS" in lines[-1]


def test_channel_b_two_codes_off_in_one_stretch_fails_there(files2):
    va, vb, preview, log = files2
    write_log(log, session_log(va, values_b=vb, code_err_b={k: 2 for k in range(1200, 1210)}))
    r = compare(log, preview, BOARD2)
    assert not r.ok
    assert r.within1 == 2990 and r.within0 == 2990
    assert r.first_bad_s == pytest.approx(1.200)
    assert r.worst_codes == 2 and r.worst_at_s == pytest.approx(1.200)
    a, b = r.channels
    assert a["within1"] == 3000 and a["first_bad_s"] is None and a["worst_codes"] == 0
    assert b["within1"] == 2990 and b["first_bad_s"] == pytest.approx(1.200) and b["worst_codes"] == 2
    assert b["worst_uA"] == pytest.approx(2 * 3960 / 1800)
    assert "FAIL" in report_lines(r)[-1]
    # One code off on B alone is within the tolerance, but not exact.
    write_log(log, session_log(va, values_b=vb, code_err_b={k: -1 for k in range(1200, 1300)}))
    r = compare(log, preview, BOARD2)
    assert r.ok and r.within0 == 2900 and r.within1 == 3000 and r.channels[1]["within0"] == 2900


def test_channel_b_with_its_sign_swapped_fails(files2):
    va, vb, preview, log = files2
    write_log(log, session_log(va, values_b=[-x for x in vb]))
    r = compare(log, preview, BOARD2)
    assert not r.ok
    assert r.channels[0]["within0"] == 3000
    assert r.channels[1]["within1"] < 1500 and r.within1 == r.channels[1]["within1"]
    assert abs(r.worst_codes) > 500       # 2 x 600 uA ~ 545 codes at the peaks
    assert r.first_bad_s is not None and r.first_bad_s < 0.2


def test_channels_swapped_fail(files2):
    # The firmware putting source 2 on channel A and source 1 on B: channel A still finds a
    # start somewhere (the search is on A), but nothing matches.
    va, vb, preview, log = files2
    write_log(log, session_log(vb, values_b=va))
    r = compare(log, preview, BOARD2)
    assert not r.ok and r.share1 < 0.5


def test_a_two_electrode_montage_holds_channel_b_at_zero_code(tmp_path):
    va = preview_values()
    preview = tmp_path / "bilateral.csv"
    write_csv_multi(str(preview), [("C4", va), ("C3", [-x for x in va])], FS)
    log = tmp_path / "dac.csv"
    write_log(log, session_log(va))                   # B at zero code throughout
    r = compare(log, preview, BOARD2)
    assert r.ok and r.within0 == 3000
    assert [(c["channel"], c["electrode"]) for c in r.channels] == [("A", "C4"), ("B", None)]
    assert any(line.startswith("channel B (not driven: zero code)") for line in report_lines(r))
    # A channel B that moves (here it follows A for 50 ms) is caught.
    moving = [x if 1000 <= k < 1050 else 0 for k, x in enumerate(va)]
    write_log(log, session_log(va, values_b=moving))
    r = compare(log, preview, BOARD2)
    assert not r.ok and r.first_bad_s == pytest.approx(1.000, abs=0.01)
    assert r.channels[0]["within0"] == 3000 and r.channels[1]["first_bad_s"] == r.first_bad_s
    assert r.channels[1]["worst_codes"] == r.worst_codes != 0
    # The same preview on a one-source board: one driven electrode, channel A only.
    r = compare(log, preview, BOARD)
    assert r.ok and r.within0 == 3000 and len(r.channels) == 1


def test_a_two_electrode_preview_on_the_two_source_board_expects_zero_code_on_b(files):
    values, preview, log = files
    write_log(log, session_log(values))
    assert compare(log, preview, BOARD2).ok
    write_log(log, session_log(values, values_b=values))     # B copying A: wrong
    r = compare(log, preview, BOARD2)
    assert not r.ok and r.channels[0]["within0"] == 3000 and r.channels[1]["within1"] < 1500


def test_a_calibration_per_source_is_used_for_its_channel(files2):
    va, vb, preview, log = files2
    board = dict(BOARD2, calibration=[BOARD2["calibration"], dict(BOARD2["calibration"], zero_code=2058)])
    write_log(log, session_log(va, values_b=vb))              # B made with source 1's calibration
    r = compare(log, preview, board)
    assert not r.ok and r.channels[0]["within0"] == 3000 and r.channels[1]["worst_codes"] != 0


def test_a_multi_preview_against_a_one_source_board_is_refused(files2):
    va, vb, preview, log = files2
    write_log(log, session_log(va, values_b=vb))
    with pytest.raises(CompareError, match=r"drives 2 electrodes \(F3, P3\).*1 current source"):
        compare(log, preview, BOARD)


def test_cli_two_channels(files2):
    va, vb, preview, log = files2
    write_log(log, session_log(va, values_b=vb))
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(preview), "--board", "pico2-mcp4922"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "within 1 code 3000 (100.00%)" in p.stdout and "channel B (P3): within 0 codes 3000" in p.stdout
    write_log(log, session_log(va, values_b=vb, code_err_b={k: -3 for k in range(2500, 2510)}))
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(preview), "--board", "pico2-mcp4922"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "first sample more than 1 code off: 2.500 s" in p.stdout
    p = subprocess.run([TESCTL, "dac-compare", str(log), str(preview), "--board", "pico-mcp4922"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "drives 2 electrodes" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
