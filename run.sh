#!/usr/bin/env bash
# GRAM recipe: spatial data, pretraining, packing and downstream evaluation.
#
#   ./run.sh                                   # demo preset, every stage, on CPU
#   ./run.sh --stage 3 --stop_stage 3 --nj 8   # only the RIR bank, 8 jobs
#   ./run.sh --preset paper --nj 64            # paper scale (corpora from db.sh)
#
# Stages: 1 corpus preparation, 2 audio formatting and resampling, 3 RIR bank,
#         4 fixed spatial evaluation sets, direction-rich localisation sets and DCASE-format
#           SELD data,
#         5 statistics (ESPnet --collect_stats), 6 GRAM pretraining (one model per format),
#         7 packing (model-card directory + ESPnet .zip per format),
#         8 classification (cached embeddings + ESPnet's CLSTask probes; fine-tuning by option),
#         9 localization (DoA regression and SELD/ACCDOA), 10 report (exp/downstream/RESULTS.md),
#         11 Nat-HEAR: HEAR tasks, their naturalistic versions and spatial tasks, evaluated for
#            GRAM, its random init and HEAR's naive baseline (exp/nat_hear/NAT_HEAR.md).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (run.sh) $*"; }
prog=run.sh
. egs2/gram/utils/lib_options.sh   # die, check_int, check_words, check_stages

# General options (each can be given as --name value).
stage=1
stop_stage=11
preset=demo           # demo | paper: reads conf/<preset>/recipe.sh
nj=2                  # parallel jobs per stage
seed=0
datadir=data          # Kaldi-style data directories of stage 1
dumpdir=dump          # formatted audio and rendered sets
expdir=exp            # RIR banks, logs, results
download_dir=downloads
python=python3
ngpu=0                # GPUs for pretraining (0: CPU; >1 runs DDP in one node) and downstream runs
gram_args=""          # extra options for espnet2_gram.bin.gram_train, e.g. "--max_epoch 1"

# Preset options (defaults of the demo preset; conf/<preset>/recipe.sh sets them).
corpora=""            # stage 1: corpora to prepare (local/data.sh --corpus ...)
corpus_opts=""        # stage 1: more options of the corpora's preparers (local/data.sh --corpus_opts)
fs=16000              # sample rate of everything after stage 2
mono_policy=first     # multichannel sources: first | mean
overwrite=false       # stages 2 and 4: redo outputs made with other settings (else refused)
pretrain_sets=""      # data dirs of source clips for pretraining
pretrain_valid_set="" # data dir of validation clips for pretraining
eval_sets=""          # data dirs rendered as fixed naturalistic evaluation sets
noise_set=""          # data dir of noise recordings
formats="binaural foa"
rir_config=""
num_train_packs=0     # scene packs (source + noise RIRs) of the pretraining bank
num_eval_packs=0      # ... of the held-out bank used by the evaluation sets
pretrain_snapshots="" # stage 6 keeps the weights of these epochs too; stages 7-10 pack and evaluate
                      # each (models gram_ep<N>) beside the final model: results against steps
dcase_config=""
seld_train_source=""  # labelled events of the simulated SELD training recordings
seld_test_source=""   # ... and of the test recordings
num_seld_train=0
num_seld_test=0
downstream_train_sets=""  # stage 4 renders these through the *training* bank (heads' training data)
loc_rir_config=""     # stage 3: RIR config of the localisation banks
loc_sets=""           # <set>:<renders> ...: stage 4 renders each clip of <set> <renders> times, each
                      # at its own direction in its own room (bank loc_<set>_<format>): <set>_loc_<format>
downstream_models="gram gram_random logmel seldnet"  # pretrained GRAM, same encoder untrained,
                          # log-mel, supervised SELDnet localiser (doa and seld only)
downstream_seeds="0 1 2"  # every downstream run once per seed (RESULTS.md: mean ± std)
probe_layers=""           # encoder layers probed too (0: the patch embeddings .. depth - 1), each
                          # as models gram_l<K> and gram_random_l<K> beside gram and gram_random
                          # (probes, stages 8-10): where the evidence sits in the encoder
probe_grid=""             # HEAR's grid search for the cls and DoA probes: axes <group>.<key>=v1|v2
                          # ('head' = the probe's options), the best point on validation is kept
logmel_intensity=true     # log-mel of FOA also gets the three intensity-vector channels
logmel_pooling=mean_std   # log-mel classification probes pool frames as HEAR's naive baseline
                          # (mean and std; GRAM: the mean, as its HEAR API); DoA probes of every
                          # model pool as conf/<preset>/doa_probe.yaml says (attention)
downstream_modes="probe"  # probe (frozen, cached embeddings) and/or finetune (whole encoder)
cls_tasks=""              # name:train:valid:test[:multilabel[:fold]] ('+' joins sets)
cls_conditions="naturalistic"  # naturalistic (<set>_<format>) and/or clean (<set>, mono)
doa_tasks=""              # name:train:valid:test (naturalistic sets, with utt2doa)
seld_tasks=""             # name:train:test[:classes], data dirs with {fmt} for the format
                          # (classes: default the lines of dump/dcase_sim_<format>/classes.txt)
