"""--fault KIND@SECONDS specs for the simulated board (names from docs/cli.md)."""
FAULT_KINDS = ("liftoff", "short", "dac-stuck", "adc-stuck", "drift", "host-lost", "stall", "reset")


def check_fault_specs(specs):
    problems = []
    for spec in specs:
        kind, sep, at = spec.partition("@")
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
    return problems
