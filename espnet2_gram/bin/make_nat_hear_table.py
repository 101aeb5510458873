"""Write the HEAR / Nat-HEAR table (``NAT_HEAR.md``, ``images/nat_hear.png``) and the runs'
``exp/RESULTS.md`` of an evaluation dir, once every model evaluated into it (in parallel) is
done; see ``espnet2_gram.nat_hear.table``.

    python -m espnet2_gram.bin.make_nat_hear_table --out_dir exp/nat_hear
"""

import argparse
from pathlib import Path

from espnet2_gram.nat_hear.table import write_table
from espnet2_gram.report.tables import write_report
from espnet2_gram.utils.cli import run, setup_logging


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True, help="the --out_dir of evaluate_hear")
    args = p.parse_args(argv)
    setup_logging()
    write_report(Path(args.out_dir) / "exp")
    print(write_table(args.out_dir).read_text(), end="")


if __name__ == "__main__":
    run(main)
