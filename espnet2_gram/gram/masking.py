"""Patch masking strategies for masked-autoencoder pretraining.

Every strategy is a callable

    mask = strategy(batch_size, grid=(rows, cols), generator=None, device=None)

returning a ``BoolTensor (B, rows * cols)`` in frequency-major token order (token
``f * cols + t``), ``True`` = masked.  Every crop gets EXACTLY ``round(ratio * N)`` masked
patches, drawn independently per crop: the encoder stacks the visible tokens as
``(B, N_visible, D)``, which needs equal counts.

All strategies work the same way: each token gets a sort key, the tokens are sorted by it and the
first ``round(ratio * N)`` are masked (or, for inverse-block masking, the first ``N_visible`` are
kept).  Structure (whole columns, whole rows, blocks) lives in the integer part of the key, a
uniform random number in ``[0, 1)`` breaks ties, so a partly used group is completed with random
members, which keeps the count exact.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def _num_masked(ratio: float, n: int) -> int:
    k = int(round(ratio * n))
    return min(max(k, 0), n)


def _rand(shape, generator: Optional[torch.Generator], device) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    out = torch.rand(shape, generator=generator, device=gen_device)
    return out.to(device) if device is not None else out


def _mask_from_keys(keys: torch.Tensor, k: int, mask_first: bool = True) -> torch.Tensor:
    """Mark the ``k`` smallest keys of each row (masked when ``mask_first`` else visible)."""
    b, n = keys.shape
    order = keys.argsort(dim=1)
    first = torch.zeros(b, n, dtype=torch.bool, device=keys.device)
    first.scatter_(1, order[:, :k], True)
    return first if mask_first else ~first


class MaskingStrategy:
    """Base class; subclasses implement :meth:`keys` (and set ``mask_first``)."""

    mask_first = True

    def __init__(self, ratio: float = 0.8):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
        self.ratio = float(ratio)

    def num_masked(self, grid: Tuple[int, int]) -> int:
        return _num_masked(self.ratio, grid[0] * grid[1])

    def keys(self, batch_size, grid, generator, device) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(
        self,
        batch_size: int,
        grid: Tuple[int, int] = (8, 25),
        generator: Optional[torch.Generator] = None,
        device=None,
    ) -> torch.Tensor:
        rows, cols = grid
        n = rows * cols
        k = self.num_masked(grid)
        keys = self.keys(batch_size, (rows, cols), generator, device)
        if self.mask_first:
            return _mask_from_keys(keys, k, mask_first=True)
        return _mask_from_keys(keys, n - k, mask_first=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio})"


class RandomMasking(MaskingStrategy):
    """Uniform random masking without replacement (MAE); 80 % in the paper."""

    def keys(self, batch_size, grid, generator, device):
        return _rand((batch_size, grid[0] * grid[1]), generator, device)


def _group_keys(batch_size, n_groups, group_of_token, generator, device):
    """Key = random rank of the token's group + uniform tie-break inside the group."""
    n = group_of_token.numel()
    group_rank = _rand((batch_size, n_groups), generator, device).argsort(dim=1).argsort(dim=1)
    group_of_token = group_of_token.to(group_rank.device)
    ranks = group_rank[:, group_of_token].to(torch.float64)
    # float64: rank + u (u < 1 in float32) never rounds up to the next rank.
    return ranks + _rand((batch_size, n), generator, device).to(torch.float64)


class TimeMasking(MaskingStrategy):
    """Masks whole time columns (all frequency rows of a column) in random order.

    When ``round(ratio * N)`` is not a multiple of ``rows``, the remainder is taken as random
    patches of one more (partly masked) column.
    """

    def keys(self, batch_size, grid, generator, device):
        rows, cols = grid
        col_of_token = torch.arange(cols).repeat(rows)
        return _group_keys(batch_size, cols, col_of_token, generator, device)


class FrequencyMasking(MaskingStrategy):
    """Masks whole frequency rows (all time columns of a row) in random order.

    When ``round(ratio * N)`` is not a multiple of ``cols``, the remainder is taken as random
    patches of one more (partly masked) row.
    """

    def keys(self, batch_size, grid, generator, device):
        rows, cols = grid
        row_of_token = torch.arange(rows).repeat_interleave(cols)
        return _group_keys(batch_size, rows, row_of_token, generator, device)


class InverseBlockMasking(MaskingStrategy):
    """Keeps visible only a few random rectangular blocks; everything else is masked.

    ``block = (rows_b, cols_b)`` is the block size in patches (frequency rows x time columns,
    clipped to the grid).  Blocks with uniformly random top-left corners are drawn one after the
    other; the visible set is the union of the first blocks, in drawing order, until it holds
    exactly ``N - round(ratio * N)`` patches (the last block used may be kept only in part, as
    random patches of it that were not yet visible).  If the drawn blocks cover too few
    patches, random patches complete the visible set.
    """

    mask_first = False

    def __init__(self, ratio: float = 0.8, block: Tuple[int, int] = (2, 5), max_blocks: int = 0):
        super().__init__(ratio)
        self.block = (int(block[0]), int(block[1]))
        if min(self.block) < 1:
            raise ValueError(f"block size must be positive, got {block}")
        self.max_blocks = int(max_blocks)

    def keys(self, batch_size, grid, generator, device):
        rows, cols = grid
        n = rows * cols
        rb, cb = min(self.block[0], rows), min(self.block[1], cols)
        n_visible = n - self.num_masked(grid)
        n_blocks = self.max_blocks or min(n, 4 * -(-n_visible // (rb * cb)) + 4)
        # Top-left corners (B, M) in [0, rows - rb] x [0, cols - cb].
        r0 = (_rand((batch_size, n_blocks), generator, device) * (rows - rb + 1)).long()
        c0 = (_rand((batch_size, n_blocks), generator, device) * (cols - cb + 1)).long()
        r0 = r0.clamp_max(rows - rb)
        c0 = c0.clamp_max(cols - cb)
        dev = r0.device
        f_idx = torch.arange(rows, device=dev).repeat_interleave(cols)
        t_idx = torch.arange(cols, device=dev).repeat(rows)
        # covered[b, m, i]: block m of crop b covers token i.
        covered = (
            (f_idx[None, None] >= r0[..., None])
            & (f_idx[None, None] < (r0 + rb)[..., None])
            & (t_idx[None, None] >= c0[..., None])
            & (t_idx[None, None] < (c0 + cb)[..., None])
        )
        block_index = torch.arange(n_blocks, device=dev, dtype=torch.float64)
        never = torch.tensor(float(n_blocks), dtype=torch.float64, device=dev)
        # Index of the first block covering each token (n_blocks if none does).
        first_block = torch.where(covered, block_index[None, :, None], never).amin(dim=1)
        return first_block + _rand((batch_size, n), generator, device).to(dev, torch.float64)

    def __repr__(self) -> str:
        return f"InverseBlockMasking(ratio={self.ratio}, block={self.block})"


MASKING_STRATEGIES = {
    "random": RandomMasking,
    "time": TimeMasking,
    "frequency": FrequencyMasking,
    "inverse_block": InverseBlockMasking,
}
