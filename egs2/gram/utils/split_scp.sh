#!/usr/bin/env bash
# split_scp.sh: split a list file (scp, utt2*, text, ...) into N contiguous,
# near-equal parts by lines: part sizes differ by at most one line (the
# first parts get the extra lines), and concatenating the parts in order
# gives back the input.
set -euo pipefail

prog=${0##*/}

usage() {
  cat >&2 <<EOF2
Usage: ${prog} <in.scp> <out.1.scp> [<out.2.scp> ... <out.N.scp>]
Splits <in.scp> into N contiguous pieces of near-equal line counts.
It is an error if <in.scp> has fewer lines than there are outputs.
EOF2
}

if [ "$#" -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; }; then
  usage
  exit 0
fi
if [ "$#" -lt 2 ]; then
  echo "${prog}: error: expected an input file and at least one output file" >&2
  usage
  exit 1
fi

in=$1
shift
[ -f "${in}" ] && [ -r "${in}" ] || { echo "${prog}: error: cannot read input file '${in}'" >&2; exit 1; }
nout=$#
for out in "$@"; do
  [ "${out}" != "${in}" ] || { echo "${prog}: error: output '${out}' is the input file" >&2; exit 1; }
  d=$(dirname -- "${out}")
  [ -d "${d}" ] || { echo "${prog}: error: directory of output '${out}' does not exist" >&2; exit 1; }
done

# Count lines (a last line without a newline counts too).
nlines=$(awk 'END { print NR }' "${in}")
if [ "${nlines}" -lt "${nout}" ]; then
  echo "${prog}: error: ${in} has ${nlines} lines, fewer than the ${nout} outputs; refusing to split" >&2
  exit 1
fi

# Part k (1-based) gets size = floor(n/N) + (k <= n%N ? 1 : 0) lines.
# The output names are passed after the input on awk's command line and are
# removed from ARGV in BEGIN; names are taken verbatim (no "a=b" parsing).
tmplist=$(mktemp "${TMPDIR:-/tmp}/split_scp.XXXXXX")
trap 'rm -f "${tmplist}"' EXIT
printf '%s\n' "$@" >"${tmplist}"
awk -v n="${nlines}" -v nout="${nout}" -v list="${tmplist}" '
  BEGIN {
    k = 0
    while ((getline name < list) > 0) { k++; out[k] = name }
    close(list)
    base = int(n / nout); extra = n % nout
    part = 1; left = base + (part <= extra ? 1 : 0)
    printf "" > out[part]
  }
  {
    while (left == 0) {
      close(out[part]); part++
      left = base + (part <= extra ? 1 : 0)
      printf "" > out[part]
    }
    print > out[part]
    left--
  }
  END { close(out[part]) }
' <"${in}"
