"""Blinded studies (docs/study.md): a study folder made from STUDY.toml, the sealed
allocation, the arm a run uses, and unblinding.

STUDYDIR/study.json   arms (protocols, in clear: the arms are public, who gets which is
                      not), participants, per participant the arm locked under the run
                      key, the allocation table sealed to the study public key
STUDYDIR/run.key      the run key: lets `run --study` pick the arm on this machine
STUDYDIR/sessions/    the blinded session records
KEY (elsewhere)       the private key: the unblinded study manager's only
"""
import csv
import io
import json
import os
import random
import sys
import uuid
from pathlib import Path

from tesctl import protofile
from tesctl import seal as S
from tesctl.errors import InputError, safe_text
from tesctl.recorder import now_iso, write_json_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FORMAT = 1
ARM_PAD = 64                  # a locked arm name: every participant's entry the same size
TABLE_PAD_BASE = 4096            # the sealed allocation: padded to a size set by the participant count only
TABLE_PAD_EACH = 128
STUDY_FILE = "study.json"
RUN_KEY_FILE = "run.key"
SESSIONS = "sessions"
SOFT_RAMP_MS = 1000             # the device supervisor's soft stop ramp (firmware tes/supervisor.py)


class StudyError(InputError):
    """A study file, option or key that is wrong (exit 2)."""


