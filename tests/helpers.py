"""Helpers shared by several test files: inverses and measurements the package itself does
not need."""

from typing import Tuple

import numpy as np
import torch

from espnet2_gram.simulation.mixing import Scene, scene_powers


def unpatchify(
    tokens: torch.Tensor,
    grid: Tuple[int, int],
    channels: int,
    patch: Tuple[int, int] = (16, 8),
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, rows * cols, C * pf * pt) -> (B, C, F, T)``."""
    b, n, p = tokens.shape
    rows, cols = grid
    pf, pt = patch
    if n != rows * cols or p != channels * pf * pt:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} do not match grid {grid}, {channels} channels and "
            f"patch {patch}"
        )
    x = tokens.reshape(b, rows, cols, channels, pf, pt)
    x = x.permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, rows * pf, cols * pt)


def measured_snr_db(scene: Scene) -> float:
    """SNR of a rendered scene as ``espnet2_gram.simulation.mixing`` defines it."""
    p_source, p_noise = scene_powers(
        scene.source_image, scene.noise_image, scene.noise_start, scene.noise_length
    )
    return float(10 * np.log10(p_source / p_noise))


def single_accdoa_target(tracks: np.ndarray) -> np.ndarray:
    """(T, K, 3) single-ACCDOA target: activity times the direction of the first track."""
    return tracks[:, 0, :, :1] * tracks[:, 0, :, 1:]
