"""Coordinates: x front, y left, z up; azimuth counter-clockwise from the front (+90 = left),
elevation positive up, in degrees, listener-relative (DCASE / STARSS23 convention)."""

import numpy as np


def sph_to_cart(azimuth_deg, elevation_deg, distance=1.0) -> np.ndarray:
    """(..., 3) Cartesian vectors from azimuth, elevation (degrees) and distance."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    r = np.asarray(distance, dtype=np.float64)
    return np.stack(
        [r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1
    )


def cart_to_sph(v) -> tuple:
    """Azimuth in (-180, 180], elevation in [-90, 90] (degrees) and norm of (..., 3) vectors."""
    v = np.asarray(v, dtype=np.float64)
    r = np.linalg.norm(v, axis=-1)
    az = np.rad2deg(np.arctan2(v[..., 1], v[..., 0]))
    el = np.rad2deg(np.arcsin(np.clip(v[..., 2] / np.maximum(r, 1e-12), -1.0, 1.0)))
    return az, el, r


def wrap_azimuth(az_deg):
    """Map azimuths to (-180, 180]."""
    wrapped = np.mod(np.asarray(az_deg, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(wrapped == -180.0, 180.0, wrapped)


def yaw_matrix(yaw_deg: float) -> np.ndarray:
    """Rotation by ``yaw_deg`` about z: maps listener-frame vectors to room-frame vectors."""
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def room_to_listener(points, listener_pos, listener_yaw_deg: float) -> np.ndarray:
    """Express room-frame points in the frame of a listener at ``listener_pos`` facing yaw."""
    rel = np.asarray(points, dtype=np.float64) - np.asarray(listener_pos, dtype=np.float64)
    return rel @ yaw_matrix(listener_yaw_deg)


def listener_to_room(vectors, listener_pos, listener_yaw_deg: float) -> np.ndarray:
    """Inverse of :func:`room_to_listener`."""
    v = np.asarray(vectors, dtype=np.float64)
    return v @ yaw_matrix(listener_yaw_deg).T + np.asarray(listener_pos, dtype=np.float64)


def angular_distance_deg(a, b) -> np.ndarray:
    """Great-circle angle (degrees) between direction vectors ``a`` and ``b`` (..., 3)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))
