"""WHAM! noise: ambient noise recorded in cafes, restaurants and bars (2-channel, 16 kHz).

Layout: ``wham_noise/{tr,cv,tt}/*.wav``.
"""

from pathlib import Path
from typing import List, Sequence

from espnet2_gram.corpora.common import (corpus_dir, find_audio, find_corpus_root, index_files,
                                         utt_id, write_audio_data_dir)

URLS = ("https://my-bucket-a8b4b49c25c811ee9a7e8bba05fa24c7.s3.amazonaws.com/wham_noise.zip",)
SPLITS = ("tr", "cv", "tt")


def prepare_wham(data_dir, src_dir=None, download: bool = False, download_dir="downloads",
                 urls: Sequence[str] = URLS) -> List[Path]:
    """Write ``<data_dir>/wham_noise_{tr,cv,tt}`` (wav.scp, utt2num_samples, utt2fs)."""
    base = corpus_dir(src_dir, download, download_dir, urls, "wham")
    root = find_corpus_root(base, SPLITS[0], nested=("wham_noise",))
    outs = []
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir}: no such directory (WHAM! noise split {split})")
        utt2path = index_files(find_audio(split_dir, (".wav",)),
                               lambda p, s=split: utt_id("wham", s, p.stem))
        outs.append(write_audio_data_dir(Path(data_dir) / f"wham_noise_{split}", utt2path))
    return outs
