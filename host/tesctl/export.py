"""`tesctl export`: session records as files other tools read (docs/records.md).

A session folder is read once here (load_session); export_edf writes its telemetry as EDF+,
export_bids writes a BIDS dataset of one or more sessions. A folder without telemetry.csv
(a sealed, blinded session) exports what it has and says what it left out.
"""
import csv
import json
import os

import click

from tesctl.errors import InputError, safe_text
from tesctl.recorder import ELECTRODE_SUFFIXES

TELEMETRY_HEAD = ("t_s", "state", "set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC")
EVENTS_HEAD = ("onset", "duration", "trial_type")


class Session:
    """One session folder as `tesctl run --out DIR` wrote it.

    meta: session.json; events: [(onset_s, duration_s, trial_type)] or None (no events.tsv);
    telemetry: [dict of TELEMETRY_HEAD, numbers, z_ohm None when empty] or None (sealed).
    """

    def __init__(self, path, meta, events, telemetry):
        self.path = path
        self.name = os.path.basename(os.path.normpath(path))
        self.meta = meta
        self.events = events
        self.telemetry = telemetry


def _bad(path, what):
    return InputError("%s: %s" % (safe_text(path), what))


def load_session(path):
    """The Session in folder `path`, or InputError (exit 2) naming what is missing or malformed."""
    path = str(path)
    if not os.path.isdir(path):
        raise _bad(path, "not a session folder (no such directory)")
    meta_path = os.path.join(path, "session.json")
    if not os.path.isfile(meta_path):
        raise _bad(path, "not a session folder (no session.json)")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise _bad(meta_path, "cannot be read as JSON (%s)" % e) from None
    if not isinstance(meta, dict):
        raise _bad(meta_path, "is not a JSON object")
    return Session(path, meta, _read_events(path), _read_telemetry(path))


def _read_events(folder):
    path = os.path.join(folder, "events.tsv")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or tuple(lines[0].split("\t")[:3]) != EVENTS_HEAD:
        raise _bad(path, "malformed: the header must start with onset, duration, trial_type")
    events = []
    for n, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        try:
            events.append((float(cells[0]), float(cells[1]), cells[2]))
        except (ValueError, IndexError):
            raise _bad(path, "malformed line %d: %r" % (n, line[:80])) from None
    return events


def _number(text):
    return float(text) if "." in text or "e" in text.lower() else int(text)


def _read_telemetry(folder):
    path = os.path.join(folder, "telemetry.csv")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        head = next(reader, None)
        if head is None or tuple(head[:len(TELEMETRY_HEAD)]) != TELEMETRY_HEAD:
            raise _bad(path, "malformed: the header must start with " + ",".join(TELEMETRY_HEAD))
        raw = list(reader)
    rows = []
    for n, cells in enumerate(raw, start=2):
        try:
            row = {"t_s": float(cells[0]), "state": cells[1]}
            for key, cell in zip(TELEMETRY_HEAD[2:], cells[2:len(TELEMETRY_HEAD)]):
                row[key] = _number(cell) if cell != "" else None
            if len(cells) < len(TELEMETRY_HEAD) or any(row[k] is None for k in TELEMETRY_HEAD[2:] if k != "z_ohm"):
                raise ValueError("short row")
            for key, cell in zip(head[len(TELEMETRY_HEAD):], cells[len(TELEMETRY_HEAD):]):
                if any(key.endswith("_" + suffix) for suffix in ELECTRODE_SUFFIXES):
                    row[key] = _number(cell) if cell != "" else None    # a multi session's NAME_meas_uA, ...
        except (ValueError, IndexError):
            if n == len(raw) + 1:       # the last row of a record cut short (host killed mid-write)
                break
            raise _bad(path, "malformed row %d: %r" % (n, ",".join(cells)[:80])) from None
        rows.append(row)
    return rows


@click.group("export")
def export_group():
    """Write session records as BIDS datasets or EDF+ files (docs/records.md)."""


@export_group.command("bids")
@click.argument("sessions", nargs=-1, required=True, type=click.Path(), metavar="SESSION...")
@click.option("--to", "dataset", required=True, type=click.Path(), metavar="DATASET",
              help="The BIDS dataset folder (new, or one to add to).")
@click.option("--subject", default=None, help="Participant label for sessions recorded without --subject.")
@click.option("--task", default="tes", show_default=True, help="BIDS task label.")
@click.option("--name", default="tesctl sessions", show_default=True, help="Dataset name for a new dataset.")
def bids_command(sessions, dataset, subject, task, name):
    """Export session folders into a BIDS dataset: events, NIBS-BIDS, EDF+ telemetry."""
    from tesctl import export_bids
    export_bids.export(sessions, dataset, subject=subject, task=task, name=name, echo=click.echo)


@export_group.command("edf")
@click.argument("session", type=click.Path())
@click.option("--to", "out", default=None, type=click.Path(), metavar="PATH",
              help="An .edf file, or a folder to write SESSION-NAME.edf in; default SESSION/telemetry.edf.")
def edf_command(session, out):
    """Write SESSION's telemetry and events as one EDF+ file."""
    from tesctl import export_edf
    s = load_session(session)
    if out is None:
        target = os.path.join(s.path, "telemetry.edf")
    elif os.path.isdir(out):
        target = os.path.join(out, s.name + ".edf")
    else:
        target = out
    path, n = export_edf.write_file(s, target)
    click.echo("%s: %d telemetry frames, %d events -> %s" % (safe_text(s.name), n, len(s.events or ()),
                                                             safe_text(path)))
