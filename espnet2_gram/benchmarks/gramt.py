"""Side-by-side speed of our GRAM pretraining model and the authors' GRAM-T, in one process.

    python -m espnet2_gram.benchmarks.gramt --gramt_source exp/gramt_source \\
        [--config conf/paper/pretrain_binaural.yaml] [--crops 8] [--steps 5] [--threads 1] \\
        [--device cpu] [--amp_dtype bfloat16] [--out exp/benchmark/gramt_side_by_side.json]

``--gramt_source`` is a checkout of the authors' repository (labhamlet/GRAM-T), made by
``egs2/gram/scripts/fetch_gramt_source.sh``; it is imported at run time for measurement only
and is never part of this package. Both models are built with the sizes of ``--config`` (the
paper config: 2 input channels, 128 mels, 200-frame crops, 16 x 8 patches, ViT-B 12 x 768
encoder, MW-MAE decoder 8 x 512 with windows [2, 5, 10, 25, 50, 100, 0, 0], 80% random
masking), get the SAME batch of random normalised log-mel crops ``(crops, C, n_mels, T)`` and
the same AdamW (lr, betas, weight decay of the config). Every step starts from these features:
the frontend (STFT / mel / log) and the random cropping are excluded for both models. Four
items are timed, the two models interleaved (ours, theirs, ours, theirs, ...) after warm-up, the
median of ``--steps`` timings each, ``torch.cuda.synchronize`` around every timing on CUDA, the
forward (and loss) under ``torch.autocast`` when ``--amp_dtype`` is given:

* ``step``: forward + masked-patch MSE + backward + AdamW step. Ours mirrors
  ``ESPnetGRAMModel.forward`` from the crops on (``per_crop_normalize``, ``patchify``, the mask
  from ``model.masking``, encoder, decoder, ``masked_patch_mse``, the finiteness check).
  Theirs calls ``GRAMT.forward(x, mask)`` (their spectrogram normalisation, patching, encoder
  with their masking, decoder and ``GRAMT.loss``), under ``sdpa_kernel(FLASH_ATTENTION)`` as
  their ``training_step`` does (on CUDA only for half precision: flash has no float32 kernel
  there). Their ``training_step`` itself cannot be called: its ``_prepare_batch`` synthesises
  scenes from waveforms and RIRs and computes the features, and it logs through a Lightning
  trainer; ``training_step`` only then calls ``forward``, which we call. Their mask comes, as in
  their pipeline, from their data-side ``SpatialMaskMaker`` (random, ``mask_patch`` = 80% of
  the patches), drawn before the timings; ours is drawn inside the step as our model does.
* ``decoder``: the decoder alone, forward + backward of a mean square, on the same random
  encoder output ``(crops, 1 + visible, 768)`` and mask: ``model.decoder(tokens, mask)`` /
  ``GRAMT.pass_through_decoder(tokens, ~mask, B)``. Where ``espnet2_gram.gram.attention``
  has ``set_window_attention``, our decoder is also timed in the forms ``windows`` and
  ``dense`` (``decoder_forms``).
* ``encoder``: the encoder alone (patch embedding, visible tokens, CLS, 12 blocks, final
  norm), forward + backward, on the normalised crops and the same mask:
  ``model.encoder(crops, mask)`` / ``GRAMT.patch_strategy.embed`` then
  ``GRAMT.pass_through_encoder``.
* ``encoding``: inference (eval mode, no grad), the whole unmasked crop through the encoder to a
  mean embedding, each side's own method: ``model.encoder.extract(crops, "mean")`` /
  ``GRAMT.get_audio_representation(crops, "mean")`` (both normalise the crop first).

* ``step_compiled`` (``--compiled``): the step once both are compiled, ours with
  ``compile_parts`` (encoder and decoder), theirs with their own ``_compile_operations``
  (``torch.compile(forward, mode="reduce-overhead")``, what their ``compile_modules: True``
  training config runs), with each side's compile time.

Each item gives the seconds of both, ``ratio`` = ours / theirs (< 1: ours is faster) and crops/s.
AdamW is fused on CUDA for both.

How GRAM-T is imported (``load_gramt``): its ``src`` folder becomes the package ``_gramt_src``
(no ``sys.path`` entry, so its generic name ``src`` cannot clash), and ``src/model/GRAMT.py``
is imported from it unchanged. Two things are bent, both only at import time and recorded in
the JSON (``gramt.import_notes``):

* ``src/data_modules/__init__.py`` is not run (the package is registered with its real folder,
  so ``data_modules.scene_module.generate_scenes_batch`` and ``data_modules.dataset_functions``,
  which ``GRAMT.py`` imports, are the real files): that ``__init__`` only re-exports
  ``WebAudioDataModule``, their webdataset loader, which needs ``webdataset``;
* where a package in ``IMPORT_ONLY`` is missing, an empty placeholder module is registered for
  the import and removed right after: ``transformers`` (``GRAMT.configure_optimizers`` only,
  for its learning-rate schedule) and ``matplotlib`` / ``matplotlib.pyplot`` (their spectrogram
  plots for the logger only). A placeholder raises on any attribute access, so a timed call
  that touched one would fail, not pass silently. Which ones were used is in the JSON.

``torchvision`` (their ViT-B encoder is ``torchvision``'s ``Encoder``), ``timm`` (imported by
``GRAMT.py`` and their decoder's ``swin.py``), ``pytorch_lightning`` (``GRAMT`` is a
``LightningModule``), ``torchaudio`` and ``einops`` are real requirements. Where torchvision /
timm are not installed, ``fetch_gramt_source.sh --deps`` puts them in ``<gramt_source>/.deps``,
which ``load_gramt`` appends to ``sys.path`` (after the installed packages).

Not reproduced on purpose: their trainer's ``torch.compile`` of ``forward`` and
``set_float32_matmul_precision("medium")``: both models run eager, under the same settings.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.machinery
import importlib.util
import itertools
import json
import random
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List

import torch

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open

GRAMT_FILE = "src/model/GRAMT.py"
PACKAGE = "_gramt_src"
# Packages GRAMT.py (or its imports) imports at module level that the model's forward and
# backward never use, with where they are used; a placeholder stands in only where missing.
IMPORT_ONLY = {
    "transformers": "GRAMT.configure_optimizers (cosine learning-rate schedule)",
    "matplotlib": "src/model/utils.py plot_fbank (spectrogram figures for the logger)",
    "matplotlib.pyplot": "src/model/utils.py plot_fbank (spectrogram figures for the logger)",
}
SKIPPED_INIT = ("src/data_modules/__init__.py: re-exports WebAudioDataModule (their webdataset"
                " loader, needs webdataset); not run, its folder registered as the package")


class _Placeholder(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"placeholder module {self.__name__!r} (registered by"
                             f" benchmark_gramt for GRAM-T's import only) was used: .{name}")


def _check_source(gramt_source) -> Path:
    root = Path(gramt_source)
    if not (root / GRAMT_FILE).is_file():
        raise FileNotFoundError(
            f"--gramt_source {str(root)!r} does not hold the GRAM-T source ({GRAMT_FILE} is"
            f" missing there); get it with egs2/gram/scripts/fetch_gramt_source.sh {root}")
    return root.resolve()


def _package(name: str, folder: Path) -> types.ModuleType:
    """A package module ``name`` whose submodules are the files of ``folder``, without running
    any ``__init__.py`` of it."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return module


