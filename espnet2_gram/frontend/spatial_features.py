"""GRAM's input features as ESPnet frontends: log-mel spectrograms per channel, plus the
mel-pooled, energy-normalised acoustic intensity vector for first-order Ambisonics.

Unlike ESPnet's usual frontends, which return ``(B, T, D)``, these return 4-D features
``(B, C, F, T)`` (batch, feature channels, mel bins, frames): the GRAM masked autoencoder
patches them as multichannel images. ``output_size()`` is the number of mel bins ``F``;
``out_channels`` is ``C``.

Paper settings (the defaults): 32 kHz audio, 1024-point Hann window and FFT, 10 ms hop
(320 samples), centred frames with reflect padding, 128 HTK mel bins between 50 Hz and
16 kHz without filterbank normalisation, power spectrogram, natural log with an additive
offset. The same ``log_offset`` is used in training and inference.

FOA input is ACN ordered (W, Y, Z, X) with SN3D normalisation. Its 7 feature channels are
``[log-mel W, Y, Z, X, I_y, I_z, I_x]`` where, per time-frequency bin,
``I_k = 2 Re(conj(W) S_k) / (log_offset + |W|^2 + |Y|^2 + |Z|^2 + |X|^2)`` (for a single
plane wave with SN3D this is the unit vector pointing at the source), pooled by the same mel
filterbank as a weighted sum (no log).
"""

from typing import Dict, Optional, Tuple

import torch
import torchaudio
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from espnet2_gram.formats import FORMATS, get_format, num_channels



def mel_filterbank(n_freqs: int, fmin: float, fmax: float, n_mels: int,
                   fs: int) -> torch.Tensor:
    """Triangular HTK-scale mel filters without area normalisation, (n_freqs, n_mels) float32.

    Built by ``torchaudio.functional.melscale_fbanks`` (float32 arithmetic), so the weights are
    bit-identical to the torchaudio ``MelSpectrogram`` the GRAM authors use. Filter ``m`` rises
    linearly from mel point ``m`` to 1 at point ``m + 1`` and falls back to 0 at point
    ``m + 2``; ``n_mels + 2`` points are equally spaced in mel between ``fmin`` and ``fmax``.
    """
    device = torch.get_default_device()  # e.g. "meta" while a model is built for its shapes
    with torch.device("cpu"):
        fb = torchaudio.functional.melscale_fbanks(n_freqs, float(fmin), float(fmax), n_mels,
                                                   fs, norm=None, mel_scale="htk")
    return fb.to(device=device, dtype=torch.float32)


def num_frames(num_samples, hop_length: int):
    """Frames of a centred STFT: ``1 + num_samples // hop_length`` (int or tensor)."""
    return 1 + num_samples // hop_length


