#!/usr/bin/env bash
# validate_data_dir.sh: check a Kaldi/ESPnet-style data directory.
#
# Checks:
#   * wav.scp exists and is not empty;
#   * every list file present (wav.scp, segments, text, feats.scp, utt2*,
#     spk2utt) is sorted by its first field (LC_ALL=C), has unique keys, no
#     empty lines, and enough fields (segments: "utt rec start end" with
#     numeric start < end);
#   * all per-utterance files have the same set of keys (with a segments
#     file, wav.scp is per recording: every recording named in segments must
#     be in wav.scp);
#   * spk2utt, if present, agrees with utt2spk.
# Errors name the file and list the first few offending keys; exit 1 if any.
set -euo pipefail

# shellcheck source=lib_datadir.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}" || printf '%s' "${BASH_SOURCE[0]}")")/lib_datadir.sh"
maxshow=5

usage() {
  cat >&2 <<EOF
Usage: ${prog} <data-dir>
Validates <data-dir> (see the comments at the top of this script); prints
"<data-dir>: OK" and exits 0, or lists the problems and exits 1.
Fix most of them with: fix_data_dir.sh <data-dir>
EOF
}

check_args 1 1 "exactly one argument, the data directory" "$@"
open_data_dir "$1"

nerr=0
error() {
  echo "${prog}: error: $*" >&2
  nerr=$((nerr + 1))
}

[ -s "${dir}/wav.scp" ] || die "${dir}/wav.scp is empty"

export LC_ALL=C
make_tmp_dir

# Per-utterance files; the first one is the reference for the key set.
list_utt_files

# Format check of one file: sorted, unique keys, no empty/short lines.
check_format() {
  local f=$1 minf=$2 seg=${3:-0}
  awk -v file="${dir}/${f}" -v prog="${prog}" -v minf="${minf}" -v seg="${seg}" -v maxshow="${maxshow}" '
    function add(list, item, n) { return (n <= maxshow) ? list " " item : list }
    function more(n) { return (n > maxshow) ? " ..." : "" }
    NF == 0 { nempty++; empties = add(empties, FNR, nempty); next }
    {
      k = $1 ""
      if (NF < minf) { nshort++; shorts = add(shorts, k " (line " FNR ")", nshort) }
      else if (seg && !($3 ~ /^[0-9]*\.?[0-9]+$/ && $4 ~ /^-?[0-9]*\.?[0-9]+$/ && ($4 + 0 == -1 || $4 + 0 > $3 + 0))) {
        nbadseg++; badsegs = add(badsegs, k " (line " FNR ")", nbadseg)
      }
      if (k in seen) { ndup++; dups = add(dups, k " (lines " seen[k] " and " FNR ")", ndup) }
      else seen[k] = FNR
      if (haveprev && k < prev) { nunsorted++; unsorted = add(unsorted, k " (line " FNR ", after " prev ")", nunsorted) }
      prev = k; haveprev = 1
    }
    END {
      e = "/dev/stderr"
      if (nunsorted) printf "%s: error: %s is not sorted (LC_ALL=C sort -k1,1): %d key(s) out of order, first:%s%s\n", prog, file, nunsorted, unsorted, more(nunsorted) > e
      if (ndup) printf "%s: error: %s has %d duplicate key(s), first:%s%s\n", prog, file, ndup, dups, more(ndup) > e
      if (nempty) printf "%s: error: %s has %d empty line(s), at line(s):%s%s\n", prog, file, nempty, empties, more(nempty) > e
      if (nshort) printf "%s: error: %s has %d line(s) with fewer than %d fields, first:%s%s\n", prog, file, nshort, minf, shorts, more(nshort) > e
      if (nbadseg) printf "%s: error: %s has %d line(s) without numeric start < end (or end -1), first:%s%s\n", prog, file, nbadseg, badsegs, more(nbadseg) > e
      exit (nunsorted + ndup + nempty + nshort + nbadseg > 0) ? 1 : 0
    }
  ' "${dir}/${f}" || nerr=$((nerr + 1))
}

