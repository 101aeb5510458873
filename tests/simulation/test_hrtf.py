"""HRTF sources: slab's bundled KEMAR and SOFA files read with h5py."""

import h5py
import numpy as np
import pytest

from espnet2_gram.simulation.acoustics import interaural_time_difference
from espnet2_gram.simulation.geometry import cart_to_sph
from espnet2_gram.simulation.hrtf import HRTFError, load_hrirs, load_kemar, load_sofa
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer
from helpers import anechoic

FS = 16000


def test_kemar_is_measured_left_ear_first_for_left_sources():
    kemar = load_kemar()
    assert kemar.irs.shape == (710, 2, 512) and kemar.fs == 44100
    az, el, _ = cart_to_sph(kemar.directions)
    left = np.argmin(np.abs(az - 90) + np.abs(el))
    energy = np.sum(kemar.irs[left] ** 2, axis=-1)
    assert energy[0] > 4 * energy[1]
    resampled = load_hrirs("kemar", FS)
    assert resampled.fs == FS and resampled.irs.shape[-1] == round(512 * FS / 44100)
    mean_energy = np.mean(np.sum(resampled.irs ** 2, axis=-1))
    assert mean_energy == pytest.approx(1.0)


def write_sofa(path, itd_samples=6, fs=FS, positions_type="spherical"):
    """A SimpleFreeFieldHRIR-like file: pure delays, the far ear later by ``itd * |sin az|``."""
    az = np.arange(0, 360, 15.0)
    pos = np.stack([az, np.zeros_like(az), np.full_like(az, 1.2)], axis=1)
    irs = np.zeros((len(az), 2, 64))
    for i, a in enumerate(az):
        lag = int(round(itd_samples * abs(np.sin(np.deg2rad(a)))))
        near, far = (0, 1) if np.sin(np.deg2rad(a)) >= 0 else (1, 0)
        irs[i, near, 10] = 1.0
        irs[i, far, 10 + lag] = 0.5 if lag else 1.0
    if positions_type == "cartesian":
        rad = np.deg2rad(az)
        pos = np.stack([np.cos(rad), np.sin(rad), np.zeros_like(rad)], axis=1)
    with h5py.File(path, "w") as f:
        f.attrs["SOFAConventions"] = "SimpleFreeFieldHRIR"
        f["Data.IR"] = irs
        f["Data.SamplingRate"] = np.array([fs], dtype=np.float64)
        f["SourcePosition"] = pos
        f["SourcePosition"].attrs["Type"] = positions_type
    return path


@pytest.mark.parametrize("positions_type", ["spherical", "cartesian"])
def test_sofa_file_drives_the_binaural_renderer(tmp_path, positions_type):
    sofa = write_sofa(tmp_path / "toy.sofa", positions_type=positions_type)
    hrirs = load_sofa(sofa)
    assert hrirs.irs.shape == (24, 2, 64) and hrirs.fs == FS
    renderer = RIRRenderer(RenderConfig(format="binaural", fs=FS, method="ism",
                                        hrtf=str(sofa), max_rir_seconds=0.05))
    rir = renderer.render(anechoic(90.0, 0.0, yaw=30.0))[0]
    assert interaural_time_difference(rir, FS) == pytest.approx(6 / FS, abs=0.5 / FS)
    rir = renderer.render(anechoic(-90.0, 0.0, yaw=30.0))[0]
    assert interaural_time_difference(rir, FS) == pytest.approx(-6 / FS, abs=0.5 / FS)


def test_invalid_sofa_files_are_named(tmp_path):
    with pytest.raises(HRTFError, match="missing.sofa: SOFA file not found"):
        load_sofa(tmp_path / "missing.sofa")
    text = tmp_path / "text.sofa"
    text.write_text("not hdf5")
    with pytest.raises(HRTFError, match="text.sofa: not a SOFA"):
        load_sofa(text)
    incomplete = tmp_path / "incomplete.sofa"
    with h5py.File(incomplete, "w") as f:
        f["Data.IR"] = np.zeros((2, 2, 8))
    with pytest.raises(HRTFError, match="incomplete.sofa: invalid SOFA file, dataset 'Data.SamplingRate'"):
        load_sofa(incomplete)
    mono = tmp_path / "mono.sofa"
    with h5py.File(mono, "w") as f:
        f["Data.IR"] = np.zeros((2, 1, 8))
        f["Data.SamplingRate"] = np.array([FS])
        f["SourcePosition"] = np.zeros((2, 3))
    with pytest.raises(HRTFError, match=r"mono.sofa: Data.IR must be \(measurements, 2 ears"):
        load_sofa(mono)
