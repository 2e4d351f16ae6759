"""A soft fault does not end checking (tes.control.Control.run): past a soft code's block
the rest of what sense() handed over is still checked, so a soft stop whose code comes
every block (host-lost) reaches its end on a driver that senses several blocks at once
(hal.rp2: up to SENSE_BLOCKS); a hard code stops at its block, whose place in the sense
buffers is last_at (the fault event's evidence). Both check paths: the per-block kernel
and kernel_run (supervisor.check_run's contract).
Plain asserts: runs under the unix port (tools/mptest.py), the 32-bit port and CPython."""
from tes import control as C
from tes import supervisor as S

from test_control import Sup, checked, make

SOFT = S.HOST_LOST
HARD = S.OPEN_CIRCUIT


class SupRun(Sup):
    """Sup with kernel_run over its scripted kernel, as supervisor.check_run does."""

    def __init__(self, codes=None):
        Sup.__init__(self, codes)
        k = self.kernel

        def kernel_run(st, sb, ib, vb, db, m, age, j0, b):
            j = 0
            while j < m:
                n = m - j
                if n > b:
                    n = b
                code = k(st, sb, ib, vb, db, n, age, j0 + j)
                j += n
                if code:
                    return (j << 5) | code
            return j << 5
        self.kernel_run = kernel_run


def setups(total, codes):
    """(hal, sup, control) with the per-block kernel and with kernel_run, at 5 kS/s (blocks
    of 5), each sense handing over up to 4 blocks."""
    out = []
    for cls in (Sup, SupRun):
        hal, eng, sup, c = make(5000, total, room=20)
        sup = cls(dict(codes))
        c = C.Control(hal, eng, sup, 5000)
        assert c._multi == (cls is SupRun)
        out.append((hal, sup, c))
    return out


def drive(hal, c, limit=500):
    """Passes until END; the DAC puts out everything written between passes. -> the codes."""
    got = []
    for _ in range(limit):
        code = c.step(0)
        if code == C.END:
            return got
        if code:
            got.append(code)
        hal.measure()
        hal.r = 20
    raise AssertionError("no END: written %d checked %d" % (c.written, c.checked))


def test_is_hard_inline_equals_the_supervisors():
    for code in range(32):
        inline = C.HARD_LO <= code <= C.HARD_HI or code >= C.MEMORY
        assert inline == S.is_hard(code), code


def test_a_persistent_soft_code_leaves_nothing_unchecked():
    # blocks 3 on return host-lost: every sample is still checked, in order, and it ends
    for hal, sup, c in setups(200, {k: SOFT for k in range(3, 200)}):
        got = drive(hal, c)
        assert got and all(x == SOFT for x in got)
        assert checked(sup) == list(range(1, 201)) and c.checked == c.written == 200
        assert all(len(b) == 5 for b in sup.blocks)


def test_one_soft_block_mid_batch_checks_the_rest_of_the_batch():
    for hal, sup, c in setups(40, {2: SOFT}):
        assert c.step(0) == 0 and c.written == 20    # nothing measured yet
        hal.measure()
        assert c.step(0) == SOFT
        assert c.checked == 20 and len(sup.blocks) == 4   # blocks 3 and 4 too
        assert checked(sup) == list(range(1, 21))


def test_a_hard_code_after_a_soft_one_stops_at_its_block():
    for hal, sup, c in setups(40, {2: SOFT, 3: HARD}):
        c.step(0)
        hal.measure()
        assert c.step(0) == HARD
        assert len(sup.blocks) == 3 and c.checked == 15      # block 4 is not checked
        assert (c.last_at, c.last_m) == (10, 5)
        assert list(c.sb[c.last_at:c.last_at + c.last_m]) == [11, 12, 13, 14, 15]


def test_a_hard_code_in_a_later_block_is_its_own_evidence():
    for blk in (1, 2, 4):
        for hal, sup, c in setups(40, {blk: HARD}):
            c.step(0)
            hal.measure()
            assert c.step(0) == HARD
            a = 5 * (blk - 1)
            assert (c.last_at, c.last_m, c.checked, len(sup.blocks)) == (a, 5, a + 5, blk)
            assert list(c.sb[a:a + 5]) == list(range(a + 1, a + 6))
