"""--fault KIND[:ELECTRODE]@SECONDS specs for the simulated board (names from docs/cli.md).

The spec goes to the simulated board unchanged (firmware/simmain.py parses it); the host
only refuses what the board could not do, in one line, before anything runs."""
FAULT_KINDS = ("liftoff", "short", "dac-stuck", "adc-stuck", "drift", "host-lost", "stall", "reset")
ELECTRODE_KINDS = ("liftoff", "short", "drift")     # the others are the board's, not a contact's


def split_spec(spec):
    """(kind, electrode or None, seconds text) of KIND[:NAME]@SECONDS."""
    head, _, at = spec.partition("@")
    kind, colon, name = head.partition(":")
    return kind, (name if colon else None), at


def check_fault_specs(specs, canon=None):
    """Problems (one sentence each) with the specs; canon: the protocol they go with, whose
    montage an electrode must belong to (None: `tesctl sim`, no protocol yet)."""
    problems = []
    for spec in specs:
        kind, name, at = split_spec(spec)
        sep = "@" in spec
        if kind not in FAULT_KINDS:
            problems.append("--fault %s: unknown fault %r (one of %s)" % (spec, kind, ", ".join(FAULT_KINDS)))
            continue
        # ASCII digits only: CPython's float() takes full-width digits and "1_0", the
        # board's MicroPython does not; what the host accepts the simulated board must too.
        t = None
        if sep and at and all(c in "0123456789." for c in at) and at.count(".") <= 1 and at != ".":
            t = float(at)
        if t is None or t < 0 or t != t or t > 36000:
            problems.append("--fault %s: give the time in seconds after START, e.g. %s@60" % (spec, kind))
            continue
        if name is not None:
            problem = _electrode_problem(spec, kind, name, canon)
            if problem:
                problems.append(problem)
    return problems


def _electrode_problem(spec, kind, name, canon):
    if kind not in ELECTRODE_KINDS:
        return "--fault %s: %s is the board's, not an electrode's: give it without a name (%s@SECONDS)" % (
            spec, kind, kind)
    if canon is None:
        return None if name else "--fault %s: give an electrode name after the colon" % spec
    from tes import validate as V
    names = V.electrode_names(canon)
    if name not in names:
        return "--fault %s: %s is not an electrode of the protocol's montage (%s)" % (
            spec, name or "''", ", ".join(names))
    if kind == "short" and name == V.return_name(canon):
        return "--fault %s: %s is the return, and the return is the board's ground: short a driven electrode (%s)" % (
            spec, name, ", ".join(V.driven_names(canon)))
    return None

