#!/usr/bin/env bash
# run_slurm.sh: like run_local.sh, but each job runs as a task of one Slurm
# array job submitted with "sbatch --wait" -- the slurm backend of cmd.sh.
set -euo pipefail

# shellcheck source=lib_jobs.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}" || printf '%s' "${BASH_SOURCE[0]}")")/lib_jobs.sh"

usage() {
  cat >&2 <<EOF
$(synopsis)
Submits one Slurm job (an array job a-b with JOB=a:b) through
"sbatch --wait", waits for it, and exits 0 only if every task succeeded;
otherwise prints "${prog}: K / N failed, log is in <log>" and exits 1.
JOB substitution, command quoting and the log files (header "# <command>",
"# Started at <date>"; footer "# Accounting: ...", "# Ended (code N) at ...")
are the same as in run_local.sh.  The job script, Slurm's own output files and
per-task status files go to <log-dir>/q/.

Options (dashes and underscores are interchangeable; --opt=value works too):
  --config FILE      Slurm config, e.g. conf/slurm.conf (see that file):
                       lines starting with '-'     extra sbatch options
                       "option NAME=VALUE args"    sbatch args for --NAME VALUE
                       "option NAME=* args"        ... for any value ($0 = value)
                       "default NAME=VALUE"        value when --NAME is not given
  --gpu N            --gres=gpu:N (nothing for 0)
  --mem X            --mem=X
  --num_threads N    --cpus-per-task=N
  --time T           --time=T
  --max_jobs_run N   at most N array tasks at once (--array=a-b%N)
  --NAME VALUE       any other NAME that has an "option NAME=..." config line
Environment:
  RUN_SLURM_SYNC_WAIT  seconds to wait for the status files of tasks after
                       sbatch returns, e.g. on slow NFS (default: 30)
EOF
}

config=
declare -A cli_val=() # option name -> value from the command line
opt_order=()          # option names, in order of first appearance

# Called by parse_job_args for every option, after the common ones
# (--max_jobs_run, --num_threads) are checked: all but --config and
# --max_jobs_run are recorded for the mapping to sbatch options below.
job_option() {
  local name=$1 opt=$2 val=$3
  [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || bad_usage "bad option ${opt}"
  case "${name}" in
    config) config=${val} ;;
    max_jobs_run) ;;
    *)
      if [ "${name}" = gpu ] && ! [[ "${val}" =~ ^[0-9]+$ ]]; then
        die "--gpu expects a non-negative integer, got '${val}'"
      fi
      [ -n "${cli_val[${name}]+x}" ] || opt_order+=("${name}")
      cli_val[${name}]=${val}
      ;;
  esac
}

parse_job_args "$@"
command -v sbatch >/dev/null 2>&1 || die "sbatch not found on PATH (is this a Slurm cluster?)"

# ---------------------------------------------------------------- config file
general_opts=()        # sbatch options for every job
declare -A map_exact=() # "name=value" -> sbatch args (space-joined words)
declare -A map_star=()  # name -> sbatch args with $0 standing for the value
declare -A defaults=()  # name -> value used when --name is not given
conf_names=()           # names mentioned by option/default lines, in order

note_name() {
  local n
  for n in ${conf_names[@]+"${conf_names[@]}"}; do
    [ "${n}" != "$1" ] || return 0
  done
  conf_names+=("$1")
}

