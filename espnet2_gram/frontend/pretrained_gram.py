"""A packed GRAM model inside ESPnet's own tasks: ``frontend: gram`` (ASR and the other tasks
sharing its frontends) and ``encoder: gram`` (classification, with ``frontend: none`` and
``input_size: <channels>``).

Both take raw audio (B, T) or (B, T, C) at the model's rate (mono is replicated to every
channel of a binaural or FOA model; another channel count is an error; a different sample
rate is refused when ``fs`` is given) and give one frame per patch
column (80 ms at the paper settings) of ``rows * dim`` values: the chosen layer, or a learned
softmax-weighted sum of all layers.

Self-contained: ``model_path`` (a packed GRAM) gives the architecture and the pretrained
weights; ``gram_config`` is that architecture inline (``frontend``, ``frontend_conf``,
``encoder``, ``encoder_conf`` of the GRAM model), which the plugin writes into the task's
``config.yaml`` at build time. Without a readable ``model_path`` the inline architecture is
built and its weights come from the task's checkpoint (ESPnet loads it after building), so a
trained or ESPnet-packed model needs no GRAM beside it.

Freezing sets ``requires_grad``: ``freeze_steps`` -1 keeps GRAM frozen, 0 trains it, N > 0
trains it after N training steps (the parameters stay in ESPnet's optimiser, which skips them
while they have no gradient; under DDP, which fixes the trained parameters when it wraps the
model, they stay trainable and are only run without gradients for N steps, as
``--unused_parameters true`` allows). ``random_init: true`` builds the same architecture with
untrained weights (the random-init baseline; nothing is reloaded).
"""

import copy
import inspect
import logging
from pathlib import Path
from typing import Optional, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from espnet2_gram.pretrained.packing import check_state_dict, load_gram_and_config

logger = logging.getLogger(__name__)

# The parts of a GRAM training config that define the frontend and encoder kept here.
ARCHITECTURE_KEYS = ("frontend", "frontend_conf", "encoder", "encoder_conf")


def gram_architecture(config: dict) -> dict:
    """The ``gram_config`` of a GRAM training config (what builds its frontend and encoder)."""
    return copy.deepcopy({k: config[k] for k in ARCHITECTURE_KEYS if k in config})


def build_architecture(arch: dict, option: str) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """Untrained GRAM frontend and encoder from a ``gram_config`` mapping (``option`` names it
    in errors)."""
    from espnet2_gram.tasks.gram import encoder_choices, frontend_choices

    if not isinstance(arch, dict):
        raise ValueError(f"{option}: expected a mapping with {', '.join(ARCHITECTURE_KEYS)}"
                         f" (as the plugin writes it), got {arch!r}")
    try:
        frontend = frontend_choices.get_class(arch["frontend"])(
            **(arch.get("frontend_conf") or {}))
        encoder = encoder_choices.get_class(arch.get("encoder", "vit"))(**{
            **(arch.get("encoder_conf") or {}), "in_channels": frontend.out_channels,
            "n_mels": frontend.output_size()})
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"{option} does not build a GRAM frontend and encoder"
                         f" ({type(e).__name__}: {e})") from e
    return frontend, encoder


