#!/usr/bin/env bash
# split_scp.sh: split a list file (scp, utt2*, text, ...) into N contiguous,
# near-equal parts by lines: part sizes differ by at most one line (the
# first parts get the extra lines), and concatenating the parts in order
# gives back the input.
set -euo pipefail

# shellcheck source=lib_datadir.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}" || printf '%s' "${BASH_SOURCE[0]}")")/lib_datadir.sh"

usage() {
  cat >&2 <<EOF2
Usage: ${prog} <in.scp> <out.1.scp> [<out.2.scp> ... <out.N.scp>]
Splits <in.scp> into N contiguous pieces of near-equal line counts.
It is an error if <in.scp> has fewer lines than there are outputs.
EOF2
}

check_args 2 "" "an input file and at least one output file" "$@"

in=$1
shift
if [ ! -f "${in}" ] || [ ! -r "${in}" ]; then
  die "cannot read input file '${in}'"
fi
nout=$#
for out in "$@"; do
  [ "${out}" != "${in}" ] || die "output '${out}' is the input file"
  d=$(dirname -- "${out}")
  [ -d "${d}" ] || die "directory of output '${out}' does not exist"
done

# Count lines (a last line without a newline counts too).
nlines=$(awk 'END { print NR }' "${in}")
[ "${nlines}" -ge "${nout}" ] || die "${in} has ${nlines} lines, fewer than the ${nout} outputs; refusing to split"

# Part k (1-based) gets size = floor(n/N) + (k <= n%N ? 1 : 0) lines.
# The output names are passed after the input on awk's command line and are
# removed from ARGV in BEGIN; names are taken verbatim (no "a=b" parsing).
make_tmp_dir
tmplist=${tmp}/outputs
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
