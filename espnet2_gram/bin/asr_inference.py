"""ESPnet's `espnet2.bin.asr_inference` with the GRAM plugin loaded (`frontend: gram`, `encoder: gram`).

The model (``--asr_model_file``) is loaded weights-only, and the data files are checked
first (they exist and no scp entry runs a command).
"""

import espnet2_gram  # noqa: F401  (registers gram in ESPnet's tasks)

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2.bin import asr_inference
from espnet2.bin.asr_inference import get_parser  # noqa: F401

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.datacheck import check_data_files
from espnet2_gram.utils.safe_load import run_espnet_entry


def main(cmd=None) -> None:
    run_espnet_entry(asr_inference.main, cmd, check_data_files)


if __name__ == "__main__":
    run(main)