if [ -n "${config}" ]; then
  if [ ! -f "${config}" ] || [ ! -r "${config}" ]; then
    die "config file '${config}' does not exist or is not readable"
  fi
  lineno=0
  while IFS= read -r line || [ -n "${line}" ]; do
    lineno=$((lineno + 1))
    read -r -a all_words <<<"${line}" || true
    words=()
    for w in ${all_words[@]+"${all_words[@]}"}; do
      [[ "${w}" != \#* ]] || break # a comment runs to the end of the line
      words+=("${w}")
    done
    [ "${#words[@]}" -gt 0 ] || continue
    case "${words[0]}" in
      -*) general_opts+=("${words[@]}") ;;
      option | default)
        if [ "${#words[@]}" -lt 2 ] || ! [[ "${words[1]}" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.+)$ ]]; then
          die "${config}:${lineno}: expected '${words[0]} NAME=VALUE ...': ${line}"
        fi
        n=${BASH_REMATCH[1]}
        v=${BASH_REMATCH[2]}
        note_name "${n}"
        if [ "${words[0]}" = default ]; then
          [ "${#words[@]}" -eq 2 ] || die "${config}:${lineno}: 'default' takes a single NAME=VALUE: ${line}"
          defaults[${n}]=${v}
        elif [ "${v}" = '*' ]; then
          map_star[${n}]="${words[*]:2}"
        else
          map_exact[${n}=${v}]="${words[*]:2}"
        fi
        ;;
      *) die "${config}:${lineno}: cannot parse (expected sbatch options starting with '-', 'option ...' or 'default ...'): ${line}" ;;
    esac
  done <"${config}"
fi

# ------------------------------------------- sbatch options from --NAME VALUE
mapped_opts=()
builtin_names=(gpu mem num_threads time)
names=("${builtin_names[@]}")
for n in ${conf_names[@]+"${conf_names[@]}"} ${opt_order[@]+"${opt_order[@]}"}; do
  case " ${names[*]} " in *" ${n} "*) ;; *) names+=("${n}") ;; esac
done
for n in "${names[@]}"; do
  if [ -n "${cli_val[${n}]+x}" ]; then
    v=${cli_val[${n}]}
  elif [ -n "${defaults[${n}]+x}" ]; then
    v=${defaults[${n}]}
  else
    continue
  fi
  if [ -n "${map_exact[${n}=${v}]+x}" ]; then
    read -r -a words <<<"${map_exact[${n}=${v}]}" || true
    mapped_opts+=(${words[@]+"${words[@]}"})
  elif [ -n "${map_star[${n}]+x}" ]; then
    read -r -a words <<<"${map_star[${n}]}" || true
    for w in ${words[@]+"${words[@]}"}; do
      mapped_opts+=("${w//\$0/${v}}")
    done
  else
    case "${n}" in
      gpu) [ "${v}" = 0 ] || mapped_opts+=("--gres=gpu:${v}") ;;
      mem) mapped_opts+=("--mem=${v}") ;;
      num_threads) mapped_opts+=("--cpus-per-task=${v}") ;;
      time) mapped_opts+=("--time=${v}") ;;
      *) bad_usage "unknown option --${n} ${v} (no matching 'option ${n}=...' line in ${config:-a config; none given})" ;;
    esac
  fi
done

# ---------------------------------------------------------- the job script
# The command, with the job variable still in it (the job script replaces it
# by the task index); the "." keeps trailing newlines of a one-argument
# command from the command substitution.
cmd_template=$(job_command "" && echo .)
cmd_template=${cmd_template%.}

