#!/usr/bin/env bash
# gpu_benchmark.sh: the prepared GRAM GPU benchmark (espnet2_gram.benchmarks.gpu), end to
# end on a bare machine: matmul ceiling, an RIR bank / noise / sources made on the spot, the
# data loader, a training-step sweep (bf16, eager and compiled), ESPnet's trainer with a
# resume, the decoder's attention forms and, given its source, GRAM-T side by side.
#
# Usage (from anywhere; nothing is installed into the environment):
#   egs2/gram/scripts/gpu_benchmark.sh [--wheels DIR] [--gramt_source DIR]
#       [--out_dir DIR] [--work_dir DIR] [--keep_work] [--tiny] [--device cuda|cpu]
#       [--budget_s SECONDS] [--compile auto|true|false]
#
#   --wheels DIR        wheels of the packages the machine lacks (egs2/gram/scripts/gpu_wheels.sh);
#                       installed with pip --no-index into /tmp/gram_site, only when ESPnet and
#                       the audio/simulation packages are not importable already
#   --gramt_source DIR  the GRAM-T source tree (section gramt; skipped without it)
#   --out_dir DIR       default exp/gpu_benchmark: gpu_benchmark.json, gpu_benchmark.md, logs/
#   --work_dir DIR      audio, RIR bank, trainer checkpoints (GBs with the paper model);
#                       default OUT_DIR/work, removed at the end unless --keep_work
#   --tiny              demo config, tiny sizes (the CPU test of this script)
#   --device            cuda or cpu (default: cuda when available)
#   --budget_s          seconds for the whole benchmark (default 420); what would not fit is
#                       skipped with the reason
#   --compile           compiled sweep points: auto (on cuda only), true or false
# On the GPU machine, e.g.: egs2/gram/scripts/gpu_benchmark.sh --wheels .whl --out_dir "$OUT"
#   --work_dir /tmp/gram_bench
# Environment: PYTHON (default python3) runs everything.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
python=${PYTHON:-python3}
wheels=""
gramt_source=""
out_dir=exp/gpu_benchmark
work_dir=""
keep_work=false
tiny=false
device=""
budget_s=420
compile=auto

die() { echo "$0: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || die "--wheels needs a value"; wheels=$2; shift 2 ;;
    --gramt_source) [ $# -ge 2 ] || die "--gramt_source needs a value"; gramt_source=$2; shift 2 ;;
    --out_dir) [ $# -ge 2 ] || die "--out_dir needs a value"; out_dir=$2; shift 2 ;;
    --work_dir) [ $# -ge 2 ] || die "--work_dir needs a value"; work_dir=$2; shift 2 ;;
    --keep_work) keep_work=true; shift ;;
    --tiny) tiny=true; shift ;;
    --device) [ $# -ge 2 ] || die "--device needs a value"; device=$2; shift 2 ;;
    --budget_s) [ $# -ge 2 ] || die "--budget_s needs a value"; budget_s=$2; shift 2 ;;
    --compile) [ $# -ge 2 ] || die "--compile needs a value"; compile=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown option '$1'" ;;
  esac
done
[[ -z "${device}" || "${device}" =~ ^(cuda|cpu)$ ]] || die "--device: expected cuda or cpu, got '${device}'"
[[ "${budget_s}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--budget_s: expected seconds, got '${budget_s}'"
[[ "${compile}" =~ ^(auto|true|false)$ ]] || die "--compile: expected auto, true or false, got '${compile}'"
[ -z "${gramt_source}" ] || [ -d "${gramt_source}" ] || die "--gramt_source: no such directory '${gramt_source}'"
command -v "${python}" > /dev/null 2>&1 || [ -x "${python}" ] || die "no python at '${python}' (set PYTHON)"

export PYTHONUNBUFFERED=1
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"

# ESPnet imports distutils, which Python 3.12 no longer ships: setuptools (< 82) provides it.
"${python}" -c "import distutils.util" > /dev/null 2>&1 || die "this Python ($("${python}" -V 2>&1))\
 has no distutils, which ESPnet imports; install setuptools<82 into it first"

importable() {
  "${python}" -c "import espnet2.train.trainer, kaldiio, soundfile, pyroomacoustics" > /dev/null 2>&1
}
if [ -n "${wheels}" ]; then
  [ -d "${wheels}" ] || die "--wheels: no such directory '${wheels}'"
  if importable; then
    echo "gpu_benchmark.sh: ESPnet and the audio packages are importable; --wheels not needed"
  else
    shopt -s nullglob
    whl=("${wheels}"/*.whl)
    shopt -u nullglob
    [ "${#whl[@]}" -gt 0 ] || die "--wheels: no .whl files in '${wheels}' (egs2/gram/scripts/gpu_wheels.sh makes them)"
    site=/tmp/gram_site
    echo "gpu_benchmark.sh: installing ${#whl[@]} wheels into ${site}"
    start=$(date +%s)
    "${python}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "${site}" "${whl[@]}" || die "pip could not install the wheels of '${wheels}'"
    export PYTHONPATH="${site}:${PYTHONPATH}"
    echo "gpu_benchmark.sh: wheels installed in $(( $(date +%s) - start )) s"
    importable || echo "gpu_benchmark.sh: warning: ESPnet or an audio package still does not import" >&2
  fi
fi

# The binaural bank's KEMAR HRTF is a data file of the slab package (read without importing it).
"${python}" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('slab') is None)" \
  2> /dev/null || echo "gpu_benchmark.sh: warning: the slab package (KEMAR HRTF) is not installed;" \
    "make_rir_bank cannot render binaural RIRs and the benchmark will use a synthetic bank" >&2

if [ "${device}" = cuda ]; then
  "${python}" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "--device cuda, but CUDA is not available (torch.cuda.is_available() is False in ${python}); use --device cpu"
fi

args=(--out_dir "${out_dir}" --budget_s "${budget_s}" --compile "${compile}")
[ -n "${work_dir}" ] && args+=(--work_dir "${work_dir}")
[ "${keep_work}" = true ] && args+=(--keep_work)
[ "${tiny}" = true ] && args+=(--tiny)
[ -n "${device}" ] && args+=(--device "${device}")
[ -n "${gramt_source}" ] && args+=(--gramt_source "${gramt_source}")
echo "gpu_benchmark.sh: ${python} -m espnet2_gram.benchmarks.gpu ${args[*]}"
exec "${python}" -m espnet2_gram.benchmarks.gpu "${args[@]}"
