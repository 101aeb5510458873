"""Estimates of a trained regression model: ``<output_dir>/utt2target`` (``utt v1 [v2 ...]``).

    python -m espnet2_gram.bin.reg_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --output_dir exp/.../decode_test \
        --data_path_and_name_and_type dump/emb/.../test/feats.scp,speech,kaldi_ark

Score it with ``python -m espnet2_gram.bin.score_reg``. An earlier ``utt2target`` is removed
first, so a failed run leaves none behind.
"""

import logging

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.downstream.inference import clip_predictions, parse_inference_args
from espnet2_gram.tasks.regression import RegressionTask
from espnet2_gram.utils.cli import naming, run
from espnet2_gram.utils.fileio import write_kv


def main(argv=None) -> None:
    args, output = parse_inference_args(__doc__, argv, "utt2target")
    hyps = {key: " ".join(f"{v:.6g}" for v in values)
            for key, values in clip_predictions(RegressionTask, args).items()}
    with naming(output):
        write_kv(output, hyps)
    logging.info("%d estimates -> %s", len(hyps), output)


if __name__ == "__main__":
    run(main)
