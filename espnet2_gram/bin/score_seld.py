"""Score predicted DCASE CSVs with the DCASE 2022/2023 SELD metrics.

    python -m espnet2_gram.bin.score_seld --ref_dir dump/seld/seld_test_foa/metadata \\
        --hyp_dir exp/downstream/seld_sim_foa_gram_probe/decode_seld_test_foa/pred \\
        --recordings dump/seld/seld_test_foa/recordings \\
        --num_classes 13 --out_dir exp/downstream/seld_sim_foa_gram_probe/decode_seld_test_foa

CSVs are paired by file name (not recursive); predictions may be polar (5 or 6 columns) or
Cartesian (7: frame, class, track, x, y, z, distance). A reference without a prediction file
counts as a recording without predictions. ``--length_from reference`` (the default) scores
each recording up to its last reference frame exactly as the official DCASE 2023 scorer does
(predictions after that frame's block are ignored; a last frame on a multiple of
``--frames_per_block`` drops its block); ``both_files`` up to the last labelled or predicted
frame. Writes ``scores.json`` (macro ER20, F20, LE_CD, LR_CD, SELD, the classwise scores and
``length_from``).
"""

import argparse
import logging
import sys

from espnet2_gram.downstream.localization.seld_data import read_recordings
from espnet2_gram.downstream.localization.seld_metrics import LENGTH_FROM, score_recordings
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.scoring import add_run_options, run_info, write_scores

logger = logging.getLogger("espnet2_gram.score_seld")
METRICS = ("ER20", "F20", "LE_CD", "LR_CD", "SELD")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref_dir", required=True, help="folder of reference DCASE CSVs")
    parser.add_argument("--hyp_dir", required=True, help="folder of predicted DCASE CSVs")
    parser.add_argument("--num_classes", type=int, required=True,
                        help="number of classes (all count in the macro averages)")
    parser.add_argument("--frames_per_block", type=int, default=10,
                        help="label frames per scoring block (default 10: 1 s of 100-ms frames)")
    parser.add_argument("--length_from", choices=list(LENGTH_FROM), default="reference",
                        help="how long each recording is scored: "
                        + "; ".join(f"{k}: {v}" for k, v in LENGTH_FROM.items())
                        + " (default reference)")
    parser.add_argument("--recordings", default=None,
                        help="'recording num_label_frames' lines (make_seld_data's recordings):"
                        " a predicted frame beyond its recording is an error")
    parser.add_argument("--out_dir", required=True, help="gets scores.json")
    parser.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    add_run_options(parser)
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    lengths = None if args.recordings is None else read_recordings(args.recordings)
    result = score_recordings(args.ref_dir, args.hyp_dir, args.num_classes,
                              frames_per_block=args.frames_per_block,
                              length_from=args.length_from, recording_frames=lengths)
    metrics = {name: result[name] for name in METRICS}
    path = write_scores(args.out_dir, {**run_info(args, "seld"),
                                       "num_items": result["num_recordings"],
                                       "length_from": args.length_from,
                                       "metrics": metrics, "classwise": result["classwise"]})
    logger.info("%d recordings, length %s: %s -> %s", result["num_recordings"],
                LENGTH_FROM[args.length_from],
                ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
