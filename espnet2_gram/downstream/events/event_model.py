"""Frame-level event detection on top of an encoder (cached timestamp embeddings, or GRAM on
audio): HEAR's event probe, the MLP applied to every frame and a linear layer to one logit per
label, binary cross-entropy over the valid frames against (T, C) frame targets."""

from typing import Dict, Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_gram.downstream.heads import MLP, valid_frames


class ESPnetEventModel(AbsESPnetModel):
    def __init__(self, encoder: AbsEncoder, num_classes: int = 1,
                 hidden_sizes: Sequence[int] = (1024,), dropout: float = 0.1,
                 batch_norm: bool = True):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"model_conf num_classes={num_classes!r}: expected >= 1")
        self.encoder = encoder
        self.mlp = MLP(encoder.output_size(), hidden_sizes, dropout, batch_norm)
        self.out = torch.nn.Linear(self.mlp.output_size(), int(num_classes))

    def logits(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        h, h_lengths, _ = self.encoder(speech, speech_lengths)
        return self.out(self.mlp(h)), h_lengths

    def predict(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        """((B, T, C) frame probabilities, (B,) frame counts)."""
        logits, lengths = self.logits(speech, speech_lengths)
        return torch.sigmoid(logits), lengths

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, target: torch.Tensor,
                target_lengths: torch.Tensor = None, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        logits, lengths = self.logits(speech, speech_lengths)
        target = target.float()
        if target.shape[-1] != logits.shape[-1] or target.shape[1] < logits.shape[1]:
            raise ValueError(f"frame targets {tuple(target.shape)} do not fit the model's"
                             f" {tuple(logits.shape)} outputs (model_conf num_classes)")
        mask = valid_frames(lengths, logits.shape[1])
        target = target[:, :logits.shape[1]]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], target[mask])
        accuracy = ((logits[mask] > 0) == (target[mask] > 0.5)).float().mean()
        stats = dict(loss=loss.detach(), frame_acc=accuracy.detach())
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
