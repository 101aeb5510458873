"""Shoebox rooms: sampling of geometry and rendering of the rendered formats' impulse responses
(binaural, FOA, microphone arrays; ``espnet2_gram.formats``) with pyroomacoustics (image
sources, optionally hybrid with ray tracing)."""

import functools
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

from espnet2_gram.formats import get_format
from espnet2_gram.simulation.geometry import (cart_to_sph, listener_to_room, room_to_listener,
                                              sph_to_cart)

# hybrid: image sources up to ism_order + ray-traced tail; ism: image sources up to the order
# the room's RT60 needs (Sabine); early: image sources up to ism_order only, no late tail
# (several times cheaper: for direction-rich localisation sets, see conf/demo/rir_bank_loc.yaml)
METHODS = ("hybrid", "ism", "early")
# how a format's receivers are rendered (``AudioFormat.receivers``)
RECEIVERS = ("hrtf", "sh1", "omni")
# Real orthonormal spherical harmonics (pyroomacoustics) to SN3D: sqrt(4 pi / (2 n + 1)).
_N3D_TO_SN3D = np.sqrt(4 * np.pi / np.array([1.0, 3.0, 3.0, 3.0]))


class GeometryError(ValueError):
    """Room or source geometry that cannot be realised; the message names the option."""


@dataclass
class RoomSampling:
    """Ranges from which rooms, listeners and sources are drawn (uniformly)."""

    room_size_min: Sequence[float] = (3.0, 3.0, 2.5)
    room_size_max: Sequence[float] = (10.0, 8.0, 4.0)
    rt60: Sequence[float] = (0.2, 1.0)
    listener_height: Sequence[float] = (1.2, 1.8)
    wall_margin: float = 0.5
    source_distance: Sequence[float] = (0.5, 4.0)
    source_elevation: Sequence[float] = (-45.0, 60.0)
    num_noise_sources: Sequence[int] = (0, 5)
    max_tries: int = 200

    def __post_init__(self):
        for name in ("room_size_min", "room_size_max"):
            value = getattr(self, name)
            if len(value) != 3 or min(value) <= 0:
                raise GeometryError(f"--{name} must be 3 positive lengths in metres, got {value}")
        if any(lo > hi for lo, hi in zip(self.room_size_min, self.room_size_max)):
            raise GeometryError("--room_size_min must not exceed --room_size_max")
        if min(self.room_size_min) <= 2 * self.wall_margin:
            raise GeometryError(
                f"--wall_margin {self.wall_margin} leaves no room inside --room_size_min"
                f" {list(self.room_size_min)}"
            )
        for name, lo_bound in (("rt60", 0.0), ("source_distance", 0.0), ("listener_height", 0.0)):
            lo, hi = getattr(self, name)
            if not lo_bound < lo <= hi:
                raise GeometryError(f"--{name} must be a range 0 < low <= high, got {[lo, hi]}")
        lo, hi = self.source_elevation
        if not -90 <= lo <= hi <= 90:
            raise GeometryError(f"--source_elevation must lie in [-90, 90], got {[lo, hi]}")
        lo, hi = self.num_noise_sources
        if not 0 <= lo <= hi:
            raise GeometryError(f"--num_noise_sources must be 0 <= low <= high, got {[lo, hi]}")


@dataclass
class RoomGeometry:
    """One sampled room: sources[0..n_targets-1] are targets, the rest are noise sources."""

    size: List[float]
    rt60: float
    absorption: float
    max_order: int
    listener_position: List[float]
    listener_yaw: float
    source_positions: List[List[float]] = field(default_factory=list)
    num_targets: int = 1

    def directions(self) -> np.ndarray:
        """(S, 3): azimuth, elevation (degrees) and distance of every source, listener frame."""
        rel = room_to_listener(self.source_positions, self.listener_position, self.listener_yaw)
        return np.stack(cart_to_sph(rel), axis=-1)


