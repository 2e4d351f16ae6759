"""docs/protocols.md documents every protocol field, every limit and every ready protocol."""
import re

from tes import validate as V
from tes.limits import CEILING
from tesctl import paths, protofile

DOC = (paths.ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")


def documented(name):
    return re.search(r"(?<![\w])%s(?![\w])" % re.escape(name), DOC) is not None


def test_every_file_field_documented():
    for table in (protofile.STIM_FIELDS, protofile.SHAM_FIELDS, protofile.MONTAGE_FIELDS,
                  protofile.SAFETY_FIELDS):
        for key, (canonical, _, _) in table.items():
            assert documented(key), key
            assert documented(canonical), canonical
    for key in protofile.TOP_FIELDS:
        assert documented(key), key
    assert documented("pause_s") and documented("enabled")


def test_every_canonical_key_documented():
    for keys in (V.STIM_KEYS, V.PAUSE_KEYS, V.SHAM_KEYS, V.TOP_KEYS, V.MONTAGE_KEYS, V.SAFETY_KEYS):
        for key in keys:
            assert documented(key), key


def test_every_limit_documented_with_its_value():
    for key, value in CEILING.items():
        rows = [line for line in DOC.splitlines() if line.startswith("| `%s` |" % key)]
        assert rows, key
        assert str(value) in rows[0].replace(",", ""), (key, value, rows[0])


def test_defaults_match_code():
    for key, default in protofile.STIM_DEFAULTS.items():
        rows = [line for line in DOC.splitlines() if line.startswith("| `%s` |" % key)]
        assert rows, key
        shown = ("true" if default else "false") if isinstance(default, bool) else default
        assert "`%s`" % shown in rows[0] or "`\"%s\"`" % shown in rows[0], (key, default, rows[0])
    assert str(protofile.DEFAULT_SAMPLE_RATE) in DOC and str(protofile.DEFAULT_IMPEDANCE_MAX) in DOC


def test_every_ready_protocol_listed():
    for p in paths.PROTOCOLS.glob("*.toml"):
        assert "`%s`" % p.name in DOC, p.name


def test_schema_comment_documented():
    assert "#:schema ./schema.json" in DOC
