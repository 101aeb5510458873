"""The GRAM ViT encoder (masked-autoencoder encoder) and representation extraction."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet2_gram.frontend.spatial_features import per_crop_normalize
from espnet2_gram.gram.attention import Block, init_linear_xavier
from espnet2_gram.gram.patching import PatchEmbed, grid_shape, sincos_2d


def visible_positions(mask: torch.Tensor, num_visible: Optional[int] = None) -> torch.Tensor:
    """Positions of the unmasked tokens of each row, in order: ``(B, N_vis)`` long.

    Every row of ``mask`` (True = masked) must leave the same number of tokens visible.  With
    ``num_visible`` given (the masking strategy's count) nothing waits for the device: the
    count is checked asynchronously (on a GPU a wrong count stops the process at the next
    synchronisation); without it the count is read from ``mask`` and checked here.
    """
    b, n = mask.shape
    visible = ~mask.to(torch.bool)
    counts = visible.sum(dim=1)
    if num_visible is None:
        num_visible = int(counts[0]) if b else 0
        if b and bool((counts != num_visible).any()):
            raise ValueError(
                "every crop must have the same number of visible patches, got "
                f"{sorted(set(counts.tolist()))}"
            )
    elif b:
        torch._assert_async((counts == num_visible).all(),
                            f"a mask row does not leave {num_visible} patches visible")
    # Visible tokens sort first (key 0), in their original order (stable sort).
    order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
    return order[:, :num_visible]


def select_visible(tokens: torch.Tensor, mask: torch.Tensor,
                   num_visible: Optional[int] = None) -> torch.Tensor:
    """Keep the tokens where ``mask`` is False, in their original order: ``(B, N_vis, D)``
    (``num_visible``: see :func:`visible_positions`)."""
    b, n, d = tokens.shape
    if mask.shape != (b, n):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match tokens ({b}, {n})")
    index = visible_positions(mask.to(tokens.device), num_visible)
    return tokens.gather(1, index[..., None].expand(-1, -1, d))


class GRAMEncoder(nn.Module):
    """ViT encoder of GRAM.

    patch embedding -> + fixed 2-D sin-cos positions -> (optional) keep the visible tokens ->
    prepend a learnable CLS token (position zero) -> ``depth`` pre-LN blocks -> final LayerNorm.

    Input crops: ``(B, in_channels, n_mels, crop_frames)``; with the paper settings
    (128 mels, 200 frames, 16 x 8 patches) the grid is 8 frequency rows x 25 time columns.
    """

    def __init__(
        self,
        in_channels: int,
        n_mels: int = 128,
        crop_frames: int = 200,
        patch_size: Tuple[int, int] = (16, 8),
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        cls_init_std: float = 0.02,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.n_mels = n_mels
        self.crop_frames = crop_frames
        self.patch_size = tuple(patch_size)
        self.grid = grid_shape(n_mels, crop_frames, self.patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.patch_embed = PatchEmbed(in_channels, dim, self.patch_size)
        self.register_buffer("pos_embed", sincos_2d(dim, self.grid)[None], persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, norm_eps=1e-6) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights(cls_init_std)

    def _init_weights(self, cls_init_std: float) -> None:
        init_linear_xavier(self)
        # The patch projection is a linear map of the flattened patch: same xavier init.
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=cls_init_std)

    def output_size(self) -> int:
        return self.dim

    # ------------------------------------------------------------------ forward
    def layer_index(self, layer: int, option: str = "layer") -> int:
        """0 (the patch embeddings) .. depth (the last block) for ``layer``, which counts from
        the end when negative (-1: the last block); out of range: an error naming ``option``."""
        idx = int(layer) + self.depth + 1 if int(layer) < 0 else int(layer)
        if not 0 <= idx <= self.depth:
            raise ValueError(f"{option}={layer}: out of range for an encoder of depth"
                             f" {self.depth} (layers 0 .. {self.depth}, or"
                             f" {-self.depth - 1} .. -1 from the end)")
        return idx

    def embed(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
              num_visible: Optional[int] = None) -> torch.Tensor:
        """Tokens entering the first block: ``(B, 1 + N_vis, D)`` (CLS first).

        Without ``mask``, ``x`` may also hold only the first ``k`` patch columns of a crop
        (``k * patch_time`` frames): its tokens get the positions of those columns."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, {self.n_mels}, {self.crop_frames}), "
                f"got {tuple(x.shape)}"
            )
        t, patch_t = x.shape[-1], self.patch_size[1]
        leading = mask is None and 0 < t < self.crop_frames and t % patch_t == 0
        if x.shape[-2] != self.n_mels or not (t == self.crop_frames or leading):
            raise ValueError(
                f"expected crops of {self.n_mels} mels x {self.crop_frames} frames, got "
                f"{tuple(x.shape[-2:])}; use extract() for other lengths"
            )
        rows, cols = self.grid
        pos = self.pos_embed.reshape(1, rows, cols, self.dim)[:, :, : t // patch_t]
        tokens = self.patch_embed(x) + pos.reshape(1, -1, self.dim).to(x.dtype)
        if mask is not None:
            tokens = select_visible(tokens, mask, num_visible)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat([cls, tokens], dim=1)

    def forward_layers(
        self,
        x: torch.Tensor,
        layers: Optional[Sequence[int]] = None,
        mask: Optional[torch.Tensor] = None,
    ) -> List[torch.Tensor]:
        """Hidden states after the given layers, each passed through the final LayerNorm.

        Layer ``l`` is the output of the first ``l`` blocks (``0`` = the embeddings,
        ``depth`` = the last block, so ``forward_layers(x, [depth])[0] == forward(x)``);
        negative indices count from the end (``-1`` = ``depth``).  ``layers=None`` returns all
        ``depth + 1`` states.  Blocks after the deepest requested layer are not run.
        """
        if layers is None:
            wanted = list(range(self.depth + 1))
        else:
            wanted = [self.layer_index(l) for l in layers]
        last = max(wanted) if wanted else 0
        h = self.embed(x, mask)
        states = {0: h}
        for i in range(last):
            h = self.blocks[i](h)
            states[i + 1] = h
        return [self.norm(states[l]) for l in wanted]

    def forward(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
        num_visible: Optional[int] = None,
    ) -> torch.Tensor:
        """``x (B, C, F, T_crop)``, ``mask (B, N)`` (True = masked, optional) ->
        ``(B, 1 + N_vis, D)``, CLS first, visible tokens in their original order
        (``num_visible``: see :func:`visible_positions`)."""
        h = self.embed(x, mask, num_visible)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    # ------------------------------------------------------- representations
    def num_frames(self, n_input_frames: int) -> int:
        """Number of ``raw`` frames for an input of ``n_input_frames`` spectrogram frames:
        ``ceil(T / patch_time)`` (one per time column holding at least one real frame)."""
        return math.ceil(n_input_frames / self.patch_size[1])

    def num_chunks(self, n_input_frames: int) -> int:
        """``ceil(T / crop_frames)`` chunks (at least one)."""
        return max(1, math.ceil(n_input_frames / self.crop_frames))

    def raw_frame_dim(self) -> int:
        """Feature size of a ``raw`` frame: ``rows * D``."""
        return self.grid[0] * self.dim

    def extract(
        self,
        x: torch.Tensor,
        strategy: str = "mean",
        layer=None,
        max_chunks_per_pass: Optional[int] = None,
        normalize: bool = True,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Representation of inputs of any length ``x (B, C, F, T)``.

        The time axis is split into ``ceil(T / crop_frames)`` chunks of ``crop_frames`` (the
        last one zero-padded), encoded without masking; ``layer`` selects the hidden state (see
        :meth:`forward_layers`; ``None`` = last layer), final LayerNorm applied; a list of
        layers returns a list of representations from one pass.

        Each chunk is z-scored over (C, F, T) first, as the training crops are
        (``per_crop_normalize``); pass ``normalize=False`` for inputs normalised already.

        ``lengths`` (B,): each item's real frames. An item shorter than one crop is then
        encoded as its real patch columns only (statistics of its real frames; the rest of its
        last column 0 after normalisation) instead of a zero-padded crop; chunks of padding
        after it come out as before, and items of a crop or longer are unchanged. Without
        ``lengths`` every item is padded (the GRAM authors' behaviour, kept for HEAR).

        * ``mean``: ``(B, D)``, mean over the patch tokens of the columns that hold real frames
          (of each item's own ``lengths`` where given, else of the longest);
        * ``cls``: ``(B, D)``, mean of the chunks' CLS outputs;
        * ``raw``: ``(B, ceil(T / patch_time), rows * D)``, one frame per time column (80 ms
          for the paper settings): the column's row tokens concatenated frequency-major
          (row 0 first); columns made only of padding are dropped.

        Items of the batch are encoded independently.  ``max_chunks_per_pass`` bounds how
        many chunks go through the encoder at once (memory); ``None`` = all.
        """
        if strategy not in ("mean", "cls", "raw"):
            raise ValueError(f"unknown strategy {strategy!r}; use 'mean', 'cls' or 'raw'")
        if x.dim() != 4:
            raise ValueError(f"expected (B, C, F, T), got {tuple(x.shape)}")
        b, c, f, t = x.shape
        if t < 1:
            raise ValueError("empty input (0 frames)")
        n_chunks = self.num_chunks(t)
        pad = n_chunks * self.crop_frames - t
        padded = torch.nn.functional.pad(x, (0, pad)) if pad else x
        # (B, C, F, n * crop) -> (B * n, C, F, crop), chunk-major within each item.
        chunks = padded.reshape(b, c, f, n_chunks, self.crop_frames).permute(0, 3, 1, 2, 4)
        chunks = chunks.reshape(b * n_chunks, c, f, self.crop_frames)
        if normalize:
            chunks = per_crop_normalize(chunks)
        single = layer is None or isinstance(layer, int)
        wanted = [self.depth if layer is None else layer] if single else [int(l) for l in layer]
        step = max_chunks_per_pass or chunks.shape[0]
        short = ([] if lengths is None else
                 [i for i, n in enumerate(lengths.tolist()) if 0 < n < self.crop_frames])
        crops = torch.ones(chunks.shape[0], dtype=torch.bool)
        crops[[i * n_chunks for i in short]] = False
        todo = chunks if not short else chunks[crops.to(chunks.device)]
        passes = [self.forward_layers(todo[i:i + step], wanted)
                  for i in range(0, todo.shape[0], step)]
        states = [torch.cat([p[k] for p in passes], dim=0) if passes else None
                  for k in range(len(wanted))]
        if short:
            full = [chunks.new_zeros(chunks.shape[0], 1 + self.num_patches, self.dim)
                    for _ in wanted]
            for k, h in enumerate(states):
                if h is not None:
                    full[k][crops.to(chunks.device)] = h.to(full[k].dtype)
            for n in sorted({int(lengths[i]) for i in short}):
                items = [i for i in short if int(lengths[i]) == n]
                for k, h in enumerate(self._leading_columns(x[items, ..., :n], wanted,
                                                            normalize)):
                    full[k][[i * n_chunks for i in items], : h.shape[1]] = h.to(full[k].dtype)
            states = full
        pooled = [self._pool(h, b, n_chunks, t, strategy, lengths) for h in states]
        return pooled[0] if single else pooled

    def _leading_columns(self, x: torch.Tensor, wanted: List[int],
                         normalize: bool) -> List[torch.Tensor]:
        """Clips shorter than a crop ``(G, C, F, n)`` -> per layer ``(G, 1 + N, D)`` hidden
        states of their ``ceil(n / patch_time)`` patch columns alone, scattered to their slots
        in a crop's token order (CLS first; the tokens of absent columns 0)."""
        if normalize:
            x = per_crop_normalize(x)
        columns = self.num_frames(x.shape[-1])
        x = torch.nn.functional.pad(x, (0, columns * self.patch_size[1] - x.shape[-1]))
        rows, cols = self.grid
        out = []
        for h in self.forward_layers(x, wanted):
            tokens = h.new_zeros(h.shape[0], rows, cols, self.dim)
            tokens[:, :, :columns] = h[:, 1:].reshape(h.shape[0], rows, columns, self.dim)
            out.append(torch.cat([h[:, :1], tokens.reshape(h.shape[0], -1, self.dim)], dim=1))
        return out

    def _pool(self, h: torch.Tensor, b: int, n_chunks: int, t: int, strategy: str,
              lengths: Optional[torch.Tensor] = None):
        """Chunk outputs (B * n, 1 + N, D) -> the representation of ``strategy``; with
        ``lengths``, ``mean`` averages each item over its own real columns."""
        h = h.reshape(b, n_chunks, 1 + self.num_patches, self.dim)
        if strategy == "cls":
            return h[:, :, 0].mean(dim=1)
        rows, cols = self.grid
        columns = h[:, :, 1:].reshape(b, n_chunks, rows, cols, self.dim).permute(0, 1, 3, 2, 4)
        columns = columns.reshape(b, n_chunks * cols, rows, self.dim)[:, : self.num_frames(t)]
        if strategy == "raw":
            return columns.reshape(b, columns.shape[1], rows * self.dim)
        if lengths is None:
            return columns.mean(dim=(1, 2))
        real = torch.tensor([self.num_frames(max(int(n), 1)) for n in lengths.tolist()],
                            device=columns.device)
        keep = (torch.arange(columns.shape[1], device=columns.device) < real[:, None])
        weights = keep.to(columns.dtype)[:, :, None, None]
        return (columns * weights).sum(dim=(1, 2)) / (real.to(columns.dtype)[:, None] * rows)
