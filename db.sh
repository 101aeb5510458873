# Local copies of the corpora, in their published layout (see local/prepare_<corpus>.sh).
# Empty: stage 1 downloads the corpus into ${download_dir} (where its licence allows).
# Set them here or in the environment, e.g. ESC50=/data/ESC-50-master ./run.sh --preset paper
AUDIOSET=${AUDIOSET:-}
WHAM=${WHAM:-}
ESC50=${ESC50:-}
SPEECH_COMMANDS=${SPEECH_COMMANDS:-}
STARSS23=${STARSS23:-}
FSD50K=${FSD50K:-}  # no download: the Zenodo split zips are joined and extracted by hand

# corpus_root <corpus>: the local copy of a corpus named as in local/data.sh --corpus.
corpus_root() {
  case "$1" in
    audioset) echo "${AUDIOSET}" ;;
    wham) echo "${WHAM}" ;;
    esc50) echo "${ESC50}" ;;
    speech_commands) echo "${SPEECH_COMMANDS}" ;;
    starss23) echo "${STARSS23}" ;;
    fsd50k) echo "${FSD50K}" ;;
    *) echo "" ;;
  esac
}
# The HEAR tasks (hear-preprocess output, one folder per task, e.g. ${HEAR_TASKS}/esc50-v2.0.0-full)
# for stage 11 of the paper preset: https://hearbenchmark.com (Zenodo downloads of hear2021 tasks).
HEAR_TASKS=${HEAR_TASKS:-}
