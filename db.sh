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
