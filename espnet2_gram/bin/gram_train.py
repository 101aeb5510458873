"""GRAM pretraining with ESPnet's trainer: ``python -m espnet2_gram.bin.gram_train --help``.

Before training, the audio is checked (``--audio_check``, see
:meth:`espnet2_gram.tasks.gram.GRAMTask.audio_requirements`): the header of every clip of the
training and validation lists (those of the shape files when given) and of every scene noise
file is read; a summary line is printed, and bad files stop the run (``refuse``, the default)
or are left out of filtered lists in ``<output_dir>/data_check`` (``skip``). Checkpoints are
loaded weights-only (:mod:`espnet2_gram.utils.safe_load`) and scp entries that would run a
command are refused (:mod:`espnet2_gram.utils.scp`).
"""

import argparse
import functools
import sys
from pathlib import Path

import torch

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.tasks.gram import GRAMTask
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import (apply_audio_policy, check_audio,
                                          check_triplets)
from espnet2_gram.utils.fileio import read_kv, shuffled_keys
from espnet2_gram.utils.safe_load import guard_espnet_loading
from espnet2_gram.utils.scp import check_scp


def get_parser():
    return GRAMTask.get_parser()


def check_data(args: argparse.Namespace) -> None:
    """Check the data lists of ``args`` (no entry runs a command) and their audio by
    ``args.audio_check``; with ``skip``, ``args`` is changed to use the filtered lists."""
    out_dir = Path(args.output_dir) / "data_check"
    audio = args.audio_check != "off"
    noise = (args.scene_conf or {}).get("noise_scp")
    if noise:
        check_scp(noise, "--scene_conf noise_scp")
    if noise and audio:
        replaced = _apply(args, check_audio(noise), "--scene_conf noise_scp", out_dir / "noise")
        if replaced:
            args.scene_conf = {**args.scene_conf, "noise_scp": str(replaced[str(Path(noise))])}
    fs, channels, who = GRAMTask.audio_requirements(args)
    for split in ("train", "valid"):
        option = f"--{split}_data_path_and_name_and_type"
        triplets = getattr(args, f"{split}_data_path_and_name_and_type")
        shape_files = getattr(args, f"{split}_shape_file")
        check_triplets(option, triplets)
        if not audio:
            continue
        keys = {k for f in shape_files for k in read_kv(f, allow_empty_value=True)} or None
        for i, (path, name, data_type) in enumerate(triplets):
            replaced = _apply(args, check_audio(path, keys, fs, channels, who), option,
                              out_dir / split, shape_files)
            if replaced:
                triplets[i] = (str(replaced[str(Path(path))]), name, data_type)
                shape_files[:] = [str(replaced.get(str(Path(f)), f)) for f in shape_files]


def _apply(args, check, option: str, out_dir: Path, companions=()) -> dict:
    """:func:`apply_audio_policy` and its summary line on stderr."""
    replaced = apply_audio_policy(check, args.audio_check == "skip", option, out_dir,
                                  companions)
    line = f"audio check: {option} {check.summary()}"
    if replaced:
        line += f"; left out, using {replaced[str(check.scp)]}"
    print(line, file=sys.stderr)
    return replaced


def check_device(args: argparse.Namespace) -> None:
    """Refuse ``--ngpu`` without CUDA; say what ``--use_amp`` does on this device.

    ESPnet's trainer autocasts to bf16 where the GPU supports it, and keeps a GradScaler even
    then; bf16 has float32's range, so loss scaling is pointless and its inf check waits for the
    device every step: the scaler is disabled (a no-op) under bf16.
    """
    if args.ngpu > 0 and not torch.cuda.is_available():
        raise ValueError(
            f"--ngpu {args.ngpu}: CUDA is not available here (torch {torch.__version__}, CUDA"
            f" build {torch.version.cuda or 'none'}); use --ngpu 0 to train on the CPU")
    if args.compile_model and not hasattr(torch, "compile"):
        raise ValueError(f"--compile_model true: torch {torch.__version__} has no"
                         " torch.compile; set --compile_model false")
    if not args.use_amp:
        return
    if args.ngpu == 0:
        print("WARNING: --use_amp true does nothing with --ngpu 0: ESPnet trains on the CPU"
              " in float32", file=sys.stderr)
        return
    import espnet2.train.trainer as espnet_trainer

    if espnet_trainer.autocast_args.get("dtype") == torch.bfloat16:
        espnet_trainer.GradScaler = functools.partial(torch.amp.GradScaler, "cuda",
                                                      enabled=False)
        print("--use_amp true: bf16 autocast, no loss scaling", file=sys.stderr)
    else:
        print("--use_amp true: float16 autocast with loss scaling (this GPU has no bf16)",
              file=sys.stderr)


def shuffle_training_order(args: argparse.Namespace) -> None:
    """Train on the keys in an order drawn from ``--seed`` (``<output_dir>/train_order.scp``):
    ESPnet's unsorted batches are runs of consecutive keys of the shape file, and a sorted
    list (by class for most corpora) would give batches of one class."""
    if (args.batch_type == "unsorted" and args.train_shape_file and args.output_dir
            and not args.collect_stats):
        order = Path(args.output_dir) / "train_order.scp"
        args.train_shape_file = [str(shuffled_keys(args.train_shape_file[0], order, args.seed)),
                                 *args.train_shape_file[1:]]


def main(cmd=None) -> None:
    guard_espnet_loading()
    args = GRAMTask.get_parser().parse_args(cmd)
    if not args.print_config:
        check_device(args)
        check_data(args)
        shuffle_training_order(args)
    GRAMTask.main(args=args)


if __name__ == "__main__":
    run(main)