class PretrainedGRAM(torch.nn.Module):
    """The spatial frontend and encoder of a packed GRAM model, as a frame-level extractor.

    ``option`` ("frontend_conf" or "encoder_conf") names the options in messages.
    """

    def __init__(self, model_path: Optional[str] = None, fs: Optional[int] = None,
                 layer: Optional[int] = None, weighted_sum: bool = False,
                 freeze_steps: int = -1, random_init: bool = False,
                 gram_config: Optional[dict] = None, option: str = "frontend_conf"):
        super().__init__()
        readable = model_path is not None and Path(model_path).exists()
        if readable:
            gram, config = load_gram_and_config(model_path, random_init=random_init)
            arch = gram_architecture(config)
            if gram_config is not None and gram_config != arch:
                logger.warning("%s.gram_config differs from the architecture of %s.model_path=%s;"
                               " the inline one is built and its weights must come from a"
                               " checkpoint", option, option, model_path)
                readable = False
            features, encoder = gram.frontend, gram.encoder
        if not readable:
            if gram_config is None:
                where = ("is not set" if model_path is None
                         else f"= {model_path}: no such file or directory")
                raise FileNotFoundError(
                    f"{option}.model_path {where}; expected a packed GRAM model (a directory,"
                    f" its .zip or a training directory), or the architecture inline as"
                    f" {option}.gram_config (written into a trained model's config.yaml)")
            arch = copy.deepcopy(gram_config)
            features, encoder = build_architecture(arch, f"{option}.gram_config")
            if not random_init:
                logger.info("GRAM built from %s.gram_config; its weights come from the task's"
                            " checkpoint", option)
        if fs is not None and int(fs) != features.fs:
            raise ValueError(
                f"{option}.fs={fs} but the GRAM model expects {features.fs} Hz audio;"
                " resample the data (stage 2 --fs) or set fs to the model's rate"
            )
        self.model_path = None if model_path is None else str(model_path)
        self.gram_config = arch
        self.features = features
        self.features.replicate_mono = True  # mono input reaches every channel, as in HEAR
        self.encoder = encoder
        depth = self.encoder.depth
        if layer is not None:
            self.encoder.layer_index(layer, f"{option}.layer")
        self.layer = layer
        self.layer_weights = torch.nn.Parameter(torch.zeros(depth + 1)) if weighted_sum else None
        self.freeze_steps = int(freeze_steps)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long), persistent=False)
        self.pretrained_params = (copy.deepcopy(self._gram_state())
                                  if readable and not random_init else None)
        # DDP fixes the trained parameters when it wraps the model: a GRAM thawed after N
        # steps is trainable from the start there (and run without gradients until then).
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.thaw_later = self.freeze_steps > 0 and not distributed
        self.set_trainable(self.freeze_steps == 0 or (self.freeze_steps > 0 and distributed))

    def gram_parameters(self):
        """The parameters of the pretrained parts (not the layer weights)."""
        return [*self.features.parameters(), *self.encoder.parameters()]

    def set_trainable(self, trainable: bool) -> None:
        for p in self.gram_parameters():
            p.requires_grad_(trainable)

    def _gram_state(self) -> dict:
        return {**{f"features.{k}": v for k, v in self.features.state_dict().items()},
                **{f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}}

    def reload_pretrained_parameters(self) -> None:
        if self.pretrained_params is None:
            return
        state = {k: v.clone() for k, v in self.pretrained_params.items()}
        check_state_dict(torch.nn.ModuleDict({"features": self.features,
                                              "encoder": self.encoder}), state,
                         str(self.model_path))
        self.features.load_state_dict({k[9:]: v for k, v in state.items()
                                       if k.startswith("features.")})
        self.encoder.load_state_dict({k[8:]: v for k, v in state.items()
                                      if k.startswith("encoder.")})
        logger.info("GRAM weights reloaded from %s", self.model_path)

    def output_size(self) -> int:
        return self.encoder.grid[0] * self.encoder.dim

    def frozen(self) -> bool:
        """Whether the next step runs GRAM without gradients (``steps`` steps are done)."""
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
        frozen = self.frozen()
        if self.training:
            if self.thaw_later and self.freeze_steps == int(self.steps):
                self.set_trainable(True)
            self.steps += 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            feats, frames = self.features(audio, lengths)
            feats = self.drop_stub_chunk(feats)
            frames = frames.clamp(max=feats.shape[-1])
            if self.layer_weights is None:
                out = self.encoder.extract(feats, strategy="raw", layer=self.layer,
                                           lengths=frames)
            else:
                states = self.encoder.extract(feats, strategy="raw",
                                              layer=list(range(self.encoder.depth + 1)),
                                              lengths=frames)
        if self.layer_weights is not None:
            weights = torch.softmax(self.layer_weights, dim=0)
            out = sum(w * s for w, s in zip(weights, states))
        patch_t = self.encoder.patch_size[1]
        out_lengths = torch.div(frames + patch_t - 1, patch_t, rounding_mode="floor")
        return out, out_lengths.clamp(max=out.shape[1])