downstream_args=""        # more trainer options of every downstream run, e.g. "--max_epoch 2"
hear_sets=""              # stage 11: name:train:valid:test recipe data dirs written as HEAR tasks
hear_tasks=""             # stage 11: tasks in HEAR's layout (hear-preprocess output); {HEAR} stands
                          # for db.sh's HEAR_TASKS
nat_hear_formats=""       # their Nat-HEAR versions (through the held-out bank); default: formats
nat_hear_spatial=""       # task names that also get a DoA and an RT60 task (<name>-doa, -rt60)
nat_hear_models="gram gram_random naive"  # HEAR modules: GRAM, its random init, HEAR's naive
nat_hear_grid=none        # hear: HEAR's probe grid (chosen on validation); none: the config's
nat_hear_snr="5 40"       # SNR range (dB) of the noise in the Nat-HEAR scenes
nat_hear_args=""          # more trainer options of every Nat-HEAR probe, e.g. "--max_epoch 10"

help_message="Usage: $0 [--stage N] [--stop_stage N] (1 <= stage <= stop_stage <= 11) [--preset demo|paper] [--nj N] [--<option> value ...]"

# The preset is read before the other options so that the command line overrides it; the
# scan steps over option values ("--gram_args --preset" is not a preset).
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --preset) preset="${args[i + 1]:-}"; i=$((i + 1)) ;;
    --preset=*) preset="${args[i]#--preset=}" ;;
    --*=*) ;;
    --help | -h) ;;
    --*) i=$((i + 1)) ;;
  esac
done
[ -n "${preset}" ] || die "--preset: expected a preset name, got nothing"
presets=$(cd conf && for f in */recipe.sh; do printf '%s ' "${f%/recipe.sh}"; done)
if [[ ! "${preset}" =~ ^[A-Za-z0-9_-]+$ ]] || [ ! -f "conf/${preset}/recipe.sh" ]; then
  die "--preset ${preset}: expected one of: ${presets% } (conf/<preset>/recipe.sh)"
fi
# shellcheck disable=SC1090
. "conf/${preset}/recipe.sh"
. egs2/gram/utils/parse_options.sh

# Every option is checked before anything is written (no log, no venv, no data).
check_stages 11
check_int nj 1
check_int ngpu 0
check_int seed 0
check_int fs 1
for v in num_train_packs num_eval_packs num_seld_train num_seld_test; do check_int "${v}" 0; done
rendered_formats=$(python3 espnet2_gram/formats.py --rendered)  # the registry (stdlib only)
# shellcheck disable=SC2086
check_words formats ${rendered_formats}
for fmt in ${formats}; do  # a format of the registry needs its pretraining config in the preset
  [ -f "conf/${preset}/pretrain_${fmt}.yaml" ] \
    || die "--formats ${fmt}: the ${preset} preset has no conf/${preset}/pretrain_${fmt}.yaml"
done
[[ "${mono_policy}" =~ ^(first|mean)$ ]] || die "--mono_policy: expected first or mean, got '${mono_policy}'"
[[ "${overwrite}" =~ ^(true|false)$ ]] || die "--overwrite: expected true or false, got '${overwrite}'"
check_words downstream_models gram gram_random logmel seldnet
[ -n "${downstream_models// /}" ] || die "--downstream_models: expected at least one of gram gram_random logmel seldnet, got nothing"
[[ "${downstream_seeds}" =~ ^[[:space:]]*[0-9]{1,9}([[:space:]]+[0-9]{1,9})*[[:space:]]*$ ]] \
  || die "--downstream_seeds: expected one or more integer seeds, got '${downstream_seeds}'"
[[ "${pretrain_snapshots}" =~ ^[[:space:]]*([1-9][0-9]{0,5}([[:space:]]+|$))*$ ]] \
  || die "--pretrain_snapshots: expected epochs (positive integers) of pretraining, got '${pretrain_snapshots}'"
[[ "${probe_layers}" =~ ^[[:space:]]*([0-9]{1,3}([[:space:]]+|$))*$ ]] \
  || die "--probe_layers: expected encoder layers (integers >= 0), got '${probe_layers}'"
for axis in ${probe_grid}; do
  [[ "${axis}" =~ ^[A-Za-z_]+\.[A-Za-z_]+=[^|]+(\|[^|]+)*$ ]] \
    || die "--probe_grid: expected axes <group>.<key>=<v1>|<v2>..., got '${axis}'"
done
[[ "${logmel_intensity}" =~ ^(true|false)$ ]] || die "--logmel_intensity: expected true or false, got '${logmel_intensity}'"
[[ "${logmel_pooling}" =~ ^(mean|mean_std|attention)$ ]] \
  || die "--logmel_pooling: expected mean, mean_std or attention, got '${logmel_pooling}'"
