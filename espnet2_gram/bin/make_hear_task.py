"""Write Kaldi-style data dirs as a task in HEAR's layout (see
``espnet2_gram.nat_hear.from_data``).

    python -m espnet2_gram.bin.make_hear_task --task_name demo --fs 16000 \
        --split train=dump/raw/demo_train --split valid=dump/raw/demo_valid \
        --split test=dump/raw/demo_test --out_dir dump/hear/clean/demo
"""

import argparse

from espnet2_gram.nat_hear.from_data import write_hear_task
from espnet2_gram.utils.cli import run, setup_logging, str2bool


def split_option(text: str):
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected <split>=<data dir>, got '{text}'")
    return name, path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", type=split_option, action="append", required=True,
                   help="<split>=<data dir with wav.scp and utt2label>, repeatable")
    p.add_argument("--task_name", required=True)
    p.add_argument("--fs", type=int, required=True, help="sample rate of the task's audio")
    p.add_argument("--multilabel", type=str2bool, default=False)
    p.add_argument("--out_dir", required=True)
    args = p.parse_args(argv)
    setup_logging()
    write_hear_task(dict(args.split), args.out_dir, args.task_name, args.fs, args.multilabel)


if __name__ == "__main__":
    run(main)
