"""Spectrogram patching and fixed 2-D sin-cos positional embeddings.

Conventions shared by the whole GRAM model:

* input crops are ``(B, C, F, T)`` (channels, mel bins, frames);
* a patch covers ``patch = (pf, pt)`` = (mel bins, frames), 16 x 8 in the paper;
* the patch grid has ``rows = F // pf`` frequency rows and ``cols = T // pt`` time columns;
* tokens are ordered FREQUENCY-MAJOR: token ``f * cols + t`` is the patch of frequency row
  ``f`` and time column ``t`` (what ``conv(x).flatten(2)`` gives);
* a patch's values are flattened channel-major, i.e. in ``(C, pf, pt)`` order.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


def grid_shape(n_mels: int, n_frames: int, patch: Tuple[int, int]) -> Tuple[int, int]:
    """(rows, cols) of the patch grid; the input must tile exactly."""
    pf, pt = patch
    if n_mels % pf or n_frames % pt:
        raise ValueError(
            f"input ({n_mels} mels x {n_frames} frames) is not a multiple of the patch size "
            f"{pf} x {pt}"
        )
    return n_mels // pf, n_frames // pt


def patchify(x: torch.Tensor, patch: Tuple[int, int] = (16, 8)) -> torch.Tensor:
    """``(B, C, F, T) -> (B, rows * cols, C * pf * pt)``, frequency-major token order."""
    b, c, f, t = x.shape
    pf, pt = patch
    rows, cols = grid_shape(f, t, patch)
    x = x.reshape(b, c, rows, pf, cols, pt)
    # (B, rows, cols, C, pf, pt): token index f * cols + t, values channel-major.
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, rows * cols, c * pf * pt)


def _sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``[sin(p * w_i) | cos(p * w_i)]`` with ``w_i = 1 / 10000 ** (i / (dim / 2))``."""
    half = dim // 2
    omega = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float64) / half))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid: Tuple[int, int], cls_token: bool = False) -> torch.Tensor:
    """Fixed 2-D sin-cos positional embedding of shape ``(rows * cols [+1], dim)``.

    Rows are in frequency-major token order.  The first ``dim / 2`` dimensions encode the TIME
    column, the second half the FREQUENCY row; each half is ``[sin | cos]`` with
    ``omega_i = 1 / 10000 ** (i / (dim / 4))``, ``i = 0 .. dim/4 - 1`` (MAE style).  With
    ``cls_token`` a row of zeros is prepended (the CLS position).
    """
    if dim % 4:
        raise ValueError(f"sin-cos embedding dimension must be a multiple of 4, got {dim}")
    rows, cols = grid
    f_idx = torch.arange(rows).repeat_interleave(cols)  # frequency row of each token
    t_idx = torch.arange(cols).repeat(rows)  # time column of each token
    emb = torch.cat([_sincos_1d(dim // 2, t_idx), _sincos_1d(dim // 2, f_idx)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: one strided ``Conv2d(C, D, patch, stride=patch)``.

    ``forward(x (B, C, F, T)) -> (B, rows * cols, D)`` in frequency-major order, so the token at
    index ``i`` corresponds to ``patchify(x)[:, i]``.
    """

    def __init__(self, in_channels: int, dim: int, patch_size: Tuple[int, int] = (16, 8)):
        super().__init__()
        self.in_channels = in_channels
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_shape(x.shape[-2], x.shape[-1], self.patch_size)
        return self.proj(x).flatten(2).transpose(1, 2)