check_words downstream_modes probe finetune
check_words nat_hear_models gram gram_random naive
[[ "${nat_hear_grid}" =~ ^(hear|none)$ ]] || die "--nat_hear_grid: expected hear or none, got '${nat_hear_grid}'"
[[ "${nat_hear_snr}" =~ ^[[:space:]]*-?[0-9.]+[[:space:]]+-?[0-9.]+[[:space:]]*$ ]] \
  || die "--nat_hear_snr: expected two numbers (low high, dB), got '${nat_hear_snr}'"
for spec in ${hear_sets}; do
  [[ "${spec}" =~ ^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){3}$ ]] \
    || die "--hear_sets: expected name:train:valid:test entries, got '${spec}'"
done
check_words cls_conditions naturalistic clean
for spec in ${loc_sets}; do
  [[ "${spec}" =~ ^[A-Za-z0-9_.-]+:[1-9][0-9]{0,3}$ ]] \
    || die "--loc_sets: expected <set>:<renders per clip> entries, got '${spec}'"
done
[ -z "${loc_sets}" ] || [ -f "${loc_rir_config}" ] \
  || die "--loc_rir_config: expected the RIR config of the localisation banks, got '${loc_rir_config}'"
if [ $# -ne 0 ]; then
  echo "run.sh: error: unexpected argument(s): $*" >&2
  echo "${help_message}" >&2
  exit 1
fi

# cmd.sh only sets the job commands (and rejects an unknown backend): checked before path.sh,
# which may create the virtual environment.
. ./cmd.sh
. ./path.sh
. ./db.sh

log "preset=${preset} stages ${stage}..${stop_stage} nj=${nj} fs=${fs}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "Stage 1: corpus preparation (${corpora})"
  for corpus in ${corpora}; do
    src=$(corpus_root "${corpus}")
    local/data.sh --corpus "${corpus}" --data_dir "${datadir}" \
      --download_dir "${download_dir}" --fs "${fs}" --seed "${seed}" ${src:+--src_dir "${src}"} \
      ${corpus_opts:+--corpus_opts "${corpus_opts}"}
  done
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  log "Stage 2: audio formatting and resampling to ${fs} Hz"
  loc_srcs=$(for spec in ${loc_sets}; do echo "${spec%%:*}"; done)
  for dset in $(echo ${pretrain_sets} ${pretrain_valid_set} ${eval_sets} ${downstream_train_sets} ${loc_srcs} ${noise_set} ${seld_train_source} ${seld_test_source} | tr ' ' '\n' | sort -u); do
    ${train_cmd} "${expdir}/format/log/${dset}.log" \
      ${python} -m espnet2_gram.bin.format_data --in_dir "${datadir}/${dset}" \
        --out_dir "${dumpdir}/raw/${dset}" --fs "${fs}" --mono_policy "${mono_policy}" --nj "${nj}" \
        --overwrite "${overwrite}"
  done
fi

# wait_all <what>: wait for every background job of this shell; fail if any failed.
wait_all() {
  local pid failed=0
  for pid in $(jobs -p); do wait "${pid}" || failed=1; done
  [ "${failed}" -eq 0 ] || die "$1 failed"
}

# make_bank <name> <config> <format> <packs> <seed>: one RIR bank, split over ${nj} jobs.
make_bank() {
  local name=$1 config=$2 fmt=$3 num_packs=$4 bank_seed=$5
  local bank="${expdir}/rir_bank/${name}"
  ${train_cmd} JOB=1:"${nj}" "${bank}/log/make_rir_bank.JOB.log" \
    ${python} -m espnet2_gram.bin.make_rir_bank --config "${config}" --format "${fmt}" \
      --fs "${fs}" --out_dir "${bank}" --num_packs "${num_packs}" --seed "${bank_seed}" \
      --prefix "${name}_" --job_index JOB --num_jobs "${nj}"
  ${train_cmd} "${bank}/log/merge.log" \
    ${python} -m espnet2_gram.bin.make_rir_bank --out_dir "${bank}" --merge true
  log "$(grep -o 'merged .*' "${bank}/log/merge.log")"
}

# loc_bank_seed <set>: the seed of a localisation set's bank, from its name (rooms of
# different sets are disjoint, and a set keeps its rooms when loc_sets changes).
loc_bank_seed() {
  echo $(( seed + 100 + $(printf '%s' "$1" | cksum | cut -d' ' -f1) % 100000 ))
}

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  log "Stage 3: RIR bank (${formats}; ${num_train_packs} training and ${num_eval_packs} held-out packs each)"
  for fmt in ${formats}; do
    make_bank "train_${fmt}" "${rir_config}" "${fmt}" "${num_train_packs}" "${seed}"
    make_bank "eval_${fmt}" "${rir_config}" "${fmt}" "${num_eval_packs}" "$((seed + 1))"
    for spec in ${loc_sets}; do  # one pack (direction, room) per render of every clip
      IFS=: read -r dset renders <<< "${spec}"
      num_packs=$(( $(wc -l < "${dumpdir}/raw/${dset}/wav.scp") * renders ))
      make_bank "loc_${dset}_${fmt}" "${loc_rir_config}" "${fmt}" "${num_packs}" "$(loc_bank_seed "${dset}")"
    done
  done
fi

# render_set <source set> <bank> <output set> <seed> [options]: one make_eval_set job.
render_set() {
  local dset=$1 bank=$2 out=$3 set_seed=$4; shift 4
  ${train_cmd} "${expdir}/eval_sets/log/${out}.log" \
    ${python} -m espnet2_gram.bin.make_eval_set --data_dir "${dumpdir}/raw/${dset}" \
      --bank_dir "${expdir}/rir_bank/${bank}" --noise_dir "${dumpdir}/raw/${noise_set}" \
      --out_dir "${dumpdir}/raw/${out}" --seed "${set_seed}" --overwrite "${overwrite}" "$@"
}

# spatial_sets <format>: stage 4's sets of one format (the formats run in parallel).
spatial_sets() {
  local fmt=$1 dset spec renders split src num split_seed
  for dset in ${eval_sets}; do
    render_set "${dset}" "eval_${fmt}" "${dset}_${fmt}" $((seed + 2))
  done
  for dset in ${downstream_train_sets}; do
    render_set "${dset}" "train_${fmt}" "${dset}_${fmt}" $((seed + 5))
  done
  for spec in ${loc_sets}; do
    IFS=: read -r dset renders <<< "${spec}"
    render_set "${dset}" "loc_${dset}_${fmt}" "${dset}_loc_${fmt}" $((seed + 6)) \
      --renders_per_utt "${renders}" --pack_assignment distinct
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
}

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  log "Stage 4: fixed spatial evaluation sets (${eval_sets}), localisation sets and simulated SELD data"
  for fmt in ${formats}; do spatial_sets "${fmt}" & done
  wait_all "stage 4 (see ${expdir}/eval_sets/log/ and ${expdir}/dcase_sim/log/)"
fi

# Source clips of pretraining (several sets are concatenated into one list).
pretrain_data() {
  local name=$1; shift
  mkdir -p "${expdir}/gram_data"
  for dset in "$@"; do cat "${dumpdir}/raw/${dset}/wav.scp"; done | sort > "${expdir}/gram_data/${name}.scp"
  echo "${expdir}/gram_data/${name}.scp"
}

gram_common_opts() {  # <format>: data and scene options shared by stages 5 and 6
  local fmt=$1
  echo --config "conf/${preset}/pretrain_${fmt}.yaml" \
    --scene_conf "bank_dir=${expdir}/rir_bank/train_${fmt}" \
    --scene_conf "noise_scp=${dumpdir}/raw/${noise_set}/wav.scp" \
    --train_data_path_and_name_and_type "${train_scp},speech,sound" \
    --valid_data_path_and_name_and_type "${valid_scp},speech,sound"
}

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 5 ]; then
  # shellcheck disable=SC2086
  train_scp=$(pretrain_data train ${pretrain_sets})
  valid_scp=$(pretrain_data valid ${pretrain_valid_set})
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  log "Stage 5: statistics (shape files and feature statistics) for pretraining"
  for fmt in ${formats}; do
    stats="${expdir}/gram_stats_${fmt}"
    logdir="${stats}/logdir"
    mkdir -p "${logdir}"
    _nj=$(( nj < $(wc -l < "${valid_scp}") ? nj : $(wc -l < "${valid_scp}") ))
    for split in train valid; do
      scp=${train_scp}; [ "${split}" = valid ] && scp=${valid_scp}
      # shellcheck disable=SC2046
      split_scp.sh "${scp}" $(for n in $(seq "${_nj}"); do echo "${logdir}/${split}.${n}.scp"; done)
    done
    # shellcheck disable=SC2046
    ${train_cmd} JOB=1:"${_nj}" "${logdir}/stats.JOB.log" \
      ${python} -m espnet2_gram.bin.gram_train --collect_stats true --ngpu 0 --num_workers 0 \
        $(gram_common_opts "${fmt}") \
        --train_shape_file "${logdir}/train.JOB.scp" --valid_shape_file "${logdir}/valid.JOB.scp" \
        --output_dir "${logdir}/stats.JOB"
    # shellcheck disable=SC2046
    ${train_cmd} "${logdir}/aggregate.log" ${python} -m espnet2.bin.aggregate_stats_dirs \
      $(for n in $(seq "${_nj}"); do echo --input_dir "${logdir}/stats.${n}"; done) \
      --output_dir "${stats}"
  done
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
  log "Stage 6: GRAM pretraining (${formats}) on ${ngpu} GPU(s)"
  # The audio headers of these lists were checked by stage 5's jobs: not read again here
  # (nor at every resume); --gram_args "--audio_check refuse" restores the check.
  dist_opts=""
  [ "${ngpu}" -gt 1 ] && dist_opts="--multiprocessing_distributed true"
  for fmt in ${formats}; do
    out="${expdir}/gram_${fmt}"
    stats="${expdir}/gram_stats_${fmt}"
    # shellcheck disable=SC2046,SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${out}/train.log" \
      ${python} -m espnet2_gram.bin.gram_train --ngpu "${ngpu}" ${dist_opts} --resume true \
        $(gram_common_opts "${fmt}") --audio_check off \
        --train_shape_file "${stats}/train/speech_shape" \
        --valid_shape_file "${stats}/valid/speech_shape" \
        --output_dir "${out}" ${pretrain_snapshots:+--keep_epochs ${pretrain_snapshots}} ${gram_args}
    ${python} -m espnet2_gram.bin.summarize_pretraining --exp_dir "${out}"
    log "$(tail -n 1 "${out}/RESULTS.md")"
  done
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  log "Stage 7: packing the pretrained models (${formats})"
  for fmt in ${formats}; do
    ${train_cmd} "${expdir}/packed/log/pack_${fmt}.log" \
      ${python} -m espnet2_gram.bin.pack_gram --exp_dir "${expdir}/gram_${fmt}" \
        --stats_file "${expdir}/gram_stats_${fmt}/train/feats_stats.npz" \
        --out_dir "${expdir}/packed/gram_${fmt}"
    log "packed ${expdir}/packed/gram_${fmt} (and .zip)"
    for e in ${pretrain_snapshots}; do
      snapshot="${expdir}/gram_${fmt}/snapshots/${e}epoch.pth"
      [ -f "${snapshot}" ] || die "--pretrain_snapshots ${e}: no ${snapshot} (is epoch ${e} past max_epoch?)"
      ${train_cmd} "${expdir}/packed/log/pack_${fmt}_ep${e}.log" \
        ${python} -m espnet2_gram.bin.pack_gram --exp_dir "${expdir}/gram_${fmt}" \
          --model_file "${snapshot}" --stats_file "${expdir}/gram_stats_${fmt}/train/feats_stats.npz" \
          --out_dir "${expdir}/packed/gram_${fmt}_ep${e}"
    done
  done
