"""tesctl: the command-line interface (contract in docs/cli.md and ../DESIGN.md).

Exit codes: 0 success; 1 session ended by a fault or abort; 2 bad input (file, option);
3 device/link error; 4 the session ran but its record had to go to a fallback place.
Errors are one sentence on stderr, never a traceback: every error the host raises is a
tesctl.errors.TesctlError carrying its exit code, and TesctlGroup.invoke below is the one
place that turns it into the sentence and the code.
"""
import math
import os
import sys
import traceback

import click

from tesctl import protofile
from tesctl.boards import BoardError, resolve
from tesctl.export import export_group
from tesctl.resources import PROTOCOL, protocols_command
from tesctl.errors import (EXIT_DEVICE, EXIT_INPUT, EXIT_OK, EXIT_SESSION, InputError, TesctlError,
                           safe_text)


def fail(message, code):
    """Raise the error that the CLI entry turns into one line and this exit code."""
    raise TesctlError(message, code)


class TesctlGroup(click.Group):
    """The CLI entry: the one place where an error becomes a line on stderr and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except TesctlError as e:
            click.echo("tesctl: " + safe_text(e, limit=2000), err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("tesctl: interrupted (Ctrl-C)", err=True)
            ctx.exit(EXIT_SESSION)
        except BrokenPipeError:
            # The reader of stdout went away (`tesctl protocols | head -1`): not an error of
            # ours. Point stdout at devnull so the interpreter's final flush stays quiet.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):       # no file descriptor (a test runner's stdout)
                pass
            ctx.exit(0)
        except (RecursionError, MemoryError, OSError, ValueError, TypeError, LookupError, RuntimeError,
                AttributeError) as e:
            if os.environ.get("TESCTL_DEBUG"):
                raise
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            where = " (%s)" % e.filename if isinstance(e, OSError) and e.filename else ""
            frame = traceback.extract_tb(e.__traceback__)[-1]
            click.echo("tesctl: internal error: %s: %s%s at %s:%d (TESCTL_DEBUG=1 shows the traceback)"
                       % (type(e).__name__, safe_text(detail), safe_text(where), os.path.basename(frame.filename),
                          frame.lineno), err=True)
            ctx.exit(EXIT_INPUT if isinstance(e, OSError) and e.filename else EXIT_DEVICE)


def check_board(board_name):
    """(board dict, limits) of a board name or file, or InputError (exit 2)."""
    try:
        return resolve(board_name)
    except BoardError as e:
        raise InputError(str(e)) from None


def load_valid(path, board_name):
    """Load and validate a protocol against a board, or exit 2 listing every problem."""
    board, limits = check_board(board_name)
    loaded = protofile.load(path, limits)
    if not loaded.ok:
        click.echo("%s: %d problem%s:" % (safe_text(path), len(loaded.problems),
                                          "" if len(loaded.problems) == 1 else "s"), err=True)
        for p in loaded.problems:
            click.echo("  " + safe_text(p, limit=1000), err=True)
        raise click.exceptions.Exit(EXIT_INPUT)
    for w in loaded.warnings:
        click.echo("warning: " + safe_text(w, limit=1000), err=True)
    return loaded, board


def writable_file(path, what):
    """Refuse an output file whose directory is missing or not writable, before any work."""
    d = os.path.dirname(os.path.abspath(str(path)))
    if os.path.isdir(str(path)):
        raise InputError("%s %s: is a directory" % (what, safe_text(path)))
    if not os.path.isdir(d):
        raise InputError("%s %s: directory %s does not exist" % (what, safe_text(path), safe_text(d)))
    if not os.access(d, os.W_OK | os.X_OK):
        raise InputError("%s %s: directory %s is not writable" % (what, safe_text(path), safe_text(d)))


@click.group(cls=TesctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tesctl")
def main():
    """Host tooling for the tesctl transcranial electrical stimulator."""


@main.command()
@click.argument("protocol", type=PROTOCOL)
@click.option("--board", "-b", default=None,
              help="Board name (boards/NAME.json) or path; default: compiled-in ceiling.")
def validate(protocol, board):
    """Check a protocol file against the limits; exit 0 if valid, 2 otherwise."""
    loaded, _ = load_valid(protocol, board)
    c = loaded.canonical
    from tes import validate as V
    stim_ms = sum(V.stim_ms(s) for s in c["segments"] if s["kind"] == "stim")
    peak = max(V.peak_uA(s) for s in c["segments"])
    charge = sum(V.charge_bound_uC(s) for s in c["segments"])
    click.echo("%s: valid: %s" % (safe_text(protocol), safe_text(c["name"])))
    click.echo("  %d segment(s), stimulation %.1f min, peak %d uA, charge <= %.3f C, %d S/s%s"
               % (len(c["segments"]), stim_ms / 60000, peak, charge / 1e6, c["sample_rate_hz"],
                  ", SHAM" if c["sham"] else ""))
    if protofile.is_multi(c):
        ret = c["montage"]["return"]
        click.echo("  electrodes (peak bound, charge bound): %s" % safe_text(", ".join(
            "%s%s %d uA %.3f C" % (name, " (return)" if name == ret else "", peak, q / 1e6)
            for name, _, peak, q in V.electrode_bounds(c))))
    if "online" in c:
        from tes import online
        seg = c["segments"][0]
        top = online.peak_uA(c)
        ms2 = 2 * seg["duration_ms"] + seg["ramp_up_ms"] + seg["ramp_down_ms"]
        click.echo("  online changes: %s%s; at their largest, peak %d uA, charge <= %.3f C (docs/online.md)" % (
            ", ".join(sorted(c["online"]["params"])) or "none", ", bursts" if c["online"]["burst"] else "",
            top, (top * ms2 + 1999) // 2000 / 1e6))
    click.echo("  sha256 %s" % loaded.sha256())


@main.command()
@click.argument("protocol", type=PROTOCOL)
@click.option("--board", "-b", default=None, help="Board name or path.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False),
              help="Write every sample: t_s,current_uA (multi-electrode: t_s,<E1>_uA,... in montage order).")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), help="Write a PNG of the waveform.")
@click.option("--engine", type=click.Choice(["cpython", "micropython"]), default="cpython", show_default=True,
              help="micropython runs the firmware engine under the unix port.")
@click.option("--changes", "changes_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Online changes to apply (docs/online.md): CSV at_ms,param,value, or a session.json.")
def preview(protocol, board, csv_out, plot_out, engine, changes_file):
    """Compute every sample the engine would output."""
    from tesctl import enginerun
    if not csv_out and not plot_out:
        fail("nothing to write: give --csv OUT and/or --plot FILE.png", EXIT_INPUT)
    if plot_out and not str(plot_out).lower().endswith(".png"):
        fail("--plot %s: the plot is a PNG: give a file name ending in .png" % safe_text(plot_out), EXIT_INPUT)
    for out, what in ((csv_out, "--csv"), (plot_out, "--plot")):
        if out:
            writable_file(out, what)
    loaded, _ = load_valid(protocol, board)
    canon = loaded.canonical
    fs = canon["sample_rate_hz"]
    multi = protofile.is_multi(canon)
    changes = ()
    if changes_file:
        if multi or "online" not in canon:
            fail("--changes %s: %s has no [online] section: nothing may change" % (
                safe_text(changes_file), safe_text(protocol)), EXIT_INPUT)
        try:
            changes = enginerun.read_changes(changes_file, canon)
        except (ValueError, OSError) as e:
            fail(str(e), EXIT_INPUT)
    try:
        if multi:     # one column per electrode, montage order; every row sums to 0
            columns = enginerun.CHANNEL_ENGINES[engine](canon)
            values = columns[0][1]
        else:
            values = enginerun.ENGINES[engine](canon, changes)
    except enginerun.ChangeRefused as e:
        fail("--changes %s: change %d (at sample %d) refused by the engine's bounds: %s" % (
            safe_text(changes_file), e.index + 1, changes[e.index][0], e.why), EXIT_INPUT)
    except (RuntimeError, FileNotFoundError) as e:
        fail(str(e), EXIT_DEVICE)
    if csv_out:
        if multi:
            enginerun.write_csv_multi(csv_out, columns, fs)
        else:
            enginerun.write_csv(csv_out, values, fs)
        click.echo("wrote %s: %d samples%s, %.1f s at %d S/s (%s engine)"
                   % (csv_out, len(values), " x %d electrodes" % len(columns) if multi else "", len(values) / fs,
                      fs, engine))
    if plot_out:
        from tesctl.plots import preview_png, preview_png_multi
        if multi:
            preview_png_multi(plot_out, columns, fs, canon["name"])
        else:
            preview_png(plot_out, values, fs, canon["name"])
        click.echo("wrote %s" % plot_out)


def _board_for_port(port, board):
    """The board file to validate against: the one named, or sim for --port sim."""
    return board or ("sim" if port == "sim" else None)


def _connect_or_exit(port, board, allow_mismatch=False):
    from tesctl.runner import connect
    if port == "sim" or board is not None:
        check_board(board or "sim")        # a bad --board is the user's (exit 2), found before connecting
    return connect(port, board or "sim", allow_mismatch=allow_mismatch, log=lambda m: click.echo(m, err=True))


@main.command()
@click.argument("protocol", type=PROTOCOL, required=False)
@click.option("--port", "-p", required=True, help="Device path, pyserial URL, or 'sim' for a simulated board.")
@click.option("--board", "-b", default=None, help="Board file to validate against (default: sim for --port sim).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Session directory (default: sessions/DATE-TIME-PROTOCOL).")
@click.option("--study", "study_dir", type=click.Path(file_okay=False), default=None,
              help="Blinded study folder (tesctl study init): run the participant's arm without showing it.")
@click.option("--participant", default=None, help="With --study: the participant's code.")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:ELECTRODE]@SECONDS",
              help="Simulated board only: inject a fault at a time after START (repeatable); liftoff, "
                   "short and drift may name an electrode of the montage (liftoff:F3@60).")
@click.option("--fast", is_flag=True, help="Simulated board: virtual clock, as fast as it computes.")
@click.option("--subject", default=None, help="Subject/participant code recorded in session.json.")
@click.option("--lsl", is_flag=True, help="Publish LSL marker and telemetry streams.")
@click.option("--raw", is_flag=True, help="Also record every commanded sample (raw_set_uA.txt).")
@click.option("--allow-mismatch", is_flag=True, help="Run even if the device firmware differs from this tesctl's.")
@click.option("--plain", is_flag=True, default=None, help="Plain progress lines instead of the live panel.")
@click.option("--control-tcp", "control_tcp", default=None, metavar="[HOST:]PORT",
              help="Accept remote control (JSON lines, this machine only): changes, marks, status (docs/online.md).")
@click.option("--control-lsl", "control_lsl", default=None, metavar="STREAM",
              help="Apply online changes from this LSL stream: markers PARAM=VALUE, or a numeric burst gate.")
@click.option("--control-delay-ms", "control_delay", type=click.IntRange(0, 60000), default=None,
              help="With --control-lsl: schedule each change this long after its LSL timestamp "
                   "(default: as soon as the device can).")
def run(protocol, port, board, out_dir, study_dir, participant, faults, fast, subject, lsl, raw, allow_mismatch,
        plain, control_tcp, control_lsl, control_delay):
    """Pre-check impedance, run a session with a live display, and record it.

    With --study and --participant (no PROTOCOL): the participant's arm, blinded."""
    from tesctl.runner import Run, reserve_out_dir
    if study_dir is not None or participant is not None:
        if protocol is not None or subject is not None:
            fail("--study runs the participant's arm: give no PROTOCOL and no --subject", EXIT_INPUT)
        if study_dir is None or participant is None:
            fail("--study and --participant go together", EXIT_INPUT)
    elif protocol is None:
        fail("give a PROTOCOL, or --study STUDY --participant CODE", EXIT_INPUT)
    from tesctl.simfaults import check_fault_specs
    if port != "sim" and (faults or fast):
        fail("--fault and --fast work only with a simulated board (--port sim)", EXIT_INPUT)
    problems = check_fault_specs(faults)
    if problems:
        fail(problems[0], EXIT_INPUT)
    if lsl:
        from tesctl.lsl import require
        require()                 # LSL missing (the [lsl] extra): refused before the device is touched
    board = _board_for_port(port, board)
    blind = None
    if study_dir is not None:
        from tesctl import study as ST
        _, limits = check_board(board or "sim")
        st = ST.load(study_dir)
        arm, loaded = ST.arm_for(study_dir, st, participant, limits)
        blind = ST.Blinding(study_dir, st, participant, arm, loaded)
        if out_dir is None:
            out_dir = ST.default_session_dir(study_dir, participant)
        refused = protofile.refuse_multi(loaded.canonical, "run --study")
        if refused:
            fail(refused, EXIT_INPUT)
    else:
        loaded, _ = load_valid(protocol, board)
    # An electrode a fault names must be one of this protocol's (docs/cli.md "Simulated faults").
    problems = check_fault_specs(faults, loaded.canonical)
    if problems:
        fail(problems[0], EXIT_INPUT)
    # Everything the user gave is checked before any current flows: the session directory
    # is made (new, never an existing record) and found writable now, not after the check.
    out_dir, chosen = reserve_out_dir(out_dir, protocol)
    if chosen or blind:
        click.echo("session directory: %s" % safe_text(out_dir), err=True)
    r = Run(loaded, port, out_dir, board=board or "sim", faults=faults, fast=fast, subject=subject, lsl=lsl,
            raw=raw, allow_mismatch=allow_mismatch, plain=plain, blind=blind)
    controls = _controls(r, loaded, blind, control_tcp, control_lsl, control_delay)
    try:
        outcome, reason, charge = r.execute(log=lambda m: click.echo(m), warn=lambda m: click.echo(m, err=True))
    finally:
        for c in controls:
            c.close()
    record_dir = r.record_dir()
    if blind:
        _blind_summary(r, outcome, reason, record_dir)
        return
    from tesctl.report import ReportError, summary_text, summarize, write_report
    try:
        png = write_report(record_dir)
    except (ReportError, OSError, ValueError) as e:
        png = None
        click.echo("warning: no report.png: %s" % safe_text(e), err=True)
    click.echo(summary_text(summarize(record_dir)))
    click.echo("session: %s" % safe_text(record_dir))
    if png:
        click.echo("report: %s" % safe_text(png))
    where = r.rec.meta.get("fault_electrode") if r.rec is not None else None
    if outcome == "fault" and where:
        click.echo("fault: %s at electrode %s" % (safe_text(reason), safe_text(where)))
    code = EXIT_OK if outcome in ("completed", "stopped") else EXIT_SESSION
    if r.fell_back():
        from tesctl.errors import EXIT_FALLBACK
        click.echo("tesctl: the session %s, but its record could not be written to %s (%s): the whole record "
                   "is in %s" % (outcome, safe_text(out_dir), safe_text(r.rec.failure), safe_text(record_dir)),
                   err=True)
        code = EXIT_FALLBACK
    sys.exit(code)


