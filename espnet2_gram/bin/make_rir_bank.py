"""Build (one job's share of) the sharded RIR bank, or merge the shards of all jobs.

    python -m espnet2_gram.bin.make_rir_bank --config conf/demo/rir_bank.yaml \
        --format binaural --out_dir exp/rir_bank/train_binaural --num_packs 100 --seed 1 \
        --job_index 1 --num_jobs 4
    python -m espnet2_gram.bin.make_rir_bank ... --merge true

The config (sections sampling:, render:, bank:) is checked whole before the folder is claimed:
unknown sections or keys, values of the wrong type or range, and an upper ``sampling.rt60``
beyond ``render.max_rir_seconds`` (an RIR must hold its reverberation) are errors.
"""

import argparse
import logging
from dataclasses import dataclass

from espnet2_gram.simulation.rir_bank import check_rt60_fits, make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import GeometryError, RenderConfig, RoomSampling
from espnet2_gram.utils.cli import build_dataclass, load_yaml, run, setup_logging, str2bool
from espnet2_gram.utils.config_check import check_field_types

RENDER_OVERRIDES = ("format", "fs", "hrtf", "method")
BANK_OVERRIDES = ("num_packs", "shard_size")


@dataclass
class BankSize:
    """The ``bank:`` section of the config (``--num_packs`` and ``--shard_size`` override it)."""

    num_packs: int = 0
    shard_size: int = 50


SECTIONS = {"sampling": RoomSampling, "render": RenderConfig, "bank": BankSize}


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


def load_config(args) -> tuple:
    """(RoomSampling, RenderConfig, BankSize) of ``--config`` with the command-line overrides,
    fully validated before anything is written; errors name the file and the key."""
    cfg = load_yaml(args.config)
    where = f"--config {args.config}"
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown sections {unknown}; known: {list(SECTIONS)}")
    overrides = {
        "render": {k: getattr(args, k) for k in RENDER_OVERRIDES if getattr(args, k) is not None},
        "bank": {k: getattr(args, k) for k in BANK_OVERRIDES if getattr(args, k) is not None},
    }
    built = {}
    for name, cls in SECTIONS.items():
        section = cfg.get(name) or {}
        if not isinstance(section, dict):
            raise ValueError(f"{where}: section {name!r} must be a mapping, got {section!r}")
        check_field_types(cls, section, f"{where}: {name}")
        try:
            built[name] = build_dataclass(cls, {**section, **overrides.get(name, {})}, name)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
    sampling, render, bank = built.values()
    if bank.num_packs < 1:
        raise ValueError(f"--num_packs (or bank.num_packs in {args.config}) must be a positive"
                         f" integer, got {bank.num_packs}")
    if bank.shard_size < 1:
        raise ValueError(f"--shard_size (or bank.shard_size in {args.config}) must be positive,"
                         f" got {bank.shard_size}")
    try:
        check_rt60_fits(sampling, render)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    return sampling, render, bank


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.merge:
        info = merge_bank(args.out_dir)
        logging.info("merged %d packs (%d RIRs) into %s, mean RT60 target/measured %.2f/%.2f s",
                     info["num_packs"], info["num_rirs"], args.out_dir,
                     info["rt60_target_mean"], info["rt60_measured_mean"])
        return
    if not args.config:
        raise ValueError("--config is required to render a bank")
    sampling, render, bank = load_config(args)
    try:
        done = make_bank_shards(args.out_dir, bank.num_packs, args.seed, sampling, render,
                                shard_size=bank.shard_size, job_index=args.job_index,
                                num_jobs=args.num_jobs, prefix=args.prefix)
    except GeometryError as e:  # rooms the config's ranges cannot realise
        raise GeometryError(f"--config {args.config}: {e}") from e
    logging.info("job %d/%d rendered %d packs", args.job_index, args.num_jobs, done)


if __name__ == "__main__":
    run(main)
