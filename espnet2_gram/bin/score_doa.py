"""Score single-source DoA predictions against a reference ``utt2doa``.

    python -m espnet2_gram.bin.score_doa --ref data/test/utt2doa \\
        --hyp exp/doa/decode_test/utt2doa --format binaural --out_dir exp/doa/decode_test

Writes ``scores.json`` (see :func:`espnet2_gram.downstream.localization.doa_metrics.doa_metrics`; the
front-back confusion rate only for ``--format binaural``) and ``doa_errors.tsv``.
"""

import argparse
import logging
import sys
from pathlib import Path

from espnet2_gram.formats import get_format
from espnet2_gram.downstream.localization.doa_metrics import (doa_errors, doa_metrics, doa_to_xyz,
                                                              read_utt2doa)
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.utils.scoring import check_same_keys, ref_hyp_parser, run_info, write_scores

logger = logging.getLogger("espnet2_gram.score_doa")


def get_parser() -> argparse.ArgumentParser:
    return ref_hyp_parser(__doc__, "reference utt2doa: utt az el distance",
                          "predicted utt2doa: utt az el [distance]",
                          "gets scores.json and doa_errors.tsv", format_required=True)


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    ref = read_utt2doa(args.ref)
    hyp = read_utt2doa(args.hyp, require_distance=False)
    check_same_keys(ref, hyp, f"--ref {args.ref}", f"--hyp {args.hyp}")
    utts = sorted(ref)
    ref_xyz = doa_to_xyz([ref[u][0] for u in utts], [ref[u][1] for u in utts])
    hyp_xyz = doa_to_xyz([hyp[u][0] for u in utts], [hyp[u][1] for u in utts])
    # two ears: the cone of confusion, so front-back confusions and lateral errors are reported
    metrics = doa_metrics(ref_xyz, hyp_xyz, front_back=get_format(args.format).receivers == "hrtf")
    errors = doa_errors(ref_xyz, hyp_xyz)["error"]
    out_dir = Path(args.out_dir)
    with atomic_open(out_dir / "doa_errors.tsv", encoding="utf-8") as f:
        f.write("utt\tref_az\tref_el\thyp_az\thyp_el\terror\n")
        for utt, error in zip(utts, errors):
            (r_az, r_el, _), (h_az, h_el, _) = ref[utt], hyp[utt]
            f.write(f"{utt}\t{r_az:g}\t{r_el:g}\t{h_az:g}\t{h_el:g}\t{error:.3f}\n")
    path = write_scores(out_dir, {**run_info(args, "doa"), "num_items": len(utts),
                                  "metrics": metrics})
    logger.info("%d items: mean error %.2f deg, acc20 %.3f -> %s", len(utts),
                metrics["mean_error"], metrics["acc20"], path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
