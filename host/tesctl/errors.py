"""One error model for the host (docs/cli.md, "Exit codes").

Every problem the host finds is raised as a TesctlError (or a subclass) carrying the exit
code it means; the CLI entry (tesctl.cli.main) alone turns it into one line on stderr and
that code, as mpremote does. Nothing else prints an error or calls sys.exit.
"""

EXIT_OK = 0
EXIT_SESSION = 1      # the session ended by a fault or an abort (or an impedance check failed)
EXIT_INPUT = 2        # bad input: a file, an option, the host's own state
EXIT_DEVICE = 3       # the device or the link
EXIT_FALLBACK = 4     # the session ran, but its record is complete only in a fallback place


class TesctlError(Exception):
    """Root of the host's errors: a one-sentence message and the exit code it means."""
    exit_code = EXIT_DEVICE

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(TesctlError):
    """Something the user gave (a file, an option, a hand-edited state file) is wrong."""
    exit_code = EXIT_INPUT


class LinkError(TesctlError):
    """The device refused, or the link failed."""
    exit_code = EXIT_DEVICE


class SessionEnded(TesctlError):
    """The session (or the check before it) ended without success."""
    exit_code = EXIT_SESSION


def safe_text(text, limit=200):
    """A name, subject or path from outside as one printable line: control characters
    (ESC, CR, BEL, ...) escaped, so nothing a file holds can drive the terminal."""
    out = []
    for ch in str(text):
        o = ord(ch)
        if o < 32 or 127 <= o < 160 or o in (0x2028, 0x2029) or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            out.append("\\x%02x" % o if o < 256 else "\\u%04x" % o)
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[:limit] + "...(%d characters)" % len(s)