def import_gramt(gramt_source) -> tuple:
    """``(GRAMT module, PatchStrategy, SpatialMaskMaker, notes)`` from the folder."""
    root = _check_source(gramt_source)
    notes = {"source": str(root), "package": PACKAGE, "skipped_init": [SKIPPED_INIT],
             "placeholders": {}, "extra_sys_path": None}
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None and getattr(loaded, "_gramt_root", None) != str(root):
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        loaded = None
    deps = root / ".deps"
    if deps.is_dir():
        if str(deps) not in sys.path:
            sys.path.append(str(deps))
        notes["extra_sys_path"] = str(deps)
    if loaded is None:
        pkg = _package(PACKAGE, root / "src")
        pkg._gramt_root = str(root)
        pkg.data_modules = _package(f"{PACKAGE}.data_modules", root / "src" / "data_modules")
    placed = []
    try:
        for name, use in IMPORT_ONLY.items():
            if name in sys.modules:
                continue
            try:
                importlib.import_module(name)
            except ImportError:
                sys.modules[name] = _Placeholder(name)
                placed.append(name)
                notes["placeholders"][name] = use
        try:
            gramt = importlib.import_module(f"{PACKAGE}.model.GRAMT")
            patching = importlib.import_module(f"{PACKAGE}.patching")
            masking = importlib.import_module(f"{PACKAGE}.masking")
        except ImportError as e:
            raise ImportError(
                f"importing GRAM-T from {root} failed: {e}. Its model needs torchvision (the"
                " ViT-B encoder is torchvision's Encoder), timm, pytorch_lightning, torchaudio"
                " and einops; `egs2/gram/scripts/fetch_gramt_source.sh --deps DIR` installs"
                " missing torchvision / timm into DIR/.deps") from e
    finally:
        for name in placed:
            sys.modules.pop(name, None)
    return gramt, patching.PatchStrategy, masking.SpatialMaskMaker, notes


