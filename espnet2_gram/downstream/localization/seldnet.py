"""``encoder: seldnet``: the DCASE 2023 SELD baseline network (SELDnet), trained from scratch on
audio, as an ESPnet encoder for ``DOATask`` and ``SELDTask``.

Input: audio (B, samples, channels) as ESPnet's ``sound`` loader gives it, ``--input_size`` =
channels: 4 (FOA, ACN W, Y, Z, X, SN3D) or 2 (binaural, left, right).

Features (20-ms hop by default, the baseline's): FOA = 4 log-mels + 3 mel-pooled intensity-vector
channels (``FOAFrontend``, the DCASE FOA features); binaural = 2 log-mels + an interaural cue
per mel band (``binaural_features``): ``ipd`` (cos and sin of the interaural phase difference,
2 channels), ``ild`` (level difference in dB, 1 channel) or ``none``. Each item's features are
those of its own unpadded audio.

Network, as the baseline: a learned BatchNorm over the (channel, mel) features (the baseline's
per-feature standardisation, learned), conv blocks (Conv2d 3x3, BatchNorm, ReLU, max-pooling
over (time, frequency), dropout), a bidirectional GRU whose outputs are tanh'ed and the two
directions multiplied elementwise (``gru_hidden`` values), then ``attention_layers``
self-attention layers (residual + LayerNorm). Output frames are ``frame_hop_seconds`` = hop x
prod(``pool_time``) apart (0.1 s by default), ``output_size()`` = ``gru_hidden``.

Padded batches: BatchNorm statistics are taken over valid frames only, frames past an item's
length are zeroed before every convolution and pooling, the GRU runs on packed sequences and
attention masks padded keys, so a padded item's valid outputs equal its unpadded ones. Pooling
rounds up (``ceil_mode``): ``ceil(frames / prod(pool_time))`` output frames.
"""

import math
from typing import Optional, Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder

from espnet2_gram.formats import FORMATS
from espnet2_gram.frontend.spatial_features import BinauralFrontend, FOAFrontend, num_frames

BINAURAL_CUES = {"none": 0, "ild": 1, "ipd": 2}  # cue -> feature channels
FEATURE_HOP_SECONDS = 0.02  # DCASE 2023 baseline


class BinauralCueFrontend(BinauralFrontend):
    """Left and right log-mels plus an interaural cue per mel band: (B, 2 + cue channels,
    n_mels, T).

    ``ild``: 10 log10 of the left / right ratio of mel-pooled powers (dB, > 0 when the left ear
    is louder). ``ipd``: cos and sin of arg(L conj(R)) per frequency bin, pooled by the mel
    filterbank as a weighted sum like the FOA intensity vector (sin > 0 at low frequencies when
    the left ear leads). ``none``: the log-mels only.
    """

    def __init__(self, cue: str = "ipd", **kwargs):
        if cue not in BINAURAL_CUES:
            raise ValueError(f"binaural_features={cue!r}: expected one of {tuple(BINAURAL_CUES)}")
        super().__init__(**kwargs)
        self.cue = cue

    @property
    def out_channels(self) -> int:
        return 2 + BINAURAL_CUES[self.cue]

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        logmel = super().features(spec)
        if self.cue == "ild":
            return torch.cat([logmel, (10.0 / math.log(10.0)) * (logmel[:, :1] - logmel[:, 1:])],
                             dim=1)
        if self.cue == "ipd":
            phasor = torch.sgn(spec[:, :1] * spec[:, 1:].conj())
            return torch.cat([logmel, self.mel(phasor.real), self.mel(phasor.imag)], dim=1)
        return logmel


def masked_batch_norm(norm: torch.nn.BatchNorm1d, x: torch.Tensor,
                      valid: Optional[torch.Tensor]) -> torch.Tensor:
    """``norm`` over axis 1 of ``x`` (B, C, T, ...) with statistics from the valid frames
    (``valid`` (B, T), None: all) only; invalid frames come back as 0."""
    if valid is None:
        return norm(x.reshape(x.shape[0], x.shape[1], -1)).reshape(x.shape)
    frames = x.movedim(2, 1)  # (B, T, C, ...)
    out = torch.zeros_like(frames)
    out[valid] = norm(frames[valid]).to(out.dtype)
    return out.movedim(1, 2)


class ConvBlock(torch.nn.Module):
    """Conv2d 3x3, BatchNorm, ReLU, MaxPool (time, freq) rounding up, Dropout on (B, C, T, F)."""

    def __init__(self, in_channels: int, out_channels: int, pool_time: int, pool_freq: int,
                 dropout: float):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = torch.nn.BatchNorm1d(out_channels)
        self.pool = torch.nn.MaxPool2d((pool_time, pool_freq), ceil_mode=True)
        self.dropout = torch.nn.Dropout(dropout)
        self.pool_time = int(pool_time)

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
        # Padded frames are 0 here and after the ReLU, so neither the convolution's zero padding
        # nor a pooling window that reaches past an item's end sees anything but zeros there.
        x = torch.relu(masked_batch_norm(self.norm, self.conv(x), valid))
        return self.dropout(self.pool(x))


