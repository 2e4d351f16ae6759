"""Mutation testing of the safety modules: does the suite notice a broken rule?

    python tools/mutate.py [--module NAME]... [--jobs N] [--limit N] [--lines A-B,C] [--survivors]

Each mutant is one small fault put into one module at the source level (line numbers and
everything else unchanged): an arithmetic, comparison, boolean or bit operator swapped, a
constant moved by one, True/False swapped, a `not` or a minus dropped, a condition negated,
or one statement removed. The module's tests (MODULES below: fast unit and property tests,
the real CLI where the module's rule shows there) run against a private copy of the
repository with the mutant in place, under CPython (pytest) and, for the firmware test files
of the guard, under the MicroPython unix port too (tools/mptest.py; the firmware's own
interpreter, where the viper twins run and are compared with the plain code); a failing or
hanging test kills the mutant.

Mutants that cannot change behaviour are listed in tools/mutants_equivalent.txt with the
reason, matched by module, the source line's text and the mutation, so line shifts do not
lose them (a line text that occurs more than once in the module is "<text> [2]" from its
second occurrence on). The score per module is killed / (all - equivalent); the run fails (exit 1)
if any module scores below --min (95 %). Results: build/mutate/report.json.
Hypothesis runs derandomized here (profile "mutate", tests/conftest.py): same examples
for every mutant, so a score does not move from run to run.
"""
import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "mutate"
EQUIVALENT = ROOT / "tools" / "mutants_equivalent.txt"
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--hypothesis-profile=mutate"]
# The MicroPython unix port (make setup puts it in the venv); without it, CPython only.
MICROPYTHON = os.environ.get("MICROPYTHON") or shutil.which("micropython", path=str(Path(sys.executable).parent)) \
    or shutil.which("micropython")

# module -> the tests that guard it (paths relative to the repository)
MODULES = {
    # test_app_faults last: one of its tests runs ~17 s, the others kill most mutants first (-x)
    "firmware/tes/supervisor.py": ["tests/firmware/test_supervisor_rules.py", "tests/firmware/test_supervisor_fast.py",
                                   "tests/firmware/test_soft_stop.py", "tests/firmware/test_supervisor_sim.py",
                                   "tests/host/test_supervisor_props.py",
                                   "tests/firmware/test_changed_lines_mutants.py", "tests/firmware/test_app_faults.py"],
    # the validator's part of test_protocols only: its previews (~90 s) test the engine
    "firmware/tes/validate.py": ["tests/firmware/test_validate_bounds.py", "tests/firmware/test_validate_edges.py",
                                 "tests/host/test_schema.py",
                                 "tests/host/test_sham_fit.py",
                                 "tests/host/test_protocols.py::test_protocol_validates",
                                 "tests/host/test_validate_cli.py"],
    "firmware/tes/limits.py": ["tests/firmware/test_limits.py", "tests/firmware/test_board.py",
                               "tests/host/test_board_props.py", "tests/firmware/test_validate_bounds.py"],
    "firmware/tes/link.py": ["tests/firmware/test_link_bounds.py", "tests/firmware/test_link_contract.py",
                             "tests/firmware/test_link.py", "tests/firmware/test_link_telem.py",
                             "tests/firmware/test_link_edges.py", "tests/host/test_link_props.py",
                             "tests/firmware/test_changed_lines_mutants.py"],
    "firmware/tes/engine.py": ["tests/firmware/test_engine_ramps.py", "tests/firmware/test_engine_basic.py",
                               "tests/firmware/test_engine_fidelity.py", "tests/firmware/test_soft_stop.py",
                               "tests/firmware/test_engine_golden.py", "tests/firmware/test_changed_lines_mutants.py"],
    "firmware/hal/blocks.py": ["tests/firmware/test_blocks.py"],
    "firmware/tes/control.py": ["tests/firmware/test_control.py", "tests/firmware/test_control_run.py",
                                "tests/firmware/test_soft_stop.py",
                                "tests/firmware/test_supervisor_sim.py", "tests/firmware/test_app_faults.py",
                                "tests/firmware/test_control_soft.py"],
    "firmware/tes/multicontrol.py": ["tests/firmware/test_multicontrol.py", "tests/firmware/test_review_multi.py",
                                     "tests/firmware/test_app_multi.py", "tests/firmware/test_multi_lockout.py",
                                     "tests/firmware/test_multicontrol_mutants.py"],
    "host/tesctl/protofile.py": ["tests/host/test_protofile_golden.py", "tests/host/test_protofile_edges.py",
                                 "tests/host/test_protofile_mutants.py",
                                 "tests/host/test_protocols.py::test_protocol_validates",
                                 "tests/firmware/test_validate_bounds.py", "tests/host/test_validate_cli.py",
                                 "tests/host/test_schema.py", "tests/host/test_hostile_cli.py",
                                 "tests/host/test_ngvs.py"],
}

