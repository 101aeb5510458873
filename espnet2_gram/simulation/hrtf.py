"""Measured head-related impulse responses: the MIT KEMAR set bundled with ``slab``, or any
SOFA ``SimpleFreeFieldHRIR`` file, turned into pyroomacoustics directivities."""

import bz2
import functools
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espnet2_gram.utils.audio import resample
from espnet2_gram.simulation.geometry import sph_to_cart

KEMAR = "kemar"


class HRTFError(ValueError):
    """An HRTF source that cannot be used; the message names the file."""


@dataclass(frozen=True)
class HRIRSet:
    """Head-related impulse responses measured on a sphere around the listener.

    ``directions``: (M, 3) unit vectors in the listener frame (x front, y left, z up);
    ``irs``: (M, 2, N) left and right ear impulse responses; ``fs``: sample rate.
    """

    directions: np.ndarray
    irs: np.ndarray
    fs: int

    def resampled(self, fs: int) -> "HRIRSet":
        if fs == self.fs:
            return self
        return HRIRSet(self.directions, resample(self.irs, self.fs, fs), fs)


class _SlabRecord:
    """Plain attribute holder for the objects pickled in slab's data file."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _SlabDataUnpickler(pickle.Unpickler):
    """Read slab's pickled KEMAR data without importing slab (whose import needs PortAudio)."""

    def find_class(self, module, name):
        if module.split(".")[0] == "slab":
            return type(name, (_SlabRecord,), {})
        return super().find_class(module, name)


def _slab_kemar_path() -> Path:
    spec = importlib.util.find_spec("slab")
    if spec is None or not spec.submodule_search_locations:
        raise HRTFError("the KEMAR HRTF comes with the 'slab' package: pip install slab")
    return Path(spec.submodule_search_locations[0]) / "data" / "mit_kemar_normal_pinna.bz2"


@functools.lru_cache(maxsize=None)
def load_kemar() -> HRIRSet:
    """MIT KEMAR (normal pinna, Gardner & Martin 1994) as distributed with ``slab``."""
    path = _slab_kemar_path()
    try:
        with bz2.BZ2File(path) as f:
            record = _SlabDataUnpickler(f).load()
        sources = np.asarray(record.sources, dtype=np.float64)  # azimuth, elevation, distance
        irs = np.stack([np.asarray(flt.data, dtype=np.float64).T for flt in record.data])
        fs = int(record.samplerate)
    except (OSError, AttributeError, pickle.UnpicklingError) as e:
        raise HRTFError(f"{path}: cannot read slab's KEMAR data ({e})") from e
    return HRIRSet(sph_to_cart(sources[:, 0], sources[:, 1]), irs, fs)


def load_sofa(path) -> HRIRSet:
    """Read a SOFA ``SimpleFreeFieldHRIR`` file (HDF5) with h5py."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise HRTFError(f"{path}: SOFA file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise HRTFError(f"{path}: not a SOFA (HDF5/netCDF-4) file ({e})") from e
    with f:
        for name in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if name not in f:
                raise HRTFError(f"{path}: invalid SOFA file, dataset {name!r} is missing")
        irs = np.asarray(f["Data.IR"], dtype=np.float64)
        fs = int(np.asarray(f["Data.SamplingRate"]).ravel()[0])
        pos = np.asarray(f["SourcePosition"], dtype=np.float64)
        pos_type = f["SourcePosition"].attrs.get("Type", b"spherical")
    pos_type = pos_type.decode() if isinstance(pos_type, bytes) else str(pos_type)
    if irs.ndim != 3 or irs.shape[1] != 2:
        raise HRTFError(f"{path}: Data.IR must be (measurements, 2 ears, taps), got {irs.shape}")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise HRTFError(f"{path}: SourcePosition must be (measurements, 3), got {pos.shape}")
    if pos.shape[0] == 1:
        pos = np.repeat(pos, irs.shape[0], axis=0)
    if pos.shape[0] != irs.shape[0]:
        raise HRTFError(
            f"{path}: {pos.shape[0]} source positions for {irs.shape[0]} impulse responses"
        )
    if not np.all(np.isfinite(irs)) or fs <= 0:
        raise HRTFError(f"{path}: Data.IR has non-finite values or the sample rate is {fs}")
    if pos_type.lower() == "cartesian":
        directions = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    else:
        directions = sph_to_cart(pos[:, 0], pos[:, 1])
    return HRIRSet(directions, irs, fs)


def load_hrirs(name_or_path: str, fs: int) -> HRIRSet:
    """``'kemar'`` or a path to a SOFA file, resampled to ``fs`` and scaled to unit mean
    energy over directions and ears (diffuse-field level of an omnidirectional receiver)."""
    hrirs = (load_kemar() if name_or_path == KEMAR else load_sofa(name_or_path)).resampled(fs)
    energy = float(np.mean(np.sum(np.square(hrirs.irs), axis=-1)))
    if energy <= 0:
        raise HRTFError(f"{name_or_path}: the impulse responses are all zero")
    return HRIRSet(hrirs.directions, hrirs.irs / np.sqrt(energy), hrirs.fs)


def ear_directivities(hrirs: HRIRSet):
    """Left and right ear as pyroomacoustics measured directivities (listener facing +x)."""
    from pyroomacoustics.directivities import MeasuredDirectivity, Rotation3D
    from pyroomacoustics.doa import GridSphere

    grid = GridSphere(cartesian_points=hrirs.directions.T)
    facing = Rotation3D([0.0], "z")
    return [MeasuredDirectivity(facing, grid, hrirs.irs[:, ear], hrirs.fs) for ear in (0, 1)]