class SelfAttentionLayer(torch.nn.Module):
    """Multi-head self-attention, residual, LayerNorm; padded keys masked."""

    def __init__(self, size: int, heads: int, dropout: float):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(size, heads, dropout=dropout,
                                                     batch_first=True)
        self.norm = torch.nn.LayerNorm(size)

    def forward(self, x: torch.Tensor, padding: Optional[torch.Tensor]) -> torch.Tensor:
        y, _ = self.attention(x, x, x, key_padding_mask=padding, need_weights=False)
        return self.norm(x + y)


class SELDnetEncoder(AbsEncoder):
    """SELDnet on FOA or binaural audio: (B, samples, channels) -> (B, frames, ``gru_hidden``).

    ``hop_length`` defaults to 20 ms, ``n_fft`` to the power of two >= 2 x hop (1024 at 24 kHz,
    as the baseline); mel bands span ``fmin`` to ``fmax`` (default fs / 2).
    """

    def __init__(self, input_size: int, fs: int = 24000, n_fft: Optional[int] = None,
                 hop_length: Optional[int] = None, n_mels: int = 64, fmin: float = 50.0,
                 fmax: Optional[float] = None, binaural_features: str = "ipd",
                 conv_channels: int = 64, pool_freq: Sequence[int] = (4, 4, 2),
                 pool_time: Sequence[int] = (5, 1, 1), gru_hidden: int = 128,
                 gru_layers: int = 2, attention_layers: int = 2, attention_heads: int = 8,
                 dropout: float = 0.05):
        super().__init__()
        hop_length = round(FEATURE_HOP_SECONDS * fs) if hop_length is None else int(hop_length)
        n_fft = 1 << (2 * hop_length - 1).bit_length() if n_fft is None else int(n_fft)
        spectral = dict(fs=fs, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin,
                        fmax=fmax)
        if input_size == 4:
            self.frontend = FOAFrontend(**spectral)
        elif input_size == 2:
            self.frontend = BinauralCueFrontend(binaural_features, **spectral)
        else:
            foa, binaural = FORMATS["foa"], FORMATS["binaural"]
            raise ValueError(f"--input_size {input_size}: encoder seldnet takes FOA audio,"
                             f" {foa.layout}, or binaural audio, {binaural.layout}")
        if len(pool_time) != len(pool_freq) or not pool_time:
            raise ValueError(f"encoder_conf pool_time={list(pool_time)} and pool_freq="
                             f"{list(pool_freq)} need one entry per conv block, as many of each")
        self.frame_hop_seconds = hop_length * math.prod(pool_time) / fs
        channels = self.frontend.out_channels
        self.input_norm = torch.nn.BatchNorm1d(channels * n_mels)
        blocks, bands = [], n_mels
        for pt, pf in zip(pool_time, pool_freq):
            blocks.append(ConvBlock(channels, conv_channels, int(pt), int(pf), dropout))
            channels, bands = conv_channels, math.ceil(bands / pf)
        self.convs = torch.nn.ModuleList(blocks)
        self.gru = torch.nn.GRU(conv_channels * bands, gru_hidden, num_layers=gru_layers,
                                batch_first=True, bidirectional=True,
                                dropout=dropout if gru_layers > 1 else 0.0)
        self.attention = torch.nn.ModuleList(
            SelfAttentionLayer(gru_hidden, attention_heads, dropout)
            for _ in range(attention_layers))
        self.size = int(gru_hidden)

    def output_size(self) -> int:
        return self.size

    def features(self, xs_pad: torch.Tensor,
                 ilens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, samples, channels) -> features (B, C, n_mels, frames) float32 and frame lengths;
        each item's features are those of its unpadded audio, 0 past its length."""
        ilens = ilens.to(device=xs_pad.device, dtype=torch.long)
        samples = xs_pad.shape[1]
        if bool((ilens == samples).all()):
            return self.frontend(xs_pad, ilens)
        hop = self.frontend.hop_length
        feats = torch.zeros(xs_pad.shape[0], self.frontend.out_channels, self.frontend.n_mels,
                            num_frames(samples, hop), device=xs_pad.device)
        for length in ilens.unique().tolist():
            items = (ilens == length).nonzero()[:, 0]
            part, _ = self.frontend(xs_pad[items, :length])
            feats[items, ..., :part.shape[-1]] = part
        return feats, num_frames(ilens, hop)

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        feats, lengths = self.features(xs_pad, ilens)
        batch, channels, bands, frames = feats.shape
        valid = torch.arange(frames, device=feats.device)[None, :] < lengths[:, None]
        padded = not bool(valid.all())
        x = masked_batch_norm(self.input_norm, feats.reshape(batch, channels * bands, frames),
                              valid if padded else None)
        x = x.reshape(batch, channels, bands, frames).transpose(2, 3)  # (B, C, T, F)
        for block in self.convs:
            x = block(x, valid if padded else None)
            lengths = torch.div(lengths + block.pool_time - 1, block.pool_time,
                                rounding_mode="floor")
            valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
        x = x.transpose(1, 2).flatten(2)  # (B, T', C x F')
        if padded:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                             enforce_sorted=False)
            x, _ = torch.nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                          total_length=x.shape[1])
        else:
            x, _ = self.gru(x)
        x = torch.tanh(x)
        x = x[..., :self.size] * x[..., self.size:]
        for layer in self.attention:
            x = layer(x, ~valid if padded else None)
        if padded:
            x = x * valid[..., None].to(x.dtype)
        return x, lengths, None
