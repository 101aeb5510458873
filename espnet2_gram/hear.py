"""The HEAR 2021 API (hearbenchmark.com) for packed GRAM models.

::

    from espnet2_gram import hear
    model = hear.load_model("path/to/packed_gram")          # GRAMHearModel (torch.nn.Module)
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # audio: (n_sounds, n_samples)
    scene = hear.get_scene_embeddings(audio, model)

Audio is float in [-1, 1] at ``model.sample_rate`` (the packed model's rate: a tensor carries
no rate, so a wrong one cannot be detected; :func:`resample_to_model` converts).

Timestamp embeddings. GRAM's ``raw`` representation has one frame per patch column
(``patch_time`` spectrogram frames: 80 ms at the paper settings, 8 x 10 ms), above HEAR's
50-ms limit. ``passes`` interleaved grids are therefore evaluated: pass ``p`` is the same
model on the spectrogram frames centred ``p * patch_time * hop / passes`` samples later, so
two passes (the default) give one embedding every 40 ms. Each pass sees the real signal
around its frames (the STFT is reflect-padded only at the true ends of the audio), and pass 0
is exactly ``model.extract(audio, strategy="raw")``. An embedding is the column's ``rows``
patch tokens concatenated (``rows * D``, frequency-major); its timestamp is the centre of the
column's frames, ``(first + (patch_time - 1) / 2) * hop`` samples, in milliseconds. Only
columns whose centre lies inside the audio are returned, so the last timestamp is at most
the duration and within one hop of it.

Scene embeddings. ``scene_strategy="mean"`` (default): the mean over time of the timestamp
embeddings, size ``rows * D``; ``"cls"``: the mean of the CLS outputs of the (unshifted)
2-s chunks, size ``D``.

``compat="authors"`` reproduces the GRAM authors' HEAR runtime (``hear_api/runtime.py`` of
GRAM-T) on a converted GRAM-T (:mod:`espnet2_gram.pretrained.convert`): features with the runtime's log
offset (``hear_conf.authors_log_offset`` of the converted configuration), one pass, every
column that holds a real spectrogram frame (``ceil(frames / patch_time)``, the last one
possibly mostly padding), timestamps ``i * duration / n_timestamps`` (from 0, not centres),
scene embedding the mean of all those frames. docs/hear.md lists how this differs from the
default and why the default is ours.

Multichannel extension (not part of HEAR): both functions also take
``(n_sounds, n_channels, n_samples)`` with ``n_channels == model.n_channels`` (binaural: left,
right; FOA: ACN W, Y, Z, X with SN3D). Mono ``(n_sounds, n_samples)`` input to a binaural or
FOA model is repeated on every channel, as the authors do for mono benchmarks.

An empty batch (``n_sounds == 0``) returns empty embeddings, ``(0, n_timestamps, size)`` and
``(0, n_timestamps)`` / ``(0, size)``, with ``n_timestamps`` what audio of that length gets.
Audio shorter than :meth:`GRAMHearModel.min_samples` or with NaN / inf samples is a
``ValueError``.

Items are encoded independently (an embedding does not depend on the rest of the batch);
long audio is processed in segments of whole encoder chunks, which bounds memory without
changing the result.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from espnet2_gram.formats import format_with_channels

HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
SCENE_STRATEGIES = ("mean", "cls")
#: ``ours``: this module's HEAR behaviour; ``authors``: the GRAM authors' HEAR runtime.
COMPAT_MODES = ("ours", "authors")


def _channel_layout(count: int) -> str:
    """``"binaural (2 channels (left, right))"`` for a channel count, or ``"4-channel"``."""
    fmt = format_with_channels(count)
    return f"{fmt.description} ({fmt.layout})" if fmt else f"{count}-channel"


class GRAMHearModel(nn.Module):
    """A GRAM model (``ESPnetGRAMModel``) with the attributes and extraction HEAR expects.

    ``layer``: the encoder layer (``None`` = last; see ``GRAMEncoder.forward_layers``);
    ``passes``: interleaved time grids (hop = patch column / passes; ``None``: 2, or 1 with
    ``compat="authors"``, which allows no other value);
    ``max_chunks_per_pass``: at most this many encoder chunks (``crop_frames`` frames of one
    item) are computed at once, features included;
    ``compat``: one of :data:`COMPAT_MODES` (see the module docstring); ``"authors"`` needs
    ``authors_log_offset``, the log offset of the authors' HEAR runtime for this model.
    """

    def __init__(self, gram, layer: Optional[int] = None, scene_strategy: str = "mean",
                 passes: Optional[int] = None, max_chunks_per_pass: int = 32,
                 compat: str = "ours", authors_log_offset: Optional[float] = None):
        super().__init__()
        if scene_strategy not in SCENE_STRATEGIES:
            raise ValueError(f"scene_strategy must be one of {SCENE_STRATEGIES},"
                             f" got {scene_strategy!r}")
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        authors = compat == "authors"
        if authors:
            if authors_log_offset is None:
                raise ValueError("compat='authors' needs authors_log_offset, the log offset of"
                                 " the GRAM authors' HEAR runtime (hear_conf.authors_log_offset"
                                 " in the config.yaml of a GRAM-T converted by"
                                 " espnet2_gram.bin.convert_gramt)")
            if passes not in (None, 1) or scene_strategy != "mean":
                raise ValueError("compat='authors' is the authors' runtime: one pass and the"
                                 " mean scene embedding (passes=None or 1, scene_strategy="
                                 f"'mean'); got passes={passes}, scene_strategy="
                                 f"{scene_strategy!r}")
        passes = (1 if authors else 2) if passes is None else passes
        if int(passes) < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        if int(max_chunks_per_pass) < 1:
            raise ValueError(f"max_chunks_per_pass must be >= 1, got {max_chunks_per_pass}")
        encoder = gram.encoder
        if layer is not None:
            encoder.layer_index(layer)
        self.gram = gram.eval()
        self.compat = compat
        if authors:  # the runtime's features: the same frontend with the runtime's log offset
            self.authors_frontend = copy.deepcopy(gram.frontend)
            self.authors_frontend.log_offset = float(authors_log_offset)
        self.layer = None if layer is None else int(layer)
        self.scene_strategy = scene_strategy
        self.passes = int(passes)
        self.max_chunks_per_pass = int(max_chunks_per_pass)
        self.eval()

        frontend = gram.frontend
        self.sample_rate = int(frontend.fs)
        self.n_channels = int(frontend.in_channels)
        self.hop_length = int(frontend.hop_length)
        self.patch_time = int(encoder.patch_size[1])
        self.timestamp_embedding_size = int(encoder.grid[0] * encoder.dim)
        self.scene_embedding_size = (self.timestamp_embedding_size if scene_strategy == "mean"
                                     else int(encoder.dim))
        column = self.patch_time * self.hop_length  # samples per raw frame
        # Sample offsets of the passes and the centre of column 0 (in samples, exact).
        self.offsets = [round(p * column / self.passes) for p in range(self.passes)]
        self.first_centre = (self.patch_time - 1) / 2 * self.hop_length
        if self.sample_rate not in HEAR_SAMPLE_RATES:
            warnings.warn(f"the model runs at {self.sample_rate} Hz; HEAR accepts only"
                          f" {HEAR_SAMPLE_RATES}")

    # ------------------------------------------------------------------ geometry
    @property
    def hop_ms(self) -> float:
        """Interval between timestamps in milliseconds (40 ms at the paper settings; with
        ``compat="authors"`` the nominal 80-ms column, the runtime spacing timestamps
        ``duration / n_timestamps`` apart)."""
        return self.patch_time * self.hop_length / self.passes * 1000.0 / self.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.gram.parameters()).device

    @property
    def frontend(self) -> nn.Module:
        """The feature extractor of this mode (the model's own, or the authors' runtime's)."""
        return self.authors_frontend if self.compat == "authors" else self.gram.frontend

    def min_samples(self) -> int:
        """Shortest audio with one embedding: an STFT, and (ours) a column centre inside it."""
        stft = self.frontend.n_fft // 2 + 1
        return stft if self.compat == "authors" else max(math.ceil(self.first_centre), stft)

    def _columns(self, n_samples: int, p: int) -> int:
        """Columns of pass ``p``: those whose centre lies inside ``n_samples`` samples (ours),
        or all that hold a real spectrogram frame (authors)."""
        if self.compat == "authors":
            return self.gram.encoder.num_frames(1 + n_samples // self.hop_length)
        room = n_samples - self.offsets[p] - self.first_centre
        return 0 if room < 0 else int(room // (self.patch_time * self.hop_length)) + 1

    def num_timestamps(self, n_samples: int) -> int:
        return sum(self._columns(n_samples, p) for p in range(self.passes))

    def timestamps_ms(self, n_samples: int) -> torch.Tensor:
        """``(n_timestamps,)`` float64 times in milliseconds, increasing: column centres
        (ours), or ``i * duration / n_timestamps`` (authors)."""
        if self.compat == "authors":
            n = self._columns(n_samples, 0)
            step = n_samples / self.sample_rate / n * 1000.0
            return torch.arange(n, dtype=torch.float64) * step
        column = self.patch_time * self.hop_length
        centres = sorted(self.first_centre + self.offsets[p] + j * column
                         for p in range(self.passes) for j in range(self._columns(n_samples, p)))
        return torch.tensor(centres, dtype=torch.float64) * (1000.0 / self.sample_rate)

    # ------------------------------------------------------------------ input checks
    def prepare(self, audio) -> torch.Tensor:
        """HEAR audio -> ``(n_sounds, n_samples, channels)`` float32 on the model's device."""
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(audio)
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
        want = self.n_channels
        expected = (f"(n_sounds, n_samples) mono audio or (n_sounds, {want}, n_samples)"
                    f" {_channel_layout(want)} audio")
        if audio.dim() == 2:
            x = audio.unsqueeze(-1).expand(-1, -1, want)
        elif audio.dim() == 3:
            if audio.shape[1] != want:
                raise ValueError(f"this GRAM model takes {expected}; got {audio.shape[1]}"
                                 f" channels in audio of shape {tuple(audio.shape)}")
            x = audio.transpose(1, 2)
        else:
            raise ValueError(f"this GRAM model takes {expected}; got audio of shape"
                             f" {tuple(audio.shape)}")
        if not audio.is_floating_point():
            raise ValueError(f"audio must be float in [-1, 1], got dtype {audio.dtype}")
        n_samples, least = x.shape[1], self.min_samples()
        if n_samples < least:
            raise ValueError(
                f"audio of {n_samples} samples is too short: this GRAM model needs at least"
                f" {least} samples ({1000 * least / self.sample_rate:.1f} ms at"
                f" {self.sample_rate} Hz)")
        x = x.to(device=self.device, dtype=torch.float32)
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("audio contains NaN or inf samples")
        return x

    # ------------------------------------------------------------------ extraction
    def _pass_features(self, x: torch.Tensor, offset: int, start: int, end: int) -> torch.Tensor:
        """Features of the STFT frames centred at ``offset + i * hop``, ``start <= i < end``,
        of ``x (B, N, C)``: ``(B, C', F, end - start)``, identical to those of a whole-signal
        STFT (reflect padding at sample 0 and the end only)."""
        frontend = self.frontend
        hop, n = self.hop_length, x.shape[1]
        context = math.ceil(frontend.n_fft / 2 / hop)  # frames of real signal either side
        a = offset + (start - context) * hop
        if a < 0:  # only when a pass offset is below n_fft / 2: reflect at a, not at 0
            a = offset % hop
        b = min(n, offset + (end - 1 + context) * hop + 1)
        feats, _ = frontend(x[:, a:b])
        first = (offset + start * hop - a) // hop
        return feats[..., first:first + end - start]

    def _encode_pass(self, x: torch.Tensor, p: int, strategy: str) -> torch.Tensor:
        """Pass ``p`` of ``x (B, N, C)``: ``raw`` -> ``(B, columns, rows * D)`` (the columns of
        :meth:`_columns`); ``cls`` -> ``(B, D)``."""
        encoder = self.gram.encoder
        offset = self.offsets[p]
        n_frames = 1 + (x.shape[1] - offset) // self.hop_length
        n_columns = self._columns(x.shape[1], p)
        if strategy == "raw" and n_columns == 0:  # audio too short for this pass
            return x.new_zeros(x.shape[0], 0, self.timestamp_embedding_size)
        crop = encoder.crop_frames
        n_chunks = encoder.num_chunks(n_frames)
        batch = x.shape[0]
        sub = min(batch, self.max_chunks_per_pass)
        per_segment = max(1, self.max_chunks_per_pass // sub)  # chunks per item and segment
        outs = []
        for i in range(0, batch, sub):
            pieces = []
            for c in range(0, n_chunks, per_segment):
                start, end = c * crop, min(n_frames, (c + per_segment) * crop)
                feats = self._pass_features(x[i:i + sub], offset, start, end)
                emb = encoder.extract(feats, strategy=strategy, layer=self.layer)
                if strategy == "cls":  # mean over the segment's chunks -> sum
                    emb = emb * encoder.num_chunks(end - start)
                pieces.append(emb)
            if strategy == "cls":
                outs.append(torch.stack(pieces).sum(0) / n_chunks)
            else:
                outs.append(torch.cat(pieces, dim=1)[:, :n_columns])
        return torch.cat(outs, dim=0)

    @torch.no_grad()
    def timestamp_embeddings(self, audio) -> Tuple[torch.Tensor, torch.Tensor]:
        """See :func:`get_timestamp_embeddings`."""
        out_device = audio.device if isinstance(audio, torch.Tensor) else torch.device("cpu")
        x = self.prepare(audio)
        n_sounds, n_samples = x.shape[:2]
        times = self.timestamps_ms(n_samples).to(torch.float32)
        size = self.timestamp_embedding_size
        if n_sounds == 0:
            return (torch.zeros(0, len(times), size, device=out_device),
                    torch.zeros(0, len(times), device=out_device))
        passes: List[torch.Tensor] = [self._encode_pass(x, p, "raw")
                                      for p in range(self.passes)]
        emb = x.new_zeros(n_sounds, len(times), size)
        for p, frames in enumerate(passes):  # interleave: column j of pass p -> j * P + p
            emb[:, p::self.passes] = frames
        timestamps = times.to(out_device).expand(n_sounds, -1).contiguous()
        return emb.to(out_device), timestamps

    @torch.no_grad()
    def scene_embeddings(self, audio) -> torch.Tensor:
        """See :func:`get_scene_embeddings`."""
        if self.scene_strategy == "mean":
            emb, _ = self.timestamp_embeddings(audio)
            if emb.shape[0] == 0:
                return emb.new_zeros(0, self.scene_embedding_size)
            return emb.mean(dim=1)
        out_device = audio.device if isinstance(audio, torch.Tensor) else torch.device("cpu")
        x = self.prepare(audio)
        if x.shape[0] == 0:
            return torch.zeros(0, self.scene_embedding_size, device=out_device)
        return self._encode_pass(x, 0, "cls").to(out_device)

    def forward(self, audio) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.timestamp_embeddings(audio)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_channels={self.n_channels},"
                f" compat={self.compat!r}, hop_ms={self.hop_ms:g}, layer={self.layer},"
                f" scene_strategy={self.scene_strategy!r},"
                f" timestamp_embedding_size={self.timestamp_embedding_size},"
                f" scene_embedding_size={self.scene_embedding_size}")


# ---------------------------------------------------------------------- HEAR API
def load_model(model_file_path: str = "", layer: Optional[int] = None,
               scene_strategy: str = "mean", passes: Optional[int] = None,
               max_chunks_per_pass: int = 32, device: str = "cpu",
               compat: Optional[str] = None, random_init: bool = False,
               seed: int = 0) -> GRAMHearModel:
    """A packed GRAM model (directory, ESPnet ``.zip`` or training directory, see
    :func:`espnet2_gram.pretrained.packing.load_gram`) as a HEAR model, in eval mode.

    ``compat``: ``"ours"`` or ``"authors"`` (see :class:`GRAMHearModel`); ``None`` takes
    ``hear_conf.compat`` of the model's configuration, else ``"ours"``.  ``"authors"`` needs
    ``hear_conf.authors_log_offset``, which the GRAM-T converter writes. ``random_init``: the
    same architecture with its initial weights drawn with ``seed`` (the "random init" baseline).
    """
    from espnet2_gram.pretrained.packing import load_gram, model_sources

    if not model_file_path:
        raise ValueError("give the path of a packed GRAM model (a directory with config.yaml"
                         " and model.pth, or its .zip)")
    config, _, label, _ = model_sources(Path(model_file_path), None, random_init=True)
    hear_conf = config.get("hear_conf") or {}
    if not isinstance(hear_conf, dict):
        raise ValueError(f"{label}: hear_conf must be a mapping, got {hear_conf!r}")
    option = "compat" if compat is not None else f"{label}: hear_conf.compat"
    mode = hear_conf.get("compat", "ours") if compat is None else compat
    if mode not in COMPAT_MODES:
        raise ValueError(f"{option} must be one of {COMPAT_MODES}, got {mode!r}")
    offset = hear_conf.get("authors_log_offset")
    if mode == "authors" and offset is None:
        raise ValueError(
            f"{option} 'authors' asks for the GRAM authors' HEAR runtime, which only a GRAM-T"
            f" converted by espnet2_gram.bin.convert_gramt has; {label} is not one (it has no"
            " hear_conf.authors_log_offset)")
    if offset is not None and not (isinstance(offset, (int, float)) and offset > 0):
        raise ValueError(f"{label}: hear_conf.authors_log_offset must be a positive number,"
                         f" got {offset!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gram = load_gram(model_file_path, device=device, random_init=random_init)
    return GRAMHearModel(gram, layer=layer, scene_strategy=scene_strategy, passes=passes,
                         max_chunks_per_pass=max_chunks_per_pass, compat=mode,
                         authors_log_offset=offset)


def get_timestamp_embeddings(audio: torch.Tensor,
                             model: GRAMHearModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """``audio (n_sounds, n_samples)`` [or ``(n_sounds, n_channels, n_samples)``] ->
    embeddings ``(n_sounds, n_timestamps, model.timestamp_embedding_size)`` float32 and
    timestamps ``(n_sounds, n_timestamps)`` float32 in milliseconds (frame centres), on the
    audio's device."""
    return model.timestamp_embeddings(audio)


def get_scene_embeddings(audio: torch.Tensor, model: GRAMHearModel) -> torch.Tensor:
    """``audio`` as for :func:`get_timestamp_embeddings` ->
    ``(n_sounds, model.scene_embedding_size)`` float32 on the audio's device."""
    return model.scene_embeddings(audio)


def resample_to_model(audio, sr: int, model: GRAMHearModel) -> torch.Tensor:
    """Resample ``audio (..., n_samples)`` from ``sr`` Hz to ``model.sample_rate``
    (band-limited polyphase); a float32 tensor on the input's device."""
    from espnet2_gram.utils.audio import resample

    device = audio.device if isinstance(audio, torch.Tensor) else torch.device("cpu")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(audio, dtype=np.float32)
    if int(sr) != model.sample_rate:
        x = resample(x, int(sr), model.sample_rate)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