def _controls(r, loaded, blind, control_tcp, control_lsl, control_delay):
    """--control-tcp and --control-lsl: set up before any current flows (a taken port or a
    missing stream is refused now), serving once the session has started."""
    if not (control_tcp or control_lsl):
        if control_delay is not None:
            fail("--control-delay-ms goes with --control-lsl", EXIT_INPUT)
        return []
    if blind:
        fail("--control-tcp and --control-lsl are not for a blinded run (they would tell the arm)", EXIT_INPUT)
    if control_lsl and "online" not in loaded.canonical:
        fail("--control-lsl: the protocol has no [online] section: nothing may change (docs/online.md)", EXIT_INPUT)
    controls = []
    if control_tcp:
        from tesctl.remote import RemoteControl, parse_address
        host, tcp_port = parse_address(control_tcp)
        try:
            rc = RemoteControl(r, host, tcp_port)
        except OSError as e:
            fail("--control-tcp %s: %s" % (control_tcp, e.strerror or e), EXIT_INPUT)
        click.echo("remote control: %s:%d (JSON lines; docs/online.md)" % rc.address, err=True)
        controls.append(rc.start())
    if control_lsl:
        from tesctl.lslcontrol import LslControl
        lc = LslControl(r, control_lsl, delay_ms=control_delay, warn=lambda m: click.echo(m, err=True))
        controls.append(lc)
        r.started_hook = lc.start         # the stream is read once the session runs
    return controls


