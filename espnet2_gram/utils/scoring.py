"""Shared pieces of the ``score_*`` entry points: run options, key checks, ``scores.json``."""

import argparse
import json
from pathlib import Path
from typing import Iterable

from espnet2_gram.formats import FORMATS
from espnet2_gram.utils import datadir
from espnet2_gram.utils.fileio import atomic_open

MODES = ("probe", "finetune", "supervised")
SCORES_FILE = "scores.json"


def add_run_options(parser: argparse.ArgumentParser, format_required: bool = False) -> None:
    """The run description recorded in ``scores.json``: model, mode, dataset, format, seed, fold
    and the pretraining steps of the model's weights."""
    group = parser.add_argument_group("run description (recorded in scores.json)")
    group.add_argument("--model", help="model name")
    group.add_argument("--mode", choices=MODES, help="how the model was trained for the task")
    group.add_argument("--dataset", help="evaluation set name")
    group.add_argument("--format", choices=list(FORMATS), required=format_required,
                       help="input audio format")
    group.add_argument("--seed", type=int, default=None,
                       help="training seed (the report: mean ± std over seeds)")
    group.add_argument("--fold", type=int, default=None,
                       help="cross-validation fold (folds are averaged in the report)")
    group.add_argument("--pretrain_steps", type=int, default=None,
                       help="pretraining steps of the encoder's weights, 0 for a random init"
                            " (the report's curve of results against pretraining)")


def ref_hyp_parser(doc: str, ref_help: str, hyp_help: str, out_help: str = "gets scores.json",
                   format_required: bool = False) -> argparse.ArgumentParser:
    """A scorer's parser: ``--ref``, ``--hyp``, ``--out_dir``, ``--log_level`` and the run
    options."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help=ref_help)
    parser.add_argument("--hyp", required=True, help=hyp_help)
    parser.add_argument("--out_dir", required=True, help=out_help)
    parser.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    add_run_options(parser, format_required=format_required)
    return parser


def run_info(args: argparse.Namespace, task: str) -> dict:
    """The leading ``scores.json`` fields of a run."""
    info = {"task": task, "dataset": args.dataset, "format": args.format,
            "model": args.model, "mode": args.mode}
    for key in ("seed", "fold", "pretrain_steps"):
        if getattr(args, key, None) is not None:
            info[key] = getattr(args, key)
    return info


def check_same_keys(ref_keys: Iterable[str], hyp_keys: Iterable[str], ref_name: str,
                    hyp_name: str) -> None:
    """Raise ``ValueError`` (``DataDirError``) unless both files list the same items."""
    datadir.check_same_keys({ref_name: set(ref_keys), hyp_name: set(hyp_keys)})


def write_scores(out_dir, scores: dict) -> Path:
    """Atomically write ``out_dir/scores.json``; returns its path."""
    path = Path(out_dir) / SCORES_FILE
    with atomic_open(path, encoding="utf-8") as f:
        json.dump(scores, f, indent=2)
        f.write("\n")
    return path
