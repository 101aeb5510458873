"""Small heads put on top of (frozen or trainable) frame-level embeddings.

``MLP`` is the shallow probe of the HEAR protocol (Linear -> BatchNorm -> ReLU -> Dropout per
hidden layer, 1024 wide); ``ProbeEncoder`` is that probe as ESPnet's ``encoder: probe`` for
the classification task (mean over the valid frames, then the MLP; ESPnet's linear decoder
adds the output layer); ``IdentityEncoder`` passes cached embeddings through.
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
                 dropout: float = 0.1, batch_norm: bool = True):
        super().__init__()
        self.mlp = MLP(input_size, hidden_sizes, dropout, batch_norm)

    def output_size(self) -> int:
        return self.mlp.output_size()

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        pooled = masked_mean(xs_pad, ilens)
        return self.mlp(pooled)[:, None], torch.ones_like(ilens), None


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
