"""Reconstruction loss of the masked autoencoder."""

from __future__ import annotations

from typing import Optional

import torch


def masked_patch_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, channels: int = 1,
    channel_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean squared error on the masked patches.

    ``pred``, ``target``: ``(B, N, P)``, each patch's values channel-major (``patchify``);
    ``mask``: ``(B, N)``, True = masked.  The squared error is averaged over the ``P`` values of
    each patch, then over the masked patches of the whole batch, and multiplied by ``channels``
    (as the authors do with the number of input channels).  ``channel_weights`` (``channels``
    values) make each patch's error the weighted mean of its channels' mean errors instead;
    equal weights give the unweighted loss.  Returns a scalar (0 if nothing is masked),
    computed in at least float32 (also under half-precision autocast).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match pred {tuple(pred.shape)}")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    error = (pred.to(dtype) - target.to(dtype)).pow(2)
    if channel_weights is None:
        per_patch = error.mean(dim=-1)
    else:
        per_channel = error.reshape(*error.shape[:2], channels, -1).mean(dim=-1)
        weights = channel_weights.to(dtype)
        per_patch = (per_channel * weights).sum(dim=-1) / weights.sum()
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum().clamp_min(1.0) * channels
