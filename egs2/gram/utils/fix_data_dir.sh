#!/usr/bin/env bash
# fix_data_dir.sh: make a Kaldi/ESPnet-style data directory consistent.
#
# Keeps only the utterances present in every per-utterance file (wav.scp,
# text, feats.scp, utt2*, and segments if present -- with segments, wav.scp
# lists recordings: an utterance also needs its recording in wav.scp, and
# wav.scp keeps only recordings that still have segments), drops empty lines
# and repeated keys (the first line of a key wins), sorts every file by its
# first field with LC_ALL=C, and regenerates spk2utt from utt2spk if spk2utt
# exists. The original files are copied into <dir>/.backup/ first.
set -euo pipefail

# shellcheck source=lib_datadir.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}" || printf '%s' "${BASH_SOURCE[0]}")")/lib_datadir.sh"

usage() {
  cat >&2 <<EOF
Usage: ${prog} <data-dir>
Filters and sorts the files of <data-dir> so that validate_data_dir.sh
accepts it; the original files are backed up in <data-dir>/.backup/.
EOF
}

check_args 1 1 "exactly one argument, the data directory" "$@"
open_data_dir "$1"

export LC_ALL=C
make_tmp_dir

has_segments=false
[ ! -f "${dir}/segments" ] || has_segments=true

# Per-utterance files (wav.scp only without segments).
list_utt_files

# The files the intersection is computed on; with segments, segments lines
# whose recording is missing from wav.scp are left out first.
inputs=()
for f in "${utt_files[@]}"; do
  if [ "${f}" = segments ]; then
    awk -v wav="${dir}/wav.scp" '
      BEGIN { while ((getline line < wav) > 0) if (split(line, a) > 0) rec[a[1]] = 1 }
      NF >= 2 && ($2 in rec)
    ' "${dir}/segments" >"${tmp}/segments.ok"
    inputs+=("${tmp}/segments.ok")
  else
    inputs+=("${dir}/${f}")
  fi
done

# Utterances in every file, and the number of distinct utterances overall.
# (An empty file contributes nothing, so no key can reach the full count.)
awk -v nfiles="${#inputs[@]}" -v union="${tmp}/union" '
  FNR == 1 { fi++ }
  NF > 0 && !((fi, $1) in seen) { seen[fi, $1] = 1; cnt[$1]++ }
  END {
    n = 0
    for (k in cnt) { n++; if (cnt[k] == nfiles) print k }
    print n > union
  }
' "${inputs[@]}" | sort >"${tmp}/utts"
nkept=$(wc -l <"${tmp}/utts")
nall=$(cat "${tmp}/union")
if [ "${nkept}" -eq 0 ]; then
  die "no utterance of ${dir} is present in all of: ${utt_files[*]}$(${has_segments} && echo ' (and its recording in wav.scp)'); nothing changed"
fi

# Back up everything that may be rewritten.
list_data_files
mkdir -p "${dir}/.backup"
for f in "${data_files[@]}"; do
  cp -p -- "${dir}/${f}" "${dir}/.backup/${f}"
done

# Keep the lines of file $1 whose key is in list $2 (first occurrence only),
# sorted; report what was removed.
filter_sort() {
  local f=$1 keys=$2 before after
  before=$(awk 'END { print NR }' "${dir}/${f}")
  awk -v keys="${keys}" '
    BEGIN { while ((getline line < keys) > 0) if (split(line, a) > 0) keep[a[1]] = 1 }
    NF > 0 && ($1 in keep) && !($1 in done) { done[$1] = 1; print }
  ' "${dir}/${f}" | sort -k1,1 >"${tmp}/new"
  after=$(wc -l <"${tmp}/new")
  cat "${tmp}/new" >"${dir}/${f}"
  if [ "${after}" -ne "${before}" ]; then
    echo "${prog}: ${dir}/${f}: removed $((before - after)) of ${before} lines"
  fi
}

for f in "${utt_files[@]}"; do
  [ "${f}" = wav.scp ] || filter_sort "${f}" "${tmp}/utts"
done
if ${has_segments}; then
  awk '{ print $2 }' "${dir}/segments" | sort -u >"${tmp}/recs"
  filter_sort wav.scp "${tmp}/recs"
else
  filter_sort wav.scp "${tmp}/utts"
fi

if [ -f "${dir}/spk2utt" ] && [ -f "${dir}/utt2spk" ]; then
  awk '{ if (!($2 in u)) { n++; spk[n] = $2 }; u[$2] = u[$2] " " $1 }
       END { for (i = 1; i <= n; i++) print spk[i] u[spk[i]] }' "${dir}/utt2spk" \
    | sort -k1,1 >"${tmp}/spk2utt"
  cat "${tmp}/spk2utt" >"${dir}/spk2utt"
fi

echo "${prog}: ${dir}: kept ${nkept} utterances, removed $((nall - nkept)) (of ${nall}); originals in ${dir}/.backup/"
