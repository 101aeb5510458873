"""Downstream runs (run.sh stages 8-9): train with ESPnet's trainer, infer on the test set and
score into ``<exp_dir>/decode_<test set>/scores.json``, every step in this process.

One run:

    python -m espnet2_gram.bin.downstream --task doa --mode probe --model gram --format foa \
        --seed 0 --dataset demo --train_dir dump/emb/foa/gram/demo_train_loc_foa \
        --valid_dir dump/emb/foa/gram/demo_valid_loc_foa --test_dir dump/emb/foa/gram/demo_test_loc_foa \
        --task_config conf/demo/doa_probe.yaml --exp_dir exp/downstream/doa_demo_foa_gram_probe_seed0

A run list (one run's options per line), shared by several processes:

    python -m espnet2_gram.bin.downstream --runs exp/downstream/jobs/loc.runs --job 1 --num_jobs 2

probe: the data dirs hold cached embeddings (``feats.scp`` and ``embeddings.json`` from
``extract_embeddings``); finetune: audio data dirs and ``--packed_model``; supervised (SELDnet,
doa and seld): audio data dirs. Labels: cls ``utt2label``, doa ``utt2doa``, seld ``tracks.scp``
(``make_seld_data``; ``--chunk_dir`` is the test chunk dir). Resuming, skipping and restarting:
see ``espnet2_gram.downstream.runs``.
"""

from espnet2_gram.downstream.runs import get_parser, main  # noqa: F401 (get_parser: docs)
from espnet2_gram.utils.cli import run, setup_logging

if __name__ == "__main__":
    setup_logging()
    run(main)