fi

# ----------------------------------------------------------------------------- downstream
ds_dir="${expdir}/downstream"
emb_dir="${dumpdir}/emb"

# set_dir <set> <condition> <format>: the audio data dir of a set.
set_dir() {
  if [ "$2" = clean ]; then echo "${dumpdir}/raw/$1"; else echo "${dumpdir}/raw/$1_$3"; fi
}

# The downstream models: the option's, with gram the weights of each pretraining snapshot
# (gram_ep<N>, packed by stage 7), evaluated like gram: results against pretraining steps; and
# gram or gram_random at each layer of probe_layers (<model>_l<K>, probes).
ds_models=${downstream_models}
if [[ " ${downstream_models} " == *" gram "* ]]; then
  for e in ${pretrain_snapshots}; do ds_models+=" gram_ep${e}"; done
fi
for m in gram gram_random; do
  [[ " ${downstream_models} " == *" ${m} "* ]] || continue
  for k in ${probe_layers}; do ds_models+=" ${m}_l$((10#${k}))"; done
done

# packed_model <format> <model>: the packed GRAM behind a model's runs.
packed_model() {
  case "$2" in
    gram_ep*) echo "${expdir}/packed/gram_$1_${2#gram_}" ;;
    *) echo "${expdir}/packed/gram_$1" ;;
  esac
}

