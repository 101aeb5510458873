"""Build (one job's share of) the sharded RIR bank, or merge the shards of all jobs.

    python -m espnet2_gram.bin.make_rir_bank --config conf/rir_bank_demo.yaml \
        --format binaural --out_dir exp/rir_bank/train_binaural --num_packs 100 --seed 1 \
        --job_index 1 --num_jobs 4
    python -m espnet2_gram.bin.make_rir_bank ... --merge true
"""

import argparse
import logging

from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.cli import build_dataclass, load_yaml, run, setup_logging, str2bool

RENDER_OVERRIDES = ("format", "fs", "hrtf", "method")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML with sampling:, render:, bank: sections")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--num_packs", type=int, help="scene packs (source + noise RIRs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard_size", type=int, help="packs per shard (default: config or 50)")
    p.add_argument("--prefix", default="rir", help="id prefix of the packs")
    p.add_argument("--job_index", type=int, default=1, help="1-based job index")
    p.add_argument("--num_jobs", type=int, default=1)
    p.add_argument("--merge", type=str2bool, default=False,
                   help="merge all shards into rirs.scp / meta.jsonl instead of rendering")
    for name in RENDER_OVERRIDES:
        p.add_argument(f"--{name}", type=int if name == "fs" else str,
                       help=f"override render.{name} of the config")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.merge:
        info = merge_bank(args.out_dir)
        logging.info("merged %d packs (%d RIRs) into %s", info["num_packs"], info["num_rirs"],
                     args.out_dir)
        return
    if not args.config:
        raise ValueError("--config is required to render a bank")
    cfg = load_yaml(args.config)
    render_cfg = dict(cfg.get("render", {}))
    render_cfg.update({k: getattr(args, k) for k in RENDER_OVERRIDES if getattr(args, k)})
    sampling = build_dataclass(RoomSampling, cfg.get("sampling", {}), "sampling")
    render = build_dataclass(RenderConfig, render_cfg, "render")
    bank_cfg = cfg.get("bank", {})
    num_packs = args.num_packs or bank_cfg.get("num_packs")
    shard_size = args.shard_size or bank_cfg.get("shard_size", 50)
    if not num_packs or num_packs < 1:
        raise ValueError("--num_packs (or bank.num_packs in the config) must be a positive integer")
    if shard_size < 1:
        raise ValueError(f"--shard_size must be positive, got {shard_size}")
    done = make_bank_shards(args.out_dir, num_packs, args.seed, sampling, render,
                            shard_size=shard_size, job_index=args.job_index,
                            num_jobs=args.num_jobs, prefix=args.prefix)
    logging.info("job %d/%d rendered %d packs", args.job_index, args.num_jobs, done)


if __name__ == "__main__":
    run(main)
