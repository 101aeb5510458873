#!/usr/bin/env bash
# Speech Commands v0.02: <src_dir>/<word>/*.wav, validation_list.txt, testing_list.txt,
# _background_noise_/. Writes <data_dir>/speechcommands_{train,valid,test} and speechcommands_noise.
# Options: python -m espnet2_gram.bin.prepare_corpus speech_commands --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus speech_commands "$@"
