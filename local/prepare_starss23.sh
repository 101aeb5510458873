#!/usr/bin/env bash
# STARSS23: <src_dir>/{foa_dev,mic_dev,metadata_dev}/dev-{train,test}-{sony,tau}/.
# Writes <data_dir>/starss23_<format>_{train,test} (wav.scp, utt2metadata = CSV path); --format foa|mic.
# Options: python -m espnet2_gram.bin.prepare_corpus starss23 --help
set -euo pipefail

python3 -m espnet2_gram.bin.prepare_corpus starss23 "$@"