def per_crop_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Z-score each example over its (C, F, T) values jointly (a LayerNorm over the last three
    dims without affine parameters), in float32. Used identically in training and inference;
    every value of the crop counts, padded frames included (GRAM crops have no padding)."""
    if x.dim() < 3:
        raise ValueError(f"per_crop_normalize expects (..., C, F, T), got shape {tuple(x.shape)}")
    x = x.float()
    return torch.nn.functional.layer_norm(x, x.shape[-3:], eps=eps)


class SpatialFrontend(AbsFrontend):
    """Common base: STFT, mel pooling, log, length bookkeeping and channel checks.

    ``forward(input, input_lengths)``: ``input`` (B, T) or (B, T, C) float waveforms as ESPnet's
    collate gives them (channels last), ``input_lengths`` (B,) in samples (None: all full).
    Returns ``feats`` (B, out_channels, n_mels, frames) float32 and ``feats_lengths`` (B,) in
    frames, ``1 + length // hop_length``; frames at or beyond an item's length are 0.

    ``replicate_mono=True`` lets a multichannel frontend accept mono audio by repeating it
    on every channel (what the GRAM authors do for clean, mono input); without it, mono input
    to a binaural or FOA frontend is an error.
    """

    format = ""
    default_log_offset = 1e-5

    def __init__(self, fs: int = 32000, n_fft: int = 1024, hop_length: int = 320,
                 n_mels: int = 128, fmin: float = 50.0, fmax: Optional[float] = 16000.0,
                 log_offset: Optional[float] = None, replicate_mono: bool = False):
        super().__init__()
        fmax = fs / 2.0 if fmax is None else float(fmax)
        if fs <= 0 or n_fft <= 0 or hop_length <= 0 or n_mels <= 0:
            raise ValueError("fs, n_fft, hop_length and n_mels must be positive")
        if not 0.0 <= fmin < fmax <= fs / 2.0:
            raise ValueError(f"need 0 <= fmin < fmax <= fs / 2 = {fs / 2}, got fmin={fmin},"
                             f" fmax={fmax}")
        self.fs = int(fs)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = fmax
        self.log_offset = float(self.default_log_offset if log_offset is None else log_offset)
        if self.log_offset <= 0:
            raise ValueError(f"log_offset must be positive, got {self.log_offset}")
        self.replicate_mono = bool(replicate_mono)
        self.in_channels = num_channels(self.format)
        # Derived from the configuration, so kept out of the state dict.
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer(
            "mel_fb",
            mel_filterbank(self.n_fft // 2 + 1, self.fmin, self.fmax, self.n_mels, self.fs),
            persistent=False,
        )

    @property
    def feature_channels(self) -> Tuple[str, ...]:
        """Names of the output channels, in order."""
        return tuple(f"log-mel {name}" for name in get_format(self.format).channels)

    @property
    def out_channels(self) -> int:
        return len(self.feature_channels)

    def output_size(self) -> int:
        """Mel bins per frame; the features are (B, out_channels, n_mels, T), not (B, T, D)."""
        return self.n_mels

    def extra_repr(self) -> str:
        return (f"fs={self.fs}, n_fft={self.n_fft}, hop_length={self.hop_length},"
                f" n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax},"
                f" log_offset={self.log_offset}, replicate_mono={self.replicate_mono}")

    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) or (B, T, C) -> (B, C_in, T), checking or replicating channels."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__} expects input (batch, samples) or"
                             f" (batch, samples, channels), got shape {tuple(x.shape)}")
        got = x.shape[-1]
        want = self.in_channels
        if got != want:
            if got == 1 and self.replicate_mono:
                x = x.expand(-1, -1, want)
            else:
                hint = (" (pass replicate_mono=True to repeat mono audio on every channel)"
                        if got == 1 else "")
                raise ValueError(f"{type(self).__name__}: {self.format} input must have"
                                 f" {get_format(self.format).layout}, got {got} channel(s) in"
                                 f" input of shape {tuple(x.shape)}{hint}")
        return x.transpose(1, 2)

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) float32 -> complex (B, C, n_fft // 2 + 1, frames)."""
        b, c, t = x.shape
        if t <= self.n_fft // 2:
            raise ValueError(f"{type(self).__name__}: input of {t} samples is too short for"
                             f" n_fft={self.n_fft} (need more than {self.n_fft // 2})")
        spec = torch.stft(x.reshape(b * c, t), n_fft=self.n_fft, hop_length=self.hop_length,
                          win_length=self.n_fft, window=self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True)
        return spec.reshape(b, c, spec.shape[-2], spec.shape[-1])

    def mel(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (..., freqs, frames) with the mel filterbank -> (..., n_mels, frames)."""
        return torch.einsum("...ft,fm->...mt", x, self.mel_fb)

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """Per-channel log-mel power spectrogram of (B, C, freqs, frames) complex STFT."""
        power = spec.real.square() + spec.imag.square()
        return torch.log(self.mel(power) + self.log_offset)

    def forward(self, input: torch.Tensor,
                input_lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self._channels_first(input)
        batch, _, samples = x.shape
        if input_lengths is None:
            input_lengths = torch.full((batch,), samples, dtype=torch.long, device=x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            feats = self.features(self.stft(x.float()))
        lengths = num_frames(input_lengths.to(device=feats.device, dtype=torch.long),
                             self.hop_length)
        lengths = torch.clamp(lengths, max=feats.shape[-1])
        frames = torch.arange(feats.shape[-1], device=feats.device)
        valid = frames[None, :] < lengths[:, None]  # (B, frames)
        feats = feats.masked_fill(~valid[:, None, None, :], 0.0)
        return feats, lengths


class MonoFrontend(SpatialFrontend):
    """Log-mel spectrogram of mono audio: (B, 1, n_mels, T)."""

    format = "mono"


class BinauralFrontend(SpatialFrontend):
    """Log-mel spectrograms of the left and right ear, computed independently: (B, 2, n_mels, T)."""

    format = "binaural"


class FOAFrontend(SpatialFrontend):
    """FOA (ACN W, Y, Z, X; SN3D): 4 log-mels + 3 mel-pooled normalised intensity-vector
    channels (I_y, I_z, I_x): (B, 7, n_mels, T). Default ``log_offset`` 1e-6."""

    format = "foa"
    default_log_offset = 1e-6

    @property
    def feature_channels(self) -> Tuple[str, ...]:
        return super().feature_channels + ("intensity Y", "intensity Z", "intensity X")

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        power = spec.real.square() + spec.imag.square()  # (B, 4, freqs, frames)
        logmel = torch.log(self.mel(power) + self.log_offset)
        w = spec[:, :1]
        directional = spec[:, 1:]  # Y, Z, X in input order
        intensity = 2.0 * (w.real * directional.real + w.imag * directional.imag)
        energy = self.log_offset + power.sum(dim=1, keepdim=True)
        iv = self.mel(intensity / energy)
        return torch.cat([logmel, iv], dim=1)


FEATURE_FRONTENDS = {"logmel": SpatialFrontend, "foa_intensity": FOAFrontend}


def frontend_classes() -> Dict[str, type]:
    """The ESPnet frontend of every format of the registry, by format name: the classes above,
    and for any other format a subclass of its feature kind's frontend (a new format needs no
    frontend code of its own)."""
    named = {cls.format: cls for cls in (MonoFrontend, BinauralFrontend, FOAFrontend)}
    classes = {}
    for name, fmt in FORMATS.items():
        if fmt.features not in FEATURE_FRONTENDS:
            raise ValueError(f"format {name!r}: features {fmt.features!r}; expected one of"
                             f" {sorted(FEATURE_FRONTENDS)}")
        base = FEATURE_FRONTENDS[fmt.features]
        if name in named and issubclass(named[name], base):
            classes[name] = named[name]
        else:
            classes[name] = type(f"{name.title()}Frontend", (base,), {
                "format": name, "__doc__": f"{base.__name__} features of {fmt.layout}."})
    return classes