def _inside(point, size, margin) -> bool:
    p = np.asarray(point)
    return bool(np.all(p >= margin) and np.all(p <= np.asarray(size) - margin))


def sample_room(cfg: RoomSampling, rng: np.random.Generator, num_targets: int = 1,
                num_noise: int = None) -> RoomGeometry:
    """Draw a room, a listener and ``num_targets`` target plus noise sources."""
    import pyroomacoustics as pra

    size = rng.uniform(cfg.room_size_min, cfg.room_size_max)
    rt60 = float(rng.uniform(*cfg.rt60))
    try:
        absorption, max_order = pra.inverse_sabine(rt60, size)
    except ValueError as e:
        raise GeometryError(
            f"--rt60 {rt60:.2f} s is impossible in a room of {np.round(size, 2).tolist()} m ({e})"
        ) from e
    m = cfg.wall_margin
    height = np.clip(rng.uniform(*cfg.listener_height), m, size[2] - m)
    listener = np.array([rng.uniform(m, size[0] - m), rng.uniform(m, size[1] - m), height])
    yaw = float(rng.uniform(-180.0, 180.0))
    sources = []
    for _ in range(num_targets):
        for _ in range(cfg.max_tries):
            az = rng.uniform(-180.0, 180.0)
            el = rng.uniform(*cfg.source_elevation)
            dist = rng.uniform(*cfg.source_distance)
            pos = listener_to_room(sph_to_cart(az, el, dist), listener, yaw)
            if _inside(pos, size, m):
                sources.append(pos.tolist())
                break
        else:
            raise GeometryError(
                f"no source position at --source_distance {list(cfg.source_distance)} m and"
                f" --source_elevation {list(cfg.source_elevation)} fits a room of"
                f" {np.round(size, 2).tolist()} m with --wall_margin {m} after"
                f" {cfg.max_tries} tries; shorten the distances or enlarge the rooms"
            )
    if num_noise is None:
        num_noise = int(rng.integers(cfg.num_noise_sources[0], cfg.num_noise_sources[1] + 1))
    for _ in range(num_noise):
        sources.append([float(rng.uniform(m, s - m)) for s in size])
    return RoomGeometry(
        size=size.tolist(), rt60=rt60, absorption=float(absorption), max_order=int(max_order),
        listener_position=listener.tolist(), listener_yaw=yaw, source_positions=sources,
        num_targets=num_targets,
    )


@dataclass
class RenderConfig:
    """How impulse responses are computed."""

    format: str = "binaural"
    fs: int = 16000
    hrtf: str = "kemar"
    method: str = "hybrid"
    ism_order: int = 3
    n_rays: int = 5000
    air_absorption: bool = True
    max_rir_seconds: float = 1.0

    def __post_init__(self):
        get_format(self.format, "--format", rendered=True)
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {list(METHODS)}, got {self.method!r}")
        if self.fs <= 0 or self.max_rir_seconds <= 0:
            raise ValueError("--fs and --max_rir_seconds must be positive")


@functools.lru_cache(maxsize=4)
def _ear_directivities(hrtf: str, fs: int) -> list:
    """Built once per process (about a second); the renderer turns them to each yaw."""
    from espnet2_gram.simulation.hrtf import ear_directivities, load_hrirs

    return ear_directivities(load_hrirs(hrtf, fs))


