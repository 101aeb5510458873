#!/usr/bin/env bash
# run_slurm.sh: like run_local.sh, but each job runs as a task of one Slurm
# array job submitted with "sbatch --wait" -- the slurm backend of cmd.sh.
set -euo pipefail

prog=${0##*/}

usage() {
  cat >&2 <<EOF
Usage: ${prog} [options] [JOB=a:b] <log-file> <command> [<arg>...]
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

die() {
  echo "${prog}: error: $*" >&2
  exit 1
}

bad_usage() {
  echo "${prog}: error: $*" >&2
  echo "Usage: ${prog} [options] [JOB=a:b] <log-file> <command> [<arg>...]  (--help for details)" >&2
  exit 1
}

config=
max_jobs_run=0
num_threads=1
jobvar=
jstart=
jend=
declare -A cli_val=() # option name -> value from the command line
opt_order=()          # option names, in order of first appearance

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
      [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || bad_usage "bad option ${opt}"
      case "${name}" in
        config) config=${val} ;;
        max_jobs_run)
          [[ "${val}" =~ ^[0-9]+$ ]] || die "--max_jobs_run expects a non-negative integer, got '${val}'"
          max_jobs_run=${val}
          ;;
        *)
          case "${name}" in
            gpu) [[ "${val}" =~ ^[0-9]+$ ]] || die "--gpu expects a non-negative integer, got '${val}'" ;;
            num_threads)
              [[ "${val}" =~ ^[1-9][0-9]*$ ]] || die "--num_threads expects a positive integer, got '${val}'"
              num_threads=${val}
              ;;
          esac
          [ -n "${cli_val[${name}]+x}" ] || opt_order+=("${name}")
          cli_val[${name}]=${val}
          ;;
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

if [ -n "${jobvar}" ] && [ "${jstart}" -ne "${jend}" ] && [[ "${logfile}" != *"${jobvar}"* ]]; then
  die "running jobs ${jobvar}=${jstart}:${jend} but the log file '${logfile}' does not contain '${jobvar}'"
fi
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
  [ -f "${config}" ] && [ -r "${config}" ] || die "config file '${config}' does not exist or is not readable"
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
        [ "${#words[@]}" -ge 2 ] && [[ "${words[1]}" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.+)$ ]] \
          || die "${config}:${lineno}: expected '${words[0]} NAME=VALUE ...': ${line}"
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
# Quote one argument for bash unless it is a plain word or a shell operator
# (same rules as run_local.sh).
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
# Always single-quote (for embedding values into the generated script).
squote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

if [ "${#cmd_args[@]}" -eq 1 ]; then
  cmd_template=${cmd_args[0]}
else
  cmd_template=
  sep=
  for a in "${cmd_args[@]}"; do
    cmd_template+="${sep}$(quote_arg "${a}")"
    sep=' '
  done
fi

if [ -n "${jobvar}" ]; then
  logdir=$(dirname -- "${logfile//"${jobvar}"/${jstart}}")
else
  logdir=$(dirname -- "${logfile}")
fi
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
{
  printf '%s\n' "\${cmd}" | sed 's/^/# /'
  echo "# Started at \$(date)"
  echo "# Running on \$(hostname) as Slurm job \${SLURM_JOB_ID:-?}\${SLURM_ARRAY_TASK_ID:+ task \${SLURM_ARRAY_TASK_ID}}"
} >"\${log}" || exit 1
t0=\$(date +%s)
rc=0
bash -c "\${cmd}" >>"\${log}" 2>&1 </dev/null || rc=\$?
t1=\$(date +%s)
{
  echo "# Accounting: time=\$((t1 - t0)) threads=${num_threads}"
  echo "# Ended (code \${rc}) at \$(date)"
} >>"\${log}"
echo "\${rc}" >"\${status}"
exit "\${rc}"
EOF
chmod +x "${script}"

# ---------------------------------------------------------------- submission
status_file() {
  if [ -n "${jobvar}" ]; then
    printf '%s' "${qdir}/${base}.$1.rc"
  else
    printf '%s' "${qdir}/${base}.rc"
  fi
}
log_of() {
  if [ -n "${jobvar}" ]; then
    printf '%s' "${logfile//"${jobvar}"/$1}"
  else
    printf '%s' "${logfile}"
  fi
}
if [ -z "${jobvar}" ]; then
  jstart=1
  jend=1
fi
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
  [ "${missing}" -gt 0 ] && [ "${SECONDS}" -lt "${deadline}" ] || break
  sleep 1
done

njobs=$((jend - jstart + 1))
nfailed=0
first_failed=
for ((i = jstart; i <= jend; i++)); do
  rc=
  f=$(status_file "${i}")
  [ -f "${f}" ] && rc=$(<"${f}")
  if [ "${rc}" != 0 ]; then
    nfailed=$((nfailed + 1))
    [ -n "${first_failed}" ] || first_failed=${i}
    [ -n "${rc}" ] || echo "${prog}: task ${i} left no status (killed? see ${qdir}/${base}.*out)" >&2
  fi
done

if [ "${nfailed}" -gt 0 ]; then
  echo "${prog}: ${nfailed} / ${njobs} failed, log is in $(log_of "${first_failed}")" >&2
  exit 1
fi
if [ "${sbatch_rc}" -ne 0 ]; then
  echo "${prog}: warning: sbatch exited with code ${sbatch_rc} although all tasks report success" >&2
fi
exit 0
