"""FSD50K: Freesound clips with multiple labels among 200 classes of the AudioSet ontology.

Layout (the Zenodo archives of record 4060432, joined and extracted):
``FSD50K.dev_audio/<fname>.wav``, ``FSD50K.eval_audio/<fname>.wav`` and
``FSD50K.ground_truth/{dev,eval,vocabulary}.csv``: ``dev.csv`` has the header
``fname,labels,mids,split`` (split: train or val), ``eval.csv`` ``fname,labels,mids``,
and ``vocabulary.csv`` has no header, rows ``index,label,mid``. ``labels`` is a quoted,
comma-separated list of vocabulary labels.

The audio archives are split zips (``.zip`` + ``.z01``...), which this preparer does not
join: a local copy (``--src_dir``) is required, and ``--download true`` fails at once with
the steps to download, join and extract the archives by hand.
"""

import re
from pathlib import Path
from typing import Dict, List

from espnet2_gram.corpora.common import (SRC_OPTION, corpus_dir, find_corpus_root, iter_csv,
                                         parse_field, utt_id, write_audio_data_dir)
from espnet2_gram.corpora.download import DownloadError

RECORD = "https://zenodo.org/records/4060432"
GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO_DIRS = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
VOCABULARY = "vocabulary.csv"
DEV_SPLITS = {"train": "fsd50k_train", "val": "fsd50k_valid"}  # dev.csv split: data dir
EVAL_SPLITS = {"": "fsd50k_eval"}  # eval.csv has no split column
FNAME = re.compile(r"\d+")  # Freesound ids
LABEL = re.compile(r"\S+")


def manual_download(download_dir) -> str:
    """How to get FSD50K by hand, with ``<download_dir>/fsd50k`` as the suggested place."""
    dest = Path(download_dir) / "fsd50k"
    return (f"FSD50K is published as split zips that this preparer cannot join: download all "
            f"files of {RECORD} into {dest}, join and extract each archive (e.g. zip -s 0 "
            f"FSD50K.dev_audio.zip --out dev_audio.zip && unzip dev_audio.zip), then pass "
            f"--{SRC_OPTION} {dest}")


def read_vocabulary(path: Path) -> Dict[str, int]:
    """``{label: line number}`` from ``vocabulary.csv`` (rows ``index,label,mid``)."""
    out: Dict[str, int] = {}
    for lineno, row in iter_csv(path):
        if len(row) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'index,label,mid', got {len(row)} fields")
        parse_field(path, lineno, row[0], int, "index", lambda i: i >= 0)
        label = row[1]
        if not LABEL.fullmatch(label):
            raise ValueError(f"{path}:{lineno}: expected a label without spaces, got {label!r}")
        if label in out:
            raise ValueError(f"{path}:{lineno}: label {label!r} already on line {out[label]}")
        out[label] = lineno
    if not out:
        raise ValueError(f"{path}: no labels")
    return out


def read_ground_truth(path: Path, vocabulary: Dict[str, int],
                      splits: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """``{data dir: {fname: labels, space separated}}``; ``splits`` maps the values of the
    split column to data dirs, or is ``{"": data dir}`` for a file without it (eval.csv)."""
    has_split = "" not in splits
    columns = ("fname", "labels", "split") if has_split else ("fname", "labels")
    out: Dict[str, Dict[str, str]] = {name: {} for name in splits.values()}
    seen: Dict[str, int] = {}
    for lineno, row in iter_csv(path, header=columns):
        fname = row["fname"].strip()
        if not FNAME.fullmatch(fname):
            raise ValueError(f"{path}:{lineno}: expected a numeric fname (Freesound id), "
                             f"got {fname!r}")
        if fname in seen:
            raise ValueError(f"{path}:{lineno}: fname {fname} already on line {seen[fname]}")
        seen[fname] = lineno
        labels = [s.strip() for s in row["labels"].split(",")]
        for label in labels:
            if label not in vocabulary:
                raise ValueError(f"{path}:{lineno}: label {label!r} is not in "
                                 f"{path.with_name(VOCABULARY)}")
        split = row["split"].strip() if has_split else ""
        if split not in splits:
            raise ValueError(f"{path}:{lineno}: expected split {' or '.join(splits)}, "
                             f"got {split!r}")
        out[splits[split]][fname] = " ".join(dict.fromkeys(labels))
    return out


def prepare_fsd50k(data_dir, src_dir=None, download: bool = False,
                   download_dir="downloads") -> List[Path]:
    """Write ``<data_dir>/fsd50k_{train,valid,eval}`` (utt2label = vocabulary labels, space
    separated): the dev clips of split train and of split val, and the eval clips.

    Without ``src_dir``, fails at once (``DownloadError`` when ``download``, else
    ``ValueError``) with instructions for a manual download.
    """
    if not src_dir:
        error = DownloadError if download else ValueError
        raise error(manual_download(download_dir))
    root = find_corpus_root(corpus_dir(src_dir, False, download_dir, (), "fsd50k"),
                            GROUND_TRUTH, nested=("FSD50K",))
    for audio_dir in AUDIO_DIRS.values():
        if not (root / audio_dir).is_dir():
            raise FileNotFoundError(f"{root / audio_dir}: no such directory (FSD50K audio)")
    truth = root / GROUND_TRUTH
    vocabulary = read_vocabulary(truth / VOCABULARY)
    parts = {"dev": read_ground_truth(truth / "dev.csv", vocabulary, DEV_SPLITS),
             "eval": read_ground_truth(truth / "eval.csv", vocabulary, EVAL_SPLITS)}
    outs = []
    for part, subsets in parts.items():
        for name, clips in subsets.items():
            utt2path = {utt_id("fsd50k", part, f): root / AUDIO_DIRS[part] / f"{f}.wav"
                        for f in clips}
            labels = {utt_id("fsd50k", part, f): lab for f, lab in clips.items()}
            outs.append(write_audio_data_dir(Path(data_dir) / name, utt2path,
                                             {"utt2label": labels}))
    return outs
