"""ACCDOA targets and decoding (numpy) and the ADPIT loss (torch).

ACCDOA (activity-coupled Cartesian DoA) represents a class's activity as the length of its
DoA vector. Multi-ACCDOA (Shimada et al., 2022) has 3 such vectors (tracks) per class and
frame, trained with ADPIT (auxiliary duplicating permutation invariant training).
Events are ``{frame: [(class_index, x, y, z), ...]}`` as in :mod:`.seld_metrics`.
"""

import itertools
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch

from espnet2_gram.simulation.geometry import angular_distance_deg

NUM_TRACKS = 3
Frames = Dict[int, List[Tuple[int, float, float, float]]]


def events_to_tracks(frames: Mapping[int, Sequence], num_frames: int, num_classes: int,
                     max_tracks: int = NUM_TRACKS) -> Tuple[np.ndarray, int]:
    """``(tracks (num_frames, max_tracks, num_classes, 4) [active, x, y, z], dropped)``.

    Within a frame, a class's events fill its tracks in order of appearance (directions
    normalised); ``dropped`` counts the events beyond ``max_tracks``.
    """
    tracks = np.zeros((num_frames, max_tracks, num_classes, 4), dtype=np.float32)
    dropped = 0
    for frame, events in frames.items():
        if not 0 <= frame < num_frames:
            raise ValueError(f"event frame {frame} outside 0..{num_frames - 1} (num_frames)")
        used = [0] * num_classes
        for cls, *xyz in events:
            if int(cls) != cls or not 0 <= cls < num_classes:
                raise ValueError(f"frame {frame}: class index {cls} outside 0..{num_classes - 1}")
            cls = int(cls)
            norm = float(np.linalg.norm(xyz))
            if not norm > 0:
                raise ValueError(f"frame {frame}: class {cls} has a zero direction vector")
            if used[cls] == max_tracks:
                dropped += 1
                continue
            tracks[frame, used[cls], cls] = [1.0, *(np.asarray(xyz) / norm)]
            used[cls] += 1
    return tracks, dropped


def _events(frame_vectors) -> Frames:
    """``{frame: [(class, unit x, y, z)]}`` of per-frame lists of ``(class, vector)``."""
    out: Frames = {}
    for frame, items in enumerate(frame_vectors):
        if items:
            out[frame] = [(int(k), *(float(v) for v in vec / np.linalg.norm(vec)))
                          for k, vec in items]
    return out


def decode_single_accdoa(output, threshold: float = 0.5) -> Frames:
    """Events of a single-ACCDOA output (T, K, 3), or (T, K * 3) flattened class-major
    (``[x0, y0, z0, x1, ...]``; the DCASE baseline's (T, 3 * K) layout, x of all classes
    first, must be reshaped to (T, 3, K) and transposed first). A class is active where its
    vector is longer than ``threshold``; its DoA is the normalised vector."""
    out = np.asarray(output, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] % 3 == 0:
        out = out.reshape(out.shape[0], -1, 3)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"single-ACCDOA output must be (T, K, 3) or (T, K*3), got {out.shape}")
    active = np.linalg.norm(out, axis=-1) > threshold
    return _events([(k, out[t, k]) for k in np.flatnonzero(active[t])] for t in range(len(out)))


def _unify(vectors: List[np.ndarray], unify_deg: float) -> List[np.ndarray]:
    """Active track directions of one class and frame, close ones merged (DCASE 2022/2023
    baseline rule): no close pair keeps all; one close pair is averaged and the other track
    kept; two or more close pairs (three tracks) become one mean direction."""
    units = [v / np.linalg.norm(v) for v in vectors]
    close = [(i, j) for i, j in itertools.combinations(range(len(units)), 2)
             if angular_distance_deg(units[i], units[j]) < unify_deg]
    if not close:
        return units
    if len(close) == 1:
        i, j = close[0]
        rest = [u for n, u in enumerate(units) if n not in (i, j)]
        return rest + [units[i] + units[j]]
    return [np.sum(units, axis=0)]


