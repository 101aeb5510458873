"""A recipe's Kaldi-style data dirs (``wav.scp``, ``utt2label``) written as a task in HEAR's
layout, so that Nat-HEAR generation and any HEAR tool read the recipe's own corpora (the demo
corpus in the demo's Nat-HEAR table).

Output: ``task_metadata.json`` (scene task, multiclass or multilabel, ``trainvaltest`` or
``presplit_kfold``; ``made_from`` records the sha256 of each split's lists), ``<split>.json``
(``{"<utt>.wav": [labels]}``), ``labelvocabulary.csv`` and ``<fs>/<split>/<utt>.wav``: links to
the recipe's audio when it is at ``fs``, else resampled copies. The task is built in a
temporary folder and moved into place whole; an up-to-date task is left alone.
"""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict

import soundfile as sf

from espnet2_gram.nat_hear.generate import METADATA
from espnet2_gram.utils.audio import load_audio, write_audio
from espnet2_gram.utils.datadir import read_data_dir
from espnet2_gram.utils.provenance import file_digest

logger = logging.getLogger(__name__)

HEAR_METRICS = {"multiclass": ["top1_acc", "mAP", "d_prime", "aucroc"],
                "multilabel": ["mAP", "d_prime", "aucroc"]}


def write_hear_task(splits: Dict[str, Path], out_dir, task_name: str, fs: int,
                    multilabel: bool = False) -> Path:
    """Write the data dirs ``splits`` (``{"train": dir, ...}`` or ``{"fold00": dir, ...}``) as
    the HEAR task ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    names = sorted(splits)
    folds = all(n.startswith("fold") for n in names)
    if not (set(names) == {"train", "valid", "test"} or (folds and len(names) >= 3)):
        raise ValueError(f"splits {names}: expected train, valid and test, or >= 3 fold<k>")
    made_from = {n: {f: file_digest(Path(splits[n]) / f) for f in ("wav.scp", "utt2label")}
                 for n in names}
    meta_path = out_dir / METADATA
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("made_from") == made_from:
        logger.info("%s: up to date", out_dir)
        return out_dir
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    vocabulary, longest = set(), 0.0
    for split in names:
        tables = read_data_dir(splits[split], ["utt2label"])
        folder = tmp / str(fs) / split
        folder.mkdir(parents=True)
        labels = {}
        for utt, path in sorted(tables["wav.scp"].items()):
            longest = max(longest, _place(Path(path), folder / f"{utt}.wav", fs))
            labels[f"{utt}.wav"] = tables["utt2label"][utt].split()
            vocabulary.update(labels[f"{utt}.wav"])
        (tmp / f"{split}.json").write_text(json.dumps(labels, indent=1))
    (tmp / "labelvocabulary.csv").write_text(
        "idx,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(sorted(vocabulary))))
    prediction = "multilabel" if multilabel else "multiclass"
    meta = {"task_name": task_name, "version": "espnet2_gram", "embedding_type": "scene",
            "prediction_type": prediction, "split_mode": "presplit_kfold" if folds
            else "trainvaltest", "sample_duration": round(longest, 3),
            "evaluation": HEAR_METRICS[prediction], "made_from": made_from}
    if folds:
        meta["nfolds"] = len(names)
    (tmp / METADATA).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out_dir)
    logger.info("%s: %s task, %d splits, %d labels", out_dir, prediction, len(names),
                len(vocabulary))
    return out_dir


def _place(src: Path, dst: Path, fs: int) -> float:
    """Link ``src`` at ``dst`` (or write it resampled to ``fs``); returns its duration (s)."""
    if not src.is_file():
        raise FileNotFoundError(f"{src}: audio file not found (wav.scp entries must be files)")
    info = sf.info(str(src))
    if info.samplerate == fs:
        os.symlink(src.resolve(), dst)
    else:
        audio = load_audio(src, fs=fs)
        write_audio(dst, audio.samples, fs, subtype="FLOAT")
    return info.frames / info.samplerate