# ---- STUDY.toml -> a study ------------------------------------------------------------
def read_spec(path):
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise StudyError("%s: cannot read (%s)" % (safe_text(path), e.strerror or e)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise StudyError("%s: not TOML: %s" % (safe_text(path), e)) from None
    return doc


def arm_sources(doc, base_dir, limits):
    """{arm: (source text, Loaded)}; every arm valid on the board; all of them the same
    length (and the same impedance limit: the pre-check shows it), or StudyError."""
    from tesctl.resources import resolve
    from tesctl.runner import total_ms
    arms = doc.get("arms")
    if not isinstance(arms, dict) or len(arms) < 2:
        raise StudyError("[arms] must name at least two arms, e.g. active = \"tdcs-anodal-dlpfc\", "
                         "sham = \"tdcs-sham\"")
    out = {}
    for name, ref in arms.items():
        if not isinstance(ref, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise StudyError("arms.%s: an arm is a name (letters, digits, - _) = a protocol file or ready "
                             "protocol name" % safe_text(name))
        p = Path(ref)
        path = str(base_dir / p) if not p.is_absolute() and (base_dir / p).exists() else resolve(ref)
        try:
            data = protofile.read_protocol(path)
        except (OSError, ValueError) as e:
            raise StudyError("arms.%s: %s: %s" % (name, safe_text(ref), getattr(e, "strerror", None) or e)) \
                from None
        loaded = protofile.check_data(data, limits, name)
        if not loaded.ok:
            raise StudyError("arms.%s (%s) is not valid: %s" % (name, safe_text(ref), loaded.problems[0]))
        refused = protofile.refuse_multi(loaded.canonical, "a study")
        if refused:
            raise StudyError("arms.%s (%s): %s" % (name, safe_text(ref), refused))
        out[name] = (data.decode("utf-8"), loaded)
    lengths = {n: total_ms(ld.canonical) for n, (_, ld) in out.items()}
    if len(set(lengths.values())) != 1:
        raise StudyError("the arms must last exactly as long (a sham as long as the real session): %s" % ", ".join(
            "%s %d ms" % kv for kv in lengths.items()))
    limits_z = {n: ld.canonical["safety"]["impedance_max_ohm"] for n, (_, ld) in out.items()}
    if len(set(limits_z.values())) != 1:
        raise StudyError("the arms must have the same safety.impedance_max_ohm (the pre-check shows it): %s"
                         % ", ".join("%s %d" % kv for kv in limits_z.items()))
    return out


def participants(doc):
    """[(code, stratum or None)] in the order given."""
    p = doc.get("participants")
    if not isinstance(p, dict):
        raise StudyError("[participants] is missing: codes = [...] or count = N (prefix = \"P\")")
    codes = p.get("codes")
    if codes is None and isinstance(p.get("count"), int) and p["count"] > 0:
        prefix = str(p.get("prefix", "P"))
        width = max(2, len(str(p["count"])))
        codes = ["%s%0*d" % (prefix, width, i + 1) for i in range(p["count"])]
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes):
        raise StudyError("participants.codes must be a list of codes (or give participants.count)")
    for c in codes:
        if not all(ch.isalnum() or ch in "-_" for ch in c) or len(c) > 32:
            raise StudyError("participant code %r: letters, digits, - and _ only, at most 32" % safe_text(c))
    if len(set(codes)) != len(codes):
        raise StudyError("participants.codes has a code twice")
    strata = p.get("strata", {})
    if not isinstance(strata, dict):
        raise StudyError("participants.strata must be a table: code = \"stratum\"")
    unknown = sorted(set(strata) - set(codes))
    if unknown:
        raise StudyError("participants.strata names codes not in the study: %s" % ", ".join(unknown))
    return [(c, None if strata.get(c) is None else str(strata[c])) for c in codes]


def blocked(people, arms, block_size, seed, stratify):
    """Permuted blocks (each block holds every arm equally often), within each stratum when
    asked; the same seed gives the same table."""
    rng = random.Random(seed)
    if stratify and any(s is None for _, s in people):
        raise StudyError("allocation.stratify needs a stratum for every participant (participants.strata)")
    groups = {}
    for code, stratum in people:
        groups.setdefault(stratum if stratify else None, []).append(code)
    table = {}
    for key in sorted(groups, key=str):
        block = []
        for code in groups[key]:
            if not block:
                block = list(arms) * (block_size // len(arms))
                rng.shuffle(block)
            table[code] = block.pop()
    return table


def imported(path, people, arms):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise StudyError("allocation.import %s: %s" % (safe_text(path), e.strerror or e)) from None
    if not rows or not {"participant", "arm"} <= set(rows[0]):
        raise StudyError("allocation.import %s: needs the columns participant,arm" % safe_text(path))
    table = {r["participant"].strip(): r["arm"].strip() for r in rows}
    codes = [c for c, _ in people]
    missing = [c for c in codes if c not in table]
    extra = sorted(set(table) - set(codes))
    bad = sorted(set(a for a in table.values()) - set(arms))
    if missing or extra or bad:
        raise StudyError("allocation.import %s: %s" % (safe_text(path), "; ".join(filter(None, [
            missing and "no arm for %s" % ", ".join(missing), extra and "codes not in the study: %s" % ", ".join(extra),
            bad and "unknown arms: %s" % ", ".join(bad)]))))
    return {c: table[c] for c in codes}


def allocate(doc, people, arms, base_dir):
    """(table {code: arm}, how: the record of how it was made, sealed with it)."""
    a = doc.get("allocation", {})
    if not isinstance(a, dict):
        raise StudyError("[allocation] must be a table")
    if a.get("import"):
        path = base_dir / str(a["import"])
        return imported(path, people, arms), {"method": "imported", "file": str(a["import"])}
    size = a.get("block_size", 2 * len(arms))
    if not isinstance(size, int) or size <= 0 or size % len(arms):
        raise StudyError("allocation.block_size must be a positive multiple of the number of arms (%d)" % len(arms))
    seed = a.get("seed")
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "big")       # drawn here, recorded in the sealed table
    if not isinstance(seed, int):
        raise StudyError("allocation.seed must be an integer")
    stratify = bool(a.get("stratify", False))
    return blocked(people, arms, size, seed, stratify), {"method": "blocked", "block_size": size, "seed": seed,
                                                        "stratified": stratify}


def init(spec_path, out_dir, key_out, limits, board_name):
    """Make the study folder and the unblinding key file; -> the study dict."""
    spec_path = Path(spec_path)
    out_dir, key_out = Path(out_dir), Path(key_out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise StudyError("--out %s: exists and is not empty (a study is never overwritten)" % safe_text(out_dir))
    if key_out.exists():
        raise StudyError("--key-out %s: exists (a key is never overwritten)" % safe_text(key_out))
    if os.path.abspath(key_out).startswith(os.path.abspath(out_dir) + os.sep):
        raise StudyError("--key-out must be outside the study folder: whoever has the folder must not have the key")
    if not key_out.parent.is_dir():
        raise StudyError("--key-out %s: directory %s does not exist" % (safe_text(key_out), safe_text(key_out.parent)))
    doc = read_spec(spec_path)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise StudyError("%s: name = \"...\" is missing" % safe_text(spec_path))
    arms = arm_sources(doc, spec_path.parent, limits)
    people = participants(doc)
    table, how = allocate(doc, people, list(arms), spec_path.parent)
    private, public = S.new_keypair()
    run_key = S.new_run_key()
    any_loaded = next(iter(arms.values()))[1]
    from tesctl.runner import total_ms
    study = {
        "format": FORMAT, "name": name, "study_id": uuid.uuid4().hex, "created_at": now_iso(),
        "board": board_name, "public_key": public,
        "duration_ms": total_ms(any_loaded.canonical),
        "arms": {n: {"protocol_source": src, "protocol_sha256": ld.sha256(), "protocol_name": ld.canonical["name"]}
                 for n, (src, ld) in arms.items()},
        "participants": [{"code": c, "stratum": s,
                          "arm_locked": S.b64(S.lock(table[c].encode(), run_key, ARM_PAD))} for c, s in people],
        "allocation_sealed": S.b64(S.seal(json.dumps({"table": table, **how}, sort_keys=True).encode(),
                                          public, TABLE_PAD_BASE + TABLE_PAD_EACH * len(people))),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SESSIONS).mkdir()
    _write_secret(out_dir / RUN_KEY_FILE, run_key + "\n")
    _write_secret(key_out, "# tesctl study unblinding key: %s (%s). Keep it from the operator.\n%s\n"
                  % (name.replace("\n", " "), study["study_id"], private))
    write_json_atomic(str(out_dir / STUDY_FILE), study)
    return study


def _write_secret(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# ---- a study at run time --------------------------------------------------------------
def load(study_dir):
    d = Path(study_dir)
    try:
        with open(d / STUDY_FILE, encoding="utf-8") as f:
            study = json.load(f)
    except OSError as e:
        raise StudyError("--study %s: no study there (%s)" % (safe_text(d), e.strerror or e)) from None
    except ValueError:
        raise StudyError("--study %s: %s is not JSON" % (safe_text(d), STUDY_FILE)) from None
    if not isinstance(study, dict) or study.get("format") != FORMAT:
        raise StudyError("--study %s: not a tesctl study (format %s)" % (safe_text(d), FORMAT))
    return study


def participant_entry(study, code):
    for p in study["participants"]:
        if p["code"] == code:
            return p
    raise StudyError("participant %s is not in study %s" % (safe_text(code), safe_text(study["name"])))


def arm_for(study_dir, study, code, limits):
    """The participant's protocol (a Loaded), validated on the board; its arm's name is
    returned too for the sealed record only: callers must not show it."""
    entry = participant_entry(study, code)
    try:
        run_key = (Path(study_dir) / RUN_KEY_FILE).read_text().strip()
    except OSError as e:
        raise StudyError("--study %s: cannot read %s (%s): the study's run key is needed to run it"
                         % (safe_text(study_dir), RUN_KEY_FILE, e.strerror or e)) from None
    arm = S.unlock(S.unb64(entry["arm_locked"], "arm_locked"), run_key).decode()
    if arm not in study["arms"]:
        raise StudyError("study.json: participant %s's arm is not one of the study's" % safe_text(code))
    # Every arm is checked, whichever this participant's is: a refusal for one arm only
    # would tell which arm it is. Said without the arm's name or the problem, for the same reason.
    checked = {a: protofile.check_data(v["protocol_source"].encode(), limits, "study arm")
               for a, v in study["arms"].items()}
    if not all(ld.ok for ld in checked.values()):
        raise StudyError("a protocol of this study is not valid on this board (check the arms with tesctl "
                         "validate --board)")
    return arm, checked[arm]


# ---- unblinding ----------------------------------------------------------------------
def read_key(path):
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise StudyError("--key %s: %s" % (safe_text(path), e.strerror or e)) from None
    keys = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    if len(keys) != 1:
        raise StudyError("--key %s: not a tesctl unblinding key file" % safe_text(path))
    return keys[0]


def allocation(study, private):
    return json.loads(S.unseal(S.unb64(study["allocation_sealed"], "allocation_sealed"), private))


def sealed_sessions(study, study_dir, extra=()):
    """The sealed session folders of this study: STUDYDIR/sessions/* and the ones given
    (recorded with --out elsewhere); a folder of another study is refused."""
    from tesctl import blindrec
    sessions = Path(study_dir) / SESSIONS
    found = sorted(p for p in sessions.iterdir() if p.is_dir()) if sessions.is_dir() else []
    found = [d for d in found if (d / blindrec.SEALED_FILE).exists()]
    for d in map(Path, extra):
        if not (d / blindrec.SEALED_FILE).exists():
            raise StudyError("%s: no %s (not a blinded session folder)" % (safe_text(d), blindrec.SEALED_FILE))
        found.append(d)
    out = []
    for d in found:
        try:
            clear = json.loads((d / "session.json").read_text())
        except (OSError, ValueError):
            clear = {}
        if clear.get("study_id") not in (None, study["study_id"]):
            raise StudyError("%s: a session of another study (%s)" % (safe_text(d), safe_text(clear.get("study_name"))))
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def unblind(study_dir, key_path, to_dir, extra=()):
    """Open every sealed session of the study into a normal record under to_dir, and
    write to_dir/allocation.tsv; -> (allocation, [(record name, participant, arm)])."""
    from tesctl import blindrec
    study = load(study_dir)
    private = read_key(key_path)
    alloc = allocation(study, private)
    to_dir = Path(to_dir)
    if os.path.abspath(to_dir).startswith(os.path.abspath(study_dir) + os.sep):
        raise StudyError("--to must be outside the study folder: whoever has the folder must stay blind")
    if to_dir.exists() and any(to_dir.iterdir()):
        raise StudyError("--to %s: exists and is not empty (no record is ever overwritten)" % safe_text(to_dir))
    found = sealed_sessions(study, study_dir, extra)
    to_dir.mkdir(parents=True, exist_ok=True)
    opened = []
    for d in found:
        name = d.name
        n = 2
        while (to_dir / name).exists():          # two folders of the same name from different places
            name, n = "%s-%d" % (d.name, n), n + 1
        meta = blindrec.open_sealed(d, private, to_dir / name)
        opened.append((name, meta.get("participant"), meta.get("study_arm")))
    buf = io.StringIO()
    buf.write("participant\tstratum\tarm\tsessions\n")
    for p in study["participants"]:
        mine = [name for name, code, _ in opened if code == p["code"]]
        buf.write("%s\t%s\t%s\t%s\n" % (p["code"], p.get("stratum") or "n/a", alloc["table"][p["code"]],
                                        ",".join(mine) or "n/a"))
    (to_dir / "allocation.tsv").write_text(buf.getvalue())
    how = {k: v for k, v in alloc.items() if k != "table"}
    write_json_atomic(str(to_dir / "allocation.json"), {"study_id": study["study_id"], "name": study["name"],
                                                         "allocation": how, "table": alloc["table"]})
    return alloc, opened


class Blinding:
    """What `run --study` needs to hide the arm: the clear fields, the sealed ones, the key
    and the sealed record's fixed size."""

    def __init__(self, study_dir, study, code, arm, loaded):
        self.study_dir = str(study_dir)
        self.study = study
        self.code = code
        self.arm = arm
        self.loaded = loaded
        self.public_key = study["public_key"]
        self._fs = None
        self._stop_ms = None

    def title(self):
        return "blinded study %s, participant %s" % (self.study["name"], self.code)

    def clear_meta(self):
        return {"study_id": self.study["study_id"], "study_name": self.study["name"], "participant": self.code,
                "subject": self.code, "planned_duration_s": round(self.study["duration_ms"] / 1000.0, 3)}

    def sealed_meta(self):
        return {"study_id": self.study["study_id"], "study_name": self.study["name"], "participant": self.code,
                "subject": self.code, "study_arm": self.arm, "blinded_run": True}

    def stop_ramp_ms(self):
        """The longest ramp-down an operator stop can take in any arm of the study: the device
        ramps from where it is over the running segment's ramp_down_ms (a stimulation segment
        without one, or a pause, takes the supervisor's 1 s soft ramp). A blinded run holds the
        end of a stop this long after the request in every arm (docs/study.md)."""
        if self._stop_ms is None:
            ramps = [SOFT_RAMP_MS]
            for a in self.study["arms"].values():
                canon = protofile.parse(a["protocol_source"].encode())[0]
                ramps += [s.get("ramp_down_ms") or SOFT_RAMP_MS for s in canon["segments"] if s["kind"] == "stim"]
            self._stop_ms = max(ramps)
        return self._stop_ms

    def sealed_size(self, raw):
        from tesctl.blindrec import sealed_size
        if self._fs is None:
            # The fastest arm's rate: the bound must be the same whichever arm this is.
            self._fs = max(protofile.parse(a["protocol_source"].encode())[0]["sample_rate_hz"]
                           for a in self.study["arms"].values())
        return sealed_size(self.study["duration_ms"], self._fs, raw)


def default_session_dir(study_dir, code):
    from datetime import datetime
    return os.path.join(str(study_dir), SESSIONS, "%s-%s" % (code, datetime.now().strftime("%Y%m%d-%H%M%S")))
