"""A HEAR-API module for the tests (any module with the API can be evaluated): the mean and
standard deviation over time of a mono 8-kHz log-mel spectrogram."""

import torch
import torchaudio


class LogMel(torch.nn.Module):
    sample_rate = 8000
    scene_embedding_size = 64

    def __init__(self):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(8000, n_fft=256, hop_length=80,
                                                        n_mels=32)


def load_model(model_file_path: str = "") -> LogMel:
    return LogMel()


def get_scene_embeddings(audio: torch.Tensor, model: LogMel) -> torch.Tensor:
    if audio.ndim != 2:
        raise ValueError(f"mono audio (n_sounds, n_samples) expected, got {tuple(audio.shape)}")
    logmel = torch.log(model.mel(audio.float()) + 1e-6)
    return torch.cat([logmel.mean(dim=-1), logmel.std(dim=-1)], dim=-1)
