"""Small heads put on top of (frozen or trainable) frame-level embeddings.

``MLP`` is the shallow probe of the HEAR protocol (Linear -> BatchNorm -> ReLU -> Dropout per
hidden layer, 1024 wide); ``FramePooling`` turns frames into one clip vector (``mean``: HEAR's
scene embedding of GRAM; ``mean_std``: mean and standard deviation per dimension, the pooling
of HEAR's naive log-mel baseline; ``attention``: a learned softmax weighting of the frames,
which can keep the frames that carry direction evidence); ``ProbeEncoder`` is pooling + MLP as
ESPnet's ``encoder: probe`` for the classification task (ESPnet's linear decoder adds the
output layer); ``IdentityEncoder`` passes cached embeddings through.
"""

from typing import Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from torch import nn


def valid_frames(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool mask of the frames inside each item's length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of ``x (B, T, D)`` -> (B, D)."""
    mask = valid_frames(lengths, x.shape[1]).to(x.dtype)[..., None]
    return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


POOLINGS = ("mean", "mean_std", "attention")


class FramePooling(nn.Module):
    """(B, T, D) frames and their lengths -> (B, D) or, for ``mean_std``, (B, 2 D)."""

    def __init__(self, input_size: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.in_size = int(input_size)
        self.score = nn.Linear(self.in_size, 1) if pooling == "attention" else None

    def output_size(self) -> int:
        return 2 * self.in_size if self.pooling == "mean_std" else self.in_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "attention":
            scores = self.score(x)[..., 0].masked_fill(~valid_frames(lengths, x.shape[1]),
                                                       float("-inf"))
            return (torch.softmax(scores, dim=1)[..., None] * x).sum(dim=1)
        mean = masked_mean(x, lengths)
        if self.pooling == "mean":
            return mean
        var = masked_mean((x - mean[:, None]) ** 2, lengths)
        return torch.cat([mean, var.clamp(min=0.0).sqrt()], dim=-1)


class MLP(nn.Module):
    """Hidden blocks on the last axis of (N, D) or (B, T, D) inputs; no output layer."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int] = (1024,),
                 dropout: float = 0.1, batch_norm: bool = True):
        super().__init__()
        blocks = []
        size = int(input_size)
        for hidden in hidden_sizes:
            blocks += [nn.Linear(size, int(hidden))]
            if batch_norm:
                blocks += [nn.BatchNorm1d(int(hidden))]
            blocks += [nn.ReLU(), nn.Dropout(dropout)]
            size = int(hidden)
        self.blocks = nn.Sequential(*blocks)
        self.out_size = size

    def output_size(self) -> int:
        return self.out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.blocks(x.reshape(-1, shape[-1])).reshape(*shape[:-1], self.out_size)


class ProbeEncoder(AbsEncoder):
    """``encoder: probe``: pooled embedding -> MLP, as (B, 1, H) for ESPnet's decoders."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int] = (1024,),
                 dropout: float = 0.1, batch_norm: bool = True, pooling: str = "mean"):
        super().__init__()
        self.pool = FramePooling(input_size, pooling)
        self.mlp = MLP(self.pool.output_size(), hidden_sizes, dropout, batch_norm)

    def output_size(self) -> int:
        return self.mlp.output_size()

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        return self.mlp(self.pool(xs_pad, ilens))[:, None], torch.ones_like(ilens), None


class IdentityEncoder(AbsEncoder):
    """``encoder: identity``: the input (cached embeddings, B x T x D) unchanged."""

    def __init__(self, input_size: int):
        super().__init__()
        self.size = int(input_size)

    def output_size(self) -> int:
        return self.size

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        if xs_pad.dim() != 3 or xs_pad.shape[-1] != self.size:
            raise ValueError(f"expected cached embeddings (B, T, {self.size}), got"
                             f" {tuple(xs_pad.shape)}; check --input_size")
        return xs_pad, ilens, None
