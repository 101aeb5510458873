"""ESPnet's `espnet2.bin.cls_train` with the GRAM plugin loaded (`frontend: gram`, `encoder: gram`,
`encoder: probe` on cached embeddings).

The data are checked before ESPnet starts: every file of a split names the same utterances
(the first mismatches are listed), no scp entry runs a command and every label is in
``--token_list`` (a label unseen in training is an error naming it and its utterance).
Checkpoints (``--init_param``, ``--resume``) are loaded weights-only.
"""

import espnet2_gram  # noqa: F401  (registers gram in ESPnet's tasks)

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2.bin.cls_train import get_parser  # noqa: F401
from espnet2.tasks.cls import CLSTask

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import (check_labels_known, check_task_data,
                                          option_value)
from espnet2_gram.utils.safe_load import run_espnet_entry


def check_labels(argv) -> None:
    """The data files, and every label in the token list when one is given."""
    checks = {}
    token_list = option_value(argv, "--token_list")
    if token_list:
        with open(token_list, encoding="utf-8") as f:
            tokens = [line.strip() for line in f if line.strip()]
        checks["label"] = lambda path: check_labels_known(path, tokens)
    check_task_data(argv, checks)


def main(cmd=None) -> None:
    run_espnet_entry(CLSTask.main, cmd, check_labels)


if __name__ == "__main__":
    run(main)
