#!/usr/bin/env bash
# WHAM! noise: <src_dir>/wham_noise/{tr,cv,tt}/*.wav.
# Writes <data_dir>/wham_noise_{tr,cv,tt}.
# Options: python -m espnet2_gram.bin.prepare_corpus wham --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus wham "$@"
