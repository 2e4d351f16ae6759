"""The impedance check of a montage of C >= 2 driven electrodes (issue 12): each contact
estimated before START, not only one two-electrode path.

Imported only by a CHECK with such a protocol loaded (tes.app.cmd_check). C + 1 steps run
one after another, each an ordinary CHECK session of the multi form (tes.multicontrol's
block path and supervisors), the test current DC as in the two-electrode check, measured
over the second half of its plateau in each electrode's own supervisor window:
  step k < C: electrode k alone at +I (the others 0): P_k = V_k / I_k = Z_k + Z_ret, the
              path through the return (the board's ground), what a two-electrode check sees;
  step C:     electrode 0 at +I, electrode 1 at -I (the return carries none):
              Q = (V_0 - V_1) / I = Z_0 + Z_1.
Then Z_ret = (P_0 + P_1 - Q) / 2 and Z_k = P_k - Z_ret (ohm, integers). The check passes
when no step faulted and every path P_k lies in [SHORT_OHM, impedance_max_ohm]: the limit
keeps its two-electrode meaning (a path of two contacts). A step that faults (an open
circuit) names its electrode as a session does; every path open while Q was measured names
the return, the one contact they share. The EVENT check (docs/wire.md) keeps z_ohm (the
largest path) and pass, and adds `electrodes` in montage order.
"""
from tes import supervisor as S
from tes import validate as V
from tes.session import CHECK, CHECK_RAMP_MS

_OPEN = ("open-circuit", "compliance")    # a step's faults that mean no path


def step_protocol(proto, k, current, duration_ms, fs=1000):
    """Step k's test currents (k == C: the pair step) on proto's montage."""
    driven = V.driven_names(proto)
    C = len(driven)
    curs = []
    for c in range(C):
        if k < C:
            a = current if c == k else 0
        else:
            a = current if c == 0 else (-current if c == 1 else 0)
        curs.append({"electrode": driven[c], "waveform": "dc", "amplitude_uA": a, "offset_uA": 0,
                     "frequency_mHz": 0, "phase_deg": 0, "band_mHz": [0, 0], "seed": 0, "noise_sd_uA": 0,
                     "pulse_width_us": 0, "biphasic": False})
    seg = {"kind": "stim", "duration_ms": duration_ms, "ramp_up_ms": CHECK_RAMP_MS,
           "ramp_down_ms": CHECK_RAMP_MS, "ramp_shape": "linear", "currents": curs}
    return {"schema": 1, "name": "test current", "sample_rate_hz": fs, "montage": proto["montage"],
            "segments": [seg], "sham": None, "safety": {"impedance_max_ohm": 50000}}


def begin(app, current, duration_ms):
    """Start the check's first step (the app is in CHECKING)."""
    Check(app.proto, current, duration_ms).next(app)


def _mean(w):
    """(set, measured, voltage) means of a supervisor window, or None."""
    return None if w is None else (w[1], w[3], w[5])


class Check:
    def __init__(self, proto, current, duration_ms):
        self.proto = proto
        self.current = current
        self.duration_ms = duration_ms
        self.driven = V.driven_names(proto)
        self.C = len(self.driven)
        self.k = 0                      # the step running
        self.paths = [None] * self.C    # P_k, ohm
        self.q = None                   # Z_0 + Z_1, ohm
        self.faults = []                # [(step, reason, electrode name or None)]
        self.z = None                   # this step's figure, once measured
        self.el = None                  # the electrode this step's own measure found open

    def next(self, app):
        self.z = self.el = None
        s = app.begin(CHECK, step_protocol(self.proto, self.k, self.current, self.duration_ms), None)
        s.mcheck = self

    def span(self, s):
        """tes.app.check_span for a step: each electrode's own window (s.sups[c])."""
        done = s.control.checked
        if not s.span_open and done >= s.span[0]:
            for sup in s.sups:
                sup.window()                   # discard what came before the span
            s.span_open = True
        elif s.span_open and not s.z and done >= s.span[1]:
            s.z = 1                            # measured (the figure is self.z)
            if self.k < self.C:
                self.measure(s, (self.k,))
            else:
                self.measure(s, (0, 1))

    def measure(self, s, cs):
        ws = [_mean(s.sups[c].window()) for c in cs]
        for j in range(len(cs)):
            w = ws[j]
            if w is None or abs(w[1]) * 4 < abs(w[0]):     # under a quarter of the test current
                s.check_reason = "open-circuit"
                self.el = self.driven[cs[j]]
                return
        if len(ws) == 1:
            self.z = ws[0][2] * 1000 // ws[0][1]
        else:
            self.z = (ws[0][2] - ws[1][2]) * 2000 // (ws[0][1] - ws[1][1])

    def end(self, app, s, reason):
        """tes.app.end_check for a step (its session closed): the next step, or the EVENT
        check's fields (None while steps remain)."""
        if reason:
            el = s.control.electrode_name(s.names) if reason != "aborted" else None
        else:
            reason = s.check_reason
            el = self.el
        if reason == "aborted":
            return self.result(app, reason)
        if reason or self.z is None:
            self.faults.append((self.k, reason or "no-measure", el))
        elif self.k < self.C:
            self.paths[self.k] = self.z
        else:
            self.q = self.z
        self.k += 1
        if self.k <= self.C:
            self.next(app)
            return None
        return self.result(app, "")

    def result(self, app, reason):
        limit = app.proto["safety"]["impedance_max_ohm"]
        P = self.paths
        C = self.C
        ret = None
        if P[0] is not None and P[1] is not None and self.q is not None:
            ret = (P[0] + P[1] - self.q) // 2
        ret_name = V.return_name(self.proto)
        rows = []
        for name in V.electrode_names(self.proto):
            if name == ret_name:
                rows.append({"name": name, "z_ohm": ret, "path_ohm": None})
            else:
                p = P[self.driven.index(name)]
                rows.append({"name": name, "z_ohm": None if p is None or ret is None else p - ret, "path_ohm": p})
        known = [p for p in P if p is not None]
        z = max(known) if len(known) == C else None
        ok = not reason and not self.faults and z is not None and self.q is not None
        for p in known:
            ok = ok and S.SHORT_OHM <= p <= limit
        fields = {"z_ohm": z, "limit_ohm": limit, "current_uA": self.current, "pass": ok}
        el = None
        if self.faults and not reason:
            reason = self.faults[0][1]
            el = self.faults[0][2]
            opens = [f for f in self.faults if f[0] < C and f[1] in _OPEN]
            if len(opens) == C and self.q is not None:
                el = ret_name          # every path open, the pair's measured: their common contact
        if reason:
            fields["reason"] = reason
        if el is not None:
            fields["electrode"] = el
        fields["electrodes"] = rows
        return fields
