"""Lab Streaming Layer outlets for a session: event markers and telemetry.

Other lab software (EEG recorders, LabRecorder) picks these up by name or source_id and
time-aligns them with its own streams; that is the whole point of LSL here.
"""
from tesctl.errors import InputError

MARKER_TYPE = "Markers"
TELEMETRY_TYPE = "tES"
TELEMETRY_RATE_HZ = 50          # the device sends a telemetry frame every 20 ms
# The first five are link 1's (means over 20 ms; z_ohm the RMS ratio over whole periods);
# then the RMS and peak figures over whole periods and the impedance's phase (NaN: unknown).
CHANNELS = ("set_uA", "meas_uA", "v_mV", "z_ohm", "charge_uC", "set_rms_uA", "meas_rms_uA", "meas_peak_uA",
            "v_rms_mV", "z_phase_deg")
CLASSIC = 5                     # a frame of CHANNELS[:CLASSIC] only: the rest go out as NaN
_UNITS = {"uA": "microamperes", "mV": "millivolts", "ohm": "ohms", "uC": "microcoulombs", "deg": "degrees"}


def channels_for(electrodes=None):
    """The telemetry outlet's channel labels: CHANNELS, then, in a multi-electrode session,
    per electrode in montage order the telemetry.csv columns of the same names
    (NAME_set_uA, NAME_meas_uA, ...; NaN when unknown, as the return's impedance is)."""
    from tesctl.recorder import ELECTRODE_SUFFIXES
    return CHANNELS + tuple("%s_%s" % (name, suffix) for name in (electrodes or ())
                            for suffix in ELECTRODE_SUFFIXES)


class LslError(InputError):
    """LSL is not usable here (pylsl not installed, liblsl missing or failing): one line,
    exit 2 (an option this install cannot serve)."""


def require():
    """Raise LslError now if --lsl cannot work in this install (pylsl or liblsl missing)."""
    _pylsl()


def _pylsl():
    # Imported on use: pylsl raises at import time when liblsl is missing, and the rest of
    # tesctl must work without LSL.
    try:
        import pylsl
    except ModuleNotFoundError as e:
        if e.name != "pylsl":
            raise
        raise LslError("--lsl needs pylsl: pip install 'tesctl[lsl]'") from None
    except (ImportError, RuntimeError, OSError) as e:
        raise LslError("LSL is unavailable: %s" % str(e).strip().splitlines()[0]) from None
    return pylsl


class LslOutlets:
    """Two outlets: f"{name}-markers" (strings, irregular) and f"{name}-telemetry" (float32,
    50 Hz). Their source ids are f"{source_id}-markers" / f"{source_id}-telemetry", so an
    inlet that loses them reconnects to this session's streams and no other."""

    def __init__(self, name, source_id, channels=CHANNELS):
        lsl = self._lsl = _pylsl()
        self.channels = tuple(channels)
        self.marker_source_id = "%s-markers" % source_id
        self.telemetry_source_id = "%s-telemetry" % source_id
        minfo = lsl.StreamInfo("%s-markers" % name, MARKER_TYPE, 1, lsl.IRREGULAR_RATE,
                               lsl.cf_string, self.marker_source_id)
        tinfo = lsl.StreamInfo("%s-telemetry" % name, TELEMETRY_TYPE, len(self.channels), TELEMETRY_RATE_HZ,
                               lsl.cf_float32, self.telemetry_source_id)
        chans = tinfo.desc().append_child("channels")
        for label in self.channels:
            unit = label.rsplit("_", 1)[-1]
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", _UNITS.get(unit, unit))
            ch.append_child_value("type", TELEMETRY_TYPE)
        tinfo.desc().append_child("acquisition").append_child_value("manufacturer", "tesctl")
        self._markers = lsl.StreamOutlet(minfo)
        self._telemetry = lsl.StreamOutlet(tinfo)

    def marker(self, text, timestamp=None):
        """ramp-up, plateau, ramp-down, stop, fault:<name>, end:<outcome>."""
        if self._markers is not None:
            self._markers.push_sample([str(text)], timestamp or 0.0)

    def telemetry(self, values, timestamp=None):
        """One frame, in the order of self.channels; None (e.g. open-circuit impedance) goes
        out as NaN. With the default channels, the first CLASSIC values alone are a frame
        too (the figures after them go out as NaN), and so are CHANNELS' values alone in a
        multi session (a frame without the electrodes' figures: NaN for them)."""
        values = list(values)
        if self.channels[:len(CHANNELS)] == CHANNELS and len(values) in (CLASSIC, len(CHANNELS)) \
                and len(values) < len(self.channels):
            values += [None] * (len(self.channels) - len(values))   # a frame without the later figures
        if len(values) != len(self.channels):
            raise ValueError("telemetry needs %d values, got %d" % (len(self.channels), len(values)))
        if self._telemetry is not None:
            row = [float("nan") if v is None else float(v) for v in values]
            self._telemetry.push_sample(row, timestamp or 0.0)

    def wait_for_consumers(self, timeout):
        """True once something listens on both streams (samples pushed earlier are lost)."""
        return (self._markers.wait_for_consumers(timeout) and self._telemetry.wait_for_consumers(timeout))

    def close(self):
        # pylsl destroys an outlet (and unadvertises the stream) when it is released.
        self._markers = self._telemetry = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