class GRAMFrontend(AbsFrontend):
    """``frontend: gram`` with ``frontend_conf: {model_path: <packed model>, ...}``."""

    def __init__(self, model_path: Optional[str] = None, fs: Optional[int] = None,
                 layer: Optional[int] = None, weighted_sum: bool = False,
                 freeze_steps: int = -1, random_init: bool = False,
                 gram_config: Optional[dict] = None):
        super().__init__()
        self.gram = PretrainedGRAM(model_path, fs, layer, weighted_sum, freeze_steps, random_init,
                                   gram_config, option="frontend_conf")

    def output_size(self) -> int:
        return self.gram.output_size()

    def reload_pretrained_parameters(self) -> None:
        self.gram.reload_pretrained_parameters()

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor):
        return self.gram(input, input_lengths)


class GRAMESPnetEncoder(AbsEncoder):
    """``encoder: gram`` (with ``frontend: none``) taking raw audio (B, T, C)."""

    def __init__(self, input_size: int, model_path: Optional[str] = None,
                 fs: Optional[int] = None, layer: Optional[int] = None,
                 weighted_sum: bool = False, freeze_steps: int = -1, random_init: bool = False,
                 gram_config: Optional[dict] = None):
        super().__init__()
        self.gram = PretrainedGRAM(model_path, fs, layer, weighted_sum, freeze_steps, random_init,
                                   gram_config, option="encoder_conf")
        expected = self.gram.features.in_channels
        if input_size not in (1, expected):
            raise ValueError(f"input_size={input_size}: the GRAM model takes {expected}-channel"
                             " audio (or mono, replicated)")

    def output_size(self) -> int:
        return self.gram.output_size()

    def reload_pretrained_parameters(self) -> None:
        self.gram.reload_pretrained_parameters()

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states=None):
        if xs_pad.dim() == 3 and xs_pad.shape[-1] == 1:
            xs_pad = xs_pad[..., 0]
        out, olens = self.gram(xs_pad, ilens)
        return out, olens, None


GRAM_MODULES = (GRAMFrontend, GRAMESPnetEncoder)


def initialize_sparing_gram(model: torch.nn.Module, init: str, initialize) -> None:
    """ESPnet's ``initialize(model, init)`` on everything but the GRAM frontend / encoder,
    which keep the weights they were built with (they are hidden from it meanwhile)."""
    hidden = [(parent, name, child) for parent in list(model.modules())
              for name, child in parent.named_children() if isinstance(child, GRAM_MODULES)]
    for parent, name, _ in hidden:
        parent._modules[name] = None
    try:
        initialize(model, init)
    finally:
        for parent, name, child in hidden:
            parent._modules[name] = child


# Subsampling factors of ESPnet encoders' input layers (``encoder_conf.input_layer``).
SUBSAMPLING = {"conv1d2": 2, "conv2d": 4, "conv2d2": 2, "conv2d6": 6, "conv2d8": 8, "vgg2l": 4}


def check_input_layer(args, encoder_class, frontend) -> None:
    """Refuse an encoder input layer that subsamples the frames of ``frontend: gram``."""
    default = inspect.signature(encoder_class).parameters.get("input_layer")
    conf = args.encoder_conf or {}
    value = conf.get("input_layer", None if default is None else default.default)
    factor = SUBSAMPLING.get(value) if isinstance(value, str) else None
    if factor is None:
        return
    gram = frontend.gram
    frame_ms = 1000 * gram.encoder.patch_size[1] * gram.features.hop_length / gram.features.fs
    raise ValueError(
        f"encoder_conf.input_layer={value!r} ({args.encoder} encoder) subsamples by {factor}"
        f" the frames of frontend: gram, which are already {frame_ms:g} ms apart: a 0.5-s clip"
        f" would keep {max(0, int(500 / frame_ms) // factor)} frame(s) (ESPnet's"
        " TooShortUttError). Set encoder_conf.input_layer: linear (or null when"
        " encoder_conf.output_size equals the frontend's output size)")


def record_gram_config(args, model) -> None:
    """Write each GRAM part's architecture into ``args`` (``frontend_conf.gram_config`` /
    ``encoder_conf.gram_config``), so that ESPnet's ``config.yaml`` rebuilds the model without
    the packed GRAM."""
    for part in ("frontend", "encoder"):
        module = getattr(model, part, None)
        if isinstance(module, GRAM_MODULES) and getattr(args, part, None) == "gram":
            conf = dict(getattr(args, f"{part}_conf") or {})
            conf["gram_config"] = copy.deepcopy(module.gram.gram_config)
            setattr(args, f"{part}_conf", conf)
