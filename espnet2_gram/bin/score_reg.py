"""Score regression estimates against a reference ``utt2target`` (Nat-HEAR's RT60, seconds).

    python -m espnet2_gram.bin.score_reg --ref data/test/utt2target \\
        --hyp exp/reg/decode_test/utt2target --format binaural --out_dir exp/reg/decode_test

Writes ``scores.json`` (see
:func:`espnet2_gram.downstream.regression.metrics.regression_metrics`).
"""

import logging
import sys

import numpy as np

from espnet2_gram.downstream.regression.metrics import read_utt2target, regression_metrics
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.scoring import check_same_keys, ref_hyp_parser, run_info, write_scores


def main(argv=None) -> None:
    args = ref_hyp_parser(__doc__, "reference utt2target: utt v1 [v2 ...]",
                          "estimated utt2target").parse_args(argv)
    setup_logging(args.log_level)
    ref, hyp = read_utt2target(args.ref), read_utt2target(args.hyp)
    check_same_keys(ref, hyp, f"--ref {args.ref}", f"--hyp {args.hyp}")
    utts = sorted(ref)
    ref_values, hyp_values = np.stack([ref[u] for u in utts]), np.stack([hyp[u] for u in utts])
    if ref_values.shape != hyp_values.shape:
        raise ValueError(f"--ref {args.ref} has {ref_values.shape[1]} values per line, --hyp"
                         f" {args.hyp} {hyp_values.shape[1]}")
    metrics = regression_metrics(ref_values, hyp_values)
    path = write_scores(args.out_dir, {**run_info(args, "reg"), "num_items": len(utts),
                                       "metrics": metrics})
    logging.info("%d items: median absolute error %.4g (predicting the mean: %.4g) -> %s",
                 len(utts), metrics["median_ae"], metrics["mae_of_mean"], path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
