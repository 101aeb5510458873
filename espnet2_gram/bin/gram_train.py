"""GRAM pretraining with ESPnet's trainer: ``python -m espnet2_gram.bin.gram_train --help``."""

import contextlib
import sys

# ESPnet prints a notice about Flash Attention to stdout when this module is first imported;
# send it to stderr so that `--print_config > config.yaml` gives a config that reads back.
with contextlib.redirect_stdout(sys.stderr):
    import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401

from espnet2_gram.tasks.gram import GRAMTask  # noqa: E402


def get_parser():
    return GRAMTask.get_parser()


def main(cmd=None):
    GRAMTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
