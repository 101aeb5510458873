# cmd.sh: how recipe stages run their jobs; source it after path.sh.
# Usage in a recipe: ${train_cmd} JOB=1:${nj} <log.JOB.log> <command...>
# (see egs2/gram/utils/run_local.sh and run_slurm.sh for the interface).
#
# Choose the backend with GRAM_CMD_BACKEND:
#   local (default): run on this machine, all jobs in parallel
#   slurm          : one sbatch array job per call, options from conf/slurm.conf
cmd_backend=${GRAM_CMD_BACKEND:-local}

case "${cmd_backend}" in
  local)
    export train_cmd="run_local.sh"
    export cuda_cmd="run_local.sh"
    export decode_cmd="run_local.sh"
    ;;
  slurm)
    export train_cmd="run_slurm.sh --config conf/slurm.conf"
    export cuda_cmd="run_slurm.sh --config conf/slurm.conf --gpu 1"
    export decode_cmd="run_slurm.sh --config conf/slurm.conf"
    ;;
  *)
    echo "cmd.sh: error: unknown cmd_backend '${cmd_backend}' (from GRAM_CMD_BACKEND); use 'local' or 'slurm'" >&2
    return 1
    ;;
esac
