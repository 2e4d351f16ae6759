"""Sessions into a BIDS dataset: events, the stimulation in the NIBS-BIDS draft form (BEP037,
proposal v.6; docs/records.md says which text and why), telemetry as EDF+.

Per session, in sub-<subject>/ses-<start time>/:
  beh/  ..._task-<task>_events.tsv + .json        (validated by the BIDS validator)
  nibs/ ..._task-<task>_stimsys-tes_nibs.tsv + .json, ..._stimsys-tes_telemetry.edf
The nibs datatype is a draft the validator does not know yet, so .bidsignore lists it.
Every file is planned before any is written: a dataset that already holds one of them is
refused whole (exit 2), so nothing is overwritten and no export is left half done.
"""
import datetime
import json
import os
import re
import statistics

from tesctl import export_edf
from tesctl.errors import InputError, safe_text
from tesctl.export import load_session

BIDS_VERSION = "1.10.0"
NIBS_DRAFT = ("NIBS-BIDS proposal v.6 (BEP037 draft, github.com/nigelrogasch/nibs-bids, "
              "nibs-bids-v6/non-invasive-brain-stimulation-v6.md)")
BIDSIGNORE = ("**/nibs",)   # the validator matches the folder itself, so no trailing slash
TES_MODE = {"dc": "tDCS", "sine": "tACS", "noise": "tRNS", "pulse": "tPCS"}
STATUS = {"completed": "ok", "stopped": "ok", "impedance-high": "impedance_high", "open-circuit": "unstable_contact"}
EVENT_LEVELS = {
    "ramp-up": "current ramps up to the block's amplitude", "plateau": "the block at full amplitude",
    "ramp-down": "current ramps down to zero", "pause": "a pause segment: no current",
    "sham-off": "sham: output off between the sham's ramps",
    "blinded": "a blinded session: its phases are sealed (docs/study.md)",
}
# _nibs.tsv columns (the draft's names) with their sidecar description and units.
NIBS_COLUMNS = (
    ("electrode_id", "ElectrodeID of the electrode in ElectrodeSet (this file's sidecar).", None),
    ("tes_stim_mode", "Stimulation mode: tDCS, tACS, tRNS or tPCS (the segment's waveform).", None),
    ("control_mode", "What the stimulator regulates.", None),
    ("protocol_name", "The protocol's name field.", None),
    ("waveform", "The segment's waveform as the protocol names it: dc, sine, noise, pulse.", None),
    ("waveform_frequency", "Frequency of a sine or pulse waveform.", "Hz"),
    ("noise_type", "Noise kind for tRNS; the band is in TesctlSegments.", None),
    ("stimulation_duration", "Total stimulation time of the segment: ramp up + full amplitude + ramp down "
                             "(a sham: its fade, twice if double; the session lasts as long as the real one).", "s"),
    ("ramp_up_duration", "Time to ramp current up.", "s"),
    ("ramp_down_duration", "Time to ramp current down.", "s"),
    ("pulse_width", "Width of each current pulse (tPCS).", "ms"),
    ("pulse_rate", "Pulse repetition rate (tPCS).", "Hz"),
    ("stim_id", "stim_<segment>.<electrode>: one row per electrode of each stimulation segment.", None),
    ("channel_name", "Electrode position (10-20 name, as in the protocol's montage).", None),
    ("channel_type", "Electrode function.", None),
    ("current_intensity", "Commanded current: peak amplitude plus |DC offset| (the device's peak).", "mA"),
    ("current_density", "current_intensity over the electrode area.", "mA/cm^2"),
    ("impedance", "Mean impedance over the session's plateau telemetry (else the pre-check's).", "kOhm"),
    ("system_status", "ok, impedance_high, unstable_contact, or the session's end reason.", None),
    ("measured_current_intensity", "Mean |measured current| over the session's plateau telemetry.", "mA"),
    ("current_statistics", "|measured current| over the plateau telemetry: mean, max, min (mA).", None),
    ("timestamp", "Session start (ISO 8601).", None),
)


