"""Individual alpha frequency (IAF) from a resting EEG file (`tesctl iaf`).

The method follows Corcoran et al. 2018 (Psychophysiology 55:e13064, "Toward a reliable,
automated method of individual alpha frequency (IAF) quantification"), written with
scipy: per channel, a Welch power spectrum at 0.25 Hz resolution (Hamming windows of
1/0.25 = 4 s, half overlap), smoothed by a Savitzky-Golay filter (11 bins = 2.75 Hz,
polynomial order 5), then in the 7-13 Hz search window:

- **peak alpha frequency (PAF)**: the highest local maximum of the smoothed spectrum,
  accepted only if it stands above the channel's 1/f background (a straight line fitted to
  log power against log frequency over 1-40 Hz, alpha window left out) by more than the
  fit's residual standard deviation (Corcoran's pMin) and, when the window holds several
  maxima, is at least 20 % higher than the next one (no split peak);
- **centre of gravity (CoG)**: the power-weighted mean frequency over the individual alpha
  band, whose edges f1, f2 are where the smoothed spectrum stops falling on either side
  of the peak (the first local minimum, or where the slope flattens to 1 % of the largest
  slope), averaged over the channels that gave them;
- across channels: PAF and CoG are averages weighted by each channel's peak quality Q
  (the area of the peak above the 1/f line, in log10 power x Hz), reported only when at
  least `min_channels` channels give an estimate (Corcoran's cMin, 3).

MNE reads the file (EDF, BDF, FIF, BrainVision); MNE, scipy and numpy come with the
`eeg` extra and are imported on use, so the rest of tesctl works without them.
"""
import hashlib
import math
import os

from tesctl.errors import InputError

READERS = {".edf": "EDF", ".bdf": "BDF", ".fif": "FIF", ".fif.gz": "FIF", ".vhdr": "BrainVision"}
POSTERIOR = ("O1", "O2", "Oz", "POz", "PO3", "PO4", "PO7", "PO8", "Pz", "P3", "P4", "P7", "P8")
ALPHA_WINDOW = (7.0, 13.0)
FIT_RANGE = (1.0, 40.0)
RESOLUTION_HZ = 0.25
SG_BINS = 11
SG_ORDER = 5
SPLIT_PEAK = 1.2          # the highest maximum must beat the next one by 20 %
MIN_CHANNELS = 3
SHORT_S = 60.0            # a shorter recording caps the certainty at moderate (Corcoran used ~2 min)
METHOD = ("Corcoran et al. 2018: Welch PSD 0.25 Hz (4 s Hamming, 50 % overlap), Savitzky-Golay 11 bins "
          "order 5, PAF and CoG in 7-13 Hz, peak above the 1/f fit by its residual SD, Q-weighted channel mean")


class EegError(InputError):
    """The EEG file or the options cannot give an estimate: one line, exit 2."""


