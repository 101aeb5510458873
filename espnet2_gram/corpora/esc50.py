"""ESC-50: 2000 five-second clips in 50 classes, five folds for cross-validation.

Layout: ``ESC-50-master/audio/*.wav`` and ``ESC-50-master/meta/esc50.csv`` with the
header ``filename,fold,target,category,esc10,src_file,take``.
"""

from pathlib import Path
from typing import List, Sequence

from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.corpora.common import (corpus_dir, find_corpus_root, iter_csv, parse_field,
                                         utt_id, write_audio_data_dir)

URLS = ("https://github.com/karoldvl/ESC-50/archive/master.zip",)
META = "meta/esc50.csv"
COLUMNS = ("filename", "fold", "category")


def prepare_esc50(data_dir, src_dir=None, download: bool = False, download_dir="downloads",
                  urls: Sequence[str] = URLS) -> List[Path]:
    """Write ``<data_dir>/esc50`` (utt2label = category, utt2fold) and ``esc50_fold<k>``."""
    root = find_corpus_root(corpus_dir(src_dir, download, download_dir, urls, "esc50"),
                            META, nested=("ESC-50-master",))
    meta = root / META
    utt2path, labels, folds = {}, {}, {}
    for lineno, row in iter_csv(meta, header=COLUMNS):
        name = row["filename"].strip()
        if not name.endswith(".wav") or "/" in name:
            raise ValueError(f"{meta}:{lineno}: bad filename {name!r}")
        utt = utt_id("esc50", Path(name).stem)
        if utt in utt2path:
            raise ValueError(f"{meta}:{lineno}: duplicated filename {name!r}")
        utt2path[utt] = root / "audio" / name
        folds[utt] = parse_field(meta, lineno, row["fold"], int, "fold", lambda k: k > 0)
        labels[utt] = utt_id(parse_field(meta, lineno, row["category"], str.strip, "category",
                                         bool))
    data_dir = Path(data_dir)
    full = write_audio_data_dir(data_dir / "esc50", utt2path,
                                {"utt2label": labels, "utt2fold": folds})
    tables = read_data_dir(full)
    outs = [full]
    for fold in sorted(set(tables["utt2fold"].values()), key=int):
        utts = {u for u, f in tables["utt2fold"].items() if f == fold}
        subset = {name: {u: v for u, v in t.items() if u in utts} for name, t in tables.items()}
        outs.append(write_data_dir(data_dir / f"esc50_fold{fold}", subset))
    return outs
