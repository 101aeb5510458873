"""Frame-level sound event localisation and detection (ACCDOA) on top of an encoder.

Encoder frames (80 ms for GRAM) are passed through the probe MLP frame by frame, averaged onto
the 100-ms label frames (the frames covering the labelled span, then adaptive average pooling,
as the authors' STARSS23 fine-tuning does) and mapped to ``tanh`` activity-coupled direction
vectors: ``accdoa`` (one per class, MSE; Shimada et al. 2021) or ``multi_accdoa`` (three tracks
per class, ADPIT loss; Shimada et al. 2022).

Targets are ``tracks`` (B, label frames, 3, classes, 4) [active, x, y, z] arrays (see
``accdoa.events_to_tracks``).
"""

import math
from typing import Dict, Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_gram.downstream.heads import MLP
from espnet2_gram.downstream.localization.accdoa import NUM_TRACKS, adpit_loss

OUTPUTS = ("accdoa", "multi_accdoa")


class ESPnetSELDModel(AbsESPnetModel):
    def __init__(self, encoder: AbsEncoder, num_classes: int, output: str = "accdoa",
                 hidden_sizes: Sequence[int] = (1024, 128), dropout: float = 0.1,
                 batch_norm: bool = True, frame_hop_seconds: float = 0.08,
                 label_hop_seconds: float = 0.1):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"model_conf output={output!r}: expected one of {OUTPUTS}")
        if num_classes < 1:
            raise ValueError(f"model_conf num_classes={num_classes}: must be >= 1")
        self.encoder = encoder
        self.num_classes = int(num_classes)
        self.output = output
        self.tracks = NUM_TRACKS if output == "multi_accdoa" else 1
        self.mlp = MLP(encoder.output_size(), hidden_sizes, dropout, batch_norm)
        self.out = torch.nn.Linear(self.mlp.output_size(), self.tracks * self.num_classes * 3)
        self.frame_hop = float(frame_hop_seconds)
        self.label_hop = float(label_hop_seconds)

    def predict(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                num_label_frames: int) -> torch.Tensor:
        """(B, label frames, tracks, classes, 3) ACCDOA vectors (tracks = 1 or 3)."""
        h, _, _ = self.encoder(speech, speech_lengths)
        covering = min(h.shape[1], math.ceil(num_label_frames * self.label_hop / self.frame_hop
                                             - 1e-6))
        h = self.mlp(h[:, :covering])
        h = torch.nn.functional.adaptive_avg_pool1d(h.transpose(1, 2), num_label_frames)
        y = torch.tanh(self.out(h.transpose(1, 2)))
        return y.reshape(y.shape[0], num_label_frames, self.tracks, self.num_classes, 3)

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, tracks: torch.Tensor,
                tracks_lengths: torch.Tensor = None, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        if tracks.shape[-2:] != (self.num_classes, 4):
            raise ValueError(f"targets have shape {tuple(tracks.shape)}; expected (B, T, tracks,"
                             f" {self.num_classes}, 4) for num_classes={self.num_classes}")
        pred = self.predict(speech, speech_lengths, tracks.shape[1])
        tracks = tracks.float()
        if self.output == "multi_accdoa":
            loss = adpit_loss(pred, tracks)
        else:
            target = tracks[:, :, 0, :, :1] * tracks[:, :, 0, :, 1:]  # first track
            loss = torch.nn.functional.mse_loss(pred[:, :, 0], target)
        return force_gatherable((loss, dict(loss=loss.detach()), speech.shape[0]), loss.device)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