def _blind_summary(r, outcome, reason, record_dir):
    """A blinded run's summary: the same lines in every arm (no charge, current, phases)."""
    b = r.blind
    click.echo("study      %s" % safe_text(b.study["name"]))
    click.echo("participant %s" % safe_text(b.code))
    click.echo("outcome    %s%s" % (outcome, "" if reason == outcome else " (%s)" % safe_text(reason)))
    click.echo("planned    %.1f s" % (b.study["duration_ms"] / 1000.0))
    click.echo("record     blinded: the protocol, current, voltage and impedance are sealed to the study key")
    click.echo("session: %s" % safe_text(record_dir))
    code = EXIT_OK if outcome in ("completed", "stopped") else EXIT_SESSION
    if r.fell_back():
        from tesctl.errors import EXIT_FALLBACK
        click.echo("tesctl: the session %s, but its record is in %s" % (outcome, safe_text(record_dir)), err=True)
        code = EXIT_FALLBACK
    sys.exit(code)


@main.group(cls=TesctlGroup)
def study():
    """Blinded studies: sealed allocation, blinded runs, unblinding (docs/study.md)."""


@study.command("init")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The study folder to make (new or empty).")
@click.option("--key-out", "key_out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the unblinding (private) key: outside the study folder, for the study manager.")
@click.option("--board", "-b", default="sim", show_default=True, help="Board the arms are validated against.")
def study_init(spec, out_dir, key_out, board):
    """Make a study from SPEC (TOML): arms, participants, sealed allocation, keys."""
    from tesctl import study as ST
    _, limits = check_board(board)
    st = ST.init(spec, out_dir, key_out, limits, board)
    click.echo("study %s: %d arms (%s), %d participants, %.1f s each" % (
        safe_text(st["name"]), len(st["arms"]), ", ".join(st["arms"]), len(st["participants"]),
        st["duration_ms"] / 1000.0))
    click.echo("study folder: %s (give it to the operator; its run.key picks each arm)" % safe_text(out_dir))
    click.echo("unblinding key: %s (the study manager's only: it opens every sealed record)" % safe_text(key_out))


