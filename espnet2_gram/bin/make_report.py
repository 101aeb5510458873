"""Report of the downstream runs: ESPnet-style RESULTS.md with tables and figures.

    python -m espnet2_gram.bin.make_report --exp_dir exp/downstream [--out_dir exp/downstream]

Reads ``<exp_dir>/<run>/decode_<dataset>/scores.json`` (with ``doa_errors.tsv`` beside DoA
scores) and ``<exp_dir>/<run>/train.log``; writes ``<out_dir>/RESULTS.md`` and the PNG
figures it links, ``<out_dir>/images/*.png``. A table row gathers the runs of one format, model
and mode: the folds of each seed (``fold`` and ``seed`` in ``scores.json``) are averaged, then
a cell is mean ± std over seeds; DoA box plots pool the seeds, and confusion matrices and
training curves show the lowest seed.
"""

import argparse

from espnet2_gram.report.tables import write_report
from espnet2_gram.utils.cli import run, setup_logging


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="folder holding one folder per run")
    p.add_argument("--out_dir", default=None, help="where to write (default: --exp_dir)")
    p.add_argument("--log_level", default="INFO")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    write_report(args.exp_dir, args.out_dir)


if __name__ == "__main__":
    run(main)
