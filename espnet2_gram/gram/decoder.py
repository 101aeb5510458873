"""Masked-autoencoder decoders: the multi-window MW-MAE decoder and a plain transformer one.

Both take the encoder output ``(B, 1 + N_vis, De)`` (CLS first, visible tokens in their
original order) and the mask ``(B, N)`` (True = masked) and predict every patch:
``(B, N, patch_dim)`` in frequency-major order (``patch_dim = C * pf * pt``, the layout of
:func:`espnet2_gram.gram.patching.patchify`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from espnet2_gram.gram.attention import Block, init_linear_xavier
from espnet2_gram.gram.encoder import visible_positions
from espnet2_gram.gram.patching import sincos_2d


class _MAEDecoderBase(nn.Module):
    def __init__(
        self,
        num_patches_grid: Tuple[int, int],
        encoder_dim: int,
        patch_dim: int,
        dim: int,
        depth: int,
        heads: int,
        windows,
        mlp_ratio: float,
        learnable_mask_token: bool,
        keep_cls: bool,
        norm_eps: float = 1e-6,
        mask_token_init_std: float = 0.02,
        window_attention: str = "auto",
    ):
        super().__init__()
        self.grid = tuple(int(g) for g in num_patches_grid)
        self.num_patches = self.grid[0] * self.grid[1]
        self.dim = dim
        self.patch_dim = patch_dim
        self.keep_cls = keep_cls
        self.learnable_mask_token = learnable_mask_token
        self.embed = nn.Linear(encoder_dim, dim)
        mask_token = torch.zeros(1, 1, dim)
        if learnable_mask_token:
            self.mask_token = nn.Parameter(mask_token)
        else:
            # As in the authors' code: a fixed (non-trained) token, saved with the model.
            self.register_buffer("mask_token", mask_token)
        self.register_buffer(
            "pos_embed", sincos_2d(dim, self.grid, cls_token=keep_cls)[None], persistent=False
        )
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, windows=windows, norm_eps=norm_eps,
                  window_attention=window_attention)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.pred = nn.Linear(dim, patch_dim)
        init_linear_xavier(self)
        nn.init.normal_(self.mask_token, std=mask_token_init_std)

    def fill(self, encoder_tokens: torch.Tensor, mask: torch.Tensor,
             num_visible: Optional[int] = None) -> torch.Tensor:
        """Projected visible tokens back in their slots, the mask token elsewhere.

        ``encoder_tokens (B, 1 + N_vis, De)``, ``mask (B, N)`` -> ``(B, N, dim)`` (no CLS, no
        positions yet); ``num_visible``: see :func:`~espnet2_gram.gram.encoder.visible_positions`.
        """
        b, n = mask.shape
        if n != self.num_patches:
            raise ValueError(
                f"mask has {n} patches, the decoder grid {self.grid} has {self.num_patches}"
            )
        visible = self.embed(encoder_tokens[:, 1:])
        n_vis = visible.shape[1]
        if num_visible is not None and num_visible != n_vis:
            raise ValueError(f"encoder gave {n_vis} visible tokens, the mask leaves {num_visible}")
        index = visible_positions(mask.to(encoder_tokens.device), num_visible)
        if index.shape[1] != n_vis:
            raise ValueError(f"encoder gave {n_vis} visible tokens but the mask leaves "
                             f"{index.shape[1]} visible")
        slots = self.mask_token.to(visible.dtype).expand(b, n, self.dim)
        return slots.scatter(1, index[..., None].expand(-1, -1, self.dim), visible)

    def forward(self, encoder_tokens: torch.Tensor, mask: torch.Tensor,
                num_visible: Optional[int] = None) -> torch.Tensor:
        """``encoder_tokens (B, 1 + N_vis, De)``, ``mask (B, N)`` -> ``pred (B, N, patch_dim)``."""
        x = self.fill(encoder_tokens, mask, num_visible)
        if self.keep_cls:
            x = torch.cat([self.embed(encoder_tokens[:, :1]), x], dim=1)
        x = x + self.pos_embed.to(x.dtype)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        if self.keep_cls:
            x = x[:, 1:]
        return self.pred(x)


class MWMAEDecoder(_MAEDecoderBase):
    """MW-MAE decoder: multi-window multi-head attention blocks, no CLS token.

    ``windows`` has one entry per head: ``0`` = global head, ``w > 0`` = attention within
    non-overlapping windows of ``w`` consecutive (frequency-major) tokens.  Every ``w > 0``
    must divide the number of patches ``rows * cols`` (200 with the paper grid).

    ``learnable_mask_token=True`` (default) trains the mask token; this deliberately deviates
    from the authors' code, which registers it as a fixed buffer (``False`` reproduces that).
    ``window_attention``: how windowed heads are computed, ``auto`` / ``windows`` / ``dense``
    (exact forms of one result, :mod:`espnet2_gram.gram.attention`).
    """

    def __init__(
        self,
        num_patches_grid: Tuple[int, int],
        encoder_dim: int,
        patch_dim: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        windows: Sequence[int] = (2, 5, 10, 25, 50, 100, 0, 0),
        mlp_ratio: float = 4.0,
        learnable_mask_token: bool = True,
        norm_eps: float = 1e-6,
        window_attention: str = "auto",
    ):
        windows = tuple(int(w) for w in windows)
        n = int(num_patches_grid[0]) * int(num_patches_grid[1])
        if len(windows) != heads:
            raise ValueError(
                f"MWMAEDecoder needs one window per head: {len(windows)} windows for {heads} heads"
            )
        bad = [w for w in windows if w < 0 or (w > 0 and n % w)]
        if bad:
            raise ValueError(
                f"MWMAEDecoder window sizes {bad} do not divide the number of patches {n} "
                f"(grid {tuple(num_patches_grid)}); use divisors of {n} or 0 for global heads"
            )
        super().__init__(
            num_patches_grid, encoder_dim, patch_dim, dim, depth, heads, windows, mlp_ratio,
            learnable_mask_token, keep_cls=False, norm_eps=norm_eps,
            window_attention=window_attention,
        )
        self.windows = windows


class TransformerDecoder(_MAEDecoderBase):
    """Plain MAE decoder: global heads; the encoder CLS is kept (prepended, zero position)
    through the blocks and dropped before the prediction head."""

    def __init__(
        self,
        num_patches_grid: Tuple[int, int],
        encoder_dim: int,
        patch_dim: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        learnable_mask_token: bool = True,
        norm_eps: float = 1e-6,
    ):
        super().__init__(
            num_patches_grid, encoder_dim, patch_dim, dim, depth, heads, None, mlp_ratio,
            learnable_mask_token, keep_cls=True, norm_eps=norm_eps,
        )
