"""Direction-of-arrival regression on top of an encoder (GRAM on audio, or cached embeddings).

The frames are pooled (``pooling``: mean, mean_std or attention, see
``espnet2_gram.downstream.heads.FramePooling``), passed through the probe MLP and a linear
layer to a 3-D vector: ``tanh`` and MSE against the unit direction (the paper's
cartesian regression), or, with ``loss: cosine``, normalised and trained on 1 - cos.
"""

from typing import Dict, Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_gram.downstream.heads import MLP, FramePooling

LOSSES = ("mse", "cosine")


def direction_vectors(doa: torch.Tensor) -> torch.Tensor:
    """(B, >=2) azimuth, elevation in degrees (a distance column is ignored) -> (B, 3)."""
    az, el = torch.deg2rad(doa[:, 0]), torch.deg2rad(doa[:, 1])
    return torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az),
                        torch.sin(el)], dim=-1)


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Great-circle angle (degrees) between rows of ``a`` and ``b``."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


class ESPnetDOAModel(AbsESPnetModel):
    def __init__(self, encoder: AbsEncoder, hidden_sizes: Sequence[int] = (1024,),
                 dropout: float = 0.1, batch_norm: bool = True, loss: str = "mse",
                 pooling: str = "mean"):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model_conf loss={loss!r}: expected one of {LOSSES}")
        self.encoder = encoder
        self.pool = FramePooling(encoder.output_size(), pooling)
        self.mlp = MLP(self.pool.output_size(), hidden_sizes, dropout, batch_norm)
        self.out = torch.nn.Linear(self.mlp.output_size(), 3)
        self.loss = loss

    def predict(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """(B, 3) direction estimates (unit length for ``cosine``; tanh range for ``mse``)."""
        h, h_lengths, _ = self.encoder(speech, speech_lengths)
        y = self.out(self.mlp(self.pool(h, h_lengths)))
        if self.loss == "mse":
            return torch.tanh(y)
        return torch.nn.functional.normalize(y, dim=-1)

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, doa: torch.Tensor,
                doa_lengths: torch.Tensor = None, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        pred = self.predict(speech, speech_lengths)
        target = direction_vectors(doa.float())
        if self.loss == "mse":
            loss = torch.nn.functional.mse_loss(pred, target)
        else:
            loss = (1.0 - (pred * target).sum(dim=-1)).mean()
        error = angle_between(pred.detach(), target).mean()
        stats = dict(loss=loss.detach(), angle_error=error)
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
