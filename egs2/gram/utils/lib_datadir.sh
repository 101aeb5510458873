# shellcheck shell=bash
# lib_datadir.sh: the parts shared by fix_data_dir.sh, validate_data_dir.sh
# and split_scp.sh (sourced by them, not run on its own): checking their
# arguments and listing the per-utterance files of a data directory.
#
# Sourcing it sets prog (the script's name, see lib_common.sh); the script
# defines usage (the --help text, on stderr).

# shellcheck source=lib_common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib_common.sh"

# check_args <min> <max> <what> "$@": with -h or --help as the first of at
# most <max> arguments, prints the usage and exits 0; with fewer than <min>
# or more than <max> arguments (<max> "": no limit), prints
# "<prog>: error: expected <what>" and the usage, and exits 1.
check_args() {
  local min=$1 max=$2 what=$3
  shift 3
  if [ "$#" -ge 1 ] && { [ -z "${max}" ] || [ "$#" -le "${max}" ]; } \
    && { [ "$1" = -h ] || [ "$1" = --help ]; }; then
    usage
    exit 0
  fi
  if [ "$#" -lt "${min}" ] || { [ -n "${max}" ] && [ "$#" -gt "${max}" ]; }; then
    echo "${prog}: error: expected ${what}" >&2
    usage
    exit 1
  fi
}

# open_data_dir <arg>: sets dir to the data directory <arg> (without a
# trailing slash); it must exist and have a wav.scp.
open_data_dir() {
  dir=${1%/}
  [ -n "${dir}" ] || dir=/
  [ -d "${dir}" ] || die "no such directory: ${dir}"
  [ -f "${dir}/wav.scp" ] || die "${dir}/wav.scp does not exist"
}

# list_utt_files: sets utt_files to the per-utterance files of ${dir} (names
# relative to it): first segments if it exists, otherwise wav.scp (then
# wav.scp lists recordings); then text and feats.scp if present, and every
# utt2* file but backups (*~, *.bak, *.tmp).
list_utt_files() {
  local f p
  utt_files=()
  if [ -f "${dir}/segments" ]; then
    utt_files+=(segments)
  else
    utt_files+=(wav.scp)
  fi
  for f in text feats.scp; do
    [ ! -f "${dir}/${f}" ] || utt_files+=("${f}")
  done
  for p in "${dir}"/utt2*; do
    [ -f "${p}" ] || continue
    case "${p}" in *~ | *.bak | *.tmp) continue ;; esac
    utt_files+=("${p##*/}")
  done
}

# list_data_files: sets data_files to all the list files of ${dir} that the
# scripts handle: wav.scp, the other files of ${utt_files[@]} (see
# list_utt_files), and spk2utt if present.
list_data_files() {
  local f
  data_files=(wav.scp)
  for f in "${utt_files[@]}"; do
    [ "${f}" = wav.scp ] || data_files+=("${f}")
  done
  [ ! -f "${dir}/spk2utt" ] || data_files+=(spk2utt)
}
