"""ESPnet's trainer that also keeps the weights of chosen epochs (``--keep_epochs 4 12``).

ESPnet keeps only the n-best and the latest ``<N>epoch.pth``; a curve of downstream results
against pretraining steps needs the weights of given epochs whatever their validation loss.
They go to ``<output_dir>/snapshots/<N>epoch.pth`` (the same state dict as ESPnet's
``<N>epoch.pth``), written under a temporary name and renamed, on the first process only.
"""

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Sequence

import torch
from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.build_dataclass import build_dataclass

SNAPSHOT_DIR = "snapshots"


@dataclasses.dataclass
class SnapshotTrainerOptions(TrainerOptions):
    keep_epochs: Sequence[int]


def snapshot_path(output_dir, epoch: int) -> Path:
    return Path(output_dir) / SNAPSHOT_DIR / f"{epoch}epoch.pth"


def _epoch(value: str) -> int:
    epoch = int(value)
    if epoch < 1:
        raise argparse.ArgumentTypeError(f"expected an epoch >= 1, got {value}")
    return epoch


class SnapshotTrainer(Trainer):
    @classmethod
    def build_options(cls, args: argparse.Namespace) -> SnapshotTrainerOptions:
        return build_dataclass(SnapshotTrainerOptions, args)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser):
        parser.add_argument(
            "--keep_epochs", type=_epoch, nargs="*", default=[],
            help="also keep the weights of these epochs in <output_dir>/snapshots/<N>epoch.pth"
                 " (ESPnet keeps only the n-best and the latest)")

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        all_steps_are_invalid = super().train_one_epoch(
            model, iterator, optimizers, schedulers, scaler, reporter, summary_writer, options,
            distributed_option)
        epoch = reporter.get_epoch()
        first_process = distributed_option.dist_rank in (None, 0)
        if epoch in options.keep_epochs and first_process:
            path = snapshot_path(options.output_dir, epoch)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            torch.save(getattr(model, "module", model).state_dict(), tmp)
            os.replace(tmp, path)
        return all_steps_are_invalid
