"""Helpers shared by test files in several folders: the tiny GRAM configuration, an anechoic
room, inverses and measurements the package itself does not need, and a downstream run."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from espnet2_gram.simulation.geometry import listener_to_room, sph_to_cart
from espnet2_gram.simulation.mixing import Scene, scene_powers
from espnet2_gram.simulation.rooms import RoomGeometry

FS = 8000
TINY = {
    "frontend": "binaural",
    "frontend_conf": {"fs": FS, "n_fft": 256, "hop_length": 80, "n_mels": 32, "fmin": 50,
                      "fmax": 4000},
    "encoder": "vit",
    "encoder_conf": {"crop_frames": 40, "patch_size": [16, 8], "dim": 32, "depth": 1,
                     "heads": 2},
    "decoder": "mwmae",
    "decoder_conf": {"dim": 32, "depth": 1, "heads": 2, "windows": [5, 0]},
    "masking": "random",
    "masking_conf": {"ratio": 0.8},
    "model_conf": {"crops_per_clip": 2},
    "batch_type": "unsorted",
    "batch_size": 4,
    "num_workers": 0,
    "max_epoch": 1,
    "num_iters_per_epoch": 2,
    "optim": "adamw",
    "optim_conf": {"lr": 0.001},
    "num_att_plot": 0,
    "use_tensorboard": False,
    "use_matplotlib": False,
    "best_model_criterion": [["valid", "loss", "min"]],
}


def anechoic(az, el, yaw=0.0, dist=1.5):
    """A single source at (az, el, dist) from a listener facing ``yaw``, no reflections."""
    listener = [3.0, 3.0, 1.5]
    pos = listener_to_room(sph_to_cart(az, el, dist), listener, yaw)
    return RoomGeometry(size=[6.0, 6.0, 3.0], rt60=0.3, absorption=1.0, max_order=0,
                        listener_position=listener, listener_yaw=yaw,
                        source_positions=[pos.tolist()])


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


def run_downstream(*args) -> subprocess.CompletedProcess:
    """``python -m espnet2_gram.bin.downstream <args>`` from the repository root, one thread;
    asserts that it succeeded."""
    out = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.downstream", *map(str, args)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"},
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    return out
