"""Multi-head self-attention (global and multi-window heads) and pre-LN transformer blocks.

Global attention goes through ``torch.nn.functional.scaled_dot_product_attention`` so that
GPUs use fused kernels (the encoder ran cuDNN's on an H200).  Multi-window heads (MW-MHA, as in
the MW-MAE decoder):

* a global head (window ``0``) attends everywhere;
* a windowed head (window ``w > 0``) lets token ``i`` attend to token ``j`` iff
  ``i // w == j // w`` (non-overlapping windows of ``w`` consecutive tokens of the sequence)
  and adds a learned relative position bias ``table[j - i + w - 1]`` (a table of ``2w - 1``
  entries per windowed head) inside the window.

Two exact forms compute this (``window_attention``):

* ``windows``: each run of heads with one window size reshapes its sequence into windows,
  ``(B, h, N / w, w, d)``, and attends inside them with the ``(h, w, w)`` bias (SDPA on the
  CPU, matmuls and a softmax on a GPU: :func:`windowed_attention`); the cost of a head is
  ``N * w`` instead of ``N * N``.  Needs ``w`` to divide ``N``.
* ``dense``: one additive ``(heads, N, N)`` mask (``-inf`` outside the windows) for all heads;
  its static part (allowed positions, table index of each logit) is cached per sequence length
  and device.  Kept as the reference form and for windows that do not divide ``N``.

``auto`` (default) takes ``windows`` whenever every window divides ``N`` (measured faster on
CPU and GPU, docs/benchmarks.md), else ``dense``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class WindowedAttentionBias(nn.Module):
    """Builds the additive ``(heads, N, N)`` attention mask of multi-window heads."""

    def __init__(self, windows: Sequence[int], bias_init_std: float = 0.02):
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        if any(w < 0 for w in self.windows):
            raise ValueError(f"window sizes must be >= 0, got {self.windows}")
        sizes = [2 * w - 1 if w > 0 else 0 for w in self.windows]
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        self._offsets = offsets
        # All heads' relative position tables, concatenated: head h uses
        # rel_pos_bias[offsets[h]:offsets[h + 1]] (empty for a global head).
        self.rel_pos_bias = nn.Parameter(torch.zeros(offsets[-1]))
        nn.init.trunc_normal_(
            self.rel_pos_bias, std=bias_init_std, a=-2 * bias_init_std, b=2 * bias_init_std
        )
        self._cache: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def num_table_entries(self) -> int:
        return self._offsets[-1]

    def table(self, head: int) -> torch.Tensor:
        """The relative position bias table of one windowed head (``2w - 1`` entries)."""
        return self.rel_pos_bias[self._offsets[head]:self._offsets[head + 1]]

    def window_table(self, head: int) -> torch.Tensor:
        """The ``(w, w)`` bias of windowed head ``head`` inside one window:
        ``[i, j] = table[j - i + w - 1]``."""
        w = self.windows[head]
        pos = torch.arange(w, device=self.rel_pos_bias.device)
        return self.table(head)[pos[None, :] - pos[:, None] + w - 1]

    def _static(self, n: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        key = (n, str(device))
        cached = self._cache.get(key)
        if cached is None:
            # Normal tensors even when first built under inference mode, so that later
            # training steps can save them for backward.
            with torch.inference_mode(False):
                cached = self._build_static(n, device)
            self._cache[key] = cached
        return cached

    def _build_static(self, n: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(n, device=device)
        rel = pos[None, :] - pos[:, None]  # j - i
        zero_slot = self.num_table_entries  # index of an appended constant 0
        index = torch.full((len(self.windows), n, n), zero_slot, dtype=torch.long, device=device)
        blocked = torch.zeros((len(self.windows), n, n), dtype=torch.bool, device=device)
        for h, w in enumerate(self.windows):
            if w == 0:
                continue
            same = (pos[:, None] // w) == (pos[None, :] // w)
            index[h] = torch.where(same, rel + (w - 1) + self._offsets[h], index[h])
            blocked[h] = ~same
        return index, blocked

    def forward(self, n: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        device = self.rel_pos_bias.device if device is None else torch.device(device)
        index, blocked = self._static(n, device)
        table = torch.cat([self.rel_pos_bias, self.rel_pos_bias.new_zeros(1)])
        bias = table[index].to(dtype)
        return bias.masked_fill(blocked, float("-inf"))


WINDOW_ATTENTION = ("auto", "windows", "dense")


def windows_divide(windows: Sequence[int], n: int) -> bool:
    return all(w == 0 or n % w == 0 for w in windows)


def head_runs(windows: Sequence[int]) -> Tuple[Tuple[int, int, int], ...]:
    """``(first head, end head, window)`` of each run of consecutive heads with one window."""
    runs = []
    for h, w in enumerate(windows):
        if runs and runs[-1][2] == w:
            runs[-1][1] = h + 1
        else:
            runs.append([h, h + 1, w])
    return tuple(tuple(r) for r in runs)


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                       bias: torch.Tensor) -> torch.Tensor:
    """Attention of ``(B, h, N, d)`` inside non-overlapping windows of ``window`` tokens with an
    additive ``(h, window, window)`` bias; ``N`` must be a multiple of ``window``.

    On a GPU the windows go through batched matmuls and a softmax: the paper decoder's forward
    and backward on 1536 crops in bf16 on an H200 took 0.91x the time of SDPA on the same
    windows (0.70x that of the dense mask); on the CPU SDPA and matmuls tie, SDPA is kept
    (docs/benchmarks.md).
    """
    b, h, n, d = q.shape
    shape = (b, h, n // window, window, d)
    attend = matmul_attention if q.device.type == "cuda" else F.scaled_dot_product_attention
    out = attend(q.reshape(shape), k.reshape(shape), v.reshape(shape),
                 attn_mask=bias[None, :, None])
    return out.reshape(b, h, n, d)


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     attn_mask: torch.Tensor) -> torch.Tensor:
    """SDPA's result (scale ``d ** -0.5``, additive mask) by explicit matmuls and a softmax."""
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2) + attn_mask
    return logits.softmax(-1).to(v.dtype) @ v


