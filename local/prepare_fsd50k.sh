#!/usr/bin/env bash
# FSD50K: <src_dir>/FSD50K.{dev_audio,eval_audio}/*.wav, FSD50K.ground_truth/{dev,eval,vocabulary}.csv
# (the Zenodo split zips joined and extracted by hand; no download).
# Writes <data_dir>/fsd50k_{train,valid,eval} (utt2label = vocabulary labels, space separated).
# Options: python -m espnet2_gram.bin.prepare_corpus fsd50k --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus fsd50k "$@"
