#!/usr/bin/env bash
# filter_scp.sh: keep (or, with --exclude, drop) the lines of a list file
# whose first field appears as the first field of a line of <id_list>.
# Output goes to stdout, in the order of <in.scp>.
set -euo pipefail

prog=${0##*/}

usage() {
  cat >&2 <<EOF2
Usage: ${prog} [--exclude] <id_list> [<in.scp>]
Prints the lines of <in.scp> (stdin if absent or '-') whose first field is
(--exclude: is not) the first field of some line of <id_list>.
Example: ${prog} data/dev/utt2spk data/all/wav.scp > data/dev/wav.scp
EOF2
}

exclude=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --exclude) exclude=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -?*) echo "${prog}: error: unknown option $1" >&2; usage; exit 1 ;;
    *) break ;;
  esac
done
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "${prog}: error: expected <id_list> [<in.scp>]" >&2
  usage
  exit 1
fi
idlist=$1
in=${2:--}
[ -f "${idlist}" ] && [ -r "${idlist}" ] || { echo "${prog}: error: cannot read id list '${idlist}'" >&2; exit 1; }
if [ "${in}" != - ]; then
  [ -f "${in}" ] && [ -r "${in}" ] || { echo "${prog}: error: cannot read input '${in}'" >&2; exit 1; }
  exec <"${in}"
fi

# The id list is read with getline, so an empty list works and file names
# are never mistaken for awk assignments.
awk -v ids="${idlist}" -v exclude="${exclude}" '
  BEGIN {
    while ((r = (getline line < ids)) > 0) {
      if (split(line, f) > 0) keep[f[1]] = 1
    }
    if (r < 0) { print "filter_scp.sh: error: cannot read " ids > "/dev/stderr"; exit 2 }
    close(ids)
  }
  {
    hit = (NF > 0 && ($1 in keep))
    if (hit != exclude) print
  }
'