@study.command("unblind")
@click.argument("study_dir", type=click.Path(file_okay=False))
@click.argument("sessions", nargs=-1, type=click.Path(file_okay=False))
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False), help="The unblinding key file.")
@click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False),
              help="Where to write the opened records and allocation.tsv (new or empty, outside the study).")
def study_unblind(study_dir, sessions, key, to_dir):
    """Open a study's sealed sessions (STUDY/sessions/* and any SESSIONS given) into normal
    records and write the allocation table."""
    from tesctl import study as ST
    alloc, opened = ST.unblind(study_dir, key, to_dir, sessions)
    click.echo("opened %d session%s into %s; allocation (%s) in %s" % (
        len(opened), "" if len(opened) == 1 else "s", safe_text(to_dir), alloc.get("method"),
        safe_text(os.path.join(to_dir, "allocation.tsv"))))


@main.command()
@click.option("--port", "-p", required=True, help="Device path, pyserial URL, or 'sim'.")
@click.option("--board", "-b", default=None, help="Board file (simulated board only).")
@click.option("--current", "current_uA", type=click.IntRange(1, 100), default=100, show_default=True,
              help="Test current, uA (at most 100).")
@click.option("--allow-mismatch", is_flag=True)
def check(port, board, current_uA, allow_mismatch):
    """Impedance check with a small test current: prints ohms and pass/fail."""
    dev = _connect_or_exit(port, board, allow_mismatch)
    try:
        ev = dev.check(current_uA=current_uA)
    finally:
        dev.close()
    z = ev.get("z_ohm")
    click.echo("impedance: %s at %d uA (limit %d ohm): %s" % (
        "open circuit" if z is None else "%d ohm" % z, ev.get("current_uA", current_uA), ev["limit_ohm"],
        "PASS" if ev.get("pass") else "FAIL"))
    sys.exit(EXIT_OK if ev.get("pass") else EXIT_SESSION)


