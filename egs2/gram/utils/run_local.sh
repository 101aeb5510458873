#!/usr/bin/env bash
# run_local.sh: run a command (or an array of jobs) on this machine, with a
# log file per job -- the local backend of ${train_cmd} & co (see cmd.sh).
set -euo pipefail

# shellcheck source=lib_jobs.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}" || printf '%s' "${BASH_SOURCE[0]}")")/lib_jobs.sh"

usage() {
  cat >&2 <<EOF
$(synopsis)
Runs <command> once, or once per index JOB=a..b in parallel (integers,
1 <= a <= b; a first argument NAME=... is always read as a range).  The literal
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

# Called by parse_job_args for every option, after the common ones
# (--max_jobs_run, --num_threads) are checked; run_slurm.sh's resource
# options are accepted and ignored.
job_option() {
  case "$1" in
    max_jobs_run | num_threads | gpu | mem | time | config) ;;
    *) bad_usage "unknown option $2" ;;
  esac
}

# Each job writes its exit code to ${tmp}/<index>.
status_file() {
  printf '%s' "${tmp}/$1"
}

parse_job_args "$@"
make_tmp_dir

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
        if [ ! -e "$(status_file "${j}")" ] && kill -0 "${pid_of[${j}]}" 2>/dev/null; then
          still+=("${j}")
        fi
      done
      active=(${still[@]+"${still[@]}"})
      [ "${#active[@]}" -ge "${max_jobs_run}" ] || break
      # wait -n returns when some job ends (or at once where unsupported).
      wait -n 2>/dev/null || sleep 0.05
    done
  fi
  # A background subshell: one job, its log and its status file.
  run_job "$(log_of "${i}")" "${num_threads}" "$(status_file "${i}")" "$(job_command "${i}")" &
  pid_of[${i}]=$!
  active+=("${i}")
  all_pids+=("$!")
done

for p in "${all_pids[@]}"; do
  wait "${p}" 2>/dev/null || true
done

report_failures || exit 1
exit 0