def require():
    """The eeg extra's modules, or EegError naming what to install."""
    try:
        import mne  # noqa: F401
        import numpy  # noqa: F401
        import scipy.signal  # noqa: F401
    except ModuleNotFoundError as e:
        raise EegError("tesctl iaf needs %s: pip install 'tesctl[eeg]'" % (e.name or "MNE and scipy")) from None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kind_of(path):
    name = str(path).lower()
    for ext in sorted(READERS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return None


def read_eeg(path):
    """(data in volts, channel names, sampling rate) of the EEG channels of a file."""
    require()
    import mne
    ext = kind_of(path)
    if ext is None:
        raise EegError("%s: not an EEG file tesctl reads (give .edf, .bdf, .fif or a BrainVision .vhdr)" % path)
    if not os.path.isfile(path):
        raise EegError("%s: no such file" % path)
    try:
        if ext == ".vhdr":
            raw = mne.io.read_raw_brainvision(path, preload=True, verbose="error")
        elif ext in (".edf", ".bdf"):
            raw = (mne.io.read_raw_edf if ext == ".edf" else mne.io.read_raw_bdf)(path, preload=True, verbose="error")
        else:
            raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
    except Exception as e:  # MNE raises many kinds for a bad file: one line, exit 2
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EegError("%s: cannot read it as %s: %s" % (path, READERS[ext], detail)) from None
    picks = mne.pick_types(raw.info, eeg=True, exclude=())
    if len(picks) == 0:
        picks = list(range(len(raw.ch_names)))       # EDF without channel types: take them all
    names = [raw.ch_names[i] for i in picks]
    return raw.get_data(picks=picks), names, float(raw.info["sfreq"])


REFERENCE_SUFFIXES = ("-ref", "-a1", "-a2", "-m1", "-m2", "-avg", "-le", "-ar", "-cz")


def _norm(name):
    """A channel label as the 10-20 name it carries: case folded, without an "EEG " prefix
    or a reference suffix ("EEG O1-REF", "O1-A2" -> "o1")."""
    n = name.strip().lower()
    if n.startswith("eeg "):
        n = n[4:].strip()
    for suffix in REFERENCE_SUFFIXES:
        if n.endswith(suffix) and len(n) > len(suffix):
            n = n[:-len(suffix)]
            break
    return n


def pick_channels(names, wanted):
    """Indices of the wanted channels (case-insensitive; "EEG O1-REF" answers to O1);
    default: the posterior channels the file has, else every channel."""
    lower = {}
    for i, n in enumerate(names):
        lower.setdefault(n.lower(), i)
    for i, n in enumerate(names):
        lower.setdefault(_norm(n), i)
    if wanted and [w.lower() for w in wanted] == ["all"]:
        return list(range(len(names)))
    if wanted:
        missing = [w for w in wanted if w.lower() not in lower and _norm(w) not in lower]
        if missing:
            raise EegError("--channels: %s not in the file (it has %s)" % (", ".join(missing), ", ".join(names)))
        return [lower.get(w.lower(), lower.get(_norm(w))) for w in wanted]
    found = [lower[p.lower()] for p in POSTERIOR if p.lower() in lower]
    return found or list(range(len(names)))


def _channel(freqs, psd):
    """One channel's estimate: dict(paf, f1, f2, q, prominence_db) or None fields."""
    import numpy as np
    from scipy.integrate import trapezoid
    from scipy.signal import argrelmax, savgol_filter
    logp = np.log10(np.maximum(psd, np.finfo(float).tiny))
    smooth = savgol_filter(logp, SG_BINS, SG_ORDER)
    fit_mask = (freqs >= FIT_RANGE[0]) & (freqs <= FIT_RANGE[1])
    fit_mask &= ~((freqs >= ALPHA_WINDOW[0]) & (freqs <= ALPHA_WINDOW[1]))
    slope, icpt = np.polyfit(np.log10(freqs[fit_mask]), smooth[fit_mask], 1)
    resid_sd = float(np.std(smooth[fit_mask] - (slope * np.log10(freqs[fit_mask]) + icpt)))
    background = slope * np.log10(np.maximum(freqs, 1e-9)) + icpt
    above = smooth - background
    win = np.where((freqs >= ALPHA_WINDOW[0]) & (freqs <= ALPHA_WINDOW[1]))[0]
    maxima = [i for i in argrelmax(smooth)[0] if win[0] <= i <= win[-1]]
    out = {"paf": None, "f1": None, "f2": None, "q": 0.0, "prominence_db": None}
    if not maxima:
        return out
    maxima.sort(key=lambda i: smooth[i], reverse=True)
    top = maxima[0]
    out["prominence_db"] = float(10 * above[top])
    # split peak: a second maximum within 20 % (in power) of the highest
    split = len(maxima) > 1 and 10 ** (smooth[top] - smooth[maxima[1]]) < SPLIT_PEAK
    # edges of the peak: walk out while the spectrum keeps falling
    d = np.gradient(smooth, freqs)
    flat = 0.01 * float(np.max(np.abs(d[win])))
    lo = top
    while lo > 0 and freqs[lo - 1] >= FIT_RANGE[0] and d[lo - 1] > flat:
        lo -= 1
    hi = top
    while hi < len(freqs) - 1 and freqs[hi + 1] <= FIT_RANGE[1] and d[hi + 1] < -flat:
        hi += 1
    out["f1"], out["f2"] = float(freqs[lo]), float(freqs[hi])
    band = slice(lo, hi + 1)
    out["q"] = float(trapezoid(np.maximum(above[band], 0), freqs[band]))
    if above[top] > resid_sd and not split:
        # sub-bin peak: the vertex of the parabola through the top bin and its neighbours
        y0, y1, y2 = smooth[top - 1], smooth[top], smooth[top + 1]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        out["paf"] = float(freqs[top] + max(-0.5, min(0.5, shift)) * (freqs[1] - freqs[0]))
    return out


def estimate(data, sfreq, names, min_channels=MIN_CHANNELS):
    """The IAF of some channels (rows of data, volts): a dict with paf_hz, cog_hz (None
    when too few channels give one), per-channel results and the certainty figures."""
    import numpy as np
    from scipy.signal import welch
    n_fft = int(round(sfreq / RESOLUTION_HZ))
    if data.shape[1] < n_fft * 2:
        raise EegError("the recording is %.1f s long: the estimate needs at least %.0f s (two 4 s windows)"
                       % (data.shape[1] / sfreq, 2 * n_fft / sfreq))
    if sfreq < 2 * FIT_RANGE[1] + 10:
        raise EegError("sampling rate %.1f Hz: the 1/f fit needs frequencies up to 40 Hz (at least 90 Hz)" % sfreq)
    if not np.all(np.isfinite(data)):
        raise EegError("the EEG holds NaN or infinite samples")
    freqs, psd = welch(data, fs=sfreq, window="hamming", nperseg=n_fft, noverlap=n_fft // 2, detrend="constant")
    keep = (freqs >= FIT_RANGE[0]) & (freqs <= FIT_RANGE[1])
    freqs, psd = freqs[keep], psd[:, keep]
    chans = []
    for i, name in enumerate(names):
        if not np.any(psd[i] > 0):
            chans.append({"channel": name, "paf": None, "cog": None, "q": 0.0, "prominence_db": None,
                          "f1": None, "f2": None, "flat": True})
            continue
        r = _channel(freqs, psd[i])
        r["channel"] = name
        chans.append(r)
    with_peak = [c for c in chans if c["paf"] is not None]
    with_band = [c for c in chans if c["f1"] is not None and c["q"] > 0]
    need = min(min_channels, len(names))
    paf = cog = None
    f1 = f2 = None
    if len(with_band) >= need:
        f1 = float(np.mean([c["f1"] for c in with_band]))
        f2 = float(np.mean([c["f2"] for c in with_band]))
        band = (freqs >= f1) & (freqs <= f2)
        cogs = []
        for i, c in enumerate(chans):
            if c in with_band and band.any():
                p = psd[i][band]
                c["cog"] = float(np.sum(freqs[band] * p) / np.sum(p))
                cogs.append((c["cog"], c["q"]))
        if cogs:
            cog = float(np.average([v for v, _ in cogs], weights=[w for _, w in cogs]))
    if len(with_peak) >= need:
        paf = float(np.average([c["paf"] for c in with_peak], weights=[c["q"] for c in with_peak]))
    spread = float(np.std([c["paf"] for c in with_peak])) if len(with_peak) > 1 else None
    prominence = [c["prominence_db"] for c in with_peak]
    result = {"paf_hz": paf, "cog_hz": cog, "band_hz": [f1, f2] if f1 is not None else None,
              "channels": names, "channels_with_peak": len(with_peak), "paf_spread_hz": spread,
              "median_prominence_db": float(np.median(prominence)) if prominence else None,
              "per_channel": chans, "seconds": data.shape[1] / sfreq, "sfreq": sfreq, "min_channels": need}
    result["certainty"] = certainty(result)
    return result


def certainty(r):
    """high | moderate | low, from how many channels agree on a clear peak."""
    n, k = len(r["channels"]), r["channels_with_peak"]
    if r["paf_hz"] is None:
        return "low"
    spread = r["paf_spread_hz"] or 0.0
    prom = r["median_prominence_db"] or 0.0
    if (k >= max(r["min_channels"], math.ceil(n / 2)) and spread <= 0.5 and prom >= 3.0
            and r["seconds"] >= SHORT_S):
        return "high"
    return "moderate"


def certainty_text(r):
    n, k = len(r["channels"]), r["channels_with_peak"]
    parts = ["%d of %d channels show an alpha peak" % (k, n)]
    if r["paf_spread_hz"] is not None:
        parts.append("their PAF spread (SD) %.2f Hz" % r["paf_spread_hz"])
    if r["median_prominence_db"] is not None and k:
        parts.append("median peak %.1f dB above the 1/f background" % r["median_prominence_db"])
    if r["seconds"] < SHORT_S:
        parts.append("only %.0f s of EEG (at most moderate under %.0f s)" % (r["seconds"], SHORT_S))
    return "%s: %s" % (r["certainty"], ", ".join(parts))


def analyse(path, channels=None, min_channels=MIN_CHANNELS):
    """Read a file, pick channels, estimate. -> result dict with file, sha256, channels."""
    data, names, sfreq = read_eeg(path)
    idx = pick_channels(names, channels)
    r = estimate(data[idx], sfreq, [names[i] for i in idx], min_channels=min_channels)
    r["file"] = os.path.abspath(path)
    r["sha256"] = sha256_file(path)
    r["method"] = METHOD
    return r
