"""Stage 2: format a data directory's audio (sample rate, channels) into dump/.

    python -m espnet2_gram.bin.format_data --in_dir data/demo_train \
        --out_dir dump/raw/demo_train --fs 16000 --mono_policy first --nj 2
"""

import argparse

from espnet2_gram.utils.audio import MONO_POLICIES
from espnet2_gram.utils.cli import run, setup_logging, str2bool
from espnet2_gram.utils.format_data_dir import format_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in_dir", required=True, help="Kaldi-style data directory")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--audio_dir", help="where the wavs go (default: <out_dir>/data)")
    p.add_argument("--fs", type=int, required=True, help="target sample rate (resampled, logged)")
    p.add_argument("--mono_policy", default="first", choices=MONO_POLICIES + ("keep",),
                   help="multichannel input: first channel, channel mean, or keep all")
    p.add_argument("--nj", type=int, default=1, help="parallel processes")
    p.add_argument("--overwrite", type=str2bool, default=False,
                   help="redo outputs made with other settings (default: refuse them)")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.fs <= 0 or args.nj <= 0:
        raise ValueError("--fs and --nj must be positive")
    format_data_dir(
        args.in_dir, args.out_dir, args.audio_dir or f"{args.out_dir}/data", args.fs,
        mono_policy=None if args.mono_policy == "keep" else args.mono_policy, nj=args.nj,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    run(main)
