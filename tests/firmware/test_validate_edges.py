"""The validator's documented figures as numbers, not as its own constants: a test that
reads V.MAX_AREA_MM2 moves with it. The electrode area may be up to 1000 cm^2 (larger
is no electrode), that is 100000 mm^2, and not one mm^2 more.
Plain asserts: runs under the unix port (tools/mptest.py) and CPython (pytest)."""
from tes import validate as V

from test_validate_bounds import LIM, proto


def area_problems(mm2):
    p = proto()
    p["montage"]["electrode_area_mm2"] = mm2
    return [x for x in V.check(p, LIM) if x[0] == "montage.electrode_area_mm2"]


def test_an_electrode_of_1000_cm2_is_the_largest_accepted():
    assert area_problems(100000) == []
    assert area_problems(99999) == []
    got = area_problems(100001)
    assert len(got) == 1 and got[0][1:4] == (100001, "<=", 100000), got