# embed <format> <data dir>...: cache the frame embeddings of every downstream model (once).
embed() {
  local fmt=$1; shift
  local extractors=() data=() m d
  for d in "$@"; do data+=(--data_dir "${d}"); done
  for m in ${downstream_models}; do [ "${m}" = seldnet ] || extractors+=(--extractor "${m}"); done
  if [ ${#extractors[@]} -gt 0 ]; then
    ${train_cmd} "${emb_dir}/log/extract_${fmt}.log" \
      ${python} -m espnet2_gram.bin.extract_embeddings "${extractors[@]}" --logmel_intensity "${logmel_intensity}" \
        --model_path "$(packed_model "${fmt}" gram)" --out_root "${emb_dir}/${fmt}" "${data[@]}"
  fi
  for m in ${ds_models}; do
    local kind=gram layer=()
    case "${m}" in
      gram_ep*) ;;
      gram_l*|gram_random_l*) kind=${m%_l*}; layer=(--layer "${m##*_l}") ;;
      *) continue ;;
    esac
    ${train_cmd} "${emb_dir}/log/extract_${fmt}_${m}.log" \
      ${python} -m espnet2_gram.bin.extract_embeddings --extractor "${kind}" "${layer[@]}" \
        --out_name "${m}" --model_path "$(packed_model "${fmt}" "${m}")" \
        --out_root "${emb_dir}/${fmt}" "${data[@]}"
  done
}

