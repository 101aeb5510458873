"""Speech Commands v0.02: one-second utterances of 35 words.

Layout: ``<root>/<word>/<speaker>_nohash_<n>.wav``, ``validation_list.txt`` and
``testing_list.txt`` (paths relative to the root; every other word file is training
data) and ``_background_noise_/*.wav`` (long noise recordings, kept apart).
"""

import logging
import re
from pathlib import Path
from typing import List, Sequence, Set

from espnet2_gram.corpora.common import (corpus_dir, find_audio, find_corpus_root, index_files,
                                         utt_id, write_audio_data_dir)

logger = logging.getLogger(__name__)

URLS = ("http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",)
LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
NOISE_DIR = "_background_noise_"
LIST_LINE = re.compile(r"[^/\s]+/[^/\s]+\.wav")


def _read_list(path: Path) -> Set[str]:
    """Relative ``word/file.wav`` paths of a split list; ``ValueError`` on a bad line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (Speech Commands split list)")
    out = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if not LIST_LINE.fullmatch(line):
                raise ValueError(f"{path}:{lineno}: expected 'word/file.wav', got {line!r}")
            out.add(line)
    return out


def prepare_speech_commands(data_dir, src_dir=None, download: bool = False,
                            download_dir="downloads", urls: Sequence[str] = URLS) -> List[Path]:
    """Write ``<data_dir>/speechcommands_{train,valid,test}`` (utt2label = word) and
    ``speechcommands_noise`` (the background noise recordings, when present)."""
    base = corpus_dir(src_dir, download, download_dir, urls, "speech_commands")
    root = find_corpus_root(base, LISTS["valid"], nested=("speech_commands_v0.02",))
    held_out = {split: _read_list(root / name) for split, name in LISTS.items()}
    both = held_out["valid"] & held_out["test"]
    if both:
        raise ValueError(f"{root}: {len(both)} files are in both {LISTS['valid']} and "
                         f"{LISTS['test']}, e.g. {sorted(both)[0]}")
    words = sorted(p for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith(("_", ".")))
    on_disk = {f"{w.name}/{p.name}" for w in words for p in find_audio(w, (".wav",))}
    splits = {"train": on_disk - held_out["valid"] - held_out["test"], **held_out}
    outs = []
    for split, rels in splits.items():
        utt2path, labels = {}, {}
        for rel in rels:
            word, name = rel.split("/")
            utt = utt_id("speechcommands", word, Path(name).stem)
            utt2path[utt], labels[utt] = root / rel, word
        outs.append(write_audio_data_dir(Path(data_dir) / f"speechcommands_{split}", utt2path,
                                         {"utt2label": labels}))
    noise = index_files(find_audio(root / NOISE_DIR, (".wav",)),
                        lambda p: utt_id("speechcommands_noise", p.stem))
    if noise:
        outs.append(write_audio_data_dir(Path(data_dir) / "speechcommands_noise", noise))
    else:
        logger.warning("%s: no noise recordings; no speechcommands_noise data dir",
                       root / NOISE_DIR)
    return outs
