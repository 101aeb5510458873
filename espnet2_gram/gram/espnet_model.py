"""The GRAM pretraining model for ESPnet's trainer: spatial features, several random crops per
clip each with its own mask, ViT encoder on the visible patches, decoder, masked-patch MSE."""

from typing import Dict, Optional, Sequence, Tuple

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_gram.frontend.spatial_features import per_crop_normalize
from espnet2_gram.scene.device_mixing import mix_if_needed
from espnet2_gram.gram.loss import masked_patch_mse
from espnet2_gram.gram.patching import patchify


class NonFiniteLossError(FloatingPointError):
    """Raised instead of stepping the optimiser on a NaN/inf loss."""


class FiniteLossCheck:
    """Stops training on a NaN/inf loss without making the step wait for the device.

    ``defer`` (default: on a GPU) reads each step's check at the next call: on a GPU the loss
    is copied to pinned host memory asynchronously behind an event that is long done by then,
    so the step never waits for the device, and a non-finite loss stops training one step
    later (ESPnet's trainer skips the update of that step itself: its gradient norm is not
    finite).  Otherwise the loss is checked at once.
    """

    def __init__(self, defer: Optional[bool] = None):
        self.defer = defer
        self._pending = None

    @staticmethod
    def _raise(value: float, clips: int, when: str) -> None:
        raise NonFiniteLossError(
            f"the GRAM loss is {value} (batch of {clips} clips{when}): training stopped;"
            " checkpoints written so far are intact. Lower the learning rate, check the data"
            " (stage 2 summaries) or resume with --resume true"
        )

    def __call__(self, loss: torch.Tensor, clips: int) -> None:
        if self._pending is not None:
            event, value, previous_clips = self._pending
            self._pending = None
            if event is not None:
                event.synchronize()
            if not bool(torch.isfinite(value)):
                self._raise(float(value), previous_clips, ", the previous step")
        on_gpu = loss.device.type == "cuda"
        if not (on_gpu if self.defer is None else self.defer):
            if not torch.isfinite(loss):
                self._raise(loss.item(), clips, "")
            return
        value = torch.empty((), dtype=loss.dtype, pin_memory=on_gpu)
        value.copy_(loss.detach(), non_blocking=on_gpu)
        event = None
        if on_gpu:
            event = torch.cuda.Event()
            event.record()
        self._pending = (event, value, clips)