def _read_config(config) -> dict:
    import yaml

    with open(config) as f:
        return yaml.safe_load(f)


def load_gramt(gramt_source, in_channels: int = 2, n_mels: int = 128, target_length: int = 200,
               patch_size=(16, 8), encoder=(768, 12, 12), decoder=(512, 8, 8),
               windows=(2, 5, 10, 25, 50, 100, 0, 0), mlp_ratio: float = 4.0,
               mask_ratio: float = 0.8, sr: int = 32000, lr: float = 2e-4,
               betas=(0.9, 0.95), weight_decay: float = 0.01):
    """Build the authors' ``GRAMT`` as their ``train.py`` does (``FramePatching`` config
    ``frame.yaml`` gives fshape = fstride = 16, tshape = tstride = 8), with these sizes.

    ``encoder`` = (dim, depth, heads): GRAM-T only has ViT-B (768, 12, 12) as ``model_size
    'base'`` (torchvision's ``Encoder``). Returns ``(model, SpatialMaskMaker instance, notes)``.
    """
    if tuple(encoder) != (768, 12, 12):
        raise ValueError(f"GRAM-T's 'base' encoder is (768, 12, 12); the config asks {encoder}")
    module, patch_strategy, mask_maker, notes = import_gramt(gramt_source)
    pf, pt = patch_size
    strategy = patch_strategy(tstride=pt, tshape=pt, fstride=pf, fshape=pf,
                              input_fdim=n_mels, input_tdim=target_length)
    n_patches = (n_mels // pf) * (target_length // pt)
    mask_patch = int(round(mask_ratio * n_patches))
    model = module.GRAMT(
        model_size="base", lr=lr, trainer="adamW", b1=betas[0], b2=betas[1],
        weight_decay=weight_decay, mlp_ratio=mlp_ratio, mask_patch=mask_patch,
        patch_strategy=strategy, in_channels=in_channels, cluster=False,
        use_mwmae_decoder=True, decoder_depth=decoder[1], decoder_num_heads=decoder[2],
        decoder_embedding_dim=decoder[0], decoder_window_sizes=list(windows), sr=sr,
        num_mel_bins=n_mels, target_length=target_length, compile_modules=False,
    )
    notes["mask_patch"] = mask_patch
    return model, mask_maker(mask_patch=mask_patch, context_cluster=False), notes


# ------------------------------------------------------------------------------------ timing
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleave(fns: Dict[str, Callable[[], None]], steps: int, device: str,
               warmup: int = 1) -> Dict[str, float]:
    """Median seconds of each callable, called in turn (A, B, A, B, ...) after warm-up."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _count(params) -> int:
    return sum(p.numel() for p in params)


def parameter_counts(ours, theirs) -> dict:
    """Trainable / all parameters of both, per part, and the known differences."""
    their_encoder = [theirs.encoder, theirs.patch_embed]
    their_decoder = [theirs.decoder_embed, theirs.decoder_blocks, theirs.decoder_norm,
                     theirs.spec_pred]

    def trainable(modules):
        return _count(p for m in modules for p in m.parameters() if p.requires_grad)

    ours_mask = ours.decoder.mask_token
    windows = getattr(theirs, "decoder_window_sizes", [])
    their_tables = sum(2 * w - 1 for w in windows if w > 0) * len(theirs.decoder_blocks)
    return {
        "ours": {
            "trainable": _count(p for p in ours.parameters() if p.requires_grad),
            "all_parameters": _count(ours.parameters()),
            "encoder_trainable": trainable([ours.encoder]),
            "decoder_trainable": trainable([ours.decoder]),
            "mask_token_trainable": isinstance(ours_mask, torch.nn.Parameter),
        },
        "theirs": {
            "trainable": _count(p for p in theirs.parameters() if p.requires_grad),
            "all_parameters": _count(theirs.parameters()),
            "encoder_trainable": trainable(their_encoder) + theirs.cls_token.numel(),
            "decoder_trainable": trainable(their_decoder),
            "mask_token_trainable": False,
            "frozen_parameters": _count(p for p in theirs.parameters() if not p.requires_grad),
            "relative_position_table_entries": their_tables,
        },
        "explained": (
            "ours trains the decoder mask token (decoder dim values; GRAM-T registers it as a"
            " buffer, so it is never trained: learnable_mask_token=False in our decoder"
            " reproduces that); GRAM-T keeps the encoder's sin-cos positions as a frozen"
            " nn.Parameter (counted in all_parameters, not trainable), ours as a buffer"),
    }


class SideBySide:
    """Our model and GRAM-T built from one config, with one batch of ``crops`` normalised
    log-mel crops, their optimisers, masks and autocast; each pair of methods times the same
    work on both sides (see the module docstring)."""

    def __init__(self, gramt_source: str, config: str, crops: int, steps: int,
                 device: str = "cpu", amp_dtype=None):
        from espnet2_gram.frontend.spatial_features import per_crop_normalize
        from espnet2_gram.tasks.gram import build_gram_model

        _check_source(gramt_source)
        self.config, self.crops, self.steps, self.device = config, crops, steps, device
        self.amp_dtype = getattr(torch, amp_dtype) if isinstance(amp_dtype, str) else amp_dtype
        self.dev = dev = torch.device(device)
        torch.manual_seed(0)
        random.seed(0)
        conf = _read_config(config)
        optim_conf = conf.get("optim_conf", {})
        self.lr = float(optim_conf.get("lr", 2e-4))
        self.betas = tuple(optim_conf.get("betas", (0.9, 0.95)))
        self.weight_decay = float(optim_conf.get("weight_decay", 0.01))
        self.ours = build_gram_model(config, model_conf={"crops_per_clip": 1}).to(dev)
        self.enc, self.dec = enc, dec = self.ours.encoder, self.ours.decoder
        dconf = conf.get("decoder_conf", {})
        theirs, their_masker, self.notes = load_gramt(
            gramt_source, in_channels=enc.in_channels, n_mels=enc.n_mels,
            target_length=enc.crop_frames, patch_size=enc.patch_size,
            encoder=(enc.dim, enc.depth, enc.heads),
            decoder=(dec.dim, int(dconf.get("depth", 8)), int(dconf.get("heads", 8))),
            windows=tuple(dconf.get("windows", (2, 5, 10, 25, 50, 100, 0, 0))),
            mlp_ratio=float(dconf.get("mlp_ratio", 4.0)), mask_ratio=self.ours.masking.ratio,
            sr=int(conf.get("frontend_conf", {}).get("fs", 32000)), lr=self.lr,
            betas=self.betas, weight_decay=self.weight_decay)
        self.theirs = theirs.to(dev)
        self.grid, self.n_patches = enc.grid, enc.num_patches
        self.n_masked = self.ours.masking.num_masked(self.grid)
        self._check_same_task()
        self.n_vis = self.n_patches - self.n_masked
        self.ours_opt, self.their_opt = self._adamw(self.ours), self._adamw(self.theirs)
        # One batch for both: normalised log-mel crops (B, C, F, T); GRAM-T takes (B, C, T, F).
        feats = torch.randn(crops, enc.in_channels, enc.n_mels, enc.crop_frames, device=dev)
        self.x = per_crop_normalize(feats * 3 - 5)
        self.x_theirs = self.x.transpose(2, 3).contiguous()
        self.n_mask_pool = steps + 2
        self.their_masks = [their_masker(None, crops, self.n_patches).to(dev)
                            for _ in range(self.n_mask_pool)]
        self.their_mask_index = itertools.count()
        self.fixed_mask = self.ours.masking(crops, self.grid, device=dev)
        self.tokens = torch.randn(crops, 1 + self.n_vis, enc.dim, device=dev, requires_grad=True)
        half = self.amp_dtype in (torch.float16, torch.bfloat16)
        self.use_flash = dev.type == "cpu" or half
        self.results: Dict[str, dict] = {}

    def _check_same_task(self) -> None:
        theirs = self.theirs
        if (theirs.p_f_dim, theirs.p_t_dim) != tuple(self.grid):
            raise RuntimeError(f"patch grids differ: ours {self.grid}, GRAM-T"
                               f" {(theirs.p_f_dim, theirs.p_t_dim)}")
        if self.n_masked != self.notes["mask_patch"]:
            raise RuntimeError(f"masked patches differ: ours {self.n_masked}, GRAM-T"
                               f" {self.notes['mask_patch']}")

    def _adamw(self, model):
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                 lr=self.lr, betas=self.betas, weight_decay=self.weight_decay,
                                 fused=self.dev.type == "cuda")

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.dev.type, dtype=self.amp_dtype)

    def their_sdpa(self):
        """Flash attention as GRAM-T's training_step asks (none in float32 on CUDA)."""
        if not self.use_flash:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)

    # ---------------------------------------------------------------- full training step
    def ours_step(self):
        from espnet2_gram.frontend.spatial_features import per_crop_normalize
        from espnet2_gram.gram.loss import masked_patch_mse
        from espnet2_gram.gram.patching import patchify

        ours, enc = self.ours, self.enc
        self.ours_opt.zero_grad(set_to_none=True)
        with self.autocast():
            crops_n = per_crop_normalize(self.x)
            target = patchify(crops_n, enc.patch_size)
            mask = ours.masking(self.crops, self.grid, device=self.dev)
            pred = self.dec(enc(crops_n, mask, self.n_vis), mask, self.n_vis)
            loss = masked_patch_mse(pred.float(), target.float(), mask, enc.in_channels)
        ours.check_loss(loss, self.crops)  # as in training: no host sync on a GPU
        loss.backward()
        self.ours_opt.step()

    def their_step(self):
        self.their_opt.zero_grad(set_to_none=True)
        mask = self.their_masks[next(self.their_mask_index) % self.n_mask_pool]
        with self.autocast(), self.their_sdpa():
            _, _, loss = self.theirs.forward(self.x_theirs, mask)
        loss.backward()
        self.their_opt.step()

    # ---------------------------------------------------------------------- decoder alone
    def ours_decoder(self):
        self.dec.zero_grad(set_to_none=True)
        self.tokens.grad = None
        with self.autocast():
            pred = self.dec(self.tokens, self.fixed_mask, self.n_vis)
        pred.float().square().mean().backward()

    def their_decoder(self):
        self.theirs.zero_grad(set_to_none=True)
        self.tokens.grad = None
        with self.autocast(), self.their_sdpa():
            pred = self.theirs.pass_through_decoder(self.tokens, ~self.their_masks[0],
                                                    self.crops)
        pred.float().square().mean().backward()

    # ---------------------------------------------------------------------- encoder alone
    def ours_encoder(self):
        self.enc.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.enc(self.x, self.fixed_mask, self.n_vis)
        out.float().square().mean().backward()

    def their_encoder(self):
        theirs = self.theirs
        theirs.zero_grad(set_to_none=True)
        with self.autocast(), self.their_sdpa():
            patches = theirs.patch_strategy.embed(self.x, theirs.patch_embed)
            out = theirs.pass_through_encoder(patches, ~self.their_masks[0], self.crops)
        out.float().square().mean().backward()

    # --------------------------------------------------------------------------- encoding
    def ours_encoding(self):
        with torch.no_grad(), self.autocast():
            self.enc.extract(self.x, strategy="mean")

    def their_encoding(self):
        with torch.no_grad(), self.autocast():
            self.theirs.get_audio_representation(self.x_theirs, strategy="mean")

    # ------------------------------------------------------------------------------ timing
    def item(self, name: str, timed: Dict[str, float]) -> dict:
        """Record (and print) one timed item of both sides."""
        ours, theirs = timed["ours"], timed["theirs"]
        row = {"ours_s": ours, "theirs_s": theirs, "ratio": ours / theirs,
               "ours_crops_per_s": self.crops / ours, "theirs_crops_per_s": self.crops / theirs}
        self.results[name] = row
        print(f"{name}: ours {ours:.3f} s, GRAM-T {theirs:.3f} s, ratio {row['ratio']:.3f}",
              flush=True)
        return row

    def time_pair(self, name: str, ours: Callable, theirs: Callable, **kw) -> dict:
        return self.item(name, interleave({"ours": ours, "theirs": theirs}, self.steps,
                                          self.device, **kw))

    def time_decoder(self) -> None:
        """The decoder, in our default form and in each ``window_attention`` form."""
        from espnet2_gram.gram import attention

        switch = getattr(attention, "set_window_attention", None)
        forms = [f for f in getattr(attention, "WINDOW_ATTENTION", ()) if f != "auto"] \
            if switch is not None else []
        our_attn = [m for m in self.dec.modules() if isinstance(m, attention.Attention)]
        default = [getattr(m, "window_attention", None) for m in our_attn]

        def in_form(form):
            def run_form():
                switch(self.dec, form)
                try:
                    self.ours_decoder()
                finally:
                    for m, kept in zip(our_attn, default):
                        m.window_attention = kept
            return run_form

        fns = {"ours": self.ours_decoder, "theirs": self.their_decoder,
               **{f"ours_{form}": in_form(form) for form in forms}}
        timed = interleave(fns, self.steps, self.device)
        row = self.item("decoder", timed)
        if forms:
            row["forms"] = {form: {"ours_s": timed[f"ours_{form}"],
                                   "ratio": timed[f"ours_{form}"] / timed["theirs"]}
                            for form in forms}
            row["default_form"] = sorted({str(f) for f in default})
            for form, f in row["forms"].items():
                print(f"  decoder, window_attention={form}: ours {f['ours_s']:.3f} s,"
                      f" ratio {f['ratio']:.3f}", flush=True)

    def time_compiled_step(self) -> None:
        """The step again after each side's own compilation (with its time)."""
        seconds = {}
        for name, compile_model, step in (("ours", self.ours.compile_parts, self.ours_step),
                                          ("theirs", self.theirs._compile_operations,
                                           self.their_step)):
            start = time.perf_counter()
            compile_model()
            step()
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            seconds[name] = time.perf_counter() - start
        row = self.time_pair("step_compiled", self.ours_step, self.their_step, warmup=2)
        row.update(ours_compile_s=seconds["ours"], theirs_compile_s=seconds["theirs"])

    def run(self, compiled: bool = False) -> dict:
        ours, theirs = self.ours, self.theirs
        ours.train(), theirs.train()
        self.time_pair("step", self.ours_step, self.their_step)
        self.time_decoder()
        self.time_pair("encoder", self.ours_encoder, self.their_encoder)
        ours.eval(), theirs.eval()
        self.time_pair("encoding", self.ours_encoding, self.their_encoding)
        ours.train(), theirs.train()
        if compiled:
            self.time_compiled_step()
        return self.summary()

    def summary(self) -> dict:
        dev, amp = self.dev, self.amp_dtype
        return {
            "what": "our GRAM pretraining model vs the authors' GRAM-T, same batch of"
                    " normalised log-mel crops (frontend excluded for both), same mask ratio"
                    " and AdamW; ratio = ours / theirs (< 1: ours faster); medians of"
                    " interleaved timings",
            "config": str(self.config), "crops": self.crops, "steps": self.steps,
            "crop_shape": list(self.x.shape), "mask_ratio": self.ours.masking.ratio,
            "masked_patches": self.n_masked, "patches": self.n_patches,
            "optimizer": {"name": "AdamW", "lr": self.lr, "betas": list(self.betas),
                          "weight_decay": self.weight_decay},
            "device": str(dev), "device_name": (torch.cuda.get_device_name(dev)
                                                 if dev.type == "cuda" else "cpu"),
            "amp_dtype": str(amp).replace("torch.", "") if amp is not None else None,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "gramt_sdpa": ("sdpa_kernel(FLASH_ATTENTION), as their training_step"
                           if self.use_flash else
                           "default SDPA dispatch (no float32 flash on CUDA)"),
            "items": self.results,
            "parameters": parameter_counts(self.ours, self.theirs),
            "gramt": {"import_notes": self.notes,
                      "step_calls": "GRAMT.forward(x, mask) -> loss; loss.backward();"
                                    " AdamW.step() (training_step's _prepare_batch, scene"
                                    " synthesis and features, replaced by the shared crops)"},
        }


