"""Stage 4: render a fixed naturalistic (spatial, reverberant, noisy) version of a data
directory through a held-out RIR bank, with the source direction in utt2doa (localisation
sets: ``--renders_per_utt 2 --pack_assignment distinct``, one direction and room per render).

    python -m espnet2_gram.bin.make_eval_set --data_dir dump/raw/demo_test \
        --bank_dir exp/rir_bank/eval_binaural --noise_dir dump/raw/demo_noise \
        --out_dir dump/raw/demo_test_binaural --seed 3
"""

import argparse

from espnet2_gram.simulation.eval_sets import PACK_ASSIGNMENTS, render_eval_set
from espnet2_gram.utils.audio import MONO_POLICIES
from espnet2_gram.utils.cli import run, setup_logging, str2bool


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--bank_dir", required=True, help="a merged RIR bank (stage 3)")
    p.add_argument("--noise_dir", help="data directory of noise recordings (none: no noise)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--audio_dir", help="where the wavs go (default: <out_dir>/data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr_range", type=float, nargs=2, default=(5.0, 40.0), metavar=("LOW", "HIGH"))
    p.add_argument("--fade_seconds", type=float, default=0.2)
    p.add_argument("--mono_policy", default="first", choices=MONO_POLICIES)
    p.add_argument("--renders_per_utt", type=int, default=1,
                   help="renders of every utterance (ids <utt>-r<k> when > 1)")
    p.add_argument("--pack_assignment", default="random", choices=PACK_ASSIGNMENTS,
                   help="random: a pack drawn per render; distinct: one pack per render")
    p.add_argument("--overwrite", type=str2bool, default=False,
                   help="redo outputs made with other settings (default: refuse them)")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    render_eval_set(
        args.data_dir, args.bank_dir, args.out_dir, args.audio_dir or f"{args.out_dir}/data",
        noise_dir=args.noise_dir, seed=args.seed, snr_range=args.snr_range,
        fade_seconds=args.fade_seconds, mono_policy=args.mono_policy, overwrite=args.overwrite,
        renders_per_utt=args.renders_per_utt, pack_assignment=args.pack_assignment,
    )


if __name__ == "__main__":
    run(main)
