"""Plots for preview and report (matplotlib, no display needed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _envelope(values, fs, width=4000):
    """(t, low, high) per bucket, so hours of samples plot as their min/max envelope."""
    n = len(values)
    step = max(1, n // width)
    t, lo, hi = [], [], []
    for i in range(0, n, step):
        part = values[i:i + step]
        t.append(i / fs)
        lo.append(min(part))
        hi.append(max(part))
    return t, lo, hi


def _zoom_start(values, fs):
    """Start of a window worth a close look: the first sample at full plateau level."""
    peak = max(abs(v) for v in values) if len(values) else 0
    for i, v in enumerate(values):
        if abs(v) >= peak:
            return max(0, i - fs // 10)
    return 0


def preview_png(path, values, fs, title):
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5))
    t, lo, hi = _envelope(values, fs)
    ax1.fill_between(t, lo, hi, step="post", color="tab:blue", linewidth=0.6)
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("current (uA)")
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    start = _zoom_start(values, fs)
    count = min(len(values) - start, fs)  # one second
    ax2.plot([(start + i) / fs for i in range(count)], values[start:start + count], lw=0.8)
    ax2.set_xlabel("time (s), zoomed: 1 s from t = %.1f s" % (start / fs))
    ax2.set_ylabel("current (uA)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def preview_png_multi(path, columns, fs, title):
    """A multi-electrode preview: one row per electrode (montage order; its envelope over
    the session), then one second of every electrode overlaid. columns: [(name, samples)]."""
    rows = len(columns) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.6 * rows + 1), sharex=False)
    peak = max((max(abs(v) for v in values) for _, values in columns if len(values)), default=0) or 1
    for ax, (name, values) in zip(axes, columns):
        t, lo, hi = _envelope(values, fs)
        ax.fill_between(t, lo, hi, step="post", color="tab:blue", linewidth=0.6)
        ax.set_ylim(-1.1 * peak, 1.1 * peak)
        ax.set_ylabel("%s (uA)" % name)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[-2].set_xlabel("time (s)")
    # the zoom starts where the electrode with the largest current first reaches its peak
    values = max(columns, key=lambda c: max((abs(v) for v in c[1]), default=0))[1]
    start = _zoom_start(values, fs)
    count = min(len(values) - start, fs)
    ax = axes[-1]
    for name, vals in columns:
        ax.plot([(start + i) / fs for i in range(count)], vals[start:start + count], lw=0.8, label=name)
    ax.set_xlabel("time (s), zoomed: 1 s from t = %.1f s" % (start / fs))
    ax.set_ylabel("current (uA)")
    ax.legend(loc="upper right", fontsize=7, ncol=min(8, len(columns)))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def zoom_panel(ax, t0, fs, samples, tel, peak_uA, rms_uA, what):
    """report.png's zoom: the commanded samples (raw, t0 = session time of the first) as a
    step line against the measured current the telemetry has for the same time: its 20 ms
    means (points, at each window's middle) and the device's whole-period peak and RMS
    (dashed and dotted lines at +/-). tel: [(t_s, meas_uA)]. The link streams commanded
    samples only, so the measured side is per window, not per sample: the legend says so."""
    ts = [t0 + i / fs for i in range(len(samples))]
    ax.step(ts, samples, where="post", color="tab:blue", lw=0.9, label="commanded (raw samples)")
    if tel:
        ax.plot([t - 0.01 for t, _ in tel], [m for _, m in tel], "o", ms=3, color="tab:orange",
                label="measured, 20 ms means")
    for v, style, label in ((peak_uA, "--", "measured peak (device) %s uA"),
                            (rms_uA, ":", "measured RMS (device) %s uA")):
        if v is not None:
            ax.axhline(v, color="tab:red", ls=style, lw=0.8, label=label % ("%.0f" % v))
            ax.axhline(-v, color="tab:red", ls=style, lw=0.8)
    ax.set_xlabel("session time (s), zoomed: %s" % what)
    ax.set_ylabel("current (uA)")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
