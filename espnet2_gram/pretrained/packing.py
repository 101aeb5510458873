"""Packed GRAM models: a directory in the Hugging Face style (``config.yaml``, ``model.pth``,
``README.md`` model card, ``weights.yaml`` saying which epoch the weights come from, optional
``feats_stats.npz``) and the same files as an ESPnet packed
archive (``.zip`` with ``meta.yaml``: ``model_file`` and ``train_config``, as ``espnet2.bin.pack``
writes them). ``load_gram`` reads either, or a training directory, with a strict key check.

An archive is read in memory, never extracted, and refused whole when a member could escape an
extraction folder (an absolute path, a ``..`` component, a symbolic link); weights are loaded
with ``torch.load(weights_only=True)`` (:mod:`espnet2_gram.utils.safe_load`).
"""

import argparse
import io
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import yaml

from espnet2_gram.utils.cli import naming
from espnet2_gram.utils.safe_load import load_weights

CONFIG = "config.yaml"
WEIGHTS = "model.pth"
CARD = "README.md"
STATS = "feats_stats.npz"
META = "meta.yaml"
WEIGHTS_RECORD = "weights.yaml"
CHECKPOINT_PREFERENCE = ("valid.loss.best.pth", "valid.loss.ave.pth", "latest.pth")


class PackedModelError(ValueError):
    """A packed model that is broken or does not match its configuration; the message names
    the file (and lists the keys)."""


class UnsafeArchiveError(PackedModelError):
    """An archive with a member that could be written outside its extraction folder."""


def _model_file_of(exp_dir: Path) -> Path:
    for name in CHECKPOINT_PREFERENCE:
        if (exp_dir / name).exists():
            return exp_dir / name
    epochs = sorted(exp_dir.glob("*epoch.pth"), key=lambda p: int(p.name.split("epoch")[0]))
    if epochs:
        return epochs[-1]
    raise FileNotFoundError(f"{exp_dir}: no model file ({', '.join(CHECKPOINT_PREFERENCE)}"
                            " or <N>epoch.pth)")


def weights_record(model_file: Path, config: dict) -> dict:
    """Which weights a pack holds: the checkpoint file (links followed), its epoch and its
    optimiser steps where the name (``<N>epoch.pth``) and the config tell them, else null."""
    name = Path(model_file).resolve().name
    match = re.fullmatch(r"(\d+)epoch\.pth", name)
    epoch = int(match.group(1)) if match else None
    iters = config.get("num_iters_per_epoch")
    steps = epoch * iters // int(config.get("accum_grad") or 1) if epoch is not None and iters \
        else None
    return {"weights": name, "epoch": epoch, "max_epoch": config.get("max_epoch"),
            "steps": steps}


def pretrain_steps(packed_dir) -> Optional[int]:
    """The pretraining steps of a packed model's weights (``weights.yaml``), None if unknown."""
    path = Path(packed_dir) / WEIGHTS_RECORD
    if not path.is_file():
        return None
    record = yaml.safe_load(path.read_text())
    steps = record.get("steps") if isinstance(record, dict) else None
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 0):
        raise PackedModelError(f"{path}: steps = {steps!r}; expected an integer >= 0 or null")
    return steps


def _known(value) -> str:
    return "?" if value is None else str(value)


def card_header(license: str) -> str:
    """The model card's YAML front matter (the Hugging Face model-card metadata)."""
    return (f"---\nlicense: {license}\nlibrary_name: espnet\ntags:\n- espnet\n- audio\n"
            "- self-supervised-learning\n- spatial-audio\n- gram\n---\n\n")


def architecture_rows(config: dict, model) -> str:
    """The model card's table rows of the input format, the features and the encoder."""
    front, enc = model.frontend, config.get("encoder_conf", {})
    params = sum(p.numel() for p in model.encoder.parameters())
    return (
        f"| input format | {config.get('frontend', '?')} ({front.in_channels} channels at"
        f" {front.fs} Hz) |\n"
        f"| features | {front.out_channels} x {front.n_mels} mel channels, hop"
        f" {front.hop_length} samples, log offset {front.log_offset:g} |\n"
        f"| encoder | ViT {enc.get('depth')} x {enc.get('dim')}, {enc.get('heads')} heads,"
        f" patches {enc.get('patch_size')}, {params / 1e6:.2f} M parameters |\n")


