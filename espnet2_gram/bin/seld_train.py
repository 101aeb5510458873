"""Train a SELD model (``SELDTask``: frame-level ACCDOA; ESPnet's trainer and all its options).

    python -m espnet2_gram.bin.seld_train --config conf/demo/seld_probe.yaml --input_size 512 \
        --train_data_path_and_name_and_type dump/emb/foa/gram/seld_train_foa/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type dump/seld/seld_train_foa/tracks.scp,tracks,npy \
        --valid_data_path_and_name_and_type ... --output_dir exp/downstream/seld_foa_gram_probe

Chunks and targets come from ``espnet2_gram.bin.make_seld_data``; every file of a split must
name the same chunks, and no scp entry may run a command (checked first). Checkpoints
(``--init_param``, ``--resume``) are loaded weights-only.
"""

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.tasks.seld import SELDTask
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import check_task_data
from espnet2_gram.utils.safe_load import run_espnet_entry


def get_parser():
    return SELDTask.get_parser()


def main(cmd=None) -> None:
    run_espnet_entry(SELDTask.main, cmd, check_task_data)


if __name__ == "__main__":
    run(main)
