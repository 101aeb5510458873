# shellcheck shell=bash
# lib_jobs.sh: the parts shared by the job runners run_local.sh and
# run_slurm.sh (sourced by them, not run on its own): their command line,
# the command a job runs, its log file and the final failure summary.
#
# Sourcing it sets prog (the runner's name, see lib_common.sh); the runner
# defines:
#   usage                        the --help text (on stderr)
#   job_option NAME OPT VALUE    called for every --OPT VALUE / --OPT=VALUE
#                                (NAME: OPT without "--", dashes turned into
#                                underscores), after the options common to
#                                both runners have been checked (see
#                                parse_job_args); it rejects what it does not
#                                know
#   status_file INDEX            the file a job writes its exit code to
#   no_status INDEX              optional: called (before the summary) for a
#                                job that left no status file

# shellcheck source=lib_common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib_common.sh"

# synopsis: the first line of the usage text.
synopsis() {
  echo "Usage: ${prog} [options] [JOB=a:b] <log-file> <command> [<arg>...]"
}

# bad_usage <message>: an error about the arguments: the message plus a
# one-line usage, then exit 1.
bad_usage() {
  echo "${prog}: error: $*" >&2
  echo "$(synopsis)  (--help for details)" >&2
  exit 1
}

# parse_job_range NAME=A[:B]: sets jobvar, jstart and jend (B defaults to A), or
# dies unless A and B are integers with 1 <= A <= B.
parse_job_range() {
  local re='^([A-Za-z_][A-Za-z0-9_]*)=([0-9]{1,9})(:([0-9]{1,9}))?$'
  [[ "$1" =~ ${re} ]] \
    || die "job range '$1': expected NAME=START:END (or NAME=INDEX) with integers 1 <= START <= END"
  jobvar=${BASH_REMATCH[1]}
  jstart=$((10#${BASH_REMATCH[2]}))
  jend=$((10#${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}))
  [ "${jstart}" -ge 1 ] || die "job range '$1': job indices start at 1"
  [ "${jstart}" -le "${jend}" ] || die "job range '$1': START is above END (empty range)"
}

# parse_job_args "$@": parses "[options] [JOB=a:b] <log-file> <command>
# [<arg>...]" and sets
#   max_jobs_run  --max_jobs_run N (a non-negative integer; default 0: no limit)
#   num_threads   --num_threads N (a positive integer; default 1)
#   jobvar        the name before '=' in the job range ("" without one)
#   jstart, jend  the job range (1 and 1 without one)
#   logfile       <log-file>; it must contain the job variable if the range
#                 has more than one job
#   cmd_args      the array <command> <arg>...
# -h/--help prints the usage and exits 0; no arguments at all print it and
# exit 1.
# shellcheck disable=SC2034  # the variables it sets are the runner's
parse_job_args() {
  local opt val name
  max_jobs_run=0
  num_threads=1
  jobvar=
  jstart=
  jend=
  while [ "$#" -gt 0 ]; do
    case "$1" in
      -h | --help)
        usage
        exit 0
        ;;
      --?*)
        opt=${1%%=*}
        if [[ "$1" == *=* ]]; then
          val=${1#*=}
          shift
        else
          [ "$#" -ge 2 ] || bad_usage "option $1 requires a value"
          val=$2
          shift 2
        fi
        name=${opt#--}
        name=${name//-/_}
        case "${name}" in
          max_jobs_run)
            [[ "${val}" =~ ^[0-9]+$ ]] || die "--max_jobs_run expects a non-negative integer, got '${val}'"
            max_jobs_run=${val}
            ;;
          num_threads)
            [[ "${val}" =~ ^[1-9][0-9]*$ ]] || die "--num_threads expects a positive integer, got '${val}'"
            num_threads=${val}
            ;;
        esac
        job_option "${name}" "${opt}" "${val}"
        ;;
      *)
        # NAME=... is always a job range (a log file name never looks like one).
        [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || break
        [ -z "${jobvar}" ] || die "more than one job range given ($1)"
        parse_job_range "$1"
        shift
        ;;
    esac
  done

  if [ "$#" -eq 0 ]; then
    usage
    exit 1
  fi
  [ "$#" -ge 2 ] || bad_usage "expected a log file and a command"
  logfile=$1
  shift
  cmd_args=("$@")

  if [ -z "${jobvar}" ]; then
    jstart=1
    jend=1
  elif [ "${jstart}" -ne "${jend}" ] && [[ "${logfile}" != *"${jobvar}"* ]]; then
    die "running jobs ${jobvar}=${jstart}:${jend} but the log file '${logfile}' does not contain '${jobvar}'"
  fi
}

# quote_arg <arg>: the argument, single-quoted for bash unless it is a plain
# word or a shell operator (pipe, list operator, or a redirection with an
# optional plain target).
re_plain='^[A-Za-z0-9_./:,=+@%^-]+$'
re_op='^(\|\|?|\|&|&&?|;;?|&>>?|[0-9]*(<|>>?|>&|<&)[A-Za-z0-9_./:,=+@%^-]*)$'
quote_arg() {
  local a=$1
  if [[ "${a}" =~ ${re_plain} ]] || [[ "${a}" =~ ${re_op} ]]; then
    printf '%s' "${a}"
  else
    squote "${a}"
  fi
}

# squote <string>: the string, always single-quoted for bash.
squote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

# job_command <index>: the bash script that runs the command: its only
# argument verbatim, or all its arguments quoted with quote_arg and joined by
# spaces.  The job variable (if any) is replaced by <index> in each argument
# first, unless <index> is "".
job_command() {
  local idx=$1 a out='' sep=''
  if [ "${#cmd_args[@]}" -eq 1 ]; then
    out=${cmd_args[0]}
    [ -z "${jobvar}" ] || [ -z "${idx}" ] || out=${out//"${jobvar}"/${idx}}
  else
    for a in "${cmd_args[@]}"; do
      [ -z "${jobvar}" ] || [ -z "${idx}" ] || a=${a//"${jobvar}"/${idx}}
      out+="${sep}$(quote_arg "${a}")"
      sep=' '
    done
  fi
  printf '%s' "${out}"
}

# log_of <index>: the log file of job <index>.
log_of() {
  if [ -n "${jobvar}" ]; then
    printf '%s' "${logfile//"${jobvar}"/$1}"
  else
    printf '%s' "${logfile}"
  fi
}

# run_job <log> <threads> <status-file> <command> [<header-line>]: runs one
# job and exits with its exit code, which it also writes to <status-file>.
# The bash script <command> runs with stdin from /dev/null and its stdout and
# stderr in <log>, framed by a header ("# <command>", "# Started at <date>",
# then <header-line> if given) and a footer ("# Accounting: time=<seconds>
# threads=<threads>", "# Ended (code <rc>) at <date>").  If the header cannot
# be written, it exits 1 without running the command or writing a status.
# Self-contained (it only calls commands), so that its definition can be
# copied into a job script with "declare -f run_job".
run_job() {
  local log=$1 threads=$2 status=$3 cmd=$4 rc=0 t0 t1
  {
    printf '%s\n' "${cmd}" | sed 's/^/# /'
    echo "# Started at $(date)"
    [ "$#" -lt 5 ] || printf '%s\n' "$5"
  } >"${log}" || exit 1
  t0=$(date +%s)
  bash -c "${cmd}" >>"${log}" 2>&1 </dev/null || rc=$?
  t1=$(date +%s)
  {
    echo "# Accounting: time=$((t1 - t0)) threads=${threads}"
    echo "# Ended (code ${rc}) at $(date)"
  } >>"${log}"
  echo "${rc}" >"${status}"
  exit "${rc}"
}

# report_failures: checks the status files of the jobs jstart..jend; if any
# is missing or not 0, prints "<prog>: K / N failed, log is in <log of the
# first failed job>" on stderr and returns 1.
report_failures() {
  local i f rc njobs=$((jend - jstart + 1)) nfailed=0 first_failed=
  for ((i = jstart; i <= jend; i++)); do
    rc=
    f=$(status_file "${i}")
    [ ! -f "${f}" ] || rc=$(<"${f}")
    if [ "${rc}" != 0 ]; then
      nfailed=$((nfailed + 1))
      [ -n "${first_failed}" ] || first_failed=${i}
      if [ -z "${rc}" ] && declare -F no_status >/dev/null; then
        no_status "${i}"
      fi
    fi
  done
  if [ "${nfailed}" -gt 0 ]; then
    echo "${prog}: ${nfailed} / ${njobs} failed, log is in $(log_of "${first_failed}")" >&2
    return 1
  fi
}
