"""Single-source direction-of-arrival (DoA) errors and ``utt2doa`` files.

Directions follow :mod:`espnet2_gram.simulation.geometry` (x front, y left, z up; azimuth
counter-clockwise from the front in (-180, 180], elevation up, degrees). ``utt2doa`` lines
are ``utt azimuth elevation distance`` (degrees, degrees, metres).
"""

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from espnet2_gram.downstream.localization.dcase_format import parse_fields, parse_finite_float
from espnet2_gram.simulation.geometry import (angular_distance_deg, cart_to_sph, sph_to_cart,
                                              wrap_azimuth)
from espnet2_gram.utils.fileio import numbered_fields

ACC_THRESHOLD_DEG = 20.0
# References closer than this to the interaural (y-z) plane are left out of the front-back
# confusion rate: their mirror image lies within twice this angle of them.
INTERAURAL_MARGIN_DEG = 10.0
# Error given to a zero-norm prediction (no direction): the mean error of a random guess.
NO_DIRECTION_ERROR_DEG = 90.0


def doa_to_xyz(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors (..., 3) of azimuths and elevations in degrees."""
    return sph_to_cart(azimuth_deg, elevation_deg)


def _check_xyz(name: str, xyz) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[0] == 0 or xyz.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) with N > 0, got {xyz.shape}")
    if not np.all(np.isfinite(xyz)):
        raise ValueError(f"{name} of shape {xyz.shape} has non-finite values")
    return xyz


def _lateral_deg(xyz: np.ndarray) -> np.ndarray:
    """Lateral angle asin(y / |xyz|) in degrees: 90 left, -90 right, 0 on the median plane."""
    y = xyz[:, 1] / np.linalg.norm(xyz, axis=-1)
    return np.rad2deg(np.arcsin(np.clip(y, -1.0, 1.0)))


def doa_errors(ref_xyz, hyp_xyz) -> Dict[str, np.ndarray]:
    """Per-item errors between reference and predicted directions, both (N, 3).

    Keys: ``error`` (great-circle angle, degrees; the prediction is normalised),
    ``azimuth_error`` (absolute azimuth difference wrapped to [0, 180]),
    ``elevation_error`` (absolute), ``lateral_error`` (absolute difference of the lateral
    angles asin(y) of the unit vectors: the error once front and back are folded together,
    along the cone of confusion), ``mirror_closer`` (the prediction is strictly closer to
    the front-back mirror of the reference, x -> -x, than to the reference) and
    ``off_interaural`` (the reference is more than 10 degrees from the y-z plane).

    A zero-norm prediction has no direction: all four errors are 90 degrees and it is
    never ``mirror_closer``. Azimuth is undefined at the poles: ``azimuth_error`` uses the
    azimuths that ``cart_to_sph`` recovers (for ``sph_to_cart`` vectors at +-90 degrees
    elevation, the azimuths they were built from), so read it with the great-circle error.
    """
    ref = _check_xyz("ref_xyz", ref_xyz)
    hyp = _check_xyz("hyp_xyz", hyp_xyz)
    if ref.shape != hyp.shape:
        raise ValueError(f"ref_xyz {ref.shape} and hyp_xyz {hyp.shape} differ in shape")
    if np.any(np.linalg.norm(ref, axis=-1) == 0.0):
        raise ValueError("ref_xyz has zero-norm rows (no direction)")
    no_dir = np.linalg.norm(hyp, axis=-1) == 0.0
    safe_hyp = np.where(no_dir[:, None], 1.0, hyp)
    ref_az, ref_el, ref_r = cart_to_sph(ref)
    hyp_az, hyp_el, _ = cart_to_sph(safe_hyp)
    error = angular_distance_deg(ref, safe_hyp)
    mirror = ref * np.array([-1.0, 1.0, 1.0])
    mirror_closer = (angular_distance_deg(mirror, safe_hyp) < error) & ~no_dir
    plane_deg = np.rad2deg(np.arcsin(np.clip(np.abs(ref[:, 0]) / ref_r, 0.0, 1.0)))
    lateral = np.abs(_lateral_deg(safe_hyp) - _lateral_deg(ref))
    return {
        "error": np.where(no_dir, NO_DIRECTION_ERROR_DEG, error),
        "azimuth_error": np.where(no_dir, NO_DIRECTION_ERROR_DEG,
                                  np.abs(wrap_azimuth(hyp_az - ref_az))),
        "elevation_error": np.where(no_dir, NO_DIRECTION_ERROR_DEG, np.abs(hyp_el - ref_el)),
        "lateral_error": np.where(no_dir, NO_DIRECTION_ERROR_DEG, lateral),
        "mirror_closer": mirror_closer,
        "off_interaural": plane_deg > INTERAURAL_MARGIN_DEG,
    }


def doa_metrics(ref_xyz, hyp_xyz, front_back: bool) -> Dict[str, Optional[float]]:
    """Summary DoA metrics (degrees and fractions) of (N, 3) directions.

    ``acc20`` is the fraction with a great-circle error <= 20 degrees; ``lateral_error`` is
    the median lateral-angle (front-back folded) error.
    ``front_back_confusion`` (only when ``front_back``, else None) is the fraction of items
    whose prediction is closer to the reference's front-back mirror than to the reference,
    over the items whose reference is more than 10 degrees from the interaural (y-z) plane
    (angle asin(|x|), which for elevation 0 means |azimuth| not within 10 of 90); None when
    no item qualifies.
    """
    e = doa_errors(ref_xyz, hyp_xyz)
    confusion = None
    if front_back and np.any(e["off_interaural"]):
        confusion = float(np.mean(e["mirror_closer"][e["off_interaural"]]))
    return {
        "mean_error": float(np.mean(e["error"])),
        "median_error": float(np.median(e["error"])),
        "azimuth_error": float(np.mean(e["azimuth_error"])),
        "elevation_error": float(np.mean(e["elevation_error"])),
        "lateral_error": float(np.median(e["lateral_error"])),
        "acc20": float(np.mean(e["error"] <= ACC_THRESHOLD_DEG)),
        "front_back_confusion": confusion,
    }


_FIELDS = (
    ("azimuth", parse_finite_float, lambda v: -180.0 <= v <= 180.0, "in [-180, 180] degrees"),
    ("elevation", parse_finite_float, lambda v: -90.0 <= v <= 90.0, "in [-90, 90] degrees"),
    ("distance", parse_finite_float, lambda v: v >= 0.0, ">= 0 metres"),
)


def read_utt2doa(path, require_distance: bool = True
                 ) -> Dict[str, Tuple[float, float, Optional[float]]]:
    """``utt -> (azimuth, elevation, distance)`` from ``utt az el dist`` lines.

    With ``require_distance=False`` the distance may be left out (``utt az el``; it is then
    None). Raises ``ValueError`` naming ``file:line`` and the value on a wrong field count,
    a non-numeric or out-of-range value or a duplicated utterance.
    """
    widths = (4,) if require_distance else (3, 4)
    expected = "utt azimuth elevation " + ("distance" if require_distance else "[distance]")
    out: Dict[str, Tuple[float, float, Optional[float]]] = {}
    for where, fields, line in numbered_fields(Path(path), "utt2doa"):
        if len(fields) not in widths:
            raise ValueError(f"{where}: expected '{expected}', got {line!r}")
        utt, values = fields[0], parse_fields(fields[1:], _FIELDS, where)
        if utt in out:
            raise ValueError(f"{where}: duplicated utterance {utt!r}")
        out[utt] = (values[0], values[1], values[2] if len(values) == 3 else None)
    return out
