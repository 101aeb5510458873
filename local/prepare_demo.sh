#!/usr/bin/env bash
# Demo corpus: synthetic sound events and noises, generated from a seed (no download).
# Writes <data_dir>/demo_{train,valid,test} (utt2label = class) and demo_noise.
# Options: python -m espnet2_gram.bin.prepare_corpus demo --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus demo "$@"