def _model_card(config: dict, model, source: Path, extra: str, record: dict) -> str:
    return (
        card_header("cc-by-4.0") + f"# GRAM ({config.get('frontend', '?')})\n\n"
        "A GRAM spatial audio encoder (multi-channel masked autoencoder) trained with\n"
        "`espnet2_gram` (`python -m espnet2_gram.bin.gram_train`).\n\n"
        "| item | value |\n|---|---|\n" + architecture_rows(config, model) +
        f"| trained from | `{source}` |\n"
        f"| weights | `{record['weights']}`: epoch {_known(record['epoch'])} of"
        f" {_known(record['max_epoch'])}, {_known(record['steps'])} optimiser steps |\n\n"
        "## Use\n\n```python\nimport soundfile as sf\nimport torch\n\n"
        "from espnet2_gram.pretrained.packing import load_gram\n\n"
        "model = load_gram('this/directory')  # ESPnetGRAMModel\n"
        f"audio, fs = sf.read('clip.wav', dtype='float32', always_2d=True)  # {model.frontend.fs}"
        f" Hz, {model.frontend.in_channels} channel(s) or mono\n"
        "emb = model.extract(torch.from_numpy(audio)[None], strategy='mean')  # (1, dim)\n"
        "frames = model.extract(torch.from_numpy(audio)[None], strategy='raw')"
        "  # (1, frames, rows * dim)\n```\n\n"
        "As an ESPnet frontend: `frontend: gram` with `frontend_conf: {model_path: this/directory}`"
        " (the trained model then carries the GRAM weights and architecture itself);"
        " through the HEAR API: `espnet2_gram.hear.load_model('this/directory')`.\n"
        f"{extra}"
    )


def pack_gram(exp_dir, out_dir, model_file=None, stats_file=None, card_extra: str = "",
              archive: bool = True) -> Path:
    """Pack a GRAM training directory into ``out_dir`` (and ``out_dir.zip``)."""
    import torch

    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir)
    config_path = exp_dir / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a GRAM training directory")
    model_file = Path(model_file) if model_file else _model_file_of(exp_dir)
    if stats_file and not Path(stats_file).is_file():
        raise FileNotFoundError(f"--stats_file {stats_file}: no such file")
    model = load_gram(config_path, model_file=model_file)  # strict: refuse a broken pack
    config = yaml.safe_load(config_path.read_text())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with naming(tmp / WEIGHTS):
            shutil.copyfile(config_path, tmp / CONFIG)
            weights = io.BytesIO()  # torch reports a failed file write without its name
            torch.save(model.state_dict(), weights)
            (tmp / WEIGHTS).write_bytes(weights.getbuffer())
            if stats_file:
                shutil.copyfile(stats_file, tmp / STATS)
            record = weights_record(model_file, config)
            (tmp / WEIGHTS_RECORD).write_text(yaml.safe_dump(record, sort_keys=False))
            (tmp / CARD).write_text(_model_card(config, model, exp_dir, card_extra, record))
        tmp.chmod(0o755)
        out_dir.with_suffix(".zip").unlink(missing_ok=True)  # never beside a newer directory
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if archive:
        write_espnet_archive(out_dir)
    return out_dir


def write_espnet_archive(packed_dir: Path) -> Path:
    """``<packed_dir>.zip`` in ESPnet's packed format (meta.yaml + files)."""
    from espnet2.main_funcs.pack_funcs import pack

    packed_dir = Path(packed_dir)
    options = [packed_dir / n for n in (CARD, STATS, WEIGHTS_RECORD)
               if (packed_dir / n).exists()]
    outpath = packed_dir.with_suffix(".zip")
    tmp = outpath.with_name(f".{outpath.name}.tmp.zip")
    try:
        with naming(tmp):
            pack(files={"model_file": packed_dir / WEIGHTS},
                 yaml_files={"train_config": packed_dir / CONFIG}, option=options, outpath=tmp)
        tmp.replace(outpath)
    finally:
        tmp.unlink(missing_ok=True)
    return outpath


