"""The nGVS ready protocols: bilateral mastoids, zero-mean noise in 0-30 Hz, a subsensory
peak of 100-400 uA; what the engine outputs for them (the same engine as the device)."""
import numpy as np
import pytest
from scipy.signal import welch

from tesctl import enginerun, paths, protofile

NGVS = sorted(paths.PROTOCOLS.glob("ngvs-*.toml"))


def test_there_are_ngvs_protocols():
    assert {p.stem for p in NGVS} >= {"ngvs-200ua", "ngvs-400ua", "ngvs-sham"}


@pytest.mark.parametrize("path", NGVS, ids=lambda p: p.stem)
def test_ngvs_protocol_fields(path):
    loaded = protofile.load(path)
    assert loaded.ok and not loaded.warnings, (loaded.problems, loaded.warnings)
    c = loaded.canonical
    assert (c["montage"]["anode"], c["montage"]["cathode"]) == ("M1", "M2")
    for seg in c["segments"]:
        assert seg["waveform"] == "noise" and seg["offset_uA"] == 0 and seg["band_mHz"] == [0, 30000]
        assert 100 <= seg["amplitude_uA"] <= 400
    assert (c["sham"] is not None) == ("sham" in path.stem)


@pytest.mark.parametrize("name", ["ngvs-200ua", "ngvs-400ua"])
def test_ngvs_output_is_zero_mean_noise_below_30_hz(name):
    text = (paths.PROTOCOLS / (name + ".toml")).read_text().replace("duration_s = 1200", "duration_s = 60")
    loaded = protofile.check_data(text.encode())
    assert loaded.ok, loaded.problems
    seg = loaded.canonical["segments"][0]
    fs = loaded.canonical["sample_rate_hz"]
    x = np.asarray(enginerun.ENGINES["cpython"](loaded.canonical), dtype=float)
    plateau = x[seg["ramp_up_ms"] * fs // 1000:][:60 * fs]
    assert len(plateau) == 60 * fs
    assert np.max(np.abs(x)) <= seg["amplitude_uA"]                        # clipped at the peak
    sd = plateau.std()
    assert abs(sd - seg["noise_sd_uA"]) <= 0.1 * seg["noise_sd_uA"], sd    # the asked SD, not a sliver of it
    assert abs(plateau.mean()) <= 0.05 * sd                                # zero mean
    f, p = welch(plateau, fs=fs, nperseg=4 * fs)
    share_in_band = p[f <= 30].sum() / p.sum()
    assert share_in_band >= 0.95, share_in_band
    assert p[f >= 40].sum() / p.sum() <= 0.01
