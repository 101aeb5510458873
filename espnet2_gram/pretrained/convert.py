"""Convert the GRAM authors' released GRAM-T checkpoints into ``espnet2_gram`` models.

Sources (see ``docs/conversion.md`` for the facts and where they come from):

* the Hugging Face releases (``labhamlet/gramt-binaural``, ``gramt-ambisonics``,
  ``gramt-mono``): a ``model.safetensors`` that the authors' wrapper loads into their HEAR
  runtime (``RuntimeGRAMT``), so the GRAM-T module's keys carry the prefix ``model.`` and the
  runtime's feature extractor adds ``mel_spec.melspec.*`` buffers;
* the Lightning ``.ckpt`` files written by the authors' ``train.py``: a ``state_dict`` whose
  keys are the GRAM-T ``LightningModule``'s own (``encoder.layers.encoder_layer_0....``).

The GRAM-T module's root is found from its ``patch_embed.proj.weight`` key, so any wrapper
prefix (``model.``, ``encoder.model.``, none) is accepted.  Every key under the root must match
one row of :data:`KEY_MAP`; a key matching none, a key the target configuration needs but the
checkpoint lacks and a tensor of the wrong shape are a ``ValueError`` listing them.

``convert_state_dict`` returns our state dict and a report (what was mapped, what was dropped
and why, numerical checks of the fixed buffers that are dropped because we recompute them);
``convert_checkpoint`` builds our model, loads the result strictly and packs it with
:mod:`espnet2_gram.pretrained.packing`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import yaml

from espnet2_gram.utils.cli import naming
from espnet2_gram.utils.safe_load import load_weights

#: The paper's pretraining configs ship inside the package (the recipe's
#: conf/paper/pretrain_*.yaml are links to them), so an installed package converts too.
PAPER_CONF = Path(__file__).resolve().parents[1] / "paper_configs"

#: the authors' format names -> (paper config file, our frontend: espnet2_gram.formats)
FORMATS = {
    "binaural": ("pretrain_binaural.yaml", "binaural"),
    "ambisonics": ("pretrain_foa.yaml", "foa"),
    "mono": ("pretrain_binaural.yaml", "mono"),
}
FORMAT_ALIASES = {"foa": "ambisonics"}
#: format -> the log offset of the authors' HEAR runtime (``hear_api/feature_helper_gram_t.py``:
#: ``torch.finfo(float32).eps`` for binaural and mono log-mels; the FOA extractor's own 1e-6).
#: Written to ``hear_conf.authors_log_offset``, used by ``espnet2_gram.hear`` with
#: ``compat="authors"`` only; the frontend keeps the training offset.
AUTHORS_HEAR_LOG_OFFSET = {
    "binaural": float(torch.finfo(torch.float32).eps),
    "ambisonics": 1e-6,
    "mono": float(torch.finfo(torch.float32).eps),
}

# ----------------------------------------------------------------------------- key map
#: The key map: (reference key pattern, our key template, transform), one row per tensor kind.
#:
#: Reference patterns are matched in full against a key relative to the GRAM-T module (the
#: LightningModule of the authors' ``src/model/GRAMT.py``); ``{0}``, ``{1}`` in our template
#: are the pattern's groups.  ``None``: the tensor is dropped (the transform says what is
#: checked before dropping it).  Transforms:
#:
#: * ``copy``: same values and shape (float tensors become float32);
#: * ``rel_pos_table``: the per-head relative position bias tables of one block, ``(2w - 1, 1)``
#:   each, go into our flat ``rel_pos_bias`` parameter in head order (global heads have none),
#:   re-indexed: the authors' bias of query ``i`` and key ``j`` is
#:   ``table[relative_position_index[i, j]]`` with the stored index ``i - j + w - 1``; ours is
#:   ``table[j - i + w - 1]``, so each table is reversed (derived from the stored index buffer);
#: * ``rel_pos_index``: the authors' ``relative_position_index`` buffer, used by
#:   ``rel_pos_table`` and dropped (our index is static);
#: * ``check_pos_embed``: a fixed sin-cos position table, dropped because we recompute it;
#:   compared with ours first (CLS row, if any, must be zero);
#: * ``feature_buffer``: torchaudio's STFT window / mel filterbank buffers of the authors'
#:   feature extractor, dropped (our frontend recomputes them); the two known ones are compared
#:   with our frontend's.
KEY_MAP: List[Tuple[str, Optional[str], str]] = [
    # encoder: patch embedding, CLS, torchvision ViT ``Encoder`` (src/model/utils.py, 'base')
    (r"patch_embed\.proj\.(weight|bias)", "encoder.patch_embed.proj.{0}", "copy"),
    (r"cls_token", "encoder.cls_token", "copy"),
    (r"encoder\.pos_embedding", None, "check_pos_embed"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.ln_1\.(weight|bias)",
     "encoder.blocks.{0}.norm1.{1}", "copy"),
    # nn.MultiheadAttention packs [q; k; v] rows, each split into contiguous head chunks: the
    # layout of our fused ``qkv`` Linear, so no permutation.
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_weight",
     "encoder.blocks.{0}.attn.qkv.weight", "copy"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_bias",
     "encoder.blocks.{0}.attn.qkv.bias", "copy"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.(weight|bias)",
     "encoder.blocks.{0}.attn.proj.{1}", "copy"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.ln_2\.(weight|bias)",
     "encoder.blocks.{0}.norm2.{1}", "copy"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.(weight|bias)",
     "encoder.blocks.{0}.mlp.fc1.{1}", "copy"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.(weight|bias)",
     "encoder.blocks.{0}.mlp.fc2.{1}", "copy"),
    (r"encoder\.ln\.(weight|bias)", "encoder.norm.{0}", "copy"),
    # decoder: MW-MAE (src/model/layers/mwmae.py MWMHABlock)
    (r"decoder_embed\.(weight|bias)", "decoder.embed.{0}", "copy"),
    (r"mask_token", "decoder.mask_token", "copy"),
    (r"decoder_pos_embed", None, "check_pos_embed"),
    (r"decoder_blocks\.(\d+)\.norm1\.(weight|bias)", "decoder.blocks.{0}.norm1.{1}", "copy"),
    (r"decoder_blocks\.(\d+)\.wmha\.qkv\.(weight|bias)", "decoder.blocks.{0}.attn.qkv.{1}",
     "copy"),
    (r"decoder_blocks\.(\d+)\.wmha\.proj\.(weight|bias)", "decoder.blocks.{0}.attn.proj.{1}",
     "copy"),
    (r"decoder_blocks\.(\d+)\.wmha\.attn_heads\.(\d+)\.relative_position_bias_table",
     "decoder.blocks.{0}.attn.window_bias.rel_pos_bias", "rel_pos_table"),
    (r"decoder_blocks\.(\d+)\.wmha\.attn_heads\.(\d+)\.relative_position_index", None,
     "rel_pos_index"),
    (r"decoder_blocks\.(\d+)\.norm2\.(weight|bias)", "decoder.blocks.{0}.norm2.{1}", "copy"),
    (r"decoder_blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", "decoder.blocks.{0}.mlp.fc1.{1}",
     "copy"),
    (r"decoder_blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", "decoder.blocks.{0}.mlp.fc2.{1}",
     "copy"),
    (r"decoder_norm\.(weight|bias)", "decoder.norm.{0}", "copy"),
    (r"spec_pred\.0\.(weight|bias)", "decoder.pred.{0}", "copy"),
    # feature extractors: GRAMT.melspec (training) and RuntimeGRAMT.mel_spec.melspec (HEAR
    # runtime, outside the GRAM-T module: matched relative to the runtime wrapper)
    (r"melspec\.(.+)", None, "feature_buffer"),
    (r"mel_spec\.melspec\.(.+)", None, "feature_buffer"),
]

_COMPILED = [(re.compile(p), ours, transform) for p, ours, transform in KEY_MAP]
_ROOT_MARKER = "patch_embed.proj.weight"
_DECODER_PREFIXES = ("decoder_embed.", "mask_token", "decoder_pos_embed", "decoder_blocks.",
                     "decoder_norm.", "spec_pred.")


def match_key(key: str) -> Optional[Tuple[int, Tuple[str, ...]]]:
    """(row index in :data:`KEY_MAP`, groups) of a GRAM-T-relative reference key, or None."""
    for row, (pattern, _, _) in enumerate(_COMPILED):
        m = pattern.fullmatch(key)
        if m:
            return row, m.groups()
    return None


def _is_decoder_key(key: str) -> bool:
    return key.startswith(_DECODER_PREFIXES)


# ------------------------------------------------------------------------ reading files
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= path.stat().st_size - 8 and head[8:9] == b"{"


def read_safetensors(path) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file without the ``safetensors`` package.

    Format: an 8-byte little-endian header length ``n``, ``n`` bytes of JSON mapping each name
    to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data that follows
    the header; an optional ``__metadata__`` entry holds strings), then the raw little-endian
    tensor bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n < 2 or n > min(size - 8, 100 * 2 ** 20):
            raise ValueError(f"{path}: not a safetensors file (header length {n} for a file of"
                             f" {size} bytes)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a safetensors file (bad JSON header: {e})") from e
        if not isinstance(header, dict):
            raise ValueError(f"{path}: not a safetensors file (header is not a JSON object)")
        data_start = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype = _SAFETENSORS_DTYPES[info["dtype"]]
                shape = [int(s) for s in info["shape"]]
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: tensor {name!r} has an unsupported or malformed"
                                 f" header entry {info!r}") from e
            numel = math.prod(shape)
            itemsize = torch.empty((), dtype=dtype).element_size()
            if end - begin != numel * itemsize or begin < 0 or data_start + end > size:
                raise ValueError(f"{path}: tensor {name!r}: data offsets {begin}..{end} do not"
                                 f" fit its shape {shape} ({info['dtype']}) or the file")
            f.seek(data_start + begin)
            buf = bytearray(f.read(end - begin))
            if numel == 0:
                t = torch.empty(shape, dtype=dtype)
            else:
                t = torch.frombuffer(buf, dtype=dtype).reshape(shape)
            if sys.byteorder != "little" and itemsize > 1:
                t = t.clone().view(torch.uint8).reshape(*shape, itemsize).flip(-1) \
                    .contiguous().view(dtype).reshape(shape)
            out[name] = t
    return out


def load_reference_state_dict(path) -> Dict[str, torch.Tensor]:
    """The tensors of an authors' checkpoint: ``.safetensors`` or a torch file (Lightning
    ``.ckpt``, ``.pt``, ``.pth``), read without executing code from the file.

    Torch files are read with ``torch.load(weights_only=True)``; a Lightning checkpoint's
    ``state_dict`` is returned (other entries: optimiser, callbacks, ... are ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {path}: no such file")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        try:
            from safetensors.torch import load_file
        except ImportError:
            return read_safetensors(path)
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as e:  # noqa: BLE001 - safetensors' own error type for a bad file
            raise ValueError(f"--checkpoint {path}: not a readable safetensors file ({e})") from e
    obj = load_weights(path, label=f"--checkpoint {path}")
    state = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: no state dict found (got {type(state).__name__})")
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{path}: the state dict has non-tensor entries {bad[:8]}")
    return dict(state)


# -------------------------------------------------------------------- target configuration
def _canonical_format(fmt: str) -> str:
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {sorted(FORMATS)}")
    return fmt


def target_config(fmt: str, config=None, log_offset: Optional[float] = None) -> dict:
    """Our training configuration for a converted checkpoint.

    ``config``: None (the paper YAML of the format, ``PAPER_CONF``: ``pretrain_binaural.yaml``,
    ``pretrain_foa.yaml``; mono = the binaural one with ``frontend: mono``), a YAML path or a
    mapping.  The decoder's mask token is made a fixed buffer (``learnable_mask_token: false``)
    and its LayerNorm eps 1e-5 (``norm_eps``), as in the authors' code.  ``log_offset`` overrides
    ``frontend_conf.log_offset``.  ``hear_conf`` (read by :func:`espnet2_gram.hear.load_model`)
    gets ``compat: ours`` unless set, and the authors' HEAR runtime log offset of the format.
    """
    fmt = _canonical_format(fmt)
    paper_file, frontend = FORMATS[fmt]
    if config is None:
        path = PAPER_CONF / paper_file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: paper configuration missing; pass config=...")
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
        conf["frontend"] = frontend
    elif isinstance(config, dict):
        conf = json.loads(json.dumps(config))  # deep copy of plain data
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        conf = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if conf.get("frontend", "binaural") != frontend:
        raise ValueError(f"format {fmt} needs frontend {frontend!r}, the configuration has"
                         f" {conf.get('frontend')!r}")
    conf["frontend"] = frontend
    conf.setdefault("decoder", "mwmae")
    if conf["decoder"] != "mwmae":
        raise ValueError(f"GRAM-T checkpoints have an MW-MAE decoder; the configuration asks for"
                         f" decoder {conf['decoder']!r}")
    # The authors' decoder: a fixed mask token and LayerNorm eps 1e-5 (timm's default).
    conf["decoder_conf"] = {**(conf.get("decoder_conf") or {}), "learnable_mask_token": False,
                            "norm_eps": 1e-5}
    if log_offset is not None:
        conf["frontend_conf"] = {**(conf.get("frontend_conf") or {}),
                                 "log_offset": float(log_offset)}
    conf["hear_conf"] = {"compat": "ours", **(conf.get("hear_conf") or {}),
                         "authors_log_offset": AUTHORS_HEAR_LOG_OFFSET[fmt]}
    return conf


def build_target_model(config: dict, meta: bool = False):
    """Our ``ESPnetGRAMModel`` for a configuration mapping (on the meta device if ``meta``)."""
    from espnet2_gram.tasks.gram import build_gram_model

    if meta:
        with torch.device("meta"):
            return build_gram_model(config)
    return build_gram_model(config)


def reference_key_shapes(model) -> Dict[str, Tuple[int, ...]]:
    """The GRAM-T-relative reference keys (and shapes) that a checkpoint for ``model``'s
    configuration must hold (the optional feature-extractor buffers excluded)."""
    enc, dec = model.encoder, model.decoder
    d, n, hidden = enc.dim, enc.num_patches, enc.blocks[0].mlp.fc1.out_features
    shapes = {
        "patch_embed.proj.weight": tuple(enc.patch_embed.proj.weight.shape),
        "patch_embed.proj.bias": (d,),
        "cls_token": (1, 1, d),
        "encoder.pos_embedding": (1, n + 1, d),
        "encoder.ln.weight": (d,),
        "encoder.ln.bias": (d,),
    }
    for i in range(enc.depth):
        p = f"encoder.layers.encoder_layer_{i}."
        shapes.update({
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "self_attention.in_proj_weight": (3 * d, d),
            p + "self_attention.in_proj_bias": (3 * d,),
            p + "self_attention.out_proj.weight": (d, d),
            p + "self_attention.out_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.0.weight": (hidden, d), p + "mlp.0.bias": (hidden,),
            p + "mlp.3.weight": (d, hidden), p + "mlp.3.bias": (d,),
        })
    dd = dec.dim
    dhidden = dec.blocks[0].mlp.fc1.out_features
    shapes.update({
        "decoder_embed.weight": (dd, d), "decoder_embed.bias": (dd,),
        "mask_token": (1, 1, dd),
        "decoder_pos_embed": (1, dec.num_patches, dd),
        "decoder_norm.weight": (dd,), "decoder_norm.bias": (dd,),
        "spec_pred.0.weight": (dec.patch_dim, dd), "spec_pred.0.bias": (dec.patch_dim,),
    })
    for i, blk in enumerate(dec.blocks):
        p = f"decoder_blocks.{i}."
        shapes.update({
            p + "norm1.weight": (dd,), p + "norm1.bias": (dd,),
            p + "wmha.qkv.weight": (3 * dd, dd), p + "wmha.qkv.bias": (3 * dd,),
            p + "wmha.proj.weight": (dd, dd), p + "wmha.proj.bias": (dd,),
            p + "norm2.weight": (dd,), p + "norm2.bias": (dd,),
            p + "mlp.fc1.weight": (dhidden, dd), p + "mlp.fc1.bias": (dhidden,),
            p + "mlp.fc2.weight": (dd, dhidden), p + "mlp.fc2.bias": (dd,),
        })
        for h, w in enumerate(blk.attn.windows):
            if w > 0:
                shapes[p + f"wmha.attn_heads.{h}.relative_position_bias_table"] = (2 * w - 1, 1)
                shapes[p + f"wmha.attn_heads.{h}.relative_position_index"] = (w, w)
    return shapes


# ----------------------------------------------------------------------------- conversion
def _split_root(keys) -> Tuple[str, str]:
    """(prefix of the GRAM-T module, prefix of the runtime wrapper around it)."""
    roots = sorted(k[: -len(_ROOT_MARKER)] for k in keys if k.endswith(_ROOT_MARKER)
                   and (len(k) == len(_ROOT_MARKER) or k[-len(_ROOT_MARKER) - 1] == "."))
    if len(roots) != 1:
        raise ValueError(
            "cannot find the GRAM-T module in the checkpoint: expected exactly one key ending"
            f" in {_ROOT_MARKER!r}, found {len(roots)}"
            + (f" ({roots[:4]})" if roots else f"; its keys start with {sorted(keys)[:6]}")
        )
    root = roots[0]
    wrapper = root[: -len("model.")] if root.endswith("model.") else root
    return root, wrapper


def _is_meta(t: torch.Tensor) -> bool:
    return t.device.type == "meta"


def _tolerance(t: torch.Tensor) -> float:
    return 1e-4 if t.dtype in (torch.float32, torch.float64) else 2e-2


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, note: str = "",
             alternatives: Optional[Dict[str, torch.Tensor]] = None) -> dict:
    """Compare a checkpoint tensor (in its own dtype) with our values."""
    if _is_meta(got):
        return {"name": name, "ok": None, "max_abs_diff": None,
                "note": "not compared (meta tensors)"}
    tol = _tolerance(got)
    got = got.double()
    diff = float((got - want.double()).abs().max()) if got.numel() else 0.0
    ok = diff <= tol
    check = {"name": name, "ok": ok, "max_abs_diff": diff, "note": note}
    if not ok and alternatives:
        close = [k for k, alt in alternatives.items() if alt.shape == got.shape
                 and float((got - alt.double()).abs().max()) <= tol]
        check["note"] = (note + "; " if note else "") + (
            f"matches the convention: {', '.join(close)}" if close else
            "matches none of the alternative conventions tried")
    return check


