"""Render a HEAR-layout task as its naturalistic spatial version (Nat-HEAR).

    python -m espnet2_gram.bin.make_nat_hear --task_dir tasks/esc50-v2.0.0-full \
        --bank_dir exp/rir_bank/eval_binaural --noise_dir dump/raw/demo_noise \
        --out_dir nat_hear/binaural/esc50-v2.0.0-full --snr_range 5 40 --seed 0

The output has the input's layout (``task_metadata.json`` with a ``nat_hear`` record, the
split label files, ``<rate>/<split>/`` audio in the bank's format and rate) and
``nat_hear.json`` with each file's room, direction, RT60, SNR and direct-path delay;
``--spatial_tasks doa rt60`` adds the localisation and reverberation-time tasks beside it
(``<out_dir>-doa``, ``<out_dir>-rt60``). See ``espnet2_gram.nat_hear.generate``.
"""

import argparse

from espnet2_gram.nat_hear.generate import SPATIAL_TASKS, generate, write_spatial_tasks
from espnet2_gram.utils.cli import run, setup_logging, str2bool


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_dir", required=True, help="a task in HEAR's layout")
    p.add_argument("--bank_dir", required=True, help="RIR bank (its format and rate are used)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--noise_dir", default=None, help="data dir whose wav.scp lists noises")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr_range", type=float, nargs=2, default=(5.0, 40.0))
    p.add_argument("--fade_seconds", type=float, default=0.2)
    p.add_argument("--overwrite", type=str2bool, default=False)
    p.add_argument("--spatial_tasks", nargs="*", default=[], choices=sorted(SPATIAL_TASKS),
                   help="also write <out_dir>-doa and/or <out_dir>-rt60 (scene tasks)")
    args = p.parse_args(argv)
    setup_logging()
    generate(args.task_dir, args.bank_dir, args.out_dir, args.noise_dir, args.seed,
             tuple(args.snr_range), args.fade_seconds, args.overwrite)
    if args.spatial_tasks:
        write_spatial_tasks(args.out_dir, args.spatial_tasks)


if __name__ == "__main__":
    run(main)
