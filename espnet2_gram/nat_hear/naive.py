"""HEAR's naive baseline as a HEAR module (``--module espnet2_gram.nat_hear.naive``): the
log-mel spectrum of 4096-sample Hann frames (256 Slaney mel bands of the power spectrum at
44.1 kHz, log(x + 1e-4)) times a fixed random projection to 4096 dimensions
(``torch.rand(256, 4096) / 16`` from seed 0); frames every 50 ms centred on their timestamps,
scene embeddings the mean of frames every 250 ms. These are the settings of the HEAR 2021
naive baseline (``hearbaseline.naive``), written for this environment: its only PyPI release
does not install here (it pins numpy 1.19 and TensorFlow, and calls librosa's mel filterbank
in a form librosa 0.10+ refuses). Audio is mono ``(n_sounds, n_samples)`` at 44.1 kHz.
"""

from typing import Tuple

import librosa
import torch

TIMESTAMP_HOP_MS = 50
SCENE_HOP_MS = 250


class RandomProjectionMel(torch.nn.Module):
    sample_rate = 44100
    n_fft = 4096
    n_mels = 256
    embedding_size = 4096
    scene_embedding_size = embedding_size
    timestamp_embedding_size = embedding_size
    epsilon = 1e-4

    def __init__(self, seed: int = 0):
        super().__init__()
        self.register_buffer("window", torch.hann_window(self.n_fft))
        # librosa's filterbank, as the baseline's (torchaudio's Slaney bank differs by 1e-4)
        mel = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        self.register_buffer("mel_fb", torch.from_numpy(mel.T.copy()))
        generator = torch.Generator().manual_seed(seed)
        self.projection = torch.nn.Parameter(
            torch.rand(self.n_mels, self.embedding_size, generator=generator)
            / self.n_mels ** 0.5)

    def frames(self, audio: torch.Tensor, hop_ms: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """(n, T) -> frames (n, K, n_fft) centred every ``hop_ms``, and their times (n, K) ms."""
        if audio.ndim != 2:
            raise ValueError("the naive baseline takes mono audio (n_sounds, n_samples), got"
                             f" shape {tuple(audio.shape)}")
        hop = int(round(hop_ms / 1000 * self.sample_rate))
        padded = torch.nn.functional.pad(audio, (self.n_fft // 2, self.n_fft - self.n_fft // 2))
        frames = padded.unfold(-1, self.n_fft, hop)
        times = torch.arange(frames.shape[1], dtype=torch.float32) * hop / self.sample_rate
        return frames, (times * 1000).expand(audio.shape[0], -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(frames * self.window).abs() ** 2
        return torch.log(power @ self.mel_fb + self.epsilon) @ self.projection


def load_model(model_file_path: str = "") -> RandomProjectionMel:
    """The baseline (its projection from seed 0; a path is not used: there are no weights)."""
    return RandomProjectionMel().eval()


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: RandomProjectionMel,
                             hop_ms: float = TIMESTAMP_HOP_MS):
    frames, times = model.frames(audio.float(), hop_ms)
    return model(frames), times


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: RandomProjectionMel) -> torch.Tensor:
    embeddings, _ = get_timestamp_embeddings(audio, model, SCENE_HOP_MS)
    return embeddings.mean(dim=1)
