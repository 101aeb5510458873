"""Cut DCASE-format recordings into chunks with ACCDOA targets for SELD training and inference.

    python -m espnet2_gram.bin.make_seld_data --data_dir dump/raw/seld_train_foa \
        --out_dir dump/seld/seld_train_foa --num_classes 13 --chunk_seconds 2

See ``espnet2_gram.downstream.localization.seld_data`` for the output layout.
"""

import argparse

from espnet2_gram.downstream.localization.seld_data import make_seld_chunks
from espnet2_gram.utils.cli import run, setup_logging


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="wav.scp + utt2metadata (DCASE CSVs)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--num_classes", type=int, required=True)
    p.add_argument("--chunk_seconds", type=float, default=2.0)
    p.add_argument("--label_hop_seconds", type=float, default=0.1)
    p.add_argument("--fs", type=int, default=None, help="resample to this rate")
    args = p.parse_args(argv)
    setup_logging()
    make_seld_chunks(args.data_dir, args.out_dir, args.num_classes, args.chunk_seconds,
                     args.label_hop_seconds, args.fs)


if __name__ == "__main__":
    run(main)
