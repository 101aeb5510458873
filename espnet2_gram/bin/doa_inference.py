"""Direction estimates of a trained DoA model: ``<output_dir>/utt2doa`` (azimuth elevation 1.0).

    python -m espnet2_gram.bin.doa_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --output_dir exp/.../decode_demo_test \
        --data_path_and_name_and_type dump/emb/foa/gram/demo_test_foa/feats.scp,speech,kaldi_ark

Score it with ``python -m espnet2_gram.bin.score_doa``. An earlier ``utt2doa`` is removed
first, so a failed run leaves none behind.
"""

import logging
import time

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import numpy as np

from espnet2_gram.downstream.inference import clip_predictions, parse_inference_args
from espnet2_gram.simulation.geometry import cart_to_sph
from espnet2_gram.tasks.doa import DOATask
from espnet2_gram.utils.cli import naming, run
from espnet2_gram.utils.fileio import write_kv


def main(argv=None) -> None:
    args, output = parse_inference_args(__doc__, argv, "utt2doa")
    start = time.perf_counter()
    pred = clip_predictions(DOATask, args)
    az, el, _ = cart_to_sph(np.stack(list(pred.values())))
    hyps = {key: f"{a:.2f} {e:.2f} 1.0" for key, a, e in zip(pred, az, el)}
    elapsed = time.perf_counter() - start
    with naming(output):
        write_kv(output, hyps)
    logging.info("%d directions in %.1f s (%.1f clips/s) -> %s/utt2doa", len(hyps), elapsed,
                 len(hyps) / max(elapsed, 1e-9), args.output_dir)


if __name__ == "__main__":
    run(main)
