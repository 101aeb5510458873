"""AudioSet: 10-second YouTube clips labelled with the classes of the AudioSet ontology.

``--src_dir`` may hold, at any depth:

- audio files (.wav/.flac/.ogg/.mp3) named after their clip: ``Y<YTID>_<start>_<end>``,
  ``<YTID>_<start>_<end>`` or ``<YTID>``;
- WebDataset tar shards (``bal_train00.tar``, ``unbal_train000.tar``...) holding
  ``<key>.flac`` and optionally ``<key>.json`` with a "labels" or "label" list of mids
  or display names; they are extracted once into ``<download_dir>/audioset/shards``;
- the official CSVs: ``{balanced_train,unbalanced_train,eval}_segments.csv`` (lines
  ``YTID, start_seconds, end_seconds, "mid1,mid2"`` after '#' header lines) and
  ``class_labels_indices.csv`` (``index,mid,display_name``).

Labels (mids) come from the segment CSVs, else from the JSON sidecars.
"""

import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_gram.corpora.common import (AUDIO_EXTENSIONS, SRC_OPTION, corpus_dir, find_audio,
                                         index_files, iter_csv, parse_field, utt_id,
                                         write_audio_data_dir)
from espnet2_gram.corpora.download import extract_archive

logger = logging.getLogger(__name__)

_HF = ("https://huggingface.co/datasets/agkphysics/AudioSet/resolve/"
       "196c0900867eff791b8f4d4be57db277e9a5b131")
_CSV = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv"
SEGMENT_CSVS = ("balanced_train_segments.csv", "unbalanced_train_segments.csv",
                "eval_segments.csv")
CLASS_CSV = "class_labels_indices.csv"
URLS = (*(f"{_HF}/bal_train{i:02d}.tar" for i in range(10)),
        f"{_CSV}/{SEGMENT_CSVS[0]}", f"{_CSV}/{CLASS_CSV}")
CLIP_NAME = re.compile(r"Y?(?P<ytid>[A-Za-z0-9_-]{11})(?:_\d+(?:\.\d+)?_\d+(?:\.\d+)?)?")
YTID = re.compile(r"[A-Za-z0-9_-]{11}")
MID = re.compile(r"/[a-z]/\w+")


def ytid_of(stem: str) -> Optional[str]:
    """The YouTube id in a clip's file name, or None when it does not look like one."""
    m = CLIP_NAME.fullmatch(stem)
    return m.group("ytid") if m else None


def read_segments(path: Path) -> Dict[str, List[str]]:
    """``{YTID: [mid, ...]}`` from an official ``*_segments.csv``."""
    out = {}
    for lineno, row in iter_csv(path):
        if len(row) != 4:
            raise ValueError(f"{path}:{lineno}: expected 'YTID, start, end, \"mids\"', "
                             f"got {len(row)} fields")
        ytid, start, end, mids = row
        parse_field(path, lineno, ytid, str, "YouTube id", YTID.fullmatch)
        parse_field(path, lineno, start, float, "start_seconds")
        parse_field(path, lineno, end, float, "end_seconds")
        labels = [m.strip() for m in mids.split(",")]
        for mid in labels:
            parse_field(path, lineno, mid, str, "label mid", MID.fullmatch)
        out[ytid] = labels
    return out


def read_class_labels(path: Path) -> Dict[str, str]:
    """``{display_name: mid}`` from ``class_labels_indices.csv``."""
    out = {}
    for lineno, row in iter_csv(path, header=("index", "mid", "display_name")):
        out[row["display_name"].strip()] = parse_field(path, lineno, row["mid"].strip(), str,
                                                       "mid", MID.fullmatch)
    return out


def read_sidecar_labels(path: Path, name2mid: Dict[str, str]) -> Optional[List[str]]:
    """Mids listed in a WebDataset ``<key>.json``, or None without such a file or list."""
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e
    value = next((meta[k] for k in ("labels", "label") if isinstance(meta, dict) and k in meta),
                 None)
    if value is None:
        return None
    if isinstance(value, str):
        parts = [v.strip() for v in value.split(",")]
        value = parts if all(MID.fullmatch(v) for v in parts) else [value]
    mids = []
    for label in value:
        label = str(label).strip()
        if not MID.fullmatch(label):
            if label not in name2mid:
                raise ValueError(f"{path}: label {label!r} is not a mid nor a display name "
                                 f"of --class_labels_csv ({CLASS_CSV})")
            label = name2mid[label]
        mids.append(label)
    return mids


def extract_shards(src: Path, dest: Path) -> List[Path]:
    """Extract each ``*.tar`` under ``src`` into ``dest/<shard name>`` (once); list them."""
    return [extract_archive(shard, dest / shard.stem) for shard in sorted(src.rglob("*.tar"))]


def prepare_audioset(data_dir, src_dir=None, download: bool = False, download_dir="downloads",
                     urls: Sequence[str] = URLS, name: str = "train",
                     segments_csvs: Sequence = (), class_labels_csv=None) -> List[Path]:
    """Write ``<data_dir>/audioset_<name>``: wav.scp, utt2label (mids, space separated)
    when labels are known, utt2num_samples, utt2fs. Clips without labels are skipped
    when any clip has labels."""
    root = corpus_dir(src_dir, download, download_dir, urls, "audioset")
    segments_csvs = [Path(p) for p in segments_csvs] or [
        root / n for n in SEGMENT_CSVS if (root / n).is_file()]
    class_csv = Path(class_labels_csv) if class_labels_csv else root / CLASS_CSV
    name2mid = read_class_labels(class_csv) if class_labels_csv or class_csv.is_file() else {}
    ytid2mids = {}
    for path in segments_csvs:
        ytid2mids.update(read_segments(path))

    dirs = [root, *extract_shards(root, Path(download_dir) / "audioset" / "shards")]
    files = dict.fromkeys(p.resolve() for d in dirs for p in find_audio(d))  # dirs may nest
    utt2path = index_files(list(files), lambda p: utt_id("audioset", p.stem))
    if not utt2path:
        raise FileNotFoundError(f"--{SRC_OPTION} {root}: no audio files "
                                f"({' '.join(AUDIO_EXTENSIONS)}) nor tar shards")
    labels = {}
    for utt, path in utt2path.items():
        mids = ytid2mids.get(ytid_of(path.stem)) or read_sidecar_labels(
            path.with_suffix(".json"), name2mid)
        if mids:
            labels[utt] = " ".join(dict.fromkeys(mids))
    tables = {}
    if labels:
        unlabelled = len(utt2path) - len(labels)
        if unlabelled:
            logger.warning("%d of %d clips have no labels and are skipped, e.g. %s",
                           unlabelled, len(utt2path), next(u for u in utt2path if u not in labels))
        utt2path = {u: utt2path[u] for u in labels}
        tables["utt2label"] = labels
    else:
        logger.info("no labels found: writing audioset_%s without utt2label", name)
    return [write_audio_data_dir(Path(data_dir) / f"audioset_{name}", utt2path, tables)]