BINOP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "//", ast.FloorDiv: "*", ast.Div: "*", ast.Mod: "//",
         ast.LShift: ">>", ast.RShift: "<<", ast.BitAnd: "|", ast.BitOr: "&", ast.BitXor: "|"}
OPSYM = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%",
         ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"}
CMP = {ast.Lt: ("<", ["<=", ">="]), ast.LtE: ("<=", ["<", ">"]), ast.Gt: (">", [">=", "<="]),
       ast.GtE: (">=", [">", "<"]), ast.Eq: ("==", ["!="]), ast.NotEq: ("!=", ["=="]),
       ast.Is: ("is", ["is not"]), ast.IsNot: ("is not", ["is"]), ast.In: ("in", ["not in"]),
       ast.NotIn: ("not in", ["in"])}


class Mutant:
    def __init__(self, module, line, desc, start, end, text, source_line):
        self.module = module
        self.line = line
        self.desc = desc
        self.start = start          # character offsets into the module's source
        self.end = end
        self.text = text            # replacement
        self.source_line = source_line.strip()
        self.occurrence = 1         # the same line text elsewhere in the module: 2, 3, ...
        self.status = None
        self.reason = ""

    def key(self):
        text = self.source_line if self.occurrence == 1 else "%s [%d]" % (self.source_line, self.occurrence)
        return (self.module, text, self.desc)

    def apply(self, source):
        return source[:self.start] + self.text + source[self.end:]

    def __repr__(self):
        return "%s:%d %s" % (self.module, self.line, self.desc)


def _offsets(source):
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return lambda lineno, col: starts[lineno - 1] + col


def _docstrings(tree):
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _find_op(source, start, end, sym):
    """Offset of operator text sym in source[start:end], outside brackets' contents."""
    seg = source[start:end]
    depth = 0
    i = 0
    while i < len(seg):
        c = seg[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and seg.startswith(sym, i):
            after = seg[i + len(sym):i + len(sym) + 1]
            if sym.isalpha() or sym.startswith("is") or sym.startswith("not"):
                before = seg[i - 1:i] if i else " "
                if (before.isalnum() or before == "_") or (after.isalnum() or after == "_"):
                    i += 1
                    continue
            elif after in "=<>/*&|" and sym + after not in ("<=", ">=", "==", "!=") and not sym.endswith("="):
                # "<" must not match the start of "<<" or "<=": skip longer operators
                i += len(sym) + 1
                continue
            return start + i
        i += 1
    return None


def mutants_of(module):
    path = ROOT / module
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    off = _offsets(source)
    docs = _docstrings(tree)
    out = []

    def add(node_line, desc, start, end, text):
        src_line = lines[node_line - 1]
        if "pragma: no mutate" in src_line:
            return
        out.append(Mutant(module, node_line, desc, start, end, text, src_line))

    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in BINOP:
            if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)) \
                    and isinstance(getattr(node.left, "value", ""), str):
                continue     # "%d" % x: string formatting, not arithmetic
            sym = OPSYM[type(node.op)]
            a = off(node.left.end_lineno, node.left.end_col_offset)
            b = off(node.right.lineno, node.right.col_offset)
            at = _find_op(source, a, b, sym)
            if at is not None:
                new = BINOP[type(node.op)]
                add(node.lineno, "%s -> %s" % (sym, new), at, at + len(sym), new)
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP:
            sym = OPSYM[type(node.op)] + "="
            a = off(node.target.end_lineno, node.target.end_col_offset)
            b = off(node.value.lineno, node.value.col_offset)
            at = _find_op(source, a, b, sym)
            if at is not None:
                new = BINOP[type(node.op)] + "="
                add(node.lineno, "%s -> %s" % (sym, new), at, at + len(sym), new)
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                sym, news = CMP[type(op)]
                a = off(left.end_lineno, left.end_col_offset)
                b = off(right.lineno, right.col_offset)
                at = _find_op(source, a, b, sym.split()[0])
                if at is not None:
                    # "not in" / "is not": take the whole operator text
                    end = at + len(source[at:b].rstrip())
                    for new in news:
                        add(node.lineno, "%s -> %s" % (sym, new), at, end, new)
                left = right
        elif isinstance(node, ast.BoolOp):
            sym = "and" if isinstance(node.op, ast.And) else "or"
            new = "or" if sym == "and" else "and"
            for x, y in zip(node.values, node.values[1:]):
                a = off(x.end_lineno, x.end_col_offset)
                b = off(y.lineno, y.col_offset)
                at = _find_op(source, a, b, sym)
                if at is not None:
                    add(node.lineno, "%s -> %s" % (sym, new), at, at + len(sym), new)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            a = off(node.lineno, node.col_offset)
            b = off(node.operand.lineno, node.operand.col_offset)
            add(node.lineno, "drop %s" % ("not" if isinstance(node.op, ast.Not) else "unary -"), a, b, "")
        elif isinstance(node, ast.Constant) and id(node) not in docs:
            a = off(node.lineno, node.col_offset)
            b = off(node.end_lineno, node.end_col_offset)
            v = node.value
            if isinstance(v, bool):
                add(node.lineno, "%s -> %s" % (v, not v), a, b, str(not v))
            elif isinstance(v, int) and source[a:b].lstrip("-").isdigit():
                for new in (v + 1, v - 1):
                    add(node.lineno, "%d -> %d" % (v, new), a, b, str(new))
        elif isinstance(node, (ast.If, ast.While)) and not isinstance(node.test, (ast.Compare, ast.UnaryOp)):
            a = off(node.test.lineno, node.test.col_offset)
            b = off(node.test.end_lineno, node.test.end_col_offset)
            add(node.lineno, "negate condition", a, b, "not (%s)" % source[a:b])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in ast.walk(node):
                if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Expr)) and stmt.lineno == stmt.end_lineno \
                        and not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                    a = off(stmt.lineno, stmt.col_offset)
                    b = off(stmt.end_lineno, stmt.end_col_offset)
                    add(stmt.lineno, "delete statement", a, b, "pass")
    # Statement deletions inside nested functions are found twice: keep one of each.
    seen = set()
    unique = []
    for m in sorted(out, key=lambda m: (m.start, m.end, m.text)):
        k = (m.start, m.end, m.text)
        if k not in seen:
            seen.add(k)
            unique.append(m)
    # The same line text in several places (`busy = False` twice, say): the second and later
    # are keyed "<text> [2]", "[3]" in source order, so that declaring one does not hide another.
    first = {}
    for no, text in enumerate(lines, 1):
        first.setdefault(text.strip(), []).append(no)
    for m in unique:
        m.occurrence = first[m.source_line].index(m.line) + 1
    # The same mutation twice on one line (two 0s, say): the second is "... #2", so that
    # declaring one equivalent does not hide the other.
    count = {}
    for m in unique:
        k = (m.line, m.desc)
        count[k] = count.get(k, 0) + 1
        if count[k] > 1:
            m.desc += " #%d" % count[k]
    return unique


