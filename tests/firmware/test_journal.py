"""Journal: append/read, torn writes, recovery after a reset (real files)."""
import os

from tes import journal

SHA = "ab" * 32


def fresh(name):
    d = "build/journal-test-" + name
    for p in ("build", d):
        try:
            os.mkdir(p)
        except OSError:
            pass
    try:
        os.remove(d + "/" + journal.NAME)
    except OSError:
        pass
    return d


def rec(i, outcome="completed"):
    return {"id": i, "protocol_sha256": SHA, "start_ms": 10 * i, "end_ms": 10 * i + 5,
            "outcome": outcome, "reason": "", "delivered_charge_uC": 100 * i}


def test_append_read():
    d = fresh("a")
    assert journal.read(d) == []
    for i in range(1, 4):
        journal.append(d, rec(i))
    got = journal.read(d)
    assert [r["id"] for r in got] == [1, 2, 3] and got[2]["delivered_charge_uC"] == 300


def test_torn_tail_and_garbage_keep_earlier_records():
    d = fresh("b")
    journal.append(d, rec(1))
    journal.append(d, rec(2))
    path = d + "/" + journal.NAME
    with open(path) as f:
        data = f.read()
    with open(path, "w") as f:          # a reset mid-write: half of record 2 made it
        f.write(data[: len(data) - 20])
    assert [r["id"] for r in journal.read(d)] == [1]
    with open(path, "a") as f:
        f.write("\x00\xff garbage J1 12345678 {}\n")
    assert [r["id"] for r in journal.read(d)] == [1]
    journal.append(d, rec(3))           # starts on a line of its own after the torn one
    assert [r["id"] for r in journal.read(d)] == [1, 3]


def test_flipped_byte_fails_crc():
    d = fresh("c")
    journal.append(d, rec(1))
    journal.append(d, rec(2))
    path = d + "/" + journal.NAME
    with open(path) as f:
        lines = f.read().split("\n")
    lines[0] = lines[0].replace('"delivered_charge_uC": 100', '"delivered_charge_uC": 900')
    with open(path, "w") as f:
        f.write("\n".join(lines))
    assert [r["id"] for r in journal.read(d)] == [2]


def test_open_close_and_recover_after_reset():
    d = fresh("d")
    sid = journal.begin(d, SHA, 0)
    journal.finish(d, sid, "completed", "", 2400, 1260000)
    sid2 = journal.begin(d, SHA, 1300000)
    assert sid2 == sid + 1
    journal.checkpoint(d, sid2, 700, 1400000)
    # the board resets here: no finish(); next boot:
    fixed = journal.recover(d, 5)
    assert len(fixed) == 1
    r = fixed[0]
    assert (r["id"], r["outcome"], r["reason"], r["delivered_charge_uC"]) == (sid2, "fault", "reset", 700)
    assert r["protocol_sha256"] == SHA and r["start_ms"] == 1300000
    s = journal.sessions(d)
    assert [x["outcome"] for x in s] == ["completed", "fault"]
    assert journal.recover(d) == []     # nothing open any more


def test_stimulation_time_in_closing_records_and_through_a_reset():
    d = fresh("stim")
    sid = journal.begin(d, SHA, 100)
    r = journal.finish(d, sid, "fault", "host-lost", 900, 7100, stim_ms=6800)
    assert journal.sessions(d)[-1] == r and r["stim_ms"] == 6800 and r["end_ms"] == 7100
    # Closed at boot: end_ms and stim_ms are the last checkpoint's (the clock start_ms
    # counts on is gone), boot_ms is the new boot's clock.
    sid = journal.begin(d, SHA, 8000)
    journal.checkpoint(d, sid, 300, 9000, stim_ms=950)
    r = journal.recover(d, 12)[0]
    assert (r["start_ms"], r["end_ms"], r["stim_ms"], r["boot_ms"]) == (8000, 9000, 950, 12)
    sid = journal.begin(d, SHA, 20000)
    r = journal.recover(d, 7)[0]                    # no checkpoint: both unknown
    assert (r["id"], r["end_ms"], r["stim_ms"], r["boot_ms"]) == (sid, None, None, 7)
    assert journal.sessions(d)[-1] == r


def test_recover_takes_the_charge_the_board_retained_through_the_reset():
    d = fresh("r")
    sid = journal.begin(d, SHA, 0)
    journal.checkpoint(d, sid, 300, 1000)
    rec = journal.recover(d, 9, (sid, 4500, 61234))[0]
    assert rec["delivered_charge_uC"] == 4500 and rec["stim_ms"] == 61234
    sid = journal.begin(d, SHA, 2000)
    journal.checkpoint(d, sid, 300, 3000)
    # Another session's figure, or one older than the journal's, is not this session's.
    rec = journal.recover(d, 9, (sid - 1, 4500, 61234))[0]
    assert rec["delivered_charge_uC"] == 300 and rec["stim_ms"] != 61234
    sid = journal.begin(d, SHA, 4000)
    journal.checkpoint(d, sid, 300, 5000)
    assert journal.recover(d, 9, (sid, 200, 0))[0]["delivered_charge_uC"] == 300


def test_bad_outcome_refused():
    d = fresh("e")
    sid = journal.begin(d, SHA, 0)
    try:
        journal.finish(d, sid, "open", "", 0, 1)
        raise AssertionError("accepted")
    except ValueError:
        pass


def test_compact_keeps_the_latest_record_of_each_session():
    d = fresh("compact")
    for sid in range(1, 6):
        journal.begin(d, "ab" * 32, sid * 1000, sid=sid)
        rec = journal.open_record(sid, "ab" * 32, sid * 1000)
        for k in range(5):
            journal.checkpoint(d, sid, k * 10, sid * 1000 + k, opened=rec)
        journal.finish(d, sid, "completed", "completed", 99, sid * 1000 + 9, opened=rec)
    before = journal.sessions(d)
    assert len(journal.read(d)) == 5 * 7
    assert journal.compact(d, keep=3) == 3
    after = journal.read(d)
    assert after == before[-3:]
    assert journal.next_id(d) == 6

