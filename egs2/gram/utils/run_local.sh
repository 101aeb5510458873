#!/usr/bin/env bash
# run_local.sh: run a command (or an array of jobs) on this machine, with a
# log file per job -- the local backend of ${train_cmd} & co (see cmd.sh).
set -euo pipefail

prog=${0##*/}

usage() {
  cat >&2 <<EOF
Usage: ${prog} [options] [JOB=a:b] <log-file> <command> [<arg>...]
Runs <command> once, or once per index JOB=a..b in parallel.  The literal
string JOB (or whatever variable name is given before '=') is replaced by the
index in <log-file> and in every argument of the command.  Each job's stdout
and stderr go to its own log file (directories are created), framed by a
header ("# <command>", "# Started at <date>") and a footer
("# Accounting: time=<s> threads=<n>", "# Ended (code <rc>) at <date>").

The command runs under "bash -c": a command given as ONE argument is used
verbatim as a bash script (so 'a | b > c' works); with several arguments,
each argument is quoted unless it is a plain word or a shell operator such as
'|', '>', '2>&1', '&&', ';' (so "a b" stays one argument and \| pipes).

Options:
  --max_jobs_run N   run at most N jobs at once (default: all)
  --num_threads N    only reported in the log footer (default: 1)
  --gpu N, --mem X, --time T, --config FILE
                     accepted for compatibility with run_slurm.sh; ignored
  (dashes and underscores are interchangeable; --opt=value works too)

Exit status: 0 if every job succeeded; otherwise 1, and
"${prog}: K / N failed, log is in <log of the first failed job>" on stderr.
EOF
}

die() {
  echo "${prog}: error: $*" >&2
  exit 1
}

# Error about the arguments: message plus a one-line usage.
bad_usage() {
  echo "${prog}: error: $*" >&2
  echo "Usage: ${prog} [options] [JOB=a:b] <log-file> <command> [<arg>...]  (--help for details)" >&2
  exit 1
}

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
        gpu | mem | time | config) ;;
        *) bad_usage "unknown option ${opt}" ;;
      esac
      ;;
    *)
      if [[ "$1" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]]; then
        [ -z "${jobvar}" ] || die "more than one job range given ($1)"
        jobvar=${BASH_REMATCH[1]}
        jstart=$((10#${BASH_REMATCH[2]}))
        jend=$((10#${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}))
        [ "${jstart}" -le "${jend}" ] || die "empty job range $1"
        shift
      else
        break
      fi
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

# Quote one argument for bash unless it is a plain word or a shell operator
# (pipe, list operator, or a redirection with an optional plain target).
re_plain='^[A-Za-z0-9_./:,=+@%^-]+$'
re_op='^(\|\|?|\|&|&&?|;;?|&>>?|[0-9]*(<|>>?|>&|<&)[A-Za-z0-9_./:,=+@%^-]*)$'
quote_arg() {
  local a=$1
  if [[ "${a}" =~ ${re_plain} ]] || [[ "${a}" =~ ${re_op} ]]; then
    printf '%s' "${a}"
  else
    printf "'%s'" "${a//\'/\'\\\'\'}"
  fi
}

# The command line (as a bash script) for job index $1 ("" = no job range).
build_cmd() {
  local idx=$1 a out='' sep=''
  if [ "${#cmd_args[@]}" -eq 1 ]; then
    out=${cmd_args[0]}
    [ -z "${jobvar}" ] || out=${out//"${jobvar}"/${idx}}
  else
    for a in "${cmd_args[@]}"; do
      [ -z "${jobvar}" ] || a=${a//"${jobvar}"/${idx}}
      out+="${sep}$(quote_arg "${a}")"
      sep=' '
    done
  fi
  printf '%s' "${out}"
}

log_of() {
  if [ -n "${jobvar}" ]; then
    printf '%s' "${logfile//"${jobvar}"/$1}"
  else
    printf '%s' "${logfile}"
  fi
}

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")
trap 'rm -rf "${tmpdir}"' EXIT

# Runs in a background subshell: one job, logging, status into ${tmpdir}/<idx>.
run_one() {
  local idx=$1 log cmd rc=0 t0 t1
  log=$(log_of "${idx}")
  cmd=$(build_cmd "${idx}")
  {
    printf '%s\n' "${cmd}" | sed 's/^/# /'
    echo "# Started at $(date)"
  } >"${log}"
  t0=$(date +%s)
  bash -c "${cmd}" >>"${log}" 2>&1 || rc=$?
  t1=$(date +%s)
  {
    echo "# Accounting: time=$((t1 - t0)) threads=${num_threads}"
    echo "# Ended (code ${rc}) at $(date)"
  } >>"${log}"
  echo "${rc}" >"${tmpdir}/${idx}"
  exit "${rc}"
}

# Create the log directories up front, so that errors show here.
for ((i = jstart; i <= jend; i++)); do
  d=$(dirname -- "$(log_of "${i}")")
  [ -d "${d}" ] || mkdir -p -- "${d}" || die "cannot create log directory ${d}"
done

declare -A pid_of=()
active=()
all_pids=()
for ((i = jstart; i <= jend; i++)); do
  if [ "${max_jobs_run}" -gt 0 ]; then
    # Throttle: wait until fewer than max_jobs_run jobs are running.
    while :; do
      still=()
      for j in ${active[@]+"${active[@]}"}; do
        if [ ! -e "${tmpdir}/${j}" ] && kill -0 "${pid_of[${j}]}" 2>/dev/null; then
          still+=("${j}")
        fi
      done
      active=(${still[@]+"${still[@]}"})
      [ "${#active[@]}" -ge "${max_jobs_run}" ] || break
      # wait -n returns when some job ends (or at once where unsupported).
      wait -n 2>/dev/null || sleep 0.05
    done
  fi
  run_one "${i}" &
  pid_of[${i}]=$!
  active+=("${i}")
  all_pids+=("$!")
done

for p in "${all_pids[@]}"; do
  wait "${p}" 2>/dev/null || true
done

njobs=$((jend - jstart + 1))
nfailed=0
first_failed=
for ((i = jstart; i <= jend; i++)); do
  rc=
  [ -f "${tmpdir}/${i}" ] && rc=$(<"${tmpdir}/${i}")
  if [ "${rc}" != 0 ]; then
    nfailed=$((nfailed + 1))
    [ -n "${first_failed}" ] || first_failed=${i}
  fi
done

if [ "${nfailed}" -gt 0 ]; then
  echo "${prog}: ${nfailed} / ${njobs} failed, log is in $(log_of "${first_failed}")" >&2
  exit 1
fi
exit 0
