"""Train a frame-level event model (``EventTask``, ESPnet's trainer and all its options).

    python -m espnet2_gram.bin.event_train --config conf/demo/event_probe.yaml --input_size 512 \
        --model_conf num_classes=11 \
        --train_data_path_and_name_and_type exp/nat_hear/.../train/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type exp/nat_hear/.../train/targets.scp,target,kaldi_ark \
        --valid_data_path_and_name_and_type ... --output_dir exp/event_probe

The data are checked first (every file of a split names the same utterances, no scp entry runs
a command); checkpoints (``--init_param``, ``--resume``) are loaded weights-only.
"""

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.tasks.event import EventTask
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import check_task_data
from espnet2_gram.utils.safe_load import run_espnet_entry


def get_parser():
    return EventTask.get_parser()


def main(cmd=None) -> None:
    run_espnet_entry(EventTask.main, cmd, lambda argv: check_task_data(argv, {}))


if __name__ == "__main__":
    run(main)
