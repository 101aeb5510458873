"""Evaluate a HEAR module on HEAR-layout tasks (clean HEAR, Nat-HEAR, spatial tasks).

    python -m espnet2_gram.bin.evaluate_hear --module espnet2_gram.hear \
        --model_path exp/packed/gram_binaural --model_name gram \
        --task_dir nat_hear/binaural/esc50 --task_dir nat_hear/binaural/esc50-doa \
        --out_dir exp/hear_eval --seeds 0 1 2

Scene embeddings once per task (cached under ``<out_dir>/emb/<model_name>``), the HEAR probe
protocol per fold and seed (``<out_dir>/exp``), and ``<out_dir>/exp/RESULTS.md`` over every
model evaluated into the same ``--out_dir``. See ``espnet2_gram.nat_hear.evaluate``.
"""

import argparse
import json
import re
import shlex

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.nat_hear.evaluate import CHANNEL_POLICIES, HEAR_GRID, evaluate
from espnet2_gram.utils.cli import run, setup_logging


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", required=True, help="HEAR module, e.g. espnet2_gram.hear")
    p.add_argument("--model_path", default="", help="its weights (load_model's argument)")
    p.add_argument("--model_options", type=json.loads, default={},
                   help="JSON keywords of load_model (hear-eval-kit's --model-options), e.g."
                        " '{\"random_init\": true}' for espnet2_gram.hear")
    p.add_argument("--model_name", required=True, help="the model's name in the report")
    p.add_argument("--task_dir", action="append", required=True, help="repeatable")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--channels", choices=CHANNEL_POLICIES, default="first",
                   help="mono models: the first channel (left, W) or the mean")
    p.add_argument("--grid", choices=("hear", "none"), default="hear",
                   help="HEAR's grid (lr x 1-2 hidden layers, chosen on validation)")
    p.add_argument("--cls_config", default="conf/paper/cls_probe.yaml")
    p.add_argument("--doa_config", default="conf/paper/doa_probe.yaml")
    p.add_argument("--reg_config", default="conf/paper/reg_probe.yaml")
    p.add_argument("--event_config", default="conf/paper/event_probe.yaml")
    p.add_argument("--batch_size", type=int, default=16, help="clips per embedding batch")
    p.add_argument("--train_args", default="",
                   help="more trainer options of every probe, e.g. '--max_epoch 10'")
    args = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.model_name):
        p.error(f"--model_name {args.model_name!r}: expected [A-Za-z0-9_.-]")
    setup_logging()
    evaluate(args.task_dir, args.module, args.model_path, args.model_name, args.out_dir,
             args.seeds, args.channels, HEAR_GRID if args.grid == "hear" else [],
             {"cls": args.cls_config, "doa": args.doa_config, "reg": args.reg_config,
              "event": args.event_config},
             args.batch_size, args.model_options, shlex.split(args.train_args))


if __name__ == "__main__":
    run(main)