# task_sets <spec>...: the set names in task specs name:train:valid:test[:...] ('+' joins).
task_sets() {
  local spec tr va te
  for spec in "$@"; do
    IFS=: read -r _ tr va te _ <<< "${spec}"
    echo "${tr//+/ } ${va//+/ } ${te//+/ }"
  done
}

# join_dirs <out> <dir>...: one data dir listing the utterances of several (ESC-50's folds).
join_dirs() {
  local out=$1 f; shift
  mkdir -p "${out}"
  for f in wav.scp feats.scp utt2label utt2doa utt2num_frames utt2num_samples; do
    [ -f "$1/${f}" ] || continue
    cat "${@/%//${f}}" | sort > "${out}/.${f}.tmp"
    mv "${out}/.${f}.tmp" "${out}/${f}"
  done
  if [ -f "$1/embeddings.json" ]; then cp "$1/embeddings.json" "${out}/"; fi
}

# task_dir <mode> <format> <model> <condition> <set[+set...]>: the data dir of a run's split:
# cached embeddings (probe) or audio (finetune); joined sets get a dir of their own.
task_dir() {
  local mode=$1 fmt=$2 model=$3 cond=$4 sets=$5 s d dirs=()
  for s in ${sets//+/ }; do
    d=$(set_dir "${s}" "${cond}" "${fmt}")
    [ "${mode}" = probe ] && d="${emb_dir}/${fmt}/${model}/$(basename "${d}")"
    dirs+=("${d}")
  done
  if [ ${#dirs[@]} -eq 1 ]; then echo "${dirs[0]}"; return; fi
  d="$(dirname "${dirs[0]}")/$(IFS=+; names=("${dirs[@]##*/}"); echo "${names[*]}")"
  join_dirs "${d}" "${dirs[@]}"
  echo "${d}"
}

# run_jobs <name> <run>...: the downstream runs (options of espnet2_gram.bin.downstream, one
# per argument) in ${nj} processes, each importing ESPnet once and taking the next unclaimed
# run; the runs on audio (supervised, finetune: the longest) first. A log per process.
run_jobs() {
  local name=$1; shift
  [ $# -gt 0 ] || return 0
  local list="${ds_dir}/jobs/${name}.runs" n=$(( $# < nj ? $# : nj ))
  mkdir -p "${ds_dir}/jobs"
  { printf '%s\n' "$@" | grep -E -- '--mode (supervised|finetune) ' || true
    printf '%s\n' "$@" | grep -v -E -- '--mode (supervised|finetune) ' || true; } > "${list}.tmp"
  mv "${list}.tmp" "${list}"
  rm -rf "${list}.claims"
  local cmd="${train_cmd}"
  [ "${ngpu}" -gt 0 ] && cmd="${cuda_cmd} --gpu ${ngpu}"
  ${cmd} JOB=1:"${n}" "${ds_dir}/log/${name}.JOB.log" \
    env OMP_NUM_THREADS=1 ${python} -m espnet2_gram.bin.downstream --runs "${list}" \
      --claims "${list}.claims" --job JOB --num_jobs "${n}"
}

# runs_of <task>: "<model> <mode>" per line, the runs of every downstream model for <task>:
# GRAM and its random init in every mode of ${downstream_modes}, log-mel and the layers of
# probe_layers as probes only, the supervised SELDnet (audio, trained from scratch) for the
# localisation tasks only.
runs_of() {
  local model mode
  for model in ${ds_models}; do
    case "${model}" in
      seldnet) [ "$1" = cls ] || echo "${model} supervised" ;;
      logmel|gram_l*|gram_random_l*)
        [[ " ${downstream_modes} " != *" probe "* ]] || echo "${model} probe" ;;
      *) for mode in ${downstream_modes}; do echo "${model} ${mode}"; done ;;
    esac
  done
}

# add_jobs <task> <mode> <model> <format> <exp name> <options of bin.downstream>...: one run per
# seed of ${downstream_seeds}, appended to the array jobs.
add_jobs() {
  local task=$1 mode=$2 model=$3 fmt=$4 name=$5 s pooling="" grid=""; shift 5
  [ "${model}" = logmel ] && [ "${task}" = cls ] && pooling=${logmel_pooling}
  [ "${mode}" = probe ] && [ "${task}" != seld ] && grid=${probe_grid}
  for s in ${downstream_seeds}; do
    jobs+=("$(printf '%q ' --task "${task}" \
      --mode "${mode}" --model "${model}" --format "${fmt}" --seed "${s}" \
      --pooling "${pooling}" --grid "${grid}" --task_config "conf/${preset}/${task}_${mode}.yaml" \
      --packed_model "$(packed_model "${fmt}" "${model}")" --train_args "${downstream_args}" \
      --exp_dir "${ds_dir}/${task}_${name}_${fmt}_${model}_${mode}_seed${s}" --ngpu "${ngpu}" "$@")")
  done
}

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ] && [ -n "${cls_tasks}${doa_tasks}" ]; then
  log "Stage 8: embeddings (${ds_models}) and classification (${cls_tasks})"
  for fmt in ${formats}; do
    dirs=()
    for cond in ${cls_conditions}; do
      for s in $(task_sets ${cls_tasks}); do dirs+=("$(set_dir "${s}" "${cond}" "${fmt}")"); done
    done
    for s in $(task_sets ${doa_tasks}); do dirs+=("$(set_dir "${s}" naturalistic "${fmt}")"); done
    # shellcheck disable=SC2046
    [[ " ${downstream_modes} " == *" probe "* ]] && { embed "${fmt}" $(printf '%s\n' "${dirs[@]}" | sort -u) & }
  done
  wait_all "embeddings (see ${emb_dir}/log/)"  # the formats are embedded in parallel
  jobs=()
  for fmt in ${formats}; do
    for spec in ${cls_tasks}; do
      IFS=: read -r name tr va te multilabel fold <<< "${spec}"
      for cond in ${cls_conditions}; do
        tag=${name}; [ "${cond}" = clean ] && tag=${name}_clean
        while read -r model mode; do
          dirs=("$(task_dir "${mode}" "${fmt}" "${model}" "${cond}" "${tr}")"
                "$(task_dir "${mode}" "${fmt}" "${model}" "${cond}" "${va}")"
                "$(task_dir "${mode}" "${fmt}" "${model}" "${cond}" "${te}")")
          add_jobs cls "${mode}" "${model}" "${fmt}" "${tag}${fold:+_cv${fold}}" --dataset "${tag}" \
            --train_dir "${dirs[0]}" --valid_dir "${dirs[1]}" --test_dir "${dirs[2]}" \
            --multilabel "${multilabel:-false}" ${fold:+--fold "${fold}"}
        done < <(runs_of cls)
      done
    done
  done
  run_jobs cls "${jobs[@]}"
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ] && [ -n "${doa_tasks}${seld_tasks}" ]; then
  log "Stage 9: localization (DoA: ${doa_tasks}; SELD: ${seld_tasks})"
  jobs=()
  for fmt in ${formats}; do
    for spec in ${doa_tasks}; do
      IFS=: read -r name tr va te <<< "${spec}"
      while read -r model mode; do
        dirs=("$(task_dir "${mode}" "${fmt}" "${model}" naturalistic "${tr}")"
              "$(task_dir "${mode}" "${fmt}" "${model}" naturalistic "${va}")"
              "$(task_dir "${mode}" "${fmt}" "${model}" naturalistic "${te}")")
        add_jobs doa "${mode}" "${model}" "${fmt}" "${name}" --dataset "${name}" \
          --train_dir "${dirs[0]}" --valid_dir "${dirs[1]}" --test_dir "${dirs[2]}"
      done < <(runs_of doa)
    done
    for spec in ${seld_tasks}; do
      IFS=: read -r name tr te nc <<< "${spec}"
      tr=${tr//\{fmt\}/${fmt}}; te=${te//\{fmt\}/${fmt}}
      nc=${nc:-$(wc -l < "${dumpdir}/dcase_sim_${fmt}/classes.txt")}
      for s in "${tr}" "${te}"; do
        src="${dumpdir}/raw/${s}"; [ -f "${src}/wav.scp" ] || src="${datadir}/${s}"  # STARSS23: as prepared
        if [ ! -f "${src}/wav.scp" ]; then log "SELD ${name}: no data dir ${s} for ${fmt}, skipped"; continue 2; fi
        ${train_cmd} "${ds_dir}/log/seld_data_${s}.log" \
          ${python} -m espnet2_gram.bin.make_seld_data --data_dir "${src}" \
            --out_dir "${dumpdir}/seld/${s}" --num_classes "${nc}" --fs "${fs}"
      done
      [[ " ${downstream_modes} " == *" probe "* ]] && embed "${fmt}" "${dumpdir}/seld/${tr}" "${dumpdir}/seld/${te}"
      while read -r model mode; do
        if [ "${mode}" = probe ]; then d_tr="${emb_dir}/${fmt}/${model}/${tr}"; d_te="${emb_dir}/${fmt}/${model}/${te}"
        else d_tr="${dumpdir}/seld/${tr}"; d_te="${dumpdir}/seld/${te}"; fi
        # No SELD validation split (as in DCASE): the test loss is logged for the curves
        # only; the model kept is the one with the best training loss (see the configs).
        add_jobs seld "${mode}" "${model}" "${fmt}" "${name}" --dataset "${name}" \
          --train_dir "${d_tr}" --valid_dir "${d_te}" --test_dir "${d_te}" \
          --num_classes "${nc}" --chunk_dir "${dumpdir}/seld/${te}"
      done < <(runs_of seld)
    done
  done
  run_jobs loc "${jobs[@]}"
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ] && [ -d "${ds_dir}" ]; then
  log "Stage 10: report"
  ${python} -m espnet2_gram.bin.make_report --exp_dir "${ds_dir}"
  log "wrote ${ds_dir}/RESULTS.md"
fi

# nat_hear_eval <format> <model> <task dir>...: one HEAR module evaluated on the tasks.
nat_hear_eval() {
  local fmt=$1 model=$2 module=(--module espnet2_gram.hear --model_path "${expdir}/packed/gram_${fmt}")
  shift 2
  local name="${model}_${fmt}" extra=() tasks=() d
  case "${model}" in
    gram_random) extra=(--model_options '{"random_init": true}') ;;
    naive) module=(--module espnet2_gram.nat_hear.naive); name=naive
           # mono baselines hear the mean of the ears or the W channel, as in the paper
           [ "${fmt}" = binaural ] && extra=(--channels mean) ;;
  esac
  for d in "$@"; do tasks+=(--task_dir "${d}"); done
  ${train_cmd} "${nat_dir}/log/evaluate_${name}_${fmt}.log" \
    env OMP_NUM_THREADS=1 ${python} -m espnet2_gram.bin.evaluate_hear "${module[@]}" "${extra[@]}" \
      --model_name "${name}" --out_dir "${nat_dir}" --grid "${nat_hear_grid}" --train_args "${nat_hear_args}" \
      --seeds ${downstream_seeds} --cls_config "conf/${preset}/cls_probe.yaml" \
      --doa_config "conf/${preset}/doa_probe.yaml" --reg_config "conf/${preset}/reg_probe.yaml" \
      --event_config "conf/${preset}/event_probe.yaml" "${tasks[@]}"
}