def load_equivalent():
    """{(module, line text, mutation): reason} from tools/mutants_equivalent.txt. The module
    is up to the first " | ", the mutation and the reason after the last two: a source
    line may hold " | " itself (a comment's "(k << 5) | code"); a reason may not."""
    eq = {}
    if not EQUIVALENT.exists():
        return eq
    for raw in EQUIVALENT.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        head = raw.split(" | ", 1)
        tail = head[-1].rsplit(" | ", 2)
        if len(head) != 2 or len(tail) != 3:
            raise SystemExit("%s: bad line (module | line | mutation | reason): %s" % (EQUIVALENT, raw))
        parts = [p.strip() for p in [head[0]] + tail]
        eq[tuple(parts[:3])] = parts[3]
    return eq


def make_worker(n):
    """A private copy of the repository's tracked (and new) files."""
    dest = BUILD / ("w%d" % n)
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def run_tests(worker, tests, timeout):
    """pytest (CPython) on the guard; when that passes, the guard's tests/firmware files
    again under the MicroPython unix port (tools/mptest.py), the interpreter the firmware
    runs on: there the viper twins exist and are compared with the plain code."""
    tests = [t for t in tests if (worker / t.split("::")[0]).exists()]   # file or file::test
    env = dict(os.environ, PYTHONPATH="%s:%s" % (worker / "firmware", worker / "host"),
               PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    try:
        r = subprocess.run(PYTEST + tests, cwd=worker, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            return "killed", time.monotonic() - t0, r.stdout[-2000:]
        out = r.stdout[-2000:]
        for t in tests:
            if not (t.startswith("tests/firmware/") and MICROPYTHON):
                continue
            left = None if timeout is None else max(1.0, timeout - (time.monotonic() - t0))
            r = subprocess.run([MICROPYTHON, "-X", "heapsize=16M", "tools/mptest.py", Path(t).stem], cwd=worker,
                               capture_output=True, text=True, timeout=left)
            if r.returncode:
                return "killed", time.monotonic() - t0, (r.stdout + r.stderr)[-2000:]
        return "survived", time.monotonic() - t0, out
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""


def _line_set(spec):
    """"455-490,29" -> {29, 455, ..., 490}."""
    out = set()
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", help="only modules whose path contains this")
    ap.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--limit", type=int, default=0, help="at most this many mutants per module (spread)")
    ap.add_argument("--min", type=float, default=95.0, help="lowest acceptable score per module (percent)")
    ap.add_argument("--survivors", action="store_true", help="print every surviving mutant")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--lines", help="only mutants on these source lines, e.g. 455-490,29 (to re-check survivors)")
    args = ap.parse_args()
    wanted = _line_set(args.lines) if args.lines else None

    modules = [m for m in MODULES if not args.module or any(s in m for s in args.module)]
    equivalent = load_equivalent()
    todo = []
    for module in modules:
        ms = mutants_of(module)
        if args.limit and len(ms) > args.limit:
            step = len(ms) / args.limit
            ms = [ms[int(i * step)] for i in range(args.limit)]
        if wanted is not None:
            ms = [m for m in ms if m.line in wanted]
        for m in ms:
            if m.key() in equivalent:
                m.status, m.reason = "equivalent", equivalent[m.key()]
        todo += ms
    if args.list:
        for m in todo:
            print("%-60s %s" % (m, m.key()[1][:60]))
        print("%d mutants" % len(todo))
        return 0

    BUILD.mkdir(parents=True, exist_ok=True)
    print("firmware tests also under MicroPython: %s" % (MICROPYTHON or "no (micropython not found)"), flush=True)
    workers = [make_worker(i) for i in range(args.jobs)]
    # Baseline: the unmutated tests must pass, and give the time budget per module.
    budget = {}
    for module in modules:
        status, took, out = run_tests(workers[0], MODULES[module], None)
        if status != "survived":
            print("baseline tests fail for %s:\n%s" % (module, out))
            return 2
        budget[module] = took * 3 + 20
        print("%s: tests pass in %.1f s" % (module, took), flush=True)

    pending = [m for m in todo if m.status is None]
    free = list(workers)
    done = [0]
    t_start = time.monotonic()

    def one(m):
        worker = free.pop()
        try:
            target = worker / m.module
            original = (ROOT / m.module).read_text()
            target.write_text(m.apply(original))
            try:
                m.status, _, _ = run_tests(worker, MODULES[m.module], budget[m.module])
            finally:
                target.write_text(original)
        finally:
            free.append(worker)
        done[0] += 1
        if done[0] % 25 == 0 or done[0] == len(pending):
            el = time.monotonic() - t_start
            print("  %d/%d mutants (%.0f s, ~%.0f s left)" % (done[0], len(pending), el,
                                                                el / done[0] * (len(pending) - done[0])), flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, pending))

    report = {"modules": {}, "survivors": [], "equivalent": []}
    worst = 100.0
    print("\nmodule                          mutants  killed  equiv  survived  score")
    for module in modules:
        ms = [m for m in todo if m.module == module]
        killed = sum(m.status in ("killed", "timeout") for m in ms)
        eq = sum(m.status == "equivalent" for m in ms)
        surv = [m for m in ms if m.status == "survived"]
        real = len(ms) - eq
        score = 100.0 * killed / real if real else 100.0
        worst = min(worst, score)
        report["modules"][module] = {"mutants": len(ms), "killed": killed, "equivalent": eq,
                                     "survived": len(surv), "score": round(score, 1)}
        report["survivors"] += [{"module": m.module, "line": m.line, "mutation": m.desc, "source": m.key()[1]}
                                for m in surv]
        report["equivalent"] += [{"module": m.module, "line": m.line, "mutation": m.desc, "reason": m.reason}
                                 for m in ms if m.status == "equivalent"]
        print("%-32s %7d %7d %6d %9d %5.1f%%" % (module, len(ms), killed, eq, len(surv), score))
    (BUILD / "report.json").write_text(json.dumps(report, indent=1))
    unused = set(equivalent) - {m.key() for m in todo}
    if unused and not args.module and not args.limit and not args.lines:
        print("\n%d entries of %s match no mutant any more:" % (len(unused), EQUIVALENT.name))
        for k in sorted(unused):
            print("  " + " | ".join(k))
    if args.survivors:
        print("\nsurvivors:")
        for s in report["survivors"]:
            print("  %s:%d  %s   %s" % (s["module"], s["line"], s["mutation"], s["source"][:80]))
    print("\nlowest module score %.1f%% (required %.1f%%); report in %s" % (worst, args.min,
                                                                          BUILD.relative_to(ROOT) / "report.json"))
    return 0 if worst >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
