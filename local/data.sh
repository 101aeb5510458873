#!/usr/bin/env bash
# Prepare the Kaldi-style data directories of one corpus under ${data_dir}.
# Run from the repository root; dispatches to local/prepare_<corpus>.sh.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

corpus=demo            # demo, audioset, wham, esc50, speech_commands, starss23 or fsd50k
data_dir=data          # where the data dirs are written
download_dir=downloads # downloads, extracted archives and the demo audio
src_dir=               # local copy of a real corpus in its published layout
download=true          # real corpora without --src_dir: download them (false: error)
fs=16000               # demo only: sample rate of the generated audio
seed=0                 # demo only: random seed of the generated audio
corpus_opts=           # extra options of the preparer, e.g. "--format mic" for starss23

help_message=$(cat <<EOM
Usage: $0 [--corpus demo] [--data_dir data] [--download_dir downloads] [--src_dir DIR]
          [--download true] [--fs 16000] [--seed 0] [--corpus_opts "..."]
Corpora: demo, audioset, wham, esc50, speech_commands, starss23, fsd50k
(see local/prepare_<corpus>.sh and python -m espnet2_gram.bin.prepare_corpus <corpus> --help)
EOM
)

log "$0 $*"
# shellcheck disable=SC1091
. egs2/gram/utils/parse_options.sh

if [ $# -ne 0 ]; then
    log "Error: unexpected arguments: $*"
    log "${help_message}"
    exit 2
fi
script=local/prepare_${corpus}.sh
if [ ! -x "${script}" ]; then
    log "Error: --corpus ${corpus}: no ${script}"
    exit 2
fi

opts=(--data_dir "${data_dir}" --download_dir "${download_dir}")
if [ "${corpus}" = demo ]; then
    opts+=(--fs "${fs}" --seed "${seed}")
elif [ -n "${src_dir}" ]; then
    opts+=(--src_dir "${src_dir}")
else
    opts+=(--download "${download}")
fi
# shellcheck disable=SC2086  # corpus_opts is split into words on purpose
"${script}" "${opts[@]}" ${corpus_opts}
log "Successfully finished preparing ${corpus} in ${data_dir}"