# All list files: wav.scp, the other per-utterance files, spk2utt.
list_data_files
for f in "${data_files[@]}"; do
  case "${f}" in
    segments) check_format segments 4 1 ;;
    text) check_format text 1 ;;
    *) check_format "${f}" 2 ;;
  esac
done

# First few lines of a file, on one line.
firsts() {
  head -n "${maxshow}" "$1" | tr '\n' ' ' | sed 's/ $//'
  [ "$(wc -l <"$1")" -le "${maxshow}" ] || printf ' ...'
}

# Key sets: every per-utterance file against the reference file.
keys() { awk 'NF { print $1 }' "${dir}/$1" | sort -u >"${tmp}/keys.$2"; }
ref=${utt_files[0]}
keys "${ref}" 0
for ((i = 1; i < ${#utt_files[@]}; i++)); do
  f=${utt_files[${i}]}
  keys "${f}" "${i}"
  comm -23 "${tmp}/keys.0" "${tmp}/keys.${i}" >"${tmp}/only_ref"
  comm -13 "${tmp}/keys.0" "${tmp}/keys.${i}" >"${tmp}/only_other"
  if [ -s "${tmp}/only_ref" ] || [ -s "${tmp}/only_other" ]; then
    msg="${dir}/${ref} and ${dir}/${f} have different keys:"
    [ ! -s "${tmp}/only_ref" ] \
      || msg+=" $(wc -l <"${tmp}/only_ref") only in ${dir}/${ref} (first: $(firsts "${tmp}/only_ref"));"
    [ ! -s "${tmp}/only_other" ] \
      || msg+=" $(wc -l <"${tmp}/only_other") only in ${dir}/${f} (first: $(firsts "${tmp}/only_other"));"
    error "${msg%;}"
  fi
done

# Recordings of segments against wav.scp.
if [ "${ref}" = segments ]; then
  awk 'NF { print $1 }' "${dir}/wav.scp" | sort -u >"${tmp}/recs.wav"
  awk 'NF >= 2 { print $2 }' "${dir}/segments" | sort -u >"${tmp}/recs.seg"
  comm -13 "${tmp}/recs.wav" "${tmp}/recs.seg" >"${tmp}/missing"
  if [ -s "${tmp}/missing" ]; then
    error "${dir}/segments refers to $(wc -l <"${tmp}/missing") recording(s) not in ${dir}/wav.scp, first: $(firsts "${tmp}/missing")"
  fi
  comm -23 "${tmp}/recs.wav" "${tmp}/recs.seg" >"${tmp}/unused"
  if [ -s "${tmp}/unused" ]; then
    echo "${prog}: warning: ${dir}/wav.scp has $(wc -l <"${tmp}/unused") recording(s) without segments, first: $(firsts "${tmp}/unused")" >&2
  fi
fi

# spk2utt against utt2spk.
if [ -f "${dir}/spk2utt" ]; then
  if [ ! -f "${dir}/utt2spk" ]; then
    error "${dir}/spk2utt exists but ${dir}/utt2spk does not"
  else
    awk '{ for (i = 2; i <= NF; i++) print $i, $1 }' "${dir}/spk2utt" | sort >"${tmp}/pairs.spk2utt"
    awk 'NF { print $1, $2 }' "${dir}/utt2spk" | sort >"${tmp}/pairs.utt2spk"
    if ! cmp -s "${tmp}/pairs.spk2utt" "${tmp}/pairs.utt2spk"; then
      comm -3 "${tmp}/pairs.utt2spk" "${tmp}/pairs.spk2utt" | awk '{ print $1 }' | sort -u >"${tmp}/spkdiff"
      error "${dir}/spk2utt does not match ${dir}/utt2spk for $(wc -l <"${tmp}/spkdiff") utterance(s), first: $(firsts "${tmp}/spkdiff") (regenerate spk2utt from utt2spk)"
    fi
  fi
fi

if [ "${nerr}" -gt 0 ]; then
  echo "${prog}: ${dir}: validation failed (see the errors above; fix_data_dir.sh may help)" >&2
  exit 1
fi
echo "${prog}: ${dir}: OK ($(wc -l <"${tmp}/keys.0") utterances; checked: ${data_files[*]})"
