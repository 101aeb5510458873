"""Direction estimates of a trained DoA model: ``<output_dir>/utt2doa`` (azimuth elevation 1.0).

    python -m espnet2_gram.bin.doa_inference --train_config exp/.../config.yaml \
        --model_file exp/.../valid.loss.best.pth --output_dir exp/.../decode_demo_test \
        --data_path_and_name_and_type dump/emb/foa/gram/demo_test_foa/feats.scp,speech,kaldi_ark

Score it with ``python -m espnet2_gram.bin.score_doa``. An earlier ``utt2doa`` is removed
first, so a failed run leaves none behind.
"""

import argparse
import logging
import time
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import numpy as np
import torch

from espnet2_gram.downstream.inference import add_inference_arguments, clip_predictions
from espnet2_gram.simulation.geometry import cart_to_sph
from espnet2_gram.tasks.doa import DOATask
from espnet2_gram.utils.cli import naming, run, setup_logging
from espnet2_gram.utils.fileio import write_kv


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inference_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.num_threads)
    output = Path(args.output_dir) / "utt2doa"
    output.unlink(missing_ok=True)
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