def _label(text):
    """A BIDS label: letters and digits only."""
    return re.sub(r"[^A-Za-z0-9]", "", str(text or ""))


def _tsv(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return ("%.6f" % value).rstrip("0").rstrip(".")
    return re.sub(r"[\t\r\n]", " ", str(value))


def _json(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def session_label(meta):
    """ses-<UTC start, YYYYMMDDTHHMMSS>: the same session always gets the same label, so
    exporting it twice into one dataset is a conflict, never a silent duplicate."""
    try:
        t = datetime.datetime.fromisoformat(meta["started_at"]).astimezone(datetime.timezone.utc)
    except (KeyError, TypeError, ValueError):
        return None
    return t.strftime("%Y%m%dT%H%M%S")


def _plateau_stats(rows):
    """(mean |meas| mA, max, min, mean z kOhm) over the plateau rows of the telemetry, or Nones."""
    plateau = [r for r in rows or () if r["state"] == "plateau"]
    if not plateau:
        return None, None, None, None
    meas = [abs(r["meas_uA"]) / 1000 for r in plateau]
    zs = [r["z_ohm"] / 1000 for r in plateau if r["z_ohm"] is not None]
    return statistics.fmean(meas), max(meas), min(meas), statistics.fmean(zs) if zs else None


def nibs_rows(session):
    """The _nibs.tsv rows (dicts of NIBS_COLUMNS) of a session: one per electrode of each
    stimulation segment; one row of what is known when session.json has no protocol (sealed)."""
    meta = session.meta
    mean, hi, lo, z_k = _plateau_stats(session.telemetry)
    if z_k is None and isinstance(meta.get("pre_check"), dict) and meta["pre_check"].get("z_ohm"):
        z_k = meta["pre_check"]["z_ohm"] / 1000
    reason = meta.get("reason")
    common = {
        "control_mode": "current-controlled", "impedance": z_k,
        "system_status": STATUS.get(reason, STATUS.get(meta.get("outcome"), reason)),
        "measured_current_intensity": mean,
        "current_statistics": None if mean is None else "mean=%.3f;max=%.3f;min=%.3f" % (mean, hi, lo),
        "timestamp": meta.get("started_at"),
    }
    protocol = meta.get("protocol")
    if not isinstance(protocol, dict):
        return [dict(common)]
    rows = []
    stims = [s for s in protocol.get("segments", ()) if s.get("kind") == "stim"]
    for n, seg in enumerate(stims, start=1):
        up, full, down = (seg.get(k, 0) / 1000 for k in ("ramp_up_ms", "duration_ms", "ramp_down_ms"))
        sham = protocol.get("sham")
        if isinstance(sham, dict):      # a sham delivers only its fade (twice if double)
            up, full, down = (sham.get(k, 0) / 1000 for k in ("ramp_up_ms", "plateau_ms", "ramp_down_ms"))
            full += (up + full + down) if sham.get("double") else 0
        for e, (eid, name, role, ch, peak_mA, area_cm2, measured) in enumerate(
                electrode_channels(protocol, seg, session.telemetry), start=1):
            wf = ch.get("waveform")
            freq = ch.get("frequency_mHz", 0) / 1000 if wf in ("sine", "pulse") else None
            rows.append(dict(common, **measured, **{
                "electrode_id": eid, "tes_stim_mode": TES_MODE.get(wf, wf),
                "protocol_name": protocol.get("name"), "waveform": wf, "waveform_frequency": freq,
                "noise_type": "band-limited" if wf == "noise" else None,
                "stimulation_duration": up + full + down, "ramp_up_duration": up, "ramp_down_duration": down,
                "pulse_width": ch.get("pulse_width_us", 0) / 1000 if wf == "pulse" else None,
                "pulse_rate": freq if wf == "pulse" else None,
                "stim_id": "stim_%d.%d" % (n, e), "channel_name": name, "channel_type": role,
                "current_intensity": peak_mA, "current_density": peak_mA / area_cm2 if area_cm2 else None,
            }))
    return rows or [dict(common)]


def electrode_channels(protocol, seg, telemetry):
    """[(electrode_id, name, role, channel, peak mA, area cm^2, measured)] of a stim segment:
    the anode and cathode of the two-electrode form (measured: {}, the session's figures
    stand), or each electrode of the multi form in montage order (role driven or return;
    the return's channel: the driven ones' waveform when they share it, its peak their
    sum; measured: the electrode's own plateau figures from its telemetry.csv columns)."""
    montage = protocol.get("montage", {})
    if "electrodes" not in montage:
        area = (montage.get("electrode_area_mm2") or 0) / 100
        peak = (seg.get("amplitude_uA", 0) + abs(seg.get("offset_uA", 0))) / 1000
        return [("el_%s" % role, montage.get(role), role, seg, peak, area, {}) for role in ("anode", "cathode")]
    chans = {c.get("electrode"): c for c in seg.get("currents", ())}
    peaks = {k: (abs(c.get("amplitude_uA", 0)) + abs(c.get("offset_uA", 0))) / 1000 for k, c in chans.items()}
    kinds = {c.get("waveform") for c in chans.values()}
    shared = dict(next(iter(chans.values()))) if len(kinds) == 1 and chans else {"waveform": "mixed"}
    out = []
    for e in montage["electrodes"]:
        name = e.get("name")
        ret = name == montage.get("return")
        out.append(("el_%s" % _label(name), name, "return" if ret else "driven", shared if ret else chans.get(name, {}),
                    sum(peaks.values()) if ret else peaks.get(name), (e.get("area_mm2") or 0) / 100,
                    _electrode_measured(telemetry, name)))
    return out


def _electrode_measured(rows, name):
    """A multi session's electrode: its plateau impedance (kOhm) and |measured| (mA) columns."""
    plateau = [r for r in rows or () if r["state"] == "plateau" and r.get(name + "_meas_uA") is not None]
    if not plateau:
        return {"impedance": None, "measured_current_intensity": None, "current_statistics": None}
    meas = [abs(r[name + "_meas_uA"]) / 1000 for r in plateau]
    zs = [r[name + "_z_ohm"] / 1000 for r in plateau if r.get(name + "_z_ohm") is not None]
    mean, hi, lo = statistics.fmean(meas), max(meas), min(meas)
    return {"impedance": statistics.fmean(zs) if zs else None, "measured_current_intensity": mean,
            "current_statistics": "mean=%.3f;max=%.3f;min=%.3f" % (mean, hi, lo)}


def nibs_sidecar(session, task):
    meta = session.meta
    protocol = meta.get("protocol") if isinstance(meta.get("protocol"), dict) else None
    side = {
        "TaskName": task,
        "StimulationSystemName": "tes",
        "Manufacturer": "tesctl (open firmware and host tooling)",
        "ManufacturersModelName": meta.get("board", "n/a"),
        "SoftwareVersion": meta.get("firmware_version", "n/a"),
        "DeviceSerialNumber": meta.get("unit", "n/a"),
        "NIBSDraft": NIBS_DRAFT,
    }
    if protocol:
        stim = next((s for s in protocol.get("segments", ()) if s.get("kind") == "stim"), {})
        side["ElectrodeSet"] = [{"ElectrodeID": eid, "ElectrodeType": "pad",
                                 "ElectrodeSize": {"Value": area, "Units": "cm^2",
                                                   "Description": "Electrode surface area"}}
                                for eid, _, _, _, _, area, _ in electrode_channels(protocol, stim, ())]
        side["TesctlSegments"] = protocol.get("segments")
        side["TesctlSham"] = protocol.get("sham")
    for col, desc, units in NIBS_COLUMNS:
        side[col] = {"Description": desc, **({"Units": units} if units else {})}
    side["TesctlSession"] = {k: meta.get(k) for k in (
        "outcome", "reason", "delivered_charge_uC", "stim_duration_s", "protocol_sha256",
        "firmware_sha256", "started_at", "ended_at", "complete", "lost_frames", "telemetry_rows", "blinded")
        if k in meta}
    if protocol is None:
        side["TesctlSession"]["sealed"] = "session.json holds no protocol: stimulation parameters are n/a"
    return side


def events_files(session, task):
    """(events.tsv text, its sidecar) of a session with events.tsv."""
    lines = ["onset\tduration\ttrial_type"]
    levels = {}
    for onset, duration, kind in session.events:
        lines.append("%s\t%s\t%s" % (_tsv(float(onset)), _tsv(float(duration)), _tsv(kind)))
        if kind.startswith("fault:"):
            levels[kind] = "a fault stopped or changed the output: " + kind[6:]
        elif kind.startswith("end:"):
            levels[kind] = "the session ended: " + kind[4:]
        else:
            levels[kind] = EVENT_LEVELS.get(kind, "a state of the session")
    side = {
        "TaskName": task,
        "TaskDescription": "Transcranial electrical stimulation session recorded by tesctl.",
        "onset": {"Description": "Seconds from the session's START (telemetry t_s = 0).", "Units": "s"},
        "duration": {"Description": "Time in this state.", "Units": "s"},
        "trial_type": {"Description": "Session state, fault or end (tesctl events.tsv).", "Levels": levels},
    }
    return "\n".join(lines) + "\n", side


def plan_session(session, subject, task):
    """(subject label, session label, {relative path: text or ('edf', session)}, notes)."""
    meta = session.meta
    sub = _label(meta.get("subject") or meta.get("participant")) or _label(subject)   # participant: blinded
    if not sub:
        raise InputError("%s: the session has no subject: give --subject LABEL" % safe_text(session.path))
    ses = session_label(meta)
    if ses is None:
        raise InputError("%s: session.json has no valid started_at" % safe_text(session.path))
    stem = "sub-%s_ses-%s_task-%s" % (sub, ses, task)
    base = "sub-%s/ses-%s/" % (sub, ses)
    files, notes = {}, []
    if session.events is not None:
        tsv, side = events_files(session, task)
        files[base + "beh/%s_events.tsv" % stem] = tsv
        files[base + "beh/%s_events.json" % stem] = _json(side)
        notes.append("events")
    else:
        notes.append("no events.tsv")
    rows = nibs_rows(session)
    files[base + "nibs/%s_stimsys-tes_nibs.tsv" % stem] = "\n".join(
        ["\t".join(c for c, *_ in NIBS_COLUMNS)] + ["\t".join(_tsv(r.get(c)) for c, *_ in NIBS_COLUMNS)
                                                    for r in rows]) + "\n"
    files[base + "nibs/%s_stimsys-tes_nibs.json" % stem] = _json(nibs_sidecar(session, task))
    if meta.get("blinded"):
        notes.append("blinded: sealed.bin left sealed")
    notes.append("nibs" if isinstance(meta.get("protocol"), dict) else "nibs (no protocol: parameters n/a)")
    if session.telemetry:
        files[base + "nibs/%s_stimsys-tes_telemetry.edf" % stem] = ("edf", session)
        notes.append("EDF+ (%d telemetry frames)" % len(session.telemetry))
    elif session.telemetry is None:
        notes.append("no telemetry (sealed session?): no EDF")
    else:
        notes.append("telemetry.csv has no rows: no EDF")
    return sub, ses, files, notes


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tesctl")
    except PackageNotFoundError:
        return "unknown"


def _dataset_files(dataset, name, subjects):
    """Dataset-level files: new ones to write and existing ones to extend (never replace)."""
    files = {}
    desc = os.path.join(dataset, "dataset_description.json")
    if not os.path.exists(desc):
        files["dataset_description.json"] = _json({
            "Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
            "GeneratedBy": [{"Name": "tesctl", "Version": _version(),
                             "Description": "tesctl export bids; stimulation in the %s form" % NIBS_DRAFT}]})
        files["README"] = ("Sessions recorded with tesctl (transcranial electrical stimulation) and exported by "
                           "`tesctl export bids`.\nnibs/ follows the NIBS-BIDS draft (BEP037); see the tesctl "
                           "documentation, docs/records.md.\n")
    part = os.path.join(dataset, "participants.tsv")
    if os.path.exists(part):
        with open(part, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if not lines or lines[0].split("\t")[0] != "participant_id":
            raise InputError("%s: malformed (its first column must be participant_id)" % safe_text(part))
        width = len(lines[0].split("\t"))
        known = {ln.split("\t")[0] for ln in lines[1:]}
        new = ["sub-%s" % s for s in sorted(subjects) if "sub-%s" % s not in known]
        files["participants.tsv"] = "\n".join(lines + ["\t".join([p] + ["n/a"] * (width - 1)) for p in new]) + "\n"
    else:
        files["participants.tsv"] = "\n".join(["participant_id"] + ["sub-%s" % s for s in sorted(subjects)]) + "\n"
    ignore = os.path.join(dataset, ".bidsignore")
    have = open(ignore, encoding="utf-8").read().splitlines() if os.path.exists(ignore) else []
    files[".bidsignore"] = "\n".join(have + [p for p in BIDSIGNORE if p not in have]) + "\n"
    return files


def _check_dataset(dataset):
    if os.path.exists(dataset) and not os.path.isdir(dataset):
        raise InputError("--to %s: exists and is not a folder" % safe_text(dataset))
    if os.path.isdir(dataset) and os.listdir(dataset) and \
            not os.path.isfile(os.path.join(dataset, "dataset_description.json")):
        raise InputError("--to %s: a folder with files but no dataset_description.json: not a BIDS dataset "
                         "(give a new or empty folder, or a dataset to add to)" % safe_text(dataset))


def export(session_paths, dataset, subject=None, task="tes", name="tesctl sessions", echo=print):
    """Export session folders into dataset; one progress line per session (echo)."""
    dataset = str(dataset)
    task = _label(task)
    if not task:
        raise InputError("--task: a BIDS label is letters and digits")
    if subject is not None and not _label(subject):
        raise InputError("--subject %s: a BIDS label needs letters or digits" % safe_text(subject))
    _check_dataset(dataset)
    sessions = [load_session(p) for p in session_paths]
    plans, planned = [], {}
    for s in sessions:
        sub, ses, files, notes = plan_session(s, subject, task)
        for rel in files:
            if rel in planned:
                raise InputError("%s and %s are both sub-%s ses-%s (same subject and start second): nothing written"
                                 % (safe_text(planned[rel]), safe_text(s.path), sub, ses))
            if os.path.exists(os.path.join(dataset, rel)):
                raise InputError("%s already holds %s (from %s): nothing written"
                                 % (safe_text(dataset), safe_text(rel), safe_text(s.path)))
            planned[rel] = s.path
        plans.append((s, sub, ses, files, notes))
    # Build every EDF before writing anything: a session edfio refuses stops the export clean.
    edfs = {rel: export_edf.build(v[1])[0] for *_, files, _ in plans for rel, v in files.items()
            if isinstance(v, tuple)}
    top = _dataset_files(dataset, name, {p[1] for p in plans})
    os.makedirs(dataset, exist_ok=True)
    for s, sub, ses, files, notes in plans:
        for rel, content in files.items():
            path = os.path.join(dataset, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if rel in edfs:
                edfs[rel].write(path)
            else:
                with open(path, "x", encoding="utf-8") as f:
                    f.write(content)
        echo("%s -> sub-%s ses-%s: %s" % (safe_text(s.name), sub, ses, ", ".join(notes)))
    for rel, content in top.items():
        tmp = os.path.join(dataset, rel + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, os.path.join(dataset, rel))
    echo("%d session%s exported to %s" % (len(plans), "" if len(plans) == 1 else "s", safe_text(dataset)))
