# lib_options.sh: option checks for recipe scripts; source it after parse_options.sh.
# Each check fails with "<prog>: error: --<option>: expected ..., got '<value>'" and exit 1,
# where <prog> is ${prog} (default: the script's name).

die() { echo "${prog:-${0##*/}}: error: $*" >&2; exit 1; }

# check_int <name> <min> [<max>]: the option is a decimal integer in range (normalised).
check_int() {
  local name=$1 min=$2 max=${3:-} value=${!1} want="an integer >= $2"
  [ -z "${max}" ] || want="an integer from ${min} to ${max}"
  if [[ ! "${value}" =~ ^[0-9]{1,9}$ ]] || [ $((10#${value})) -lt "${min}" ] \
      || { [ -n "${max}" ] && [ $((10#${value})) -gt "${max}" ]; }; then
    die "--${name}: expected ${want}, got '${value}'"
  fi
  printf -v "${name}" '%d' "$((10#${value}))"
}

# check_words <name> <allowed>...: every word of the option is one of <allowed>.
check_words() {
  local name=$1 w words; shift
  read -ra words <<< "${!name}"
  for w in ${words[@]+"${words[@]}"}; do
    [[ " $* " == *" ${w} "* ]] || die "--${name}: expected words from: $*, got '${w}'"
  done
}

# check_stages <last>: 1 <= stage <= stop_stage <= last.
check_stages() {
  check_int stage 1 "$1"
  check_int stop_stage 1 "$1"
  [ "${stop_stage}" -ge "${stage}" ] \
    || die "--stop_stage: expected a stage from --stage (${stage}) to $1, got '${stop_stage}'"
}
