"""SELD training data: DCASE-format recordings cut into fixed-length chunks with ACCDOA targets.

Input: a Kaldi directory of recordings (``wav.scp`` and ``utt2metadata``: the DCASE CSV of each
recording: frame (100 ms), class, source, azimuth, elevation[, distance]), e.g. the stage-4
simulation export or STARSS23. Output directory:

* ``wav.scp`` / ``audio/``: chunks of ``chunk_seconds`` (the last one zero-padded);
* ``tracks.scp`` / ``tracks/``: (label frames, 3, classes, 4) [active, x, y, z] ``.npy``
  targets per chunk (see ``accdoa.events_to_tracks``);
* ``utt2recording``: ``chunk recording first_label_frame num_label_frames``;
* ``recordings``: ``recording num_label_frames`` and ``metadata/<recording>.csv``, the
  reference for scoring;
* ``seld.json``: the options (a rerun with other options is refused).

Chunks already written are kept, so an interrupted run resumes.
"""

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Dict

import numpy as np

from espnet2_gram.downstream.localization.dcase_format import read_dcase_csv
from espnet2_gram.utils.audio import load_audio, write_audio
from espnet2_gram.utils.datadir import DataDirError, read_data_dir, write_data_dir
from espnet2_gram.utils.fileio import atomic_open, atomic_path, read_kv, write_kv
from espnet2_gram.downstream.localization.accdoa import events_to_tracks
from espnet2_gram.downstream.localization.seld_metrics import rows_to_frames

logger = logging.getLogger(__name__)


def _check_options(out_dir: Path, options: dict) -> None:
    path = out_dir / "seld.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != options:
            raise ValueError(f"{out_dir} was made with other options ({old}); remove it or"
                             f" choose another --out_dir (now: {options})")


def make_seld_chunks(data_dir, out_dir, num_classes: int, chunk_seconds: float = 2.0,
                     label_hop_seconds: float = 0.1, fs: int = None) -> Dict[str, int]:
    """Write the chunk directory; returns recording -> number of label frames."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    tables = read_data_dir(data_dir, names=["utt2metadata"])
    if "utt2metadata" not in tables:
        raise DataDirError(f"{data_dir}: no utt2metadata (DCASE CSV of each recording)")
    options = {"num_classes": int(num_classes), "chunk_seconds": float(chunk_seconds),
               "label_hop_seconds": float(label_hop_seconds), "fs": fs}
    _check_options(out_dir, options)
    # recorded before any chunk is written, so a resumed run cannot mix two sets of options
    with atomic_open(out_dir / "seld.json") as f:
        json.dump(options, f, indent=2)
    out = {"wav.scp": {}, "tracks.scp": {}, "utt2recording": {}}
    recordings = {}
    dropped = 0
    for rec in sorted(tables["wav.scp"]):
        audio = load_audio(tables["wav.scp"][rec], fs=fs)
        x = audio.samples if audio.samples.ndim == 2 else audio.samples[None]
        label_hop = int(round(label_hop_seconds * audio.fs))
        chunk_frames = int(round(chunk_seconds / label_hop_seconds))
        if label_hop * chunk_frames != int(round(chunk_seconds * audio.fs)):
            raise ValueError(f"chunk_seconds={chunk_seconds} must be a whole number of"
                             f" label frames ({label_hop_seconds} s)")
        num_frames = math.ceil(x.shape[1] / label_hop)
        rows = read_dcase_csv(tables["utt2metadata"][rec])
        frames = rows_to_frames(r for r in rows if r.frame < num_frames)
        for row in rows:
            if row.class_index >= num_classes:
                raise ValueError(f"{tables['utt2metadata'][rec]}: class {row.class_index} but"
                                 f" --num_classes {num_classes}")
        recordings[rec] = num_frames
        with atomic_path(out_dir / "metadata" / f"{rec}.csv") as tmp:
            shutil.copyfile(tables["utt2metadata"][rec], tmp)
        for i, start in enumerate(range(0, num_frames, chunk_frames)):
            utt = f"{rec}_chunk{i:04d}"
            wav = (out_dir / "audio" / f"{utt}.wav").resolve()
            npy = (out_dir / "tracks" / f"{utt}.npy").resolve()
            if not wav.exists():
                piece = np.zeros((x.shape[0], chunk_frames * label_hop), dtype=np.float32)
                seg = x[:, start * label_hop:(start + chunk_frames) * label_hop]
                piece[:, :seg.shape[1]] = seg
                write_audio(wav, piece, audio.fs)
            chunk = {f - start: ev for f, ev in frames.items() if start <= f < start + chunk_frames}
            tracks, n = events_to_tracks(chunk, chunk_frames, num_classes)
            dropped += n
            npy.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(npy) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, tracks)
            out["wav.scp"][utt] = str(wav)
            out["tracks.scp"][utt] = str(npy)
            out["utt2recording"][utt] = f"{rec} {start} {chunk_frames}"
    if dropped:
        logger.warning("%s: %d events beyond 3 per class and frame were dropped", out_dir, dropped)
    write_data_dir(out_dir, out)
    write_kv(out_dir / "recordings", recordings)
    logger.info("%s: %d recordings, %d chunks", out_dir, len(recordings), len(out["wav.scp"]))
    return recordings


def read_recordings(path) -> Dict[str, int]:
    """``{recording: label frames}`` of a ``recordings`` file; errors name the file and key."""
    out = {}
    for key, value in read_kv(path).items():
        if not value.isdigit():
            raise DataDirError(f"{path}: {key}: expected 'frames', got {value!r}")
        out[key] = int(value)
    return out
