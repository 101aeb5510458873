"""Stage 7: pack a GRAM model (directory with a model card, and an ESPnet .zip).

    python -m espnet2_gram.bin.pack_gram --exp_dir exp/gram_binaural \
        --stats_file exp/gram_stats_binaural/train/feats_stats.npz --out_dir exp/packed/gram_binaural
"""

import contextlib
import sys

with contextlib.redirect_stdout(sys.stderr):  # ESPnet's Flash-Attention notice
    import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401

from espnet2_gram.packing import main  # noqa: E402
from espnet2_gram.utils.cli import run  # noqa: E402

if __name__ == "__main__":
    run(main)
