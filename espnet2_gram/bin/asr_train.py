"""ESPnet's `espnet2.bin.asr_train` with the GRAM plugin loaded (`frontend: gram`, `encoder: gram`)."""

import contextlib
import sys

import espnet2_gram  # noqa: F401  (registers gram in ESPnet's tasks)

with contextlib.redirect_stdout(sys.stderr):  # ESPnet's Flash-Attention notice
    import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401

from espnet2.bin.asr_train import get_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    main()
