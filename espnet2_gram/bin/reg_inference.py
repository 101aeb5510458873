"""Estimates of a trained regression model: ``<output_dir>/utt2target`` (``utt v1 [v2 ...]``).

    python -m espnet2_gram.bin.reg_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --output_dir exp/.../decode_test \
        --data_path_and_name_and_type dump/emb/.../test/feats.scp,speech,kaldi_ark

Score it with ``python -m espnet2_gram.bin.score_reg``. An earlier ``utt2target`` is removed
first, so a failed run leaves none behind.
"""

import argparse
import logging
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import torch

from espnet2_gram.downstream.localization.inference import (add_inference_arguments, batches,
                                                            check_inference_data, load_trained)
from espnet2_gram.tasks.regression import RegressionTask
from espnet2_gram.utils.cli import naming, run, setup_logging
from espnet2_gram.utils.fileio import write_kv


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inference_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.num_threads)
    output = Path(args.output_dir) / "utt2target"
    output.unlink(missing_ok=True)
    check_inference_data(args)
    model, train_args = load_trained(RegressionTask, args.train_config, args.model_file,
                                     args.device)
    hyps = {}
    with torch.no_grad():
        for keys, batch in batches(RegressionTask, train_args,
                                   args.data_path_and_name_and_type, args.batch_size):
            pred = model.predict(batch["speech"].to(args.device),
                                 batch["speech_lengths"].to(args.device)).cpu().numpy()
            for key, values in zip(keys, pred):
                hyps[key] = " ".join(f"{v:.6g}" for v in values)
    with naming(output):
        write_kv(output, hyps)
    logging.info("%d estimates -> %s", len(hyps), output)


if __name__ == "__main__":
    run(main)