def _member_problem(info: zipfile.ZipInfo) -> str:
    """Why a member could escape an extraction folder ('' when it cannot)."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a path with a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return ""


def _meta_member(path: Path, meta, names, section: str, key: str) -> str:
    """The archive member that ``meta.yaml`` names as ``section: key``."""
    entries = meta.get(section) if isinstance(meta, dict) else None
    value = entries.get(key) if isinstance(entries, dict) else None
    if not isinstance(value, str):
        raise PackedModelError(f"{path}: {META} lacks {section}: {key}")
    name = value.lstrip("/")  # zipfile stores an absolute path without its leading '/'
    if name not in names:
        raise PackedModelError(f"{path}: {META} names {value!r} ({section}: {key}), which the"
                               " archive lacks")
    return name


def read_archive(path: Path) -> tuple:
    """``(config dict, weights bytes, config label, weights label)`` of an ESPnet packed
    ``.zip``, read without extracting it (labels: ``<zip>:<member>``, for messages)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set()
            for info in z.infolist():
                problem = _member_problem(info)
                if problem:
                    raise UnsafeArchiveError(f"{path}: member {info.filename!r} is {problem};"
                                             " the archive is refused (nothing was extracted)")
                names.add(info.filename)
            if META not in names:
                raise PackedModelError(f"{path}: no {META}; not an ESPnet packed model")
            meta = yaml.safe_load(z.read(META))
            config_name = _meta_member(path, meta, names, "yaml_files", "train_config")
            weights_name = _meta_member(path, meta, names, "files", "model_file")
            config_label = f"{path}:{config_name}"
            return (_parse_config(z.read(config_name), config_label), z.read(weights_name),
                    config_label, f"{path}:{weights_name}")
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise PackedModelError(f"{path}: not a readable zip archive (truncated or corrupt?):"
                               f" {e}") from e
    except yaml.YAMLError as e:
        raise PackedModelError(f"{path}: {META} is not valid YAML ({e})") from e


def _parse_config(text, label: str) -> dict:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PackedModelError(f"{label}: not valid YAML ({e})") from e
    if not isinstance(config, dict):
        raise PackedModelError(f"{label}: expected a mapping of training options")
    return config


def model_sources(path: Path, model_file: Optional[Path], random_init: bool) -> tuple:
    """``(config dict, weights path or bytes, config label, weights label)`` of a packed dir,
    an ESPnet ``.zip``, a config.yaml or a .pth."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such GRAM model (a packed directory, a .zip,"
                                " a training directory or a .pth)")
    if path.suffix == ".zip" and path.is_file():
        return read_archive(path)
    if path.is_dir():
        config_path = path / CONFIG
        weights = model_file or (path / WEIGHTS if (path / WEIGHTS).exists()
                                 else _model_file_of(path))
    elif path.suffix == ".pth":
        config_path, weights = path.parent / CONFIG, path
    elif model_file is None:
        raise ValueError(f"{path}: give the model file as well (model_file=...)")
    else:
        config_path, weights = path, model_file
    weights = Path(weights)
    for p in (config_path,) if random_init else (config_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (loading GRAM model {path})")
    return (_parse_config(config_path.read_text(encoding="utf-8"), str(config_path)),
            weights, str(config_path), str(weights))


def load_gram(path, model_file=None, device: str = "cpu", random_init: bool = False):
    """An ``ESPnetGRAMModel`` from a packed directory / archive or a training directory.

    Missing or unexpected weights are an error listing them (ESPnet's own loader ignores
    them silently). ``random_init``: the same architecture with its initial (untrained)
    weights, drawn from torch's current random state (the "random init" baseline).
    """
    return load_gram_and_config(path, model_file, device, random_init)[0]


def load_gram_and_config(path, model_file=None, device: str = "cpu",
                         random_init: bool = False) -> tuple:
    """``(model, training config dict)``, as :func:`load_gram` loads them."""
    from espnet2_gram.tasks.gram import build_gram_model

    config, weights, config_label, label = model_sources(
        Path(path), Path(model_file) if model_file else None, random_init)
    try:
        model = build_gram_model(config)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise PackedModelError(f"{config_label}: does not build a GRAM model"
                               f" ({type(e).__name__}: {e})") from e
    if random_init:
        return model.to(device).eval(), config
    if isinstance(weights, bytes):
        weights = io.BytesIO(weights)
    state = load_weights(weights, device, label=label)
    check_state_dict(model, state, label)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config


def check_state_dict(model, state: dict, source: str) -> None:
    """Raise ``PackedModelError`` unless ``state`` has exactly the model's keys and shapes."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in state.values()):
        raise PackedModelError(f"{source}: not a state dict (a mapping of names to tensors)")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(f"unexpected keys {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if shapes:
        problems.append("shape mismatches " + ", ".join(
            f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:8]))
    if problems:
        raise PackedModelError(f"{source} does not match its configuration: "
                               + "; ".join(problems))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Pack a GRAM training directory")
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--model_file", help="default: valid.loss.best.pth, else the latest")
    p.add_argument("--stats_file", help="feats_stats.npz of stage 5 to ship along")
    args = p.parse_args(argv)
    out = pack_gram(args.exp_dir, args.out_dir, args.model_file, args.stats_file)
    print(f"packed {out} and {out.with_suffix('.zip')}")
