"""Train a regression model (``RegressionTask``, ESPnet's trainer and all its options).

    python -m espnet2_gram.bin.reg_train --config conf/demo/reg_probe.yaml --input_size 512 \
        --model_conf output_size=1 --model_conf target_mean=0.45 --model_conf target_std=0.2 \
        --train_data_path_and_name_and_type dump/emb/.../train/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type dump/.../train/utt2target,target,text_float \
        --valid_data_path_and_name_and_type ... --output_dir exp/reg_probe

The data are checked first: every file of a split names the same utterances, no scp entry runs
a command, and every ``utt2target`` line holds the same number of finite values. Checkpoints
(``--init_param``, ``--resume``) are loaded weights-only.
"""

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.downstream.regression.metrics import read_utt2target
from espnet2_gram.tasks.regression import RegressionTask
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import check_task_data
from espnet2_gram.utils.safe_load import run_espnet_entry


def get_parser():
    return RegressionTask.get_parser()


def main(cmd=None) -> None:
    run_espnet_entry(RegressionTask.main, cmd,
                     lambda argv: check_task_data(argv, {"target": read_utt2target}))


if __name__ == "__main__":
    run(main)