class ESPnetGRAMModel(AbsESPnetModel):
    """Masked autoencoder over multi-channel spectrogram crops.

    ``crops_per_clip`` crops of ``encoder.crop_frames`` frames are drawn uniformly inside each
    clip's valid frames ("in-batch samples" of the paper); a clip shorter than a crop is
    zero-padded at the end (zeros of the log-spectrogram, then per-crop normalisation).

    ``channel_loss_weights`` (one value per feature channel; default: the paper's unweighted
    loss) weight each channel's reconstruction error, e.g. to give FOA's intensity-vector
    channels, which keep little of the crop's variance after the joint normalisation, a share
    of the loss comparable to the log-mels'.
    """

    def __init__(self, frontend, encoder, decoder, masking, crops_per_clip: int = 16,
                 channel_loss_weights: Optional[Sequence[float]] = None):
        super().__init__()
        if crops_per_clip < 1:
            raise ValueError(f"model_conf crops_per_clip must be >= 1, got {crops_per_clip}")
        weights = None
        if channel_loss_weights is not None:
            weights = torch.tensor([float(w) for w in channel_loss_weights])
            if (weights.numel() != frontend.out_channels or not torch.isfinite(weights).all()
                    or (weights < 0).any() or weights.sum() <= 0):
                raise ValueError(
                    f"model_conf channel_loss_weights {list(channel_loss_weights)}: expected"
                    f" {frontend.out_channels} finite, non-negative values (one per channel of"
                    f" the {type(frontend).__name__}) with a positive sum")
        # Not persistent: checkpoints stay loadable with or without the option.
        self.register_buffer("channel_loss_weights", weights, persistent=False)
        self.frontend = frontend
        self.encoder = encoder
        self.decoder = decoder
        self.masking = masking
        self.crops_per_clip = crops_per_clip
        self.check_loss = FiniteLossCheck()

    def compile_parts(self, **compile_kwargs) -> None:
        """``torch.compile`` the encoder and the decoder in place (parameter names and
        checkpoints unchanged); ``compile_kwargs`` go to ``torch.compile`` (``mode``, ...)."""
        if not hasattr(torch, "compile"):
            raise RuntimeError(f"torch {torch.__version__} has no torch.compile; set"
                               " --compile_model false")
        self.encoder.compile(**compile_kwargs)
        self.decoder.compile(**compile_kwargs)

    def random_crops(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B * K, C, F, crop) with K random crops per clip."""
        crop = self.encoder.crop_frames
        batch, _, _, frames = feats.shape
        if frames < crop:
            feats = torch.nn.functional.pad(feats, (0, crop - frames))
        max_start = (lengths - crop).clamp(min=0)
        starts = (torch.rand(batch, self.crops_per_clip, device=feats.device)
                  * (max_start + 1).unsqueeze(1)).long()
        index = starts.unsqueeze(-1) + torch.arange(crop, device=feats.device)  # (B, K, crop)
        clips = feats.unsqueeze(1).expand(-1, self.crops_per_clip, -1, -1, -1)
        gather = index[:, :, None, None, :].expand(-1, -1, feats.shape[1], feats.shape[2], -1)
        crops = torch.gather(clips, 4, gather)
        return crops.reshape(batch * self.crops_per_clip, *crops.shape[2:])

    def masked_prediction(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple:
        """``(crops, mask, pred)``: random crops of ``feats`` (B, C, F, T), normalised; their
        masks (B * K, patches), True = masked; the decoder's prediction of every patch."""
        crops = per_crop_normalize(self.random_crops(feats, lengths))
        grid = self.encoder.grid
        mask = self.masking(crops.shape[0], grid, device=crops.device)
        # The strategies mask exactly this many patches per crop; passing the count keeps the
        # step free of host-device synchronisation.
        visible = grid[0] * grid[1] - self.masking.num_masked(grid)
        return crops, mask, self.decoder(self.encoder(crops, mask, visible), mask, visible)

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                **kwargs) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        feats, lengths = self.frontend(mix_if_needed(speech, kwargs), speech_lengths)
        crops, mask, pred = self.masked_prediction(feats, lengths)
        target = patchify(crops, self.encoder.patch_size)
        loss = masked_patch_mse(pred.float(), target.float(), mask, crops.shape[1],
                                self.channel_loss_weights)
        self.check_loss(loss, speech.shape[0])
        stats = {"loss": loss.detach()}
        loss, stats, weight = force_gatherable((loss, stats, speech.shape[0]), loss.device)
        return loss, stats, weight

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        """Features as (B, T, C * F) for ESPnet's --collect_stats."""
        feats, lengths = self.frontend(mix_if_needed(speech, kwargs), speech_lengths)
        batch, channels, bins, frames = feats.shape
        feats = feats.permute(0, 3, 1, 2).reshape(batch, frames, channels * bins)
        return {"feats": feats, "feats_lengths": lengths}

    @torch.no_grad()
    def extract(self, speech: torch.Tensor, speech_lengths: torch.Tensor = None,
                strategy: str = "mean", layer: int = None) -> torch.Tensor:
        """Embeddings of audio of any length: (B, T) or (B, T, C) at the frontend's rate, with
        C the frontend's channels or 1 (mono, repeated on every channel as ``frontend: gram``
        does).

        ``strategy`` 'mean' / 'cls' give (B, D); 'raw' gives (B, frames, rows * D), one frame
        per patch column (80 ms at the paper settings). Items of a batch share the length T.
        A clip shorter than one crop is encoded as its real patch columns only (see
        ``GRAMEncoder.extract``), as ``frontend: gram`` does.
        """
        want = self.frontend.in_channels
        if speech.dim() == 2:
            speech = speech.unsqueeze(-1)
        if speech.dim() != 3 or speech.shape[-1] not in (1, want):
            raise ValueError(
                f"extract: expected audio (batch, samples) or (batch, samples, channels) with"
                f" {want} channel(s) ({self.frontend.format}) or 1 (mono, repeated), got shape"
                f" {tuple(speech.shape)}")
        feats, frames = self.frontend(speech.expand(-1, -1, want), speech_lengths)
        return self.encoder.extract(feats, strategy=strategy, layer=layer, lengths=frames)
