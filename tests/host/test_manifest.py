"""firmware/manifest*.py (for freezing the firmware into a MicroPython build) list exactly
the modules deploy gives each board (tesctl.firmware.files_for), minus main.py, which
stays on the board's filesystem. Evaluated with the manifest functions stubbed the way
MicroPython's tools/manifestfile.py defines them (include, package)."""
from pathlib import Path

import pytest

from tesctl import firmware, paths


def frozen(manifest, seen=None):
    """-> the set of 'pkg/file.py' a manifest freezes from the firmware tree."""
    out = set() if seen is None else seen
    base = Path(manifest).parent

    def include(path):
        if path.startswith("$(PORT_DIR)"):
            return                              # the port's own modules: not ours to check
        frozen(base / path, out)

    def package(name, files=None, base_path="."):
        root = base / base_path / name
        names = files if files is not None else [p.name for p in root.glob("*.py")]
        for f in names:
            assert (root / f).exists(), (manifest, name, f)
            out.add("%s/%s" % (name, f))

    exec(compile(Path(manifest).read_text(), str(manifest), "exec"), {"include": include, "package": package})
    return out


@pytest.mark.parametrize("mcu", ["rp2", "esp32"])
def test_each_board_manifest_freezes_what_deploy_copies(mcu):
    got = frozen(paths.FIRMWARE / ("manifest_%s.py" % mcu))
    want = {f for f in firmware.files_for({"mcu": mcu}) if f != "main.py"}
    assert got == want, (sorted(got ^ want))