logdir=$(dirname -- "$(log_of "${jstart}")")
qdir=${logdir}/q
base=${logfile##*/}
base=${base%.log}
if [ -n "${jobvar}" ]; then
  base=${base//".${jobvar}"/}
  base=${base//"${jobvar}."/}
  base=${base//"${jobvar}"/}
fi
[ -n "${base}" ] || base=job
mkdir -p -- "${qdir}" || die "cannot create ${qdir}"
# Absolute paths: the job runs in the submission directory anyway, but the
# status files must be found whatever happens to the working directory.
qdir_abs=$(cd -- "${qdir}" && pwd)
script=${qdir_abs}/${base}.sh

if [ -n "${jobvar}" ]; then
  index_code="idx=\${SLURM_ARRAY_TASK_ID:-}
if [ -z \"\${idx}\" ]; then echo \"${prog} job script: SLURM_ARRAY_TASK_ID is not set\" >&2; exit 1; fi
log=\${log//${jobvar}/\${idx}}
cmd=\${cmd//${jobvar}/\${idx}}
status=$(squote "${qdir_abs}/${base}.")\${idx}.rc"
else
  index_code="status=$(squote "${qdir_abs}/${base}.rc")"
fi

cat >"${script}" <<EOF
#!/usr/bin/env bash
# Generated by ${prog} on $(date); submitted with sbatch (see the .out files
# next to this script for Slurm's own messages).
cd $(squote "${PWD}") || exit 1
log=$(squote "${logfile}")
cmd=$(squote "${cmd_template}")
${index_code}
mkdir -p "\$(dirname -- "\${log}")" || exit 1
$(declare -f run_job)
run_job "\${log}" ${num_threads} "\${status}" "\${cmd}" \\
  "# Running on \$(hostname) as Slurm job \${SLURM_JOB_ID:-?}\${SLURM_ARRAY_TASK_ID:+ task \${SLURM_ARRAY_TASK_ID}}"
EOF
chmod +x "${script}"

# ---------------------------------------------------------------- submission
# The status file of task $1 (written by the job script).
status_file() {
  if [ -n "${jobvar}" ]; then
    printf '%s' "${qdir}/${base}.$1.rc"
  else
    printf '%s' "${qdir}/${base}.rc"
  fi
}
# Called by report_failures for a task that left no status file.
no_status() {
  echo "${prog}: task $1 left no status (killed? see ${qdir}/${base}.*out)" >&2
}
for ((i = jstart; i <= jend; i++)); do
  rm -f -- "$(status_file "${i}")"
done

sbatch_args=(--export=ALL "--job-name=${base}" ${general_opts[@]+"${general_opts[@]}"}
  ${mapped_opts[@]+"${mapped_opts[@]}"})
if [ -n "${jobvar}" ]; then
  array="${jstart}-${jend}"
  [ "${max_jobs_run}" -eq 0 ] || array+="%${max_jobs_run}"
  sbatch_args+=("--array=${array}" "--output=${qdir_abs}/${base}.%a.out")
else
  sbatch_args+=("--output=${qdir_abs}/${base}.out")
fi
sbatch_args+=(--wait "${script}")

# sbatch runs in the background so that an interrupt can cancel the job.
sbatch_out=${qdir}/${base}.sbatch
sbatch_pid=
job_id() {
  sed -n 's/^Submitted batch job \([0-9][0-9]*\).*/\1/p' "${sbatch_out}" 2>/dev/null | head -n 1
}
# shellcheck disable=SC2317  # invoked through the trap
on_signal() {
  local id
  id=$(job_id || true)
  if [ -n "${id}" ] && command -v scancel >/dev/null 2>&1; then
    echo "${prog}: interrupted, cancelling Slurm job ${id}" >&2
    scancel "${id}" || true
  fi
  [ -z "${sbatch_pid}" ] || kill "${sbatch_pid}" 2>/dev/null || true
  exit 130
}
trap on_signal INT TERM

sbatch "${sbatch_args[@]}" >"${sbatch_out}" &
sbatch_pid=$!
sbatch_rc=0
wait "${sbatch_pid}" || sbatch_rc=$?
sbatch_pid=
trap - INT TERM

if [ -z "$(job_id)" ]; then
  cat "${sbatch_out}" >&2 || true
  die "sbatch failed (exit code ${sbatch_rc}); command was: sbatch ${sbatch_args[*]}"
fi

# Collect the task status files (allowing for file-system delays).
sync_wait=${RUN_SLURM_SYNC_WAIT:-30}
deadline=$((SECONDS + sync_wait))
while :; do
  missing=0
  for ((i = jstart; i <= jend; i++)); do
    [ -f "$(status_file "${i}")" ] || missing=$((missing + 1))
  done
  if [ "${missing}" -eq 0 ] || [ "${SECONDS}" -ge "${deadline}" ]; then
    break
  fi
  sleep 1
done

report_failures || exit 1
if [ "${sbatch_rc}" -ne 0 ]; then
  echo "${prog}: warning: sbatch exited with code ${sbatch_rc} although all tasks report success" >&2
fi
exit 0