def decode_multi_accdoa(output, threshold: float = 0.5, unify_deg: float = 15.0) -> Frames:
    """Events of a multi-ACCDOA output (T, 3 tracks, K, 3): per class, the tracks longer than
    ``threshold``, with those closer than ``unify_deg`` degrees merged into their mean
    direction (see :func:`_unify`)."""
    out = np.asarray(output, dtype=np.float64)
    if out.ndim != 4 or out.shape[1] != NUM_TRACKS or out.shape[3] != 3:
        raise ValueError(f"multi-ACCDOA output must be (T, 3, K, 3), got {out.shape}")
    active = np.linalg.norm(out, axis=-1) > threshold  # (T, 3, K)
    frames = []
    for t in range(out.shape[0]):
        items = []
        for k in np.flatnonzero(active[t].any(axis=0)):
            vectors = [out[t, i, k] for i in np.flatnonzero(active[t, :, k])]
            items += [(k, v) for v in _unify(vectors, unify_deg)]
        frames.append(items)
    return _events(frames)


def _adpit_patterns() -> Tuple[torch.Tensor, torch.Tensor]:
    """Candidate targets: for each, the event slot (0..2, or 3 = zero) of every output track
    and the number of events it is valid for (all events used at least once)."""
    patterns, counts = [(3, 3, 3)], [0]
    for n in (1, 2, 3):
        for p in itertools.product(range(n), repeat=NUM_TRACKS):
            if len(set(p)) == n:
                patterns.append(p)
                counts.append(n)
    return torch.tensor(patterns), torch.tensor(counts)


_PATTERNS, _PATTERN_COUNTS = _adpit_patterns()  # 14 candidates: 1 + 1 + 6 + 6


def adpit_loss(output: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
    """ADPIT loss of a multi-ACCDOA ``output`` (B, T, 3, K, 3) against ``tracks``
    (B, T, 3, K, 4) [active, x, y, z] (as from :func:`events_to_tracks`).

    For each (b, t, k) with n active events of class k, the candidate targets assign the 3
    output tracks to the n events, each event used at least once (n = 0: all zero; 1: the
    event on every track; 2: the 6 surjective assignments; 3: the 6 permutations); the loss
    is the smallest MSE over (3 tracks x 3 coordinates), averaged over (b, t, k).
    """
    if output.dim() != 5 or output.shape[2] != NUM_TRACKS or output.shape[-1] != 3:
        raise ValueError(f"output must be (B, T, 3, K, 3), got {tuple(output.shape)}")
    if tracks.shape != (*output.shape[:-1], 4):
        raise ValueError(
            f"tracks must be {(*output.shape[:-1], 4)} (output shape with [active, x, y, z]),"
            f" got {tuple(tracks.shape)}"
        )
    active = (tracks[..., 0] > 0.5).to(output.dtype)  # (B, T, 3, K)
    # Active events first in each (b, t, k), so that slots 0..n-1 hold the n events.
    order = torch.argsort(-active, dim=2, stable=True)
    events = torch.gather(active.unsqueeze(-1) * tracks[..., 1:].to(output.dtype), 2,
                          order.unsqueeze(-1).expand(*order.shape, 3))
    slots = torch.cat([events, torch.zeros_like(events[:, :, :1])], dim=2)  # (B, T, 4, K, 3)
    patterns = _PATTERNS.to(output.device)
    candidates = slots[:, :, patterns]  # (B, T, C, 3, K, 3)
    mse = (output.unsqueeze(2) - candidates).pow(2).mean(dim=(3, 5))  # (B, T, C, K)
    valid = _PATTERN_COUNTS.to(output.device)[:, None] == active.sum(dim=2).unsqueeze(2)
    return mse.masked_fill(~valid, float("inf")).min(dim=2).values.mean()
