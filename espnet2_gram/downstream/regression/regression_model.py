"""Regression of a clip-level target (Nat-HEAR's RT60 in seconds, or any real vector) on top of
an encoder (GRAM on audio, or cached embeddings).

The frames are pooled (``pooling``, see ``espnet2_gram.downstream.heads.FramePooling``) and go
through the probe MLP and a linear layer to ``output_size`` values. The loss is the MSE of
standardised targets, ``(target - target_mean) / target_std`` (the runner sets both from the
training labels, so that a target of a few tenths of a second trains like any other);
``predict`` returns values in the target's own unit.
"""

from typing import Dict, Sequence, Tuple, Union

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_gram.downstream.heads import MLP, FramePooling

Floats = Union[float, Sequence[float]]


def per_output(name: str, value: Floats, size: int) -> torch.Tensor:
    """``value`` as a (size,) tensor: one number for every output or one per output."""
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(size).clone()
    if t.numel() != size or not torch.isfinite(t).all():
        raise ValueError(f"model_conf {name}={value!r}: expected one finite number or"
                         f" {size} (output_size)")
    return t


class ESPnetRegressionModel(AbsESPnetModel):
    def __init__(self, encoder: AbsEncoder, output_size: int = 1, target_mean: Floats = 0.0,
                 target_std: Floats = 1.0, hidden_sizes: Sequence[int] = (1024,),
                 dropout: float = 0.1, batch_norm: bool = True, pooling: str = "mean"):
        super().__init__()
        if int(output_size) < 1:
            raise ValueError(f"model_conf output_size={output_size!r}: expected >= 1")
        std = per_output("target_std", target_std, int(output_size))
        if (std <= 0).any():
            raise ValueError(f"model_conf target_std={target_std!r}: expected > 0")
        self.encoder = encoder
        self.pool = FramePooling(encoder.output_size(), pooling)
        self.mlp = MLP(self.pool.output_size(), hidden_sizes, dropout, batch_norm)
        self.out = torch.nn.Linear(self.mlp.output_size(), int(output_size))
        # in config.yaml (model_conf), so not in the checkpoint
        self.register_buffer("target_mean", per_output("target_mean", target_mean,
                                                       int(output_size)), persistent=False)
        self.register_buffer("target_std", std, persistent=False)

    def _standardised(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        h, h_lengths, _ = self.encoder(speech, speech_lengths)
        return self.out(self.mlp(self.pool(h, h_lengths)))

    def predict(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """(B, output_size) estimates in the target's unit."""
        return self._standardised(speech, speech_lengths) * self.target_std + self.target_mean

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, target: torch.Tensor,
                target_lengths: torch.Tensor = None, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        z = self._standardised(speech, speech_lengths)
        target = target.float()
        if target.shape[-1] != z.shape[-1]:
            raise ValueError(f"targets have {target.shape[-1]} values, the model"
                             f" {z.shape[-1]} outputs (model_conf output_size)")
        loss = torch.nn.functional.mse_loss(z, (target - self.target_mean) / self.target_std)
        mae = ((z.detach() * self.target_std + self.target_mean) - target).abs().mean()
        stats = dict(loss=loss.detach(), mae=mae)
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
