"""Score predicted DCASE metadata CSVs with the DCASE 2022/2023 SELD metrics.

    python -m espnet2_gram.bin.score_seld --ref_dir dump/seld/seld_test_foa/metadata \\
        --hyp_dir exp/downstream/seld_sim_foa_gram_probe/decode_seld_test_foa/pred \\
        --num_classes 13 --out_dir exp/downstream/seld_sim_foa_gram_probe/decode_seld_test_foa

CSVs are paired by file name (not recursive); a reference without a prediction file counts
as a recording without predictions. Writes ``scores.json`` (macro ER20, F20, LE_CD, LR_CD,
SELD and the classwise scores).
"""

import argparse
import logging
import sys

from ..localization.seld_metrics import score_recordings
from ..utils.cli import run, setup_logging
from ..utils.scoring import add_run_options, run_info, write_scores

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
    parser.add_argument("--out_dir", required=True, help="gets scores.json")
    parser.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    add_run_options(parser)
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    result = score_recordings(args.ref_dir, args.hyp_dir, args.num_classes,
                              frames_per_block=args.frames_per_block)
    metrics = {name: result[name] for name in METRICS}
    path = write_scores(args.out_dir, {**run_info(args, "seld"),
                                       "num_items": result["num_recordings"],
                                       "metrics": metrics, "classwise": result["classwise"]})
    logger.info("%d recordings: %s -> %s", result["num_recordings"],
                ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