@main.command()
@click.option("--port", "-p", required=True, help="Device path, pyserial URL, or 'sim'.")
@click.option("--board", "-b", default=None)
@click.option("--current", "current_uA", type=click.IntRange(1, 100), default=100, show_default=True)
@click.option("--seconds", type=float, default=None, help="Stop after this long (0.1 to 3600).")
@click.option("--allow-mismatch", is_flag=True)
def stream(port, board, current_uA, seconds, allow_mismatch):
    """Live telemetry without stimulating: impedance and state with the test current."""
    import time as _time

    from tes import link as L

    if seconds is not None and not (math.isfinite(seconds) and 0.1 <= seconds <= 3600):
        fail("--seconds %s: give a number of seconds from 0.1 to 3600" % seconds, EXIT_INPUT)
    rows = []

    def on_frame(f):
        if f.type == L.TELEM:
            rows.append(L.unpack_telem(f.payload))
    dev = _connect_or_exit(port, board, allow_mismatch)
    dev.on_frame = on_frame
    try:
        dev.stream(True, current_uA)
        t_end = _time.monotonic() + seconds if seconds else None
        last = 0.0
        click.echo("t_ms,state,meas_uA,v_mV,z_ohm")
        try:
            while t_end is None or _time.monotonic() < t_end:
                dev.pump(0.05)
                dev.heartbeat()
                if rows and _time.monotonic() - last >= 0.2:
                    t, st, _, m, v, z, _, _ = rows[-1]
                    click.echo("%d,%s,%d,%d,%s" % (t, L.STATE_NAMES[st], m, v, "" if z is None else z))
                    last = _time.monotonic()
        except KeyboardInterrupt:
            pass
        dev.stream(False)
    finally:
        dev.close()


@main.command()
@click.option("--board", "-b", default="sim", show_default=True,
              help="Board file a fresh flash gets as board.json (its model is the simulated load).")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:ELECTRODE]@SECONDS")
@click.option("--realtime/--fast", default=True, help="Real-time clock (default) or virtual fast clock.")
@click.option("--flash", type=click.Path(file_okay=False), default=None,
              help="Folder that is the board's filesystem, kept across runs (default: a fresh one).")
def sim(board, faults, realtime, flash):
    """Start a simulated board on a pseudo-terminal and print its path.

    It boots like a board: the app answers the link; EXIT (as `tesctl deploy` sends it)
    leaves it at its MicroPython REPL for mpremote; a reset boots what its flash holds."""
    from tesctl.simfaults import check_fault_specs
    from tesctl.simpty import serve
    problems = check_fault_specs(faults)
    if problems:
        fail(problems[0], EXIT_INPUT)
    check_board(board)

    def ready(path, server=None):
        click.echo(path)
        sys.stdout.flush()
    sys.exit(serve(board=board, faults=faults, realtime=realtime, flash=flash, ready=ready))


