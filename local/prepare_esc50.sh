#!/usr/bin/env bash
# ESC-50: <src_dir>/ESC-50-master/{audio/*.wav,meta/esc50.csv}.
# Writes <data_dir>/esc50 (utt2label = category, utt2fold) and esc50_fold{1..5}.
# Options: python -m espnet2_gram.bin.prepare_corpus esc50 --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus esc50 "$@"
