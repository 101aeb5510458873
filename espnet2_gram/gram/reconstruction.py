"""How well a GRAM reconstructs each feature channel of masked patches.

The training loss sums all channels of a patch, so it cannot say whether a model predicts
FOA's intensity vectors (direction) or only the log-mels (spectra). This measures, per feature
channel, the masked-patch squared error of the model against that of the trivial predictor of
the normalised target: each crop's own channel mean (for one steady source, its direction).
A ratio below 1 means the model predicts more than the channel's mean.
"""

from dataclasses import dataclass
from typing import Iterable, List, Tuple

import torch

from espnet2_gram.gram.patching import patchify


@dataclass
class ChannelReconstruction:
    channel: str
    model_mse: float
    mean_predictor_mse: float
    target_share: float  # the channel's part of the mean predictor's error summed over channels

    @property
    def ratio(self) -> float:
        return self.model_mse / self.mean_predictor_mse


def masked_errors(model, speech: torch.Tensor,
                  lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Summed squared errors per feature channel over the masked values of one batch, of the
    model and of the crop-channel-mean predictor, and the number of values per channel. Crops
    and masks come from torch's random state, as in training."""
    crops, mask, pred = model.masked_prediction(*model.frontend(speech, lengths))
    batch, channels = crops.shape[:2]
    target = patchify(crops, model.encoder.patch_size)
    per_value = lambda t: t.reshape(batch, t.shape[1], channels, -1)[mask]  # noqa: E731
    target_masked = per_value(target)  # (masked patches, C, values)
    means = crops.mean(dim=(2, 3))[:, None, :, None].expand(-1, target.shape[1], -1,
                                                            target_masked.shape[-1])
    model_sse = (per_value(pred.float()) - target_masked).pow(2).sum(dim=(0, 2))
    mean_sse = (means[mask] - target_masked).pow(2).sum(dim=(0, 2))
    return model_sse, mean_sse, target_masked.shape[0] * target_masked.shape[-1]


@torch.no_grad()
def channel_reconstruction(model, batches: Iterable[Tuple[torch.Tensor, torch.Tensor]]
                           ) -> List[ChannelReconstruction]:
    """Per-channel errors of ``model`` (an eval-mode ``ESPnetGRAMModel``) over ``batches`` of
    ``(speech (B, T, C), lengths (B,))``."""
    model_sse = mean_sse = None
    count = 0
    for speech, lengths in batches:
        m, b, n = masked_errors(model, speech, lengths)
        model_sse = m if model_sse is None else model_sse + m
        mean_sse = b if mean_sse is None else mean_sse + b
        count += n
    if model_sse is None:
        raise ValueError("channel_reconstruction: no audio given")
    total = float(mean_sse.sum())
    return [ChannelReconstruction(name, float(m) / count, float(b) / count, float(b) / total)
            for name, m, b in zip(model.frontend.feature_channels, model_sse, mean_sse)]