@main.command()
@click.option("--uf2", required=True, type=click.Path(dir_okay=False),
              help="A stock MicroPython RPI_PICO image (.uf2).")
@click.option("--board", "-b", default="pico-mcp4922", show_default=True, help="Board file: pins and analog stage.")
@click.option("--load", "load", default="sim", show_default=True, help="Board file whose \"model\" is the load.")
@click.option("--model", "model", multiple=True, metavar="KEY=VALUE", help="Override one load/sense model value.")
@click.option("--dac-log", type=click.Path(dir_okay=False), help="CSV of every DAC latch (t_ns,dac_a,dac_b,enable).")
@click.option("--cpu-mhz", type=float, default=125, show_default=True, help="clk_sys the cycle count runs at.")
@click.option("--flash", type=click.Path(dir_okay=False), help="Flash image file (default build/hil/flash.bin).")
@click.option("--erase", is_flag=True, help="Start from the UF2 alone (erase the flash file first).")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False), help="Write the statistics as JSON.")
@click.option("--profile", "profile_elf", type=click.Path(dir_okay=False, exists=True),
              help="The image's .elf: sample the busy CPU per function (stdin line `profile` prints it).")
def hil(uf2, board, load, model, dac_log, cpu_mhz, flash, erase, stats_file, profile_elf):
    """Boot a MicroPython image on an emulated RP2040 and print the pty of its USB CDC.

    Lines on stdin: `reset` power-cycles the board, `stats` prints the CPU statistics,
    `profile` (with --profile) where the busy CPU went since the last, `quit` ends (as do
    Ctrl-C and SIGTERM); SIGUSR1 and SIGUSR2 do the first two."""
    from tesctl.hil import HilError
    from tesctl.hil import serve as hil_serve
    for kv in model:
        key, sep, val = kv.partition("=")
        try:
            float(val)
        except ValueError:
            sep = ""
        if not sep or not key:
            fail("--model %s: expected KEY=NUMBER" % kv, EXIT_INPUT)
    try:
        code = hil_serve(uf2=uf2, board=board, load=load, model=model, dac_log=dac_log, cpu_mhz=cpu_mhz, flash=flash,
                         erase=erase, stats_file=stats_file, profile=profile_elf)
    except HilError as e:
        fail(str(e), e.code)
    sys.exit(code)


@main.command("dac-compare")
@click.argument("daclog", type=click.Path(dir_okay=False))
@click.argument("preview_csv", type=click.Path(dir_okay=False))
@click.option("--board", "-b", default="pico-mcp4922", show_default=True, help="Board whose calibration makes codes.")
def dac_compare(daclog, preview_csv, board):
    """Compare a `tesctl hil --dac-log` with `tesctl preview --csv` of the same protocol.

    On a two-source board channel B is checked too (the second driven electrode, or zero
    code). Exit 0 if >= 99.9% of samples are within 1 code on every channel and none is
    missing, else 1."""
    from tesctl.daccompare import CompareError, compare, report_lines
    try:
        board_obj, _ = resolve(board)
        result = compare(daclog, preview_csv, board_obj)
    except (BoardError, CompareError) as e:
        fail(str(e), EXIT_INPUT)
    for line in report_lines(result):
        click.echo(line)
    sys.exit(EXIT_OK if result.ok else EXIT_SESSION)


@main.command()
@click.option("--port", "-p", required=True)
@click.option("--board", "-b", required=True, help="Board name (boards/NAME.json) or path.")
@click.option("--frozen", is_flag=True, help="The board's MicroPython image holds the firmware frozen "
              "(built with firmware/manifest_rp2.py): copy main.py and the board file only, and remove "
              "the modules a copy left on the board.")
def deploy(port, board, frozen):
    """Copy the firmware and board file with mpremote; verify both by hash."""
    from tesctl.deploy import DeployError
    from tesctl.deploy import deploy as do_deploy
    try:
        resolve(board)
        result = do_deploy(port, board, log=click.echo, frozen=frozen)
    except (BoardError, DeployError) as e:
        fail(str(e), EXIT_INPUT if isinstance(e, BoardError) else EXIT_DEVICE)
    click.echo("deployed and verified: %s" % result)