def set_window_attention(module: nn.Module, impl: str) -> None:
    """Use ``impl`` (``auto``, ``windows`` or ``dense``) in every attention inside ``module``."""
    if impl not in WINDOW_ATTENTION:
        raise ValueError(f"window_attention must be one of {WINDOW_ATTENTION}, got {impl!r}")
    for m in module.modules():
        if isinstance(m, Attention):
            m.window_attention = impl


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (with bias) and SDPA.

    ``windows``: ``None`` (all heads global) or one entry per head, ``0`` = global head,
    ``w > 0`` = windowed head; ``window_attention``: ``auto``, ``windows`` or ``dense`` (see
    module docstring).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        windows: Optional[Sequence[int]] = None,
        window_attention: str = "auto",
    ):
        super().__init__()
        if window_attention not in WINDOW_ATTENTION:
            raise ValueError(
                f"window_attention must be one of {WINDOW_ATTENTION}, got {window_attention!r}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if windows is not None and len(windows) != heads:
            raise ValueError(f"need one window per head: {len(windows)} windows for {heads} heads")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.windows = tuple(int(w) for w in windows) if windows is not None else (0,) * heads
        self.window_attention = window_attention
        self._runs = head_runs(self.windows)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.window_bias: Optional[WindowedAttentionBias] = None
        if any(w > 0 for w in self.windows):
            self.window_bias = WindowedAttentionBias(self.windows)

    def qkv_heads(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of shape ``(B, heads, N, head_dim)``."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attention_mask(self, n: int, dtype=torch.float32, device=None) -> Optional[torch.Tensor]:
        """The additive ``(heads, N, N)`` mask passed to SDPA (``None`` if all heads are global)."""
        if self.window_bias is None:
            return None
        return self.window_bias(n, dtype=dtype, device=device)

    def uses_windows(self, n: int) -> bool:
        """Whether a sequence of ``n`` tokens goes through the ``windows`` form."""
        if self.window_bias is None or self.window_attention == "dense":
            return False
        if windows_divide(self.windows, n):
            return True
        if self.window_attention == "windows":
            raise ValueError(f"window_attention 'windows' needs window sizes that divide the"
                             f" sequence length {n}, got {self.windows}; use 'auto' or 'dense'")
        return False

    def windowed(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The ``windows`` form: one SDPA call per run of heads with one window size."""
        outs = []
        for first, end, w in self._runs:
            qh, kh, vh = q[:, first:end], k[:, first:end], v[:, first:end]
            if w == 0:
                outs.append(F.scaled_dot_product_attention(qh, kh, vh))
                continue
            bias = torch.stack([self.window_bias.window_table(h) for h in range(first, end)])
            outs.append(windowed_attention(qh, kh, vh, w, bias.to(q.dtype)))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv_heads(x)
        if self.uses_windows(n):
            out = self.windowed(q, k, v)
        else:
            mask = self.attention_mask(n, dtype=q.dtype, device=q.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dim))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        windows: Optional[Sequence[int]] = None,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        window_attention: str = "auto",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, windows=windows,
                              window_attention=window_attention)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_linear_xavier(module: nn.Module) -> None:
    """xavier_uniform weights and zero biases for every ``nn.Linear`` inside ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
