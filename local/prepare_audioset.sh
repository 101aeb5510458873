#!/usr/bin/env bash
# AudioSet: audio files named after their clip (Y<YTID>_<start>_<end>.flac...) or
# WebDataset tar shards, optional {balanced_train,unbalanced_train,eval}_segments.csv and
# class_labels_indices.csv. Writes <data_dir>/audioset_<name> (utt2label = mids).
# Options: python -m espnet2_gram.bin.prepare_corpus audioset --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus audioset "$@"