@main.command()
@click.option("--all", "show_all", is_flag=True, help="List every serial port, not only likely boards.")
def ports(show_all):
    """List serial ports that look like boards."""
    from tesctl.ports import format_ports, list_ports
    rows = list_ports()
    if not show_all:
        rows = [r for r in rows if r.get("likely")]
    if not rows:
        click.echo("no serial ports%s found" % ("" if show_all else " that look like boards"))
        return
    click.echo(format_ports(rows))


@main.command()
@click.argument("session_dir", type=click.Path())
def report(session_dir):
    """Write SESSION_DIR/report.png and print the session summary."""
    from tesctl.report import ReportError, summary_text, summarize, write_report
    try:
        png = write_report(session_dir)
        click.echo(summary_text(summarize(session_dir)))
    except ReportError as e:
        fail(str(e), EXIT_INPUT)
    click.echo("report: %s" % png)


@main.command()
@click.argument("eeg_file", type=click.Path(dir_okay=False))
@click.option("--channels", default=None, metavar="O1,O2,Pz",
              help="Channels to use, comma-separated, or 'all' (default: the posterior ones the file has).")
@click.option("--min-channels", type=click.IntRange(1, 256), default=3, show_default=True,
              help="Channels that must show an estimate for the average to be reported (Corcoran's cMin).")
