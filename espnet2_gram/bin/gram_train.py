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
import contextlib
import sys
from pathlib import Path

# ESPnet prints a notice about Flash Attention to stdout when this module is first imported;
# send it to stderr so that `--print_config > config.yaml` gives a config that reads back.
with contextlib.redirect_stdout(sys.stderr):
    import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401

from espnet2_gram.tasks.gram import GRAMTask  # noqa: E402
from espnet2_gram.utils.cli import run  # noqa: E402
from espnet2_gram.utils.datacheck import (apply_audio_policy, check_audio,  # noqa: E402
                                          check_triplets)
from espnet2_gram.utils.fileio import read_kv  # noqa: E402
from espnet2_gram.utils.safe_load import guard_espnet_loading  # noqa: E402
from espnet2_gram.utils.scp import check_scp  # noqa: E402


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


def main(cmd=None) -> None:
    guard_espnet_loading()
    args = GRAMTask.get_parser().parse_args(cmd)
    if not args.print_config:
        check_data(args)
    GRAMTask.main(args=args)


if __name__ == "__main__":
    run(main)
