"""Tiny data and models shared by the fault-matrix tests (test_faults_*.py)."""

import shutil
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
import torch
import yaml

from espnet2_gram.pretrained.packing import pack_gram
from espnet2_gram.tasks.doa import DOATask
from espnet2_gram.tasks.gram import build_gram_model

from helpers import TINY

FS = 8000


def write_wavs(scp: Path, name: str, n: int, channels: int = 2, seconds: float = 0.6) -> Path:
    """``n`` noise clips in ``<scp folder>/audio`` and their wav.scp ``scp``."""
    rng = np.random.default_rng(n + channels)
    audio = scp.parent / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        path = audio / f"{name}{i}.wav"
        sf.write(path, (rng.standard_normal((int(seconds * FS), channels)) * 0.1)
                 .astype(np.float32), FS, subtype="FLOAT")
        lines.append(f"{name}{i} {path}\n")
    scp.write_text("".join(lines))
    return scp


def make_world(root: Path) -> dict:
    """Tiny data and models in ``root`` shared by the fault cases (never modified by them)."""
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    torch.manual_seed(0)
    model = build_gram_model(config)
    exp = root / "exp"
    exp.mkdir()
    shutil.copyfile(config, exp / "config.yaml")
    torch.save(model.state_dict(), exp / "valid.loss.best.pth")
    packed = pack_gram(exp, root / "packed" / "gram")
    data = root / "data"
    data.mkdir()
    write_wavs(data / "wav.scp", "u", 2)
    valid = write_wavs(root / "valid.scp", "v", 2)
    doa_args = DOATask.get_parser().parse_args(["--encoder", "identity", "--input_size", "4",
                                                "--model_conf", "hidden_sizes=[8]"])
    doa_config = root / "doa_config.yaml"
    doa_config.write_text(yaml.safe_dump(vars(doa_args)))
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp'}") as w:
        for i in range(3):
            w(f"f{i}", np.ones((2, 4), np.float32) * i)
    (root / "utt2doa").write_text("".join(f"f{i} {10 * i} 0 1.0\n" for i in range(3)))
    return {"root": root, "config": config, "exp": exp, "packed": packed, "data": data,
            "train_scp": data / "wav.scp", "valid_scp": valid, "doa_config": doa_config,
            "feats": root / "feats.scp", "utt2doa": root / "utt2doa"}


BANK = {  # tiny and fast: FOA (no HRTF), first-order images, few rays, short RIRs
    "sampling": {"room_size_min": [3.0, 3.0, 2.5], "room_size_max": [4.0, 3.5, 3.0],
                 "rt60": [0.1, 0.15], "source_distance": [0.5, 1.0],
                 "num_noise_sources": [1, 1], "max_tries": 20},
    "render": {"format": "foa", "fs": FS, "method": "hybrid", "ism_order": 1, "n_rays": 100,
               "max_rir_seconds": 0.2},
    "bank": {"num_packs": 4, "shard_size": 2},
}
