"""Events of a trained frame-level event model: ``<output_dir>/events.json``.

    python -m espnet2_gram.bin.event_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --labels exp/.../labels.txt \
        --data_path_and_name_and_type exp/.../test/feats.scp,speech,kaldi_ark \
        --stamps exp/.../test/stamps.scp --valid_dir exp/.../valid --output_dir exp/.../decode

HEAR's post-processing: frame probabilities thresholded at 0.5, a 250-ms median filter per
label, and events shorter than the minimum duration dropped; the minimum duration (250 or
500 ms) is the one with the best onset F-measure on ``--valid_dir`` (its ``feats.scp``,
``stamps.scp`` and ``events.json``), recorded in ``postprocessing.json``. Score with
``python -m espnet2_gram.bin.score_event``.
"""

import argparse
import json
import logging
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import kaldiio
import torch

from espnet2_gram.downstream.events.metrics import (MIN_DURATIONS_MS, frames_to_events,
                                                    onset_f_measure, read_events, write_events)
from espnet2_gram.downstream.inference import (add_inference_arguments, batches,
                                               check_inference_data, load_trained)
from espnet2_gram.tasks.event import EventTask
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.fileio import atomic_open


def frame_probabilities(model, train_args, triplets, batch_size: int, device: str) -> dict:
    """``{utt: (T, C) numpy}`` frame probabilities of the inference data."""
    out = {}
    with torch.no_grad():
        for keys, batch in batches(EventTask, train_args, triplets, batch_size):
            probs, lengths = model.predict(batch["speech"].to(device),
                                           batch["speech_lengths"].to(device))
            for key, p, n in zip(keys, probs.cpu().numpy(), lengths.tolist()):
                out[key] = p[:n]
    return out


def decode(probs: dict, stamps_scp, labels, min_duration_ms: float) -> dict:
    stamps = dict(kaldiio.load_scp(str(stamps_scp)))
    missing = sorted(set(probs) - set(stamps))
    if missing:
        raise ValueError(f"{stamps_scp}: no timestamps for {missing[:3]}")
    return {utt: frames_to_events(p, stamps[utt][:len(p)], labels, min_duration_ms)
            for utt, p in probs.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inference_arguments(p)
    p.add_argument("--labels", required=True, help="labels.txt: the label of each output")
    p.add_argument("--stamps", required=True, help="stamps.scp of the test data (ms)")
    p.add_argument("--valid_dir", required=True,
                   help="feats.scp, stamps.scp and events.json that choose the min duration")
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.num_threads)
    out = Path(args.output_dir)
    (out / "events.json").unlink(missing_ok=True)
    check_inference_data(args)
    labels = Path(args.labels).read_text().split()
    model, train_args = load_trained(EventTask, args.train_config, args.model_file, args.device)
    valid = Path(args.valid_dir)
    valid_probs = frame_probabilities(model, train_args,
                                      [(str(valid / "feats.scp"), "speech", "kaldi_ark")],
                                      args.batch_size, args.device)
    valid_ref = read_events(valid / "events.json")
    scores = {m: onset_f_measure(valid_ref, decode(valid_probs, valid / "stamps.scp", labels, m))
              ["onset_f"] for m in MIN_DURATIONS_MS}
    best = max(MIN_DURATIONS_MS, key=lambda m: scores[m])
    probs = frame_probabilities(model, train_args, args.data_path_and_name_and_type,
                                args.batch_size, args.device)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "postprocessing.json") as f:
        json.dump({"median_filter_ms": 250, "threshold": 0.5, "min_duration_ms": best,
                   "valid_onset_f": {str(m): s for m, s in scores.items()}}, f, indent=1)
    write_events(out / "events.json", decode(probs, args.stamps, labels, best))
    logging.info("%d files, min duration %g ms (valid onset F %.3f) -> %s/events.json",
                 len(probs), best, scores[best], out)


if __name__ == "__main__":
    run(main)
