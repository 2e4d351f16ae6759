"""`tesctl dac-compare` on synthetic DAC logs built from a known preview: a session embedded
among other latches (idle zeros, an impedance check), with errors, drops, extras, jitter."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hal.calib import conversion, ua_to_code
from tesctl.boards import resolve
from tesctl.daccompare import compare, report_lines
from tesctl.enginerun import write_csv

TESCTL = str(Path(sys.executable).parent / "tesctl")
FS = 1000
BOARD, _ = resolve("pico-mcp4922")
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
    with open(path, "w") as f:
        f.write("t_ns,dac_a,dac_b,enable\n")
        for t, a, en in rows:
            f.write("%d,%d,2048,%d\n" % (t, a, en))


def session_log(values, t0=2_000_000_000, jitter_ns=0, code_err=None, drop=(), extra=(), stop_at=None,
                lead_latches=0):
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