def side_by_side(gramt_source: str, config: str, crops: int, steps: int, device: str = "cpu",
                 amp_dtype=None, compiled: bool = False) -> dict:
    """Time our model against GRAM-T on one batch of ``crops`` normalised log-mel crops.

    See the module docstring for what each item holds. ``amp_dtype`` (e.g. ``torch.bfloat16``
    or its name) runs forwards under ``torch.autocast(device_type, dtype=amp_dtype)``;
    ``compiled`` adds ``step_compiled``: the step again after each side's own compilation
    (``compile_parts`` / GRAM-T's ``_compile_operations``, as their training config does).
    """
    return SideBySide(gramt_source, config, crops, steps, device, amp_dtype).run(compiled)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gramt_source", required=True,
                   help="checkout of labhamlet/GRAM-T (egs2/gram/scripts/fetch_gramt_source.sh)")
    p.add_argument("--config", default="conf/paper/pretrain_binaural.yaml")
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp_dtype", default=None, choices=[None, "bfloat16", "float16"])
    p.add_argument("--compiled", action="store_true",
                   help="also time the step with both models compiled (minutes of compiling)")
    p.add_argument("--out", default="exp/benchmark/gramt_side_by_side.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = side_by_side(args.gramt_source, args.config, args.crops, args.steps,
                          device=args.device, amp_dtype=args.amp_dtype, compiled=args.compiled)
    with atomic_open(args.out) as f:
        json.dump(result, f, indent=2)
    counts = result["parameters"]
    print(f"parameters (trainable): ours {counts['ours']['trainable']:,},"
          f" GRAM-T {counts['theirs']['trainable']:,}; written {args.out}")


if __name__ == "__main__":
    run(main)