class RIRRenderer:
    """Renders (sources, channels, samples) float32 impulse responses for a RoomGeometry.

    The format's ``receivers`` (``espnet2_gram.formats``) decide how. ``hrtf`` (binaural): two
    receivers at the head centre with the measured HRIRs of the left and right ear as
    directivities, turned to the listener's yaw. ``sh1`` (FOA): four co-located receivers with
    real spherical-harmonic directivities (ACN order W, Y, Z, X), scaled to SN3D and rotated
    into the listener frame. ``omni`` (microphone arrays): omnidirectional receivers at the
    format's capsule positions, turned with the listener.
    """

    def __init__(self, cfg: RenderConfig):
        import pyroomacoustics as pra

        self.cfg = cfg
        self.format = get_format(cfg.format, "--format", rendered=True)
        self.channels = self.format.num_channels
        if self.format.receivers not in RECEIVERS:
            raise ValueError(f"format {cfg.format!r}: receivers {self.format.receivers!r};"
                             f" expected one of {list(RECEIVERS)}")
        if self.format.receivers == "omni" and len(self.format.receiver_offsets) != self.channels:
            raise ValueError(f"format {cfg.format!r}: {len(self.format.receiver_offsets)} receiver"
                             f" offsets for {self.channels} channels")
        pra.constants.set("num_threads", 1)
        self._ears = (_ear_directivities(cfg.hrtf, cfg.fs) if self.format.receivers == "hrtf"
                      else None)

    def _directivities(self, yaw: float):
        import pyroomacoustics as pra
        from pyroomacoustics.directivities import RealSphericalHarmonicsDirectivity, Rotation3D

        if self.format.receivers == "omni":
            return None
        if self._ears is not None:
            for ear in self._ears:
                ear.set_orientation(Rotation3D([yaw], "z"))
            return self._ears
        ms, ns = pra.directivities.harmonics.get_mn_in_acn_order(1)
        return [RealSphericalHarmonicsDirectivity(m, n) for m, n in zip(ms, ns)]

    def receiver_positions(self, geom: RoomGeometry) -> np.ndarray:
        """(3, C) room-frame positions of the receivers."""
        if self.format.receivers == "omni":
            offsets = np.asarray(self.format.receiver_offsets, dtype=np.float64)
        else:  # co-located at the head centre
            offsets = np.zeros((self.channels, 3))
        return listener_to_room(offsets, geom.listener_position, geom.listener_yaw).T

    def build_room(self, geom: RoomGeometry):
        """The pyroomacoustics room for ``geom`` (sources and receivers placed)."""
        import pyroomacoustics as pra

        cfg = self.cfg
        order = geom.max_order if cfg.method == "ism" else cfg.ism_order
        room = pra.ShoeBox(
            geom.size, fs=cfg.fs, materials=pra.Material(geom.absorption), max_order=order,
            air_absorption=cfg.air_absorption, ray_tracing=False,
        )
        for pos in geom.source_positions:
            room.add_source(pos)
        mics = self.receiver_positions(geom)
        room.add_microphone_array(
            pra.MicrophoneArray(mics, cfg.fs, directivity=self._directivities(geom.listener_yaw))
        )
        if cfg.method == "hybrid":
            # Receivers with directivity must exist before ray tracing is switched on.
            room.set_ray_tracing(n_rays=cfg.n_rays)
        return room

    def render(self, geom: RoomGeometry, seed: int = 0) -> np.ndarray:
        """(S, C, L) impulse responses, L = max_rir_seconds * fs (zero-padded or cropped)."""
        import pyroomacoustics as pra

        pra.random.seed(numpy=seed, libroom=seed)
        room = self.build_room(geom)
        room.compute_rir()
        length = int(round(self.cfg.max_rir_seconds * self.cfg.fs))
        out = np.zeros((len(geom.source_positions), self.channels, length), dtype=np.float32)
        for c in range(self.channels):
            for s in range(len(geom.source_positions)):
                rir = room.rir[c][s][:length]
                out[s, c, : len(rir)] = rir
        if self.format.receivers == "sh1":
            out = foa_to_listener(out, geom.listener_yaw)
        return out


def foa_to_listener(rirs: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Scale room-frame orthonormal first-order SH signals (ACN) to SN3D and rotate them into
    the frame of a listener facing ``yaw_deg``: (..., 4, L) -> (..., 4, L)."""
    out = rirs * _N3D_TO_SN3D[:, None].astype(rirs.dtype)
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    y, x = out[..., 1, :].copy(), out[..., 3, :].copy()
    out[..., 3, :] = c * x + s * y
    out[..., 1, :] = -s * x + c * y
    return out
