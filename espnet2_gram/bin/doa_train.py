"""Train a direction-of-arrival model (``DOATask``, ESPnet's trainer and all its options).

    python -m espnet2_gram.bin.doa_train --config conf/demo/doa_probe.yaml --input_size 512 \
        --train_data_path_and_name_and_type dump/emb/foa/gram/demo_train_foa/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type dump/raw/demo_train_foa/utt2doa,doa,text_float \
        --valid_data_path_and_name_and_type ... --output_dir exp/downstream/doa_foa_gram_probe

The data are checked first: every file of a split names the same utterances, no scp entry runs
a command, and every ``utt2doa`` line is in range (azimuth in [-180, 180], elevation in
[-90, 90]). Checkpoints (``--init_param``, ``--resume``) are loaded weights-only.
"""

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.downstream.localization.doa_metrics import read_utt2doa
from espnet2_gram.tasks.doa import DOATask
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import check_task_data
from espnet2_gram.utils.safe_load import run_espnet_entry


def get_parser():
    return DOATask.get_parser()


def main(cmd=None) -> None:
    run_espnet_entry(DOATask.main, cmd, lambda argv: check_task_data(
        argv, {"doa": lambda p: read_utt2doa(p, require_distance=False)}))


if __name__ == "__main__":
    run(main)
