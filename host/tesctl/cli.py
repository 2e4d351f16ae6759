"""tesctl: the command-line interface (contract in docs/cli.md and ../DESIGN.md).

Exit codes: 0 success; 1 session ended by a fault or abort; 2 bad input (file, option);
3 device/link error. Errors are one sentence on stderr, never a traceback.
"""
import sys
from pathlib import Path

import click

from tesctl import protofile
from tesctl.boards import BoardError, resolve

EXIT_OK, EXIT_SESSION, EXIT_INPUT, EXIT_DEVICE = 0, 1, 2, 3


def fail(message, code):
    click.echo("tesctl: " + message, err=True)
    sys.exit(code)


def load_valid(path, board_name):
    """Load and validate a protocol against a board, or exit 2 listing every problem."""
    try:
        board, limits = resolve(board_name)
    except BoardError as e:
        fail(str(e), EXIT_INPUT)
    loaded = protofile.load(path, limits)
    if not loaded.ok:
        click.echo("%s: %d problem%s:" % (path, len(loaded.problems), "" if len(loaded.problems) == 1 else "s"),
                   err=True)
        for p in loaded.problems:
            click.echo("  " + p, err=True)
        sys.exit(EXIT_INPUT)
    for w in loaded.warnings:
        click.echo("warning: " + w, err=True)
    return loaded, board


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tesctl")
def main():
    """Host tooling for the tesctl transcranial electrical stimulator."""


@main.command()
@click.argument("protocol", type=click.Path(dir_okay=True))
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
    click.echo("%s: valid: %s" % (protocol, c["name"]))
    click.echo("  %d segment(s), stimulation %.1f min, peak %d uA, charge <= %.3f C, %d S/s%s"
               % (len(c["segments"]), stim_ms / 60000, peak, charge / 1e6, c["sample_rate_hz"],
                  ", SHAM" if c["sham"] else ""))
    click.echo("  sha256 %s" % loaded.sha256())


@main.command()
@click.argument("protocol", type=click.Path())
@click.option("--board", "-b", default=None, help="Board name or path.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="Write every sample: t_s,current_uA.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), help="Write a PNG of the waveform.")
@click.option("--engine", type=click.Choice(["cpython", "micropython"]), default="cpython", show_default=True,
              help="micropython runs the firmware engine under the unix port.")
def preview(protocol, board, csv_out, plot_out, engine):
    """Compute every sample the engine would output."""
    from tesctl import enginerun
    loaded, _ = load_valid(protocol, board)
    if not csv_out and not plot_out:
        fail("nothing to write: give --csv OUT and/or --plot FILE.png", EXIT_INPUT)
    canon = loaded.canonical
    fs = canon["sample_rate_hz"]
    try:
        values = enginerun.ENGINES[engine](canon)
    except (RuntimeError, FileNotFoundError) as e:
        fail(str(e), EXIT_DEVICE)
    for out in (csv_out, plot_out):
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
    if csv_out:
        enginerun.write_csv(csv_out, values, fs)
        click.echo("wrote %s: %d samples, %.1f s at %d S/s (%s engine)" % (csv_out, len(values), len(values) / fs,
                                                                          fs, engine))
    if plot_out:
        from tesctl.plots import preview_png
        preview_png(plot_out, values, fs, canon["name"])
        click.echo("wrote %s" % plot_out)


if __name__ == "__main__":
    main()
