"""SELD predictions of a trained model: one DCASE CSV per recording in ``<output_dir>/pred``.

    python -m espnet2_gram.bin.seld_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --chunk_dir dump/seld/seld_test_foa \
        --data_path_and_name_and_type dump/emb/foa/gram/seld_test_foa/feats.scp,speech,kaldi_ark \
        --output_dir exp/.../decode_seld_test_foa

Chunk outputs are put back in place (``<chunk_dir>/utt2recording``), cut to the recording's
length and decoded (ACCDOA: active when the vector is longer than ``--threshold``; multi-ACCDOA:
close tracks of a class merged); rows are ``frame, class, track, azimuth, elevation`` in
degrees at full precision, or with ``--output_format cartesian`` the 7 columns of the DCASE
baselines, ``frame, class, track, x, y, z, 0`` (unit vector, distance 0). Score with
``python -m espnet2_gram.bin.score_seld --ref_dir <chunk_dir>/metadata
--recordings <chunk_dir>/recordings``.
The CSVs are written to a temporary folder that replaces ``pred`` when all are written; an
earlier ``pred`` is removed first, so a failed run leaves none behind.
"""

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import numpy as np
import torch

from espnet2_gram.downstream.localization.accdoa import decode_multi_accdoa, decode_single_accdoa
from espnet2_gram.downstream.inference import (add_inference_arguments, batches,
                                               check_inference_data, load_trained)
from espnet2_gram.downstream.localization.seld_data import read_recordings
from espnet2_gram.downstream.localization.dcase_format import write_dcase_csv
from espnet2_gram.simulation.geometry import cart_to_sph
from espnet2_gram.tasks.seld import SELDTask
from espnet2_gram.utils.cli import naming, run, setup_logging
from espnet2_gram.utils.datadir import DataDirError, check_same_keys
from espnet2_gram.utils.fileio import read_kv


def dcase_rows(events):
    """DCASE rows (frame, class, track, azimuth, elevation) of ``{frame: [(class, x, y, z)]}``."""
    rows = []
    for frame in sorted(events):
        tracks = {}
        for cls, *xyz in events[frame]:
            az, el, _ = cart_to_sph(np.asarray(xyz))
            rows.append((frame, cls, tracks.get(cls, 0), float(az), float(el)))
            tracks[cls] = tracks.get(cls, 0) + 1
    return rows


def read_chunk_dir(chunk_dir: Path) -> tuple:
    """``({chunk: [recording, start, frames]}, {recording: frames})`` of ``make_seld_data``."""
    lengths = read_recordings(chunk_dir / "recordings")
    placement = {}
    for key, value in read_kv(chunk_dir / "utt2recording").items():
        parts = value.split()
        if len(parts) != 3 or not all(n.isdigit() for n in parts[1:]):
            raise DataDirError(f"{chunk_dir / 'utt2recording'}: {key}: expected 'recording"
                               f" start frames', got {value!r}")
        placement[key] = parts
    unknown = sorted({rec for rec, _, _ in placement.values()} - set(lengths))
    if unknown:
        raise DataDirError(f"{chunk_dir / 'utt2recording'}: recordings missing from"
                           f" {chunk_dir / 'recordings'}: {unknown[:5]}")
    return placement, lengths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inference_arguments(p)
    p.add_argument("--chunk_dir", required=True, help="output of make_seld_data")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--output_format", choices=["polar", "cartesian"], default="polar",
                   help="polar: frame, class, track, azimuth, elevation; cartesian: frame,"
                   " class, track, x, y, z, distance (0) as the DCASE baselines write")
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.num_threads)
    chunk_dir = Path(args.chunk_dir)
    pred_dir = Path(args.output_dir) / "pred"
    if pred_dir.exists():
        shutil.rmtree(pred_dir)
    check_inference_data(args)
    placement, lengths = read_chunk_dir(chunk_dir)
    speech = args.data_path_and_name_and_type[0][0]
    check_same_keys({f"{chunk_dir / 'utt2recording'}": placement,
                     speech: read_kv(speech, allow_empty_value=True)}, "--chunk_dir")
    model, train_args = load_trained(SELDTask, args.train_config, args.model_file, args.device)
    ends = {rec: n for rec, n in lengths.items()}  # the last chunk may run past the end
    for rec, start, n in placement.values():
        ends[rec] = max(ends[rec], int(start) + int(n))
    outputs = {rec: np.zeros((end, model.tracks, model.num_classes, 3), np.float32)
               for rec, end in ends.items()}
    with torch.no_grad():
        for keys, batch in batches(SELDTask, train_args, args.data_path_and_name_and_type,
                                   args.batch_size):
            frames = {int(placement[k][2]) for k in keys}
            if len(frames) != 1:
                raise ValueError(f"{chunk_dir}: chunks of different lengths in one batch")
            pred = model.predict(batch["speech"].to(args.device),
                                 batch["speech_lengths"].to(args.device), frames.pop())
            for key, out in zip(keys, pred.cpu().numpy()):
                rec, start, n = placement[key][0], int(placement[key][1]), int(placement[key][2])
                outputs[rec][start:start + n] = out
    pred_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pred.", dir=pred_dir.parent))
    try:
        with naming(tmp):
            for rec, out in outputs.items():
                out = out[:lengths[rec]]
                events = (decode_multi_accdoa(out, args.threshold) if model.tracks > 1
                          else decode_single_accdoa(out[:, 0], args.threshold))
                write_dcase_csv(tmp / f"{rec}.csv", dcase_rows(events), exact=True,
                                cartesian=args.output_format == "cartesian")
        tmp.chmod(0o755)
        tmp.rename(pred_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logging.info("%d recordings -> %s", len(outputs), pred_dir)


if __name__ == "__main__":
    run(main)
