"""A packed GRAM model inside ESPnet's own tasks: ``frontend: gram`` (ASR and the other tasks
sharing its frontends) and ``encoder: gram`` (classification, with ``frontend: none`` and
``input_size: <channels>``).

Both take raw audio (B, T) or (B, T, C) at the model's rate (mono is replicated to every
channel of a binaural or FOA model; another channel count is an error; a different sample
rate is refused when ``fs`` is given) and give one frame per patch
column (80 ms at the paper settings) of ``rows * dim`` values: the chosen layer, or a learned
softmax-weighted sum of all layers. The pretrained weights are loaded in ``__init__`` and again
by ``reload_pretrained_parameters`` (called by ESPnet's ``initialize`` after it re-initialises
everything), with a strict key check. ``freeze_steps``: -1 keeps the model frozen, 0 trains it,
N > 0 trains it after N training steps. ``random_init: true`` builds the same architecture
with untrained weights (the random-init baseline; nothing is reloaded).
"""

import copy
import logging
from typing import Optional, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from .packing import check_state_dict, load_gram

logger = logging.getLogger(__name__)


class PretrainedGRAM(torch.nn.Module):
    """The spatial frontend and encoder of a packed GRAM model, as a frame-level extractor."""

    def __init__(self, model_path: str, fs: Optional[int] = None, layer: Optional[int] = None,
                 weighted_sum: bool = False, freeze_steps: int = -1, random_init: bool = False):
        super().__init__()
        gram = load_gram(model_path, random_init=random_init)
        if fs is not None and int(fs) != gram.frontend.fs:
            raise ValueError(
                f"fs={fs} but the GRAM model {model_path} expects {gram.frontend.fs} Hz audio;"
                " resample the data (stage 2 --fs) or set fs to the model's rate"
            )
        self.model_path = str(model_path)
        self.features = gram.frontend
        self.features.replicate_mono = True  # mono input reaches every channel, as in HEAR
        self.encoder = gram.encoder
        depth = self.encoder.depth
        if layer is not None and not -depth - 1 <= int(layer) <= depth:
            raise ValueError(f"layer={layer}: the model has layers 0..{depth}")
        self.layer = layer
        self.layer_weights = torch.nn.Parameter(torch.zeros(depth + 1)) if weighted_sum else None
        self.freeze_steps = int(freeze_steps)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long), persistent=False)
        self.pretrained_params = None if random_init else copy.deepcopy(self._gram_state())

    def _gram_state(self) -> dict:
        return {**{f"features.{k}": v for k, v in self.features.state_dict().items()},
                **{f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}}

    def reload_pretrained_parameters(self) -> None:
        if self.pretrained_params is None:
            return
        state = {k: v.clone() for k, v in self.pretrained_params.items()}
        check_state_dict(torch.nn.ModuleDict({"features": self.features,
                                              "encoder": self.encoder}), state, self.model_path)
        self.features.load_state_dict({k[9:]: v for k, v in state.items()
                                       if k.startswith("features.")})
        self.encoder.load_state_dict({k[8:]: v for k, v in state.items()
                                      if k.startswith("encoder.")})
        logger.info("GRAM weights reloaded from %s", self.model_path)

    def output_size(self) -> int:
        return self.encoder.grid[0] * self.encoder.dim

    def frozen(self) -> bool:
        return self.freeze_steps < 0 or int(self.steps) < self.freeze_steps

    def drop_stub_chunk(self, feats: torch.Tensor) -> torch.Tensor:
        """Drop a trailing remainder of fewer spectrogram frames than one patch column after
        whole crops: a 2-s clip has 201 centred-STFT frames for 200-frame crops, and its last
        frame alone would cost a second, almost empty chunk (and a 26th, padding-made frame)."""
        crop, patch_t = self.encoder.crop_frames, self.encoder.patch_size[1]
        rest = feats.shape[-1] % crop
        if feats.shape[-1] > crop and 0 < rest < patch_t:
            return feats[..., :feats.shape[-1] - rest]
        return feats

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor,
                                                                           torch.Tensor]:
        if audio.shape[0] == 0:
            raise ValueError("GRAM got an empty batch")
        if self.training:
            self.steps += 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen()):
            feats, frames = self.features(audio, lengths)
            feats = self.drop_stub_chunk(feats)
            frames = frames.clamp(max=feats.shape[-1])
            if self.layer_weights is None:
                out = self.encoder.extract(feats, strategy="raw", layer=self.layer)
            else:
                states = self.encoder.extract(feats, strategy="raw",
                                              layer=list(range(self.encoder.depth + 1)))
        if self.layer_weights is not None:
            weights = torch.softmax(self.layer_weights, dim=0)
            out = sum(w * s for w, s in zip(weights, states))
        patch_t = self.encoder.patch_size[1]
        out_lengths = torch.div(frames + patch_t - 1, patch_t, rounding_mode="floor")
        return out, out_lengths.clamp(max=out.shape[1])


class GRAMFrontend(AbsFrontend):
    """``frontend: gram`` with ``frontend_conf: {model_path: <packed model>, ...}``."""

    def __init__(self, model_path: str, fs: Optional[int] = None, layer: Optional[int] = None,
                 weighted_sum: bool = False, freeze_steps: int = -1, random_init: bool = False):
        super().__init__()
        self.gram = PretrainedGRAM(model_path, fs, layer, weighted_sum, freeze_steps, random_init)

    def output_size(self) -> int:
        return self.gram.output_size()

    def reload_pretrained_parameters(self) -> None:
        self.gram.reload_pretrained_parameters()

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor):
        return self.gram(input, input_lengths)


class GRAMESPnetEncoder(AbsEncoder):
    """``encoder: gram`` (with ``frontend: none``) taking raw audio (B, T, C)."""

    def __init__(self, input_size: int, model_path: str, fs: Optional[int] = None,
                 layer: Optional[int] = None, weighted_sum: bool = False,
                 freeze_steps: int = -1, random_init: bool = False):
        super().__init__()
        self.gram = PretrainedGRAM(model_path, fs, layer, weighted_sum, freeze_steps, random_init)
        expected = self.gram.features.in_channels
        if input_size not in (1, expected):
            raise ValueError(f"input_size={input_size}: the GRAM model {model_path} takes"
                             f" {expected}-channel audio (or mono, replicated)")

    def output_size(self) -> int:
        return self.gram.output_size()

    def reload_pretrained_parameters(self) -> None:
        self.gram.reload_pretrained_parameters()

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states=None):
        if xs_pad.dim() == 3 and xs_pad.shape[-1] == 1:
            xs_pad = xs_pad[..., 0]
        out, olens = self.gram(xs_pad, ilens)
        return out, olens, None
