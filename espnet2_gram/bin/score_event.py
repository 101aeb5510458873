"""Score predicted events against a reference with HEAR's onset F-measure (200-ms collar).

    python -m espnet2_gram.bin.score_event --ref exp/.../test/events.json \\
        --hyp exp/.../decode_test/events.json --out_dir exp/.../decode_test

Writes ``scores.json`` (see
:func:`espnet2_gram.downstream.events.metrics.onset_f_measure`). A predicted file that the
reference does not have is an error naming it; a reference file without predictions counts
its events as missed.
"""

import logging
import sys

from espnet2_gram.downstream.events.metrics import onset_f_measure, read_events
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.scoring import ref_hyp_parser, run_info, write_scores


def main(argv=None) -> None:
    args = ref_hyp_parser(__doc__, "reference events.json", "predicted events.json"
                          ).parse_args(argv)
    setup_logging(args.log_level)
    ref, hyp = read_events(args.ref), read_events(args.hyp)
    extra = sorted(set(hyp) - set(ref))
    if extra:
        raise ValueError(f"--hyp {args.hyp}: files not in --ref {args.ref}: {extra[:3]}")
    metrics = onset_f_measure(ref, hyp)
    path = write_scores(args.out_dir, {**run_info(args, "event"), "num_items": len(ref),
                                       "metrics": metrics})
    logging.info("%d files: onset F %.3f (P %.3f, R %.3f) -> %s", len(ref),
                 metrics["onset_f"], metrics["precision"], metrics["recall"], path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
