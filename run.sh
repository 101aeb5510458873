#!/usr/bin/env bash
# GRAM recipe: spatial data preparation (stages 1-4); later stages build on their outputs.
#
#   ./run.sh                                   # demo preset, every stage, on CPU
#   ./run.sh --stage 3 --stop_stage 3 --nj 8   # only the RIR bank, 8 jobs
#   ./run.sh --preset paper --nj 64            # paper scale (corpora from db.sh)
#
# Stages: 1 corpus preparation, 2 audio formatting and resampling, 3 RIR bank,
#         4 fixed spatial evaluation sets and DCASE-format SELD data.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (run.sh) $*"; }

# General options (each can be given as --name value).
stage=1
stop_stage=100
preset=demo           # demo | paper: reads conf/<preset>/recipe.sh
nj=2                  # parallel jobs per stage
seed=0
datadir=data          # Kaldi-style data directories of stage 1
dumpdir=dump          # formatted audio and rendered sets
expdir=exp            # RIR banks, logs, results
download_dir=downloads
python=python3

# Preset options (defaults of the demo preset; conf/<preset>/recipe.sh sets them).
corpora=""            # stage 1: corpora to prepare (local/data.sh --corpus ...)
fs=16000              # sample rate of everything after stage 2
mono_policy=first     # multichannel sources: first | mean
pretrain_sets=""      # data dirs of source clips for pretraining
eval_sets=""          # data dirs rendered as fixed naturalistic evaluation sets
noise_set=""          # data dir of noise recordings
formats="binaural foa"
rir_config=""
num_train_packs=0     # scene packs (source + noise RIRs) of the pretraining bank
num_eval_packs=0      # ... of the held-out bank used by the evaluation sets
dcase_config=""
seld_train_source=""  # labelled events of the simulated SELD training recordings
seld_test_source=""   # ... and of the test recordings
num_seld_train=0
num_seld_test=0

help_message="Usage: $0 [--stage N] [--stop_stage N] [--preset demo|paper] [--nj N] [--<option> value ...]"

# The preset is read before the other options so that the command line overrides it.
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --preset) preset="${args[i + 1]:-}" ;;
    --preset=*) preset="${args[i]#--preset=}" ;;
  esac
done
if [ ! -f "conf/${preset}/recipe.sh" ]; then
  echo "$0: ERROR: --preset ${preset}: conf/${preset}/recipe.sh not found (use demo or paper)" >&2
  exit 1
fi
# shellcheck disable=SC1090
. "conf/${preset}/recipe.sh"
. egs2/gram/utils/parse_options.sh
if [ $# -ne 0 ]; then
  echo "$0: ERROR: unexpected argument(s): $*" >&2
  echo "${help_message}" >&2
  exit 1
fi

. ./path.sh
. ./cmd.sh
. ./db.sh

log "preset=${preset} stages ${stage}..${stop_stage} nj=${nj} fs=${fs}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "Stage 1: corpus preparation (${corpora})"
  for corpus in ${corpora}; do
    src=$(corpus_root "${corpus}")
    local/data.sh --corpus "${corpus}" --data_dir "${datadir}" \
      --download_dir "${download_dir}" --fs "${fs}" --seed "${seed}" ${src:+--src_dir "${src}"}
  done
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  log "Stage 2: audio formatting and resampling to ${fs} Hz"
  for dset in $(echo ${pretrain_sets} ${eval_sets} ${noise_set} ${seld_train_source} ${seld_test_source} | tr ' ' '\n' | sort -u); do
    ${train_cmd} "${expdir}/format/log/${dset}.log" \
      ${python} -m espnet2_gram.bin.format_data --in_dir "${datadir}/${dset}" \
        --out_dir "${dumpdir}/raw/${dset}" --fs "${fs}" --mono_policy "${mono_policy}" --nj "${nj}"
  done
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  log "Stage 3: RIR bank (${formats}; ${num_train_packs} training and ${num_eval_packs} held-out packs each)"
  for fmt in ${formats}; do
    for split in train eval; do
      if [ "${split}" = train ]; then num_packs=${num_train_packs}; bank_seed=${seed}; else num_packs=${num_eval_packs}; bank_seed=$((seed + 1)); fi
      bank="${expdir}/rir_bank/${split}_${fmt}"
      ${train_cmd} JOB=1:"${nj}" "${bank}/log/make_rir_bank.JOB.log" \
        ${python} -m espnet2_gram.bin.make_rir_bank --config "${rir_config}" --format "${fmt}" \
          --fs "${fs}" --out_dir "${bank}" --num_packs "${num_packs}" --seed "${bank_seed}" \
          --prefix "${split}_${fmt}_" --job_index JOB --num_jobs "${nj}"
      ${train_cmd} "${bank}/log/merge.log" \
        ${python} -m espnet2_gram.bin.make_rir_bank --out_dir "${bank}" --merge true
      log "$(${python} -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], d['num_packs'], 'packs,', d['num_rirs'], 'RIRs, mean RT60 target/measured %.2f/%.2f s' % (d['rt60_target_mean'], d['rt60_measured_mean']))" "${bank}/bank.json")"
    done
  done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  log "Stage 4: fixed spatial evaluation sets (${eval_sets}) and simulated SELD data"
  for fmt in ${formats}; do
    for dset in ${eval_sets}; do
      ${train_cmd} "${expdir}/eval_sets/log/${dset}_${fmt}.log" \
        ${python} -m espnet2_gram.bin.make_eval_set --data_dir "${dumpdir}/raw/${dset}" \
          --bank_dir "${expdir}/rir_bank/eval_${fmt}" --noise_dir "${dumpdir}/raw/${noise_set}" \
          --out_dir "${dumpdir}/raw/${dset}_${fmt}" --seed $((seed + 2))
    done
    for split in train test; do
      if [ "${split}" = train ]; then src=${seld_train_source}; num=${num_seld_train}; split_seed=$((seed + 3))
      else src=${seld_test_source}; num=${num_seld_test}; split_seed=$((seed + 4)); fi
      [ -n "${src}" ] && [ "${num}" -gt 0 ] || continue
      ${train_cmd} "${expdir}/dcase_sim/log/${fmt}_${split}.log" \
        ${python} -m espnet2_gram.bin.export_dcase --config "${dcase_config}" \
          --data_dir "${dumpdir}/raw/${src}" --noise_dir "${dumpdir}/raw/${noise_set}" \
          --out_root "${dumpdir}/dcase_sim_${fmt}" --split "dev-${split}-sim" \
          --kaldi_dir "${dumpdir}/raw/seld_${split}_${fmt}" --num_recordings "${num}" \
          --format "${fmt}" --fs "${fs}" --seed "${split_seed}"
    done
  done
fi

log "Done (stages ${stage}..${stop_stage})"