@click.option("--protocol", "base", type=PROTOCOL, default=None,
              help="A tACS (sine) protocol to set to the estimate; with --out.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="Write the new protocol here.")
@click.option("--use", type=click.Choice(["paf", "cog"]), default="paf", show_default=True,
              help="The estimate the protocol gets: peak alpha frequency or centre of gravity.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def iaf(eeg_file, channels, min_channels, base, out, use, as_json):
    """Individual alpha frequency of a resting EEG file (EDF, BDF, FIF, BrainVision)."""
    import json as _json

    from tesctl import iaf as I
    from tesctl import protowrite as W
    if bool(base) != bool(out):
        fail("--protocol and --out go together: a base tACS protocol and the file to write", EXIT_INPUT)
    wanted = [c.strip() for c in channels.split(",") if c.strip()] if channels is not None else None
    if channels is not None and not wanted:
        fail("--channels %s: give channel names, e.g. O1,O2,Pz, or all" % safe_text(channels), EXIT_INPUT)
    doc = None
    if base:
        W.check_out(out)
        doc, base_loaded = W.read_base(base, "iaf")
        if not any(s["kind"] == "stim" and s["waveform"] == "sine" for s in base_loaded.canonical["segments"]):
            fail("--protocol %s: has no sine (tACS) block to set to the alpha frequency" % safe_text(base), EXIT_INPUT)
    I.require()
    r = I.analyse(eeg_file, wanted, min_channels=min_channels)
    if as_json:
        click.echo(_json.dumps(r, indent=2, sort_keys=True))
    else:
        def hz(v):
            return "none" if v is None else "%.2f Hz" % v
        click.echo("file: %s (sha256 %s)" % (safe_text(r["file"]), r["sha256"]))
        click.echo("channels: %s (%.0f Hz, %.1f s)" % (safe_text(", ".join(r["channels"])), r["sfreq"], r["seconds"]))
        click.echo("peak alpha frequency (PAF): %s" % hz(r["paf_hz"]))
        click.echo("centre of gravity (CoG): %s%s" % (hz(r["cog_hz"]), "" if not r["band_hz"] else
                                                     " (alpha band %.2f-%.2f Hz)" % tuple(r["band_hz"])))
        click.echo("certainty: %s" % I.certainty_text(r))
        for c in r["per_channel"]:
            click.echo("  %-6s PAF %-9s CoG %-9s Q %.3f" % (safe_text(c["channel"], 20), hz(c["paf"]),
                                                        hz(c.get("cog")), c["q"]))
    if not base:
        return
    value = r["%s_hz" % use]
    if value is None:
        other = "cog" if use == "paf" else "paf"
        fail("no %s estimate from %s (%s)%s: no protocol written" % (
            use.upper(), safe_text(eeg_file), I.certainty_text(r),
            "; --use %s takes the %s (%s)" % (other, other.upper(), hz(r["%s_hz" % other]))
            if r["%s_hz" % other] is not None else ""), EXIT_INPUT)
    f = round(value, 2)
    for t in W.stim_tables(doc):
        wf = t.get("waveform", (doc.get("stimulation") or {}).get("waveform"))
        if wf == "sine":
            t["frequency_hz"] = f
    doc["name"] = "%s, at the individual alpha frequency %.2f Hz" % (doc["name"], f)
    doc["provenance"] = {
        "kind": "iaf", "created_at": W.now_iso(), "created_by": "tesctl %s iaf" % _version(),
        "base_protocol": os.path.abspath(str(base)), "base_protocol_sha256": base_loaded.sha256(),
        "source_file": r["file"], "source_sha256": r["sha256"], "channels": list(r["channels"]),
        "method": I.METHOD, "estimate": use, "estimate_hz": f,
        "certainty": I.certainty_text(r), "channels_with_peak": r["channels_with_peak"]}
    for key in ("paf_hz", "cog_hz"):
        if r[key] is not None:
            doc["provenance"][key] = round(r[key], 3)
    loaded = W.write(out, doc, header=("Written by tesctl iaf from %s" % os.path.basename(str(base)),
                                       "tACS at the individual alpha frequency of %s" % os.path.basename(eeg_file)))
    click.echo("wrote %s: tACS at %.2f Hz (%s), sha256 %s" % (safe_text(out), f, use.upper(), loaded.sha256()))


@main.command()
@click.argument("base", type=PROTOCOL)
@click.option("--port", "-p", required=True, help="Device path, pyserial URL, or 'sim' for a simulated board.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The protocol to write (.toml).")
@click.option("--percent", type=click.FloatRange(1, 100), default=80, show_default=True,
              help="The written protocol's amplitude, in % of the threshold.")
@click.option("--start-uA", "start_uA", type=click.IntRange(1, 4000), default=100, show_default=True,
              help="First bout's level (peak, uA).")
@click.option("--step-uA", "step_uA", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Staircase step, uA (0.05 mA).")
@click.option("--max-uA", "max_uA", type=click.IntRange(1, 4000), default=2000, show_default=True,
              help="Highest level tried; no sensation up to it ends the titration.")
@click.option("--bout-s", "bout_s", type=click.IntRange(1, 60), default=10, show_default=True,
              help="Seconds at full level per bout (1 s ramps on top).")
@click.option("--reversals", type=click.IntRange(1, 20), default=4, show_default=True,
              help="Reversals of the staircase before it ends.")
@click.option("--sessions", "sessions_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the bouts' protocols and session records (default: sessions/DATE-TIME-titration).")
@click.option("--board", "-b", default=None, help="Board file to validate against (default: sim for --port sim).")
@click.option("--fast", is_flag=True, help="Simulated board: virtual clock (tests, rehearsal).")
@click.option("--subject", default=None, help="Subject/participant code recorded with every bout.")
def titrate(base, port, out, percent, start_uA, step_uA, max_uA, bout_s, reversals, sessions_dir, board, fast,
            subject):
    """Sensory-threshold staircase of BASE's waveform; writes BASE at --percent of the threshold.

    After each bout the participant answers y or n (felt anything?) on stdin."""
    from tesctl import protowrite as W
    from tesctl import titrate as T
    from tesctl.errors import SessionEnded
    from tesctl.runner import reserve_out_dir
    if port != "sim" and fast:
        fail("--fast works only with a simulated board (--port sim)", EXIT_INPUT)
    board = _board_for_port(port, board)
    _, limits = check_board(board)
    T.check_options(start_uA, step_uA, max_uA, limits["max_current_uA"])
    W.check_out(out)
    W.read_base(base, "titrate")
    sessions_dir, _ = reserve_out_dir(sessions_dir, "titration")
    click.echo("titration: bouts and their records in %s" % safe_text(sessions_dir), err=True)
    stdin = click.get_text_stream("stdin")

    def ask(n, level):
        for _ in range(5):
            click.echo("bout %d: did the participant feel anything? [y/n] " % n, nl=False)
            line = stdin.readline()
            if not line:
                raise SessionEnded("no answer after bout %d (end of input): titration stopped, no protocol written" % n)
            a = line.strip().lower()
            click.echo(a)
            if a in ("y", "yes"):
                return True
            if a in ("n", "no"):
                return False
        raise SessionEnded("no y/n answer after bout %d: titration stopped, no protocol written" % n)

    s = T.titrate(base, out, port, board or "sim", sessions_dir, percent, start_uA, step_uA, max_uA, bout_s,
                  reversals, fast, subject, ask, log=lambda m: click.echo(m), warn=lambda m: click.echo(m, err=True))
    click.echo("threshold: %.0f uA (mean of the reversals at %s uA), %d bouts" % (
        s["threshold_uA"], ", ".join(str(v) for v in s["reversal_levels_uA"]), len(s["trials"])))
    click.echo("wrote %s: %d uA = %g %% of the threshold, sha256 %s" % (safe_text(out), s["amplitude_uA"],
                                                                      percent, s["protocol_sha256"]))


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tesctl")
    except PackageNotFoundError:
        return "unknown"


main.add_command(protocols_command)
main.add_command(export_group)          # tesctl export bids|edf (tesctl.export, docs/records.md)


if __name__ == "__main__":
    main()
