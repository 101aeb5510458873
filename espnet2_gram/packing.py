"""Packed GRAM models: a directory in the Hugging Face style (``config.yaml``, ``model.pth``,
``README.md`` model card, optional ``feats_stats.npz``) and the same files as an ESPnet packed
archive (``.zip`` with ``meta.yaml``: ``model_file`` and ``train_config``, as ``espnet2.bin.pack``
writes them). ``load_gram`` reads either, or a training directory, with a strict key check.
"""

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import yaml

CONFIG = "config.yaml"
WEIGHTS = "model.pth"
CARD = "README.md"
STATS = "feats_stats.npz"
CHECKPOINT_PREFERENCE = ("valid.loss.best.pth", "valid.loss.ave.pth", "latest.pth")


class PackedModelError(ValueError):
    """A packed model that does not match its configuration; the message lists the keys."""


def _model_file_of(exp_dir: Path) -> Path:
    for name in CHECKPOINT_PREFERENCE:
        if (exp_dir / name).exists():
            return exp_dir / name
    epochs = sorted(exp_dir.glob("*epoch.pth"), key=lambda p: int(p.name.split("epoch")[0]))
    if epochs:
        return epochs[-1]
    raise FileNotFoundError(f"{exp_dir}: no model file ({', '.join(CHECKPOINT_PREFERENCE)}"
                            " or <N>epoch.pth)")


def _model_card(config: dict, model, source: Path, extra: str) -> str:
    frontend = config.get("frontend", "?")
    enc = config.get("encoder_conf", {})
    params = sum(p.numel() for p in model.encoder.parameters())
    return (
        "---\nlicense: cc-by-4.0\nlibrary_name: espnet\ntags:\n- espnet\n- audio\n"
        "- self-supervised-learning\n- spatial-audio\n- gram\n---\n\n"
        f"# GRAM ({frontend})\n\n"
        "A GRAM spatial audio encoder (multi-channel masked autoencoder) trained with\n"
        "`espnet2_gram` (`python -m espnet2_gram.bin.gram_train`).\n\n"
        "| item | value |\n|---|---|\n"
        f"| input format | {frontend} ({model.frontend.in_channels} channels at"
        f" {model.frontend.fs} Hz) |\n"
        f"| features | {model.frontend.out_channels} x {model.frontend.n_mels} mel channels,"
        f" hop {model.frontend.hop_length} samples |\n"
        f"| encoder | ViT {enc.get('depth')} x {enc.get('dim')}, {enc.get('heads')} heads,"
        f" patches {enc.get('patch_size')}, {params / 1e6:.2f} M parameters |\n"
        f"| trained from | `{source}` |\n\n"
        "## Use\n\n```python\nfrom espnet2_gram.packing import load_gram\n"
        "model = load_gram('this/directory')            # ESPnetGRAMModel\n"
        "emb = model.encoder.extract(feats, strategy='mean')\n```\n\n"
        "As an ESPnet frontend: `frontend: gram` with `frontend_conf: {model_path: this/directory}`;"
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
    model = load_gram(config_path, model_file=model_file)  # strict: refuse a broken pack
    config = yaml.safe_load(config_path.read_text())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent
                                if out_dir.parent.exists() else None))
    try:
        shutil.copyfile(config_path, tmp / CONFIG)
        torch.save(model.state_dict(), tmp / WEIGHTS)
        if stats_file:
            shutil.copyfile(stats_file, tmp / STATS)
        (tmp / CARD).write_text(_model_card(config, model, exp_dir, card_extra))
        tmp.chmod(0o755)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
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
    options = [packed_dir / n for n in (CARD, STATS) if (packed_dir / n).exists()]
    outpath = packed_dir.with_suffix(".zip")
    tmp = outpath.with_name(f".{outpath.name}.tmp.zip")
    pack(files={"model_file": packed_dir / WEIGHTS},
         yaml_files={"train_config": packed_dir / CONFIG}, option=options, outpath=tmp)
    tmp.replace(outpath)
    return outpath


def _resolve(path: Path, model_file: Optional[Path]) -> tuple:
    """(config, weights) of a packed dir, an ESPnet .zip, a config.yaml or a .pth."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such GRAM model (a packed directory, a .zip,"
                                " a training directory or a .pth)")
    if path.suffix == ".zip":
        from espnet2.main_funcs.pack_funcs import unpack

        files = unpack(path, path.with_suffix(""))
        return Path(files["train_config"]), Path(files["model_file"])
    if path.is_dir():
        weights = model_file or (path / WEIGHTS if (path / WEIGHTS).exists()
                                 else _model_file_of(path))
        return path / CONFIG, Path(weights)
    if path.suffix == ".pth":
        return path.parent / CONFIG, path
    if model_file is None:
        raise ValueError(f"{path}: give the model file as well (model_file=...)")
    return path, Path(model_file)


def load_gram(path, model_file=None, device: str = "cpu", random_init: bool = False):
    """An ``ESPnetGRAMModel`` from a packed directory / archive or a training directory.

    Missing or unexpected weights are an error listing them (ESPnet's own loader ignores
    them silently). ``random_init``: the same architecture with its initial (untrained)
    weights, drawn from torch's current random state (the "random init" baseline).
    """
    import torch

    from .tasks.gram import GRAMTask

    config_path, weights_path = _resolve(Path(path), Path(model_file) if model_file else None)
    for p in (config_path,) if random_init else (config_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (loading GRAM model {path})")
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    args = GRAMTask.get_parser().parse_args([])
    for key, value in config.items():
        setattr(args, key, value)
    args.init = None
    model = GRAMTask.build_model(args)
    if random_init:
        return model.to(device).eval()
    state = torch.load(weights_path, map_location=device, weights_only=True)
    check_state_dict(model, state, str(weights_path))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def check_state_dict(model, state: dict, source: str) -> None:
    """Raise ``PackedModelError`` unless ``state`` has exactly the model's keys and shapes."""
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
