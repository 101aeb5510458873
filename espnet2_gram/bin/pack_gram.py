"""Stage 7: pack a GRAM model (directory with a model card, and an ESPnet .zip).

    python -m espnet2_gram.bin.pack_gram --exp_dir exp/gram_binaural \
        --stats_file exp/gram_stats_binaural/train/feats_stats.npz --out_dir exp/packed/gram_binaural
"""

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.pretrained.packing import main
from espnet2_gram.utils.cli import run

if __name__ == "__main__":
    run(main)
