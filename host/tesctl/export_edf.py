"""A session's telemetry as EDF+ (written with edfio): one signal per telemetry column, the
events as EDF+ annotations. Layout and conventions: docs/records.md, "EDF+".
"""
import datetime
import os
import re
import statistics

from tesctl.errors import InputError, safe_text

# telemetry.csv column -> (EDF label, physical dimension, transducer field)
CHANNELS = (
    ("set_uA", "I_set", "uA", "commanded current, last sample of the window"),
    ("meas_uA", "I_meas", "uA", "measured current, window mean"),
    ("v_mV", "V", "mV", "electrode voltage, window mean"),
    ("z_ohm", "Z", "Ohm", "impedance; -1 = no reading (open or no current)"),
    ("charge_uC", "Q", "uC", "delivered charge so far"),
)
Z_UNKNOWN = -1       # EDF has no NaN: an empty z_ohm (unknown or open circuit) is written as -1


def channels_of(meta):
    """CHANNELS, then for a multi-electrode session (session.json `montage`, three or more
    electrodes) each electrode's set and measured current, voltage and impedance columns."""
    from tesctl.report import session_electrodes
    names, _ = session_electrodes(meta)
    return CHANNELS + tuple(
        ("%s_%s" % (n, key), "%s_%s" % (label, n), unit, "%s: %s" % (n, what)) for n in names
        for key, label, unit, what in (("set_uA", "I_set", "uA", "commanded current, window mean"),
                                       ("meas_uA", "I_meas", "uA", "measured current, window mean"),
                                       ("v_mV", "V", "mV", "voltage to the return, window mean"),
                                       ("z_ohm", "Z", "Ohm", "path impedance; -1 = no reading")))


def frame_period_ms(rows):
    """The telemetry frame period in whole ms: the median step of t_s (20 ms at 50 frames/s)."""
    steps = [round((b["t_s"] - a["t_s"]) * 1000) for a, b in zip(rows, rows[1:])]
    steps = [s for s in steps if s > 0]
    return max(1, int(statistics.median(steps))) if steps else 20


def on_grid(rows, channels=CHANNELS):
    """(period_ms, {column: [values]}, gaps): rows placed on a regular grid of the frame period.

    A row goes to the nearest grid sample (the device stamps frames every period, the last one
    at the stop may fall between); a missing frame repeats the previous value and is listed in
    gaps as (onset_s, missing frames) so that the file says so.
    """
    period = frame_period_ms(rows)
    placed = {}
    for r in rows:
        placed[int(round(r["t_s"] * 1000 / period))] = r
    n = max(placed) + 1
    columns = {key: [] for key, *_ in channels}
    gaps = []
    prev = placed[min(placed)]
    missing = 0
    for i in range(n):
        r = placed.get(i)
        if r is None:
            missing += 1
            r = prev
        elif missing:
            gaps.append(((i - missing) * period / 1000, missing))
            missing = 0
        for key in columns:
            v = r.get(key)
            columns[key].append(Z_UNKNOWN if v is None else float(v))
        prev = r
    return period, columns, gaps


def _samples_per_record(fs, n):
    """The longest data record (<= 1 s) that divides both the rate and the length exactly, so no
    sample is invented to fill the last record."""
    for spr in range(int(fs), 0, -1):
        if fs % spr == 0 and n % spr == 0:
            return spr
    return 1


def _field(text, limit=40):
    """An EDF+ header subfield: printable ASCII without spaces."""
    s = re.sub(r"[^!-~]", "_", str(text))
    return s[:limit] or "X"


def _start(meta):
    """Session time 0 on the host's clock (UTC), else the start, else None."""
    for key in ("t0_at", "started_at"):
        try:
            return datetime.datetime.fromisoformat(meta[key]).astimezone(datetime.timezone.utc)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def build(session):
    """The edfio.Edf of a session with telemetry (InputError without)."""
    import edfio
    import numpy as np
    if not session.telemetry:
        raise InputError("%s: no telemetry.csv rows (a sealed session?): nothing to write as EDF"
                         % safe_text(session.path))
    channels = channels_of(session.meta)
    period, columns, gaps = on_grid(session.telemetry, channels)
    fs = 1000 / period
    signals = []
    for key, label, unit, transducer in channels:
        data = np.asarray(columns[key], dtype=float)
        lo, hi = float(data.min()), float(data.max())
        if lo == hi:            # a flat channel still needs a physical range
            lo, hi = lo - 1, hi + 1
        signals.append(edfio.EdfSignal(data, fs, label=label, physical_dimension=unit,
                                       transducer_type=transducer[:80], physical_range=(lo, hi)))
    n = len(columns["set_uA"])
    annotations = [edfio.EdfAnnotation(onset, duration or None, text)
                   for onset, duration, text in (session.events or ())]
    annotations += [edfio.EdfAnnotation(onset, missing * period / 1000, "telemetry-gap:%d" % missing)
                    for onset, missing in gaps]
    meta = session.meta
    start = _start(meta)
    patient = edfio.Patient(code=_field(meta.get("subject") or "X"))
    recording = edfio.Recording(startdate=start.date() if start else None,
                                equipment_code=_field("tesctl-%s" % meta.get("board", "X")))
    spr = _samples_per_record(fs, n)
    edf = edfio.Edf(signals, patient=patient, recording=recording,
                    starttime=start.time().replace(tzinfo=None) if start else None,
                    data_record_duration=spr / fs, annotations=sorted(annotations, key=lambda a: a.onset))
    return edf, n


def write_file(session, target):
    """Write session's EDF+ at target (never over a file); (path, telemetry frames)."""
    target = str(target)
    if not target.lower().endswith(".edf"):
        raise InputError("--to %s: an EDF file name ends in .edf (or give a folder)" % safe_text(target))
    if os.path.exists(target):
        raise InputError("%s already exists: an export never writes over a file" % safe_text(target))
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise InputError("%s: its folder does not exist" % safe_text(target))
    edf, _ = build(session)
    edf.write(target)
    return target, len(session.telemetry)