def _pos_embed_checks(name: str, ref: torch.Tensor, dim: int, grid, cls_rows: int) -> dict:
    from espnet2_gram.gram.patching import sincos_2d

    ours = sincos_2d(dim, grid)
    want = torch.cat([torch.zeros(cls_rows, dim), ours])[None]
    rows, cols = grid
    swapped = torch.cat([ours[:, dim // 2:], ours[:, : dim // 2]], dim=1)
    time_major = ours.reshape(rows, cols, dim).transpose(0, 1).reshape(rows * cols, dim)
    alts = {
        "frequency in the first half": torch.cat([torch.zeros(cls_rows, dim), swapped])[None],
        "time-major token order": torch.cat([torch.zeros(cls_rows, dim), time_major])[None],
    }
    note = ("2-D sin-cos, first half time column, second half frequency row, frequency-major"
            " tokens" + ("; CLS row zero" if cls_rows else ""))
    return _compare(name, ref, want, note, alts)


def _rel_pos_flat(block: int, windows, tables: Dict[int, torch.Tensor],
                  indices: Dict[int, torch.Tensor]) -> Tuple[torch.Tensor, List[bool]]:
    """Our flat ``rel_pos_bias`` of one decoder block from the authors' per-head tables."""
    parts, flipped = [], []
    for h, w in enumerate(windows):
        if w == 0:
            continue
        table = tables[h].reshape(-1)
        pos = torch.arange(w)
        ours_k = (pos[None, :] - pos[:, None] + w - 1).reshape(-1)  # j - i + w - 1
        idx = indices.get(h)
        if idx is None or _is_meta(idx):
            idx = pos[:, None] - pos[None, :] + w - 1  # the authors' convention: i - j + w - 1
        idx = idx.reshape(-1).long()
        if int(idx.min()) < 0 or int(idx.max()) >= 2 * w - 1:
            raise ValueError(f"decoder block {block} head {h}: relative_position_index out of"
                             f" range 0..{2 * w - 2}")
        source = torch.full((2 * w - 1,), -1, dtype=torch.long)
        source[ours_k] = idx
        # every (i, j) with the same offset j - i must read the same reference entry
        if not torch.equal(source[ours_k], idx) or bool((source < 0).any()):
            raise ValueError(f"decoder block {block} head {h}: relative_position_index is not a"
                             " function of the offset j - i; cannot convert")
        parts.append(table[source])
        flipped.append(bool(torch.equal(source, torch.arange(2 * w - 2, -1, -1))))
    if not parts:
        return torch.zeros(0), flipped
    return torch.cat(parts), flipped


def convert_state_dict(ref_state: Dict[str, torch.Tensor], fmt: str = "binaural", config=None,
                       allow_missing_decoder: bool = False,
                       model=None) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Map an authors' state dict onto our model of the format's configuration.

    ``ref_state``: the tensors of a checkpoint (any wrapper prefix; see module docstring).
    ``config``: our configuration (see :func:`target_config`); ``model``: an already built
    target model (its configuration is then used; meta tensors are fine).
    Returns ``(state_dict, report)``; ``state_dict`` has exactly our model's keys and shapes
    (the decoder's omitted when it is missing and ``allow_missing_decoder``).  Raises
    ``ValueError`` listing unknown keys, missing keys and wrong shapes.
    """
    fmt = _canonical_format(fmt)
    if model is None:
        model = build_target_model(target_config(fmt, config), meta=True)
    rel, origin, unknown, root = _relative_keys(ref_state)
    decoder_missing = _check_layout(fmt, rel, origin, unknown, root, reference_key_shapes(model),
                                    allow_missing_decoder)
    report = {
        "format": fmt, "prefix": root, "mapped": [], "dropped": [], "checks": [],
        "source_dtypes": sorted({str(v.dtype).replace("torch.", "") for v in rel.values()
                                 if v.is_floating_point()}),
        "decoder": "missing: kept the fresh initialisation" if decoder_missing else "converted",
        "rel_pos_tables_reversed": None,
    }
    out = _convert_tensors(rel, origin, model, report, decoder_missing)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not (decoder_missing and k.startswith("decoder."))}
    got = {k: tuple(v.shape) for k, v in out.items()}
    if want != got:  # a bug in the key map, not in the checkpoint
        raise RuntimeError(f"internal key map error: missing {sorted(set(want) - set(got))[:8]},"
                           f" extra {sorted(set(got) - set(want))[:8]}, shapes "
                           f"{[k for k in set(want) & set(got) if want[k] != got[k]][:8]}")
    return out, report


def _relative_keys(ref_state: Dict[str, torch.Tensor]) -> tuple:
    """``(GRAM-T-relative key -> tensor, relative key -> checkpoint key, unknown checkpoint
    keys, the prefix of the GRAM-T module)`` of a checkpoint's tensors."""
    root, wrapper = _split_root(ref_state.keys())
    rel: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    unknown = []
    for key, value in ref_state.items():
        if key.startswith(root):
            sub = key[len(root):]
        elif key.startswith(wrapper) and key[len(wrapper):].startswith("mel_spec.melspec."):
            sub = key[len(wrapper):]  # the HEAR runtime's own feature extractor
        else:
            unknown.append(key)
            continue
        if match_key(sub) is None:
            unknown.append(key)
        else:
            rel[sub], origin[sub] = value, key
    return rel, origin, unknown, root


def _listed(items: list, limit: int = 10) -> str:
    return f"{items[:limit]}" + (" ..." if len(items) > limit else "")


def _check_layout(fmt: str, rel: dict, origin: dict, unknown: list, root: str,
                  expected_ref: dict, allow_missing_decoder: bool) -> bool:
    """Refuse a checkpoint whose keys or shapes are not the format's GRAM-T layout (a
    ``ValueError`` listing unknown keys, missing keys and wrong shapes); returns whether the
    decoder is missing (allowed by ``allow_missing_decoder``)."""
    required = set(expected_ref)
    # matched by a row but not part of this configuration (e.g. a 13th layer, a window table
    # for a head that is global here): as wrong as an unknown key
    unknown = unknown + [origin[k] for k in rel if k not in required
                         and KEY_MAP[match_key(k)[0]][2] != "feature_buffer"]
    missing = sorted(required - set(rel))
    decoder_missing = False
    if missing and allow_missing_decoder and all(_is_decoder_key(k) for k in missing) \
            and not any(_is_decoder_key(k) for k in rel):
        decoder_missing, missing = True, []
    shapes = sorted(k for k in required & set(rel) if tuple(rel[k].shape) != expected_ref[k])
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown reference key(s) {_listed(sorted(unknown))}")
    if missing:
        problems.append(f"{len(missing)} missing reference key(s) "
                        f"{_listed([root + k for k in missing])}")
    if shapes:
        problems.append("wrong shapes: " + ", ".join(
            f"{origin[k]} {tuple(rel[k].shape)} (expected {expected_ref[k]})"
            for k in shapes[:10]) + (" ..." if len(shapes) > 10 else ""))
    if problems:
        channels = expected_ref["patch_embed.proj.weight"][1]  # the frontend's feature channels
        got = rel.get("patch_embed.proj.weight")
        hint = ""
        if got is not None and got.dim() == 4 and got.shape[1] != channels:
            hint = (f" (the checkpoint has {got.shape[1]} input channels; format {fmt} expects"
                    f" {channels})")
        raise ValueError(f"checkpoint does not match the {fmt} GRAM-T layout{hint}: "
                         + "; ".join(problems))
    return decoder_missing


def _convert_tensors(rel: dict, origin: dict, model, report: dict,
                     decoder_missing: bool) -> Dict[str, torch.Tensor]:
    """Our state dict from the relative keys, each by its ``KEY_MAP`` transform; what is
    mapped, dropped and checked goes into ``report``."""
    out: Dict[str, torch.Tensor] = {}
    tables: Dict[int, Dict[int, torch.Tensor]] = {}
    indices: Dict[int, Dict[int, torch.Tensor]] = {}
    enc, dec = model.encoder, model.decoder
    for sub in sorted(rel):
        value = rel[sub]
        row, groups = match_key(sub)
        _, template, transform = KEY_MAP[row]
        if transform == "copy":
            target = template.format(*groups)
            out[target] = value.float() if value.is_floating_point() else value
            report["mapped"].append({"reference": origin[sub], "ours": target,
                                     "transform": transform})
        elif transform == "rel_pos_table":
            tables.setdefault(int(groups[0]), {})[int(groups[1])] = value.float()
            report["mapped"].append({"reference": origin[sub],
                                     "ours": template.format(*groups), "transform": transform})
        elif transform == "rel_pos_index":
            indices.setdefault(int(groups[0]), {})[int(groups[1])] = value
            report["dropped"].append({"reference": origin[sub], "reason": "static relative"
                                      " position index (used to re-index the bias table)"})
        elif transform == "check_pos_embed":
            if sub == "encoder.pos_embedding":
                check = _pos_embed_checks(sub, value, enc.dim, enc.grid, 1)
            else:
                check = _pos_embed_checks(sub, value, dec.dim, dec.grid, 0)
            report["checks"].append(check)
            report["dropped"].append({"reference": origin[sub], "reason": "fixed sin-cos"
                                      " positions, recomputed by our model"})
        elif transform == "feature_buffer":
            report["dropped"].append({"reference": origin[sub], "reason": "feature-extractor"
                                      " buffer, recomputed by our frontend"})
            report["checks"].extend(_feature_buffer_checks(sub, value, model.frontend))
    flipped_all = []
    for i, blk in enumerate(dec.blocks if not decoder_missing else []):
        flat, flipped = _rel_pos_flat(i, blk.attn.windows, tables.get(i, {}), indices.get(i, {}))
        if flat.numel():
            out[f"decoder.blocks.{i}.attn.window_bias.rel_pos_bias"] = flat
        flipped_all.extend(flipped)
    if flipped_all:
        report["rel_pos_tables_reversed"] = all(flipped_all) if (
            all(flipped_all) or not any(flipped_all)) else "mixed"
    return out


def _feature_buffer_checks(sub: str, value: torch.Tensor, frontend) -> List[dict]:
    name = sub.split(".", 1)[1] if sub.startswith("melspec.") else sub[len("mel_spec.melspec."):]
    if name == "spectrogram.window":
        want = torch.hann_window(frontend.n_fft)
        if tuple(value.shape) != tuple(want.shape):
            return [{"name": sub, "ok": False, "max_abs_diff": None,
                     "note": f"shape {tuple(value.shape)} vs our n_fft {frontend.n_fft}"}]
        return [_compare(sub, value, want, "periodic Hann window")]
    if name == "mel_scale.fb":
        from espnet2_gram.frontend.spatial_features import mel_filterbank

        want = mel_filterbank(frontend.n_fft // 2 + 1, frontend.fmin, frontend.fmax,
                              frontend.n_mels, frontend.fs)
        if tuple(value.shape) != tuple(want.shape):
            return [{"name": sub, "ok": False, "max_abs_diff": None,
                     "note": f"shape {tuple(value.shape)} vs ours {tuple(want.shape)}"}]
        return [_compare(sub, value, want, "HTK mel filterbank, no normalisation")]
    return []


def failed_checks(report: dict) -> List[dict]:
    return [c for c in report["checks"] if c["ok"] is False]


# ---------------------------------------------------------------------------- packing
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2 ** 20), b""):
            h.update(chunk)
    return h.hexdigest()


CONVENTIONS = """\
## Conventions (see docs/conversion.md of espnet2_gram)

* Features: log-mel with the additive offset of this config (`frontend_conf.log_offset`):
  the authors trained with 1e-5 (binaural, mono) and 1e-6 (Ambisonics); their HEAR runtime
  uses `torch.finfo(float32).eps` = 1.19e-7 for binaural/mono log-mels (1e-6 for Ambisonics),
  recorded as `hear_conf.authors_log_offset` = {hear_offset:g} and used only by
  `espnet2_gram.hear.load_model(..., compat="authors")` (or `hear_conf.compat: authors`),
  which reproduces the authors' HEAR runtime; the default HEAR behaviour differs (see
  docs/hear.md of espnet2_gram).
* Each 200-frame chunk is z-scored over (C, F, T) (LayerNorm without affine), as in the
  authors' code; the last chunk is zero-padded (log domain) first.
* `raw` frames: {rows} rows x {dim} = {raw} values per time column (6144 per 80 ms at the
  paper sizes), row 0 first, padding columns dropped (as the authors' HEAR runtime). The
  authors' HEAR scene embedding is the mean of the raw frames ({raw} values) computed with
  the runtime's log offset: `get_scene_embeddings` with `compat="authors"`.
* The decoder's mask token is the authors' fixed (never trained) buffer, and its LayerNorms
  use the authors' eps 1e-5 (`decoder_conf.norm_eps`; our own models use 1e-6).
* FOA input: ACN (W, Y, Z, X), SN3D; feature channels [log-mel W, Y, Z, X, I_y, I_z, I_x].
"""


def _check_row(c: dict) -> str:
    result = {True: "ok", False: "MISMATCH", None: "not compared"}[c["ok"]]
    diff = "" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.2e}"
    return f"| `{c['name']}` | {result} | {diff} | {c['note']} |"


def _card(fmt: str, src: Path, sha: str, report: dict, config: dict, model) -> str:
    from espnet2_gram.pretrained.packing import architecture_rows, card_header

    raw = model.encoder.raw_frame_dim()
    checks = "\n".join(_check_row(c) for c in report["checks"]) or "| (none) | | | |"
    return (
        card_header("other") + f"# GRAM-T ({fmt}), converted from the authors' checkpoint\n\n"
        "The GRAM-T weights released by the GRAM authors, converted to `espnet2_gram`\n"
        "(`python -m espnet2_gram.bin.convert_gramt`). The license of the weights is that of\n"
        "the source checkpoint (not determined by the converter).\n\n"
        "| item | value |\n|---|---|\n"
        f"| source checkpoint | `{src.name}` (sha256 `{sha}`) |\n"
        f"| key prefix of the GRAM-T module | `{report['prefix'] or '(none)'}` |\n"
        f"| source dtypes | {', '.join(report['source_dtypes'])} (stored as float32) |\n"
        f"| tensors mapped / dropped | {len(report['mapped'])} / {len(report['dropped'])} |\n"
        f"| decoder | {report['decoder']} |\n"
        f"| relative position tables reversed | {report['rel_pos_tables_reversed']} |\n"
        + architecture_rows(config, model) + "\n"
        "## Checks of the dropped fixed buffers\n\n| buffer | result | max abs diff | note |\n"
        f"|---|---|---|---|\n{checks}\n\n"
        "## Use\n\n```python\nfrom espnet2_gram.pretrained.packing import load_gram\n"
        "model = load_gram('this/directory')            # ESPnetGRAMModel\n"
        f"emb = model.extract(wave, strategy='raw')      # (B, frames, {raw})\n```\n\n"
        + CONVENTIONS.format(rows=model.encoder.grid[0], dim=model.encoder.dim, raw=raw,
                             hear_offset=config["hear_conf"]["authors_log_offset"])
    )


def convert_checkpoint(src, out_dir, fmt: str = "binaural", config=None,
                       log_offset: Optional[float] = None, allow_missing_decoder: bool = False,
                       force: bool = False, archive: bool = True) -> Tuple[Path, dict]:
    """Convert an authors' checkpoint into a packed model directory (and ``.zip``).

    Builds our model from the format's paper configuration (or ``config``), loads the
    converted weights strictly and packs ``config.yaml`` + ``model.pth`` + ``README.md``.  A
    failed check of the dropped fixed buffers (positions, mel filterbank) is an error unless
    ``force``.  Returns ``(out_dir, report)``.
    """
    from espnet2_gram.pretrained.packing import (CARD, check_state_dict, pack_gram,
                                                 write_espnet_archive)

    src, out_dir = Path(src), Path(out_dir)
    fmt = _canonical_format(fmt)
    conf = target_config(fmt, config, log_offset)
    ref = load_reference_state_dict(src)
    model = build_target_model(conf)
    state, report = convert_state_dict(ref, fmt, model=model,
                                       allow_missing_decoder=allow_missing_decoder)
    del ref
    bad = failed_checks(report)
    if bad and not force:
        raise ValueError("the checkpoint's fixed buffers differ from ours (pass force to convert"
                         " anyway): " + "; ".join(f"{c['name']}: max |diff| "
                                                  f"{c['max_abs_diff']}, {c['note']}" for c in bad))
    if report["decoder"] != "converted":
        fresh = model.state_dict()
        state.update({k: v for k, v in fresh.items() if k.startswith("decoder.")})
    check_state_dict(model, state, str(src))
    model.load_state_dict(state, strict=True)
    with tempfile.TemporaryDirectory(prefix="gramt_convert_") as tmp:
        exp = Path(tmp)
        (exp / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
        torch.save(model.state_dict(), exp / "model.pth")
        del state
        pack_gram(exp, out_dir, model_file=exp / "model.pth", archive=False)
    with naming(out_dir):
        (out_dir / CARD).write_text(_card(fmt, src, _sha256(src), report, conf, model),
                                    encoding="utf-8")
        (out_dir / "conversion_report.json").write_text(json.dumps(report, indent=1),
                                                         encoding="utf-8")
    if archive:
        write_espnet_archive(out_dir)
    return out_dir, report


__all__ = [
    "KEY_MAP", "FORMATS", "AUTHORS_HEAR_LOG_OFFSET", "load_reference_state_dict",
    "read_safetensors", "target_config", "build_target_model", "reference_key_shapes", "convert_state_dict", "convert_checkpoint",
    "failed_checks", "match_key",
]