nat_dir="${expdir}/nat_hear"
if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ] && [ -n "${hear_sets}${hear_tasks}" ]; then
  log "Stage 11: Nat-HEAR (${hear_sets} ${hear_tasks}; ${nat_hear_formats:-${formats}}; ${nat_hear_models})"
  clean=()
  for spec in ${hear_sets}; do
    IFS=: read -r name tr va te <<< "${spec}"
    ${python} -m espnet2_gram.bin.make_hear_task --task_name "${name}" --fs "${fs}" \
      --split "train=${dumpdir}/raw/${tr}" --split "valid=${dumpdir}/raw/${va}" \
      --split "test=${dumpdir}/raw/${te}" --out_dir "${dumpdir}/hear/clean/${name}"
    clean+=("${dumpdir}/hear/clean/${name}")
  done
  for d in ${hear_tasks}; do
    d=${d//\{HEAR\}/${HEAR_TASKS:-}}
    [ -f "${d}/task_metadata.json" ] \
      || die "--hear_tasks: ${d} is not a task in HEAR's layout (no task_metadata.json); set HEAR_TASKS in db.sh to the folder of the HEAR tasks"
    clean+=("${d}")
  done
  for fmt in ${nat_hear_formats:-${formats}}; do
    for d in "${clean[@]}"; do
      name=$(basename "${d}"); spatial=()
      [[ " ${nat_hear_spatial} " == *" ${name} "* ]] && spatial=(--spatial_tasks doa rt60)
      ${train_cmd} "${nat_dir}/log/make_nat_hear_${fmt}_${name}.log" \
        ${python} -m espnet2_gram.bin.make_nat_hear --task_dir "${d}" \
          --bank_dir "${expdir}/rir_bank/eval_${fmt}" --noise_dir "${dumpdir}/raw/${noise_set}" \
          --out_dir "${dumpdir}/hear/${fmt}/${name}" --seed "$((seed + 7))" \
          --snr_range ${nat_hear_snr} --overwrite "${overwrite}" "${spatial[@]}" &
    done
    wait_all "Nat-HEAR generation (see ${nat_dir}/log/)"
  done
  first=true
  for fmt in ${nat_hear_formats:-${formats}}; do
    nat=("${dumpdir}/hear/${fmt}"/*/)
    nat=("${nat[@]%/}")
    # the naive baseline first: its 44.1-kHz embeddings take longest
    for model in $(printf '%s\n' ${nat_hear_models} | sort -r); do
      if [ "${model}" = naive ]; then
        # one naive baseline: the clean tasks with the first format only
        if ${first}; then nat_hear_eval "${fmt}" naive "${clean[@]}" "${nat[@]}" &
        else nat_hear_eval "${fmt}" naive "${nat[@]}" & fi
      else
        nat_hear_eval "${fmt}" "${model}" "${clean[@]}" "${nat[@]}" &
      fi
      [ "$(jobs -p | wc -l)" -lt "${nj}" ] || wait -n || die "Nat-HEAR evaluation failed (see ${nat_dir}/log/)"
    done
    first=false
  done
  wait_all "Nat-HEAR evaluation (see ${nat_dir}/log/)"
  ${python} -m espnet2_gram.bin.make_nat_hear_table --out_dir "${nat_dir}" > /dev/null
  log "wrote ${nat_dir}/NAT_HEAR.md and ${nat_dir}/exp/RESULTS.md"
fi

log "Done (stages ${stage}..${stop_stage})"
