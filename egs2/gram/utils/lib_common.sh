# shellcheck shell=bash
# lib_common.sh: helpers shared by the scripts in this directory, sourced
# through lib_jobs.sh and lib_datadir.sh (not run on its own).

# The name of the script that sourced this file (as it was invoked): every
# message starts with it.
prog=${0##*/}

# die <message>: print "<prog>: error: <message>" on stderr and exit 1.
die() {
  echo "${prog}: error: $*" >&2
  exit 1
}

# make_tmp_dir: create a temporary directory, ${tmp}, removed when the script
# exits (this sets the script's EXIT trap).
make_tmp_dir() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/${prog%.sh}.XXXXXX")
  trap 'rm -rf "${tmp}"' EXIT
}
