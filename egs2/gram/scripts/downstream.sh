#!/usr/bin/env bash
# One downstream run: train (ESPnet trainer), infer on the test set, score -> scores.json.
# Used by run.sh stages 8-9; runnable alone from the repository root (after . ./path.sh).
#
#   egs2/gram/scripts/downstream.sh --task doa --mode probe --model gram --format foa \
#       --dataset demo --train_dir dump/emb/foa/gram/demo_train_foa \
#       --valid_dir dump/emb/foa/gram/demo_valid_foa --test_dir dump/emb/foa/gram/demo_test_foa \
#       --task_config conf/demo/doa_probe.yaml --exp_dir exp/downstream/doa_demo_foa_gram_probe
#
# probe: the data dirs hold cached embeddings (feats.scp, from extract_embeddings; their size
#        is read from embeddings.json); finetune: audio data dirs (wav.scp) and --packed_model.
# Labels: cls utt2label (a token list is made from the training labels), doa utt2doa,
# seld tracks.scp (make_seld_data; --chunk_dir is the test chunk dir, for the reference).
# Only a finished training counts: downstream.sh writes <exp_dir>/training.done (the inputs'
# fingerprint) once the trainer exits 0 and left its best model; an interrupted run resumes from
# ESPnet's checkpoint.pth and is never scored. A scored, finished run is skipped, unless its
# inputs changed (config, options, data lists and labels, embeddings or packed model): then it
# restarts.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (downstream.sh) $*"; }
die() { echo "$0: ERROR: $*" >&2; exit 1; }

task=""          # cls | doa | seld
mode=probe       # probe | finetune
model=gram       # gram | gram_random | logmel
format=""        # binaural | foa | mono
dataset=""       # name in the report
fold=""          # cross-validation fold (reported as such)
train_dir=""
valid_dir=""
test_dir=""
task_config=""  # YAML of the trainer
exp_dir=""
packed_model=""  # finetune: the packed GRAM model (also for gram_random: its architecture)
multilabel=false # cls
num_classes=""   # seld
chunk_dir=""     # seld: make_seld_data dir of the test set
train_args=""    # more trainer options, e.g. "--max_epoch 2"
ngpu=0           # GPUs for training and inference (0: CPU)
python=python3

. egs2/gram/utils/parse_options.sh
for v in task format dataset train_dir valid_dir test_dir task_config exp_dir; do
  [ -n "${!v}" ] || die "--${v} is required"
done
case "${task}:${mode}" in
  cls:probe|cls:finetune|doa:probe|doa:finetune|seld:probe|seld:finetune) ;;
  *) die "--task ${task} --mode ${mode}: expected task cls|doa|seld, mode probe|finetune" ;;
esac
[[ "${ngpu}" =~ ^[0-9]+$ ]] || die "--ngpu: expected an integer >= 0, got '${ngpu}'"
if [ "${task}" = seld ]; then
  [[ "${num_classes}" =~ ^[1-9][0-9]*$ ]] || die "--num_classes: expected a positive integer, got '${num_classes}'"
  [ -d "${chunk_dir}/metadata" ] || die "--chunk_dir '${chunk_dir}': expected a make_seld_data dir with metadata/"
fi

# The data of each split: model inputs and labels, checked before anything is written.
if [ "${mode}" = probe ]; then speech_file=feats.scp; speech_type=kaldi_ark
else speech_file=wav.scp; speech_type=sound; fi
case "${task}" in
  cls) label_file=utt2label; label_name=label; label_type=text; best=valid.acc.best.pth ;;
  doa) label_file=utt2doa; label_name=doa; label_type=text_float; best=valid.loss.best.pth ;;
  seld) label_file=tracks.scp; label_name=tracks; label_type=npy; best=train.loss.best.pth ;;
esac
for split in train valid test; do
  dir_var="${split}_dir"; dir=${!dir_var}
  [ -d "${dir}" ] || die "--${split}_dir ${dir}: no such directory"
  for f in "${speech_file}" "${label_file}"; do
    [ -s "${dir}/${f}" ] || die "${dir}/${f}: missing or empty (--${split}_dir)"
  done
  if [ "${mode}" = probe ]; then
    while read -r ark; do
      [ -f "${ark}" ] || die "${dir}/feats.scp: embeddings file ${ark} not found"
    done < <(awk '{sub(/:[0-9]+$/, "", $2); print $2}' "${dir}/feats.scp" | sort -u)
  fi
done

test_name=$(basename "${test_dir}")
decode_dir="${exp_dir}/decode_${test_name}"

# What the run depends on: the config, the options, the data lists and labels and what made
# them (the embeddings' description, or the packed model). A change retrains from scratch.
if [ "${mode}" = probe ]; then
  made_by=("${train_dir}/embeddings.json" "${valid_dir}/embeddings.json" "${test_dir}/embeddings.json")
else
  [ -n "${packed_model}" ] || die "--mode finetune needs --packed_model"
  made_by=("${packed_model}/config.yaml" "${packed_model}/model.pth")
fi
for f in "${task_config}" "${made_by[@]}"; do
  [ -f "${f}" ] || die "${f}: no such file"
done
inputs=$( { echo "${task} ${mode} ${model} ${multilabel} ${num_classes} ${train_args}";
            cat "${task_config}" "${made_by[@]}";
            for d in "${train_dir}" "${valid_dir}" "${test_dir}"; do ls -d "${d}"; cat "${d}"/*.scp "${d}/${label_file}"; done
          } | md5sum | cut -d' ' -f1)
# inputs.md5: the inputs the run in exp_dir started from; training.done: those it finished with.
done_marker="${exp_dir}/training.done"
for f in "${exp_dir}/inputs.md5" "${done_marker}"; do
  if [ -f "${f}" ] && [ "$(cat "${f}")" != "${inputs}" ]; then
    log "${exp_dir}: inputs changed since the last run; training again from scratch"
    rm -rf "${exp_dir}"
  fi
done
if [ -f "${done_marker}" ] && [ -f "${decode_dir}/scores.json" ]; then
  log "${exp_dir}: scored already (${decode_dir}/scores.json)"
  exit 0
fi
# Scores of an unfinished run (or of a run before the marker existed) are not kept.
[ -f "${done_marker}" ] || rm -rf "${decode_dir}"
mkdir -p "${exp_dir}"
echo "${inputs}" > "${exp_dir}/inputs.md5.tmp"
mv "${exp_dir}/inputs.md5.tmp" "${exp_dir}/inputs.md5"

# The model's input size and options.
if [ "${mode}" = probe ]; then
  input_size=$(${python} -c "import json,sys; print(json.load(open(sys.argv[1]))['dim'])" "${train_dir}/embeddings.json")
  model_opts=()
else
  input_size=$(${python} -c "import sys,yaml; c=yaml.safe_load(open(sys.argv[1]+'/config.yaml')); print({'mono':1,'binaural':2,'foa':4}[c['frontend']])" "${packed_model}")
  random_init=false; [ "${model}" = gram_random ] && random_init=true
  model_opts=(--encoder_conf "model_path=${packed_model}" --encoder_conf "random_init=${random_init}")
fi
[ "${task}" = seld ] && model_opts+=(--model_conf "num_classes=${num_classes}")
data_opts=()
for split in train valid; do
  dir_var="${split}_dir"; dir=${!dir_var}
  data_opts+=(--${split}_data_path_and_name_and_type "${dir}/${speech_file},speech,${speech_type}"
              --${split}_data_path_and_name_and_type "${dir}/${label_file},${label_name},${label_type}"
              --${split}_shape_file "${dir}/${speech_file}")
done
if [ "${task}" = cls ]; then
  # Token list: the training labels, sorted, then <unk> (ESPnet's classifier drops the last).
  tr ' ' '\n' < <(cut -d' ' -f2- "${train_dir}/utt2label") | sed '/^$/d' | sort -u > "${exp_dir}/tokens.txt.tmp"
  echo "<unk>" >> "${exp_dir}/tokens.txt.tmp"
  mv "${exp_dir}/tokens.txt.tmp" "${exp_dir}/tokens.txt"
  classification_type=multi-class; [ "${multilabel}" = true ] && classification_type=multi-label
  model_opts+=(--token_list "${exp_dir}/tokens.txt" --model_conf "classification_type=${classification_type}")
fi

if [ ! -f "${done_marker}" ]; then
  hint=""
  if [ -f "${exp_dir}/checkpoint.pth" ]; then
    log "resuming the unfinished training in ${exp_dir} from checkpoint.pth"
    hint=" (resumed from ${exp_dir}/checkpoint.pth; remove ${exp_dir} to train from scratch)"
  else
    log "training ${task} ${mode} ${model} ${format} -> ${exp_dir}"
  fi
  # shellcheck disable=SC2086
  ${python} -m espnet2_gram.bin.${task}_train --config "${task_config}" --ngpu "${ngpu}" \
    --input_size "${input_size}" --output_dir "${exp_dir}" --resume true \
    "${model_opts[@]}" "${data_opts[@]}" ${train_args} >> "${exp_dir}/train.log" 2>&1 \
    || { echo "$0: ERROR: training failed${hint}, see ${exp_dir}/train.log" >&2; tail -n 5 "${exp_dir}/train.log" >&2; exit 1; }
  [ -f "${exp_dir}/${best}" ] || die "training ended without ${exp_dir}/${best}, see ${exp_dir}/train.log"
  echo "${inputs}" > "${done_marker}.tmp"
  mv "${done_marker}.tmp" "${done_marker}"
fi

log "inference on ${test_dir} -> ${decode_dir}"
mkdir -p "${decode_dir}"
test_speech="${test_dir}/${speech_file},speech,${speech_type}"
device=cpu; [ "${ngpu}" -gt 0 ] && device=cuda
report_opts=(--model "${model}" --mode "${mode}" --format "${format}" --dataset "${dataset}")
[ -n "${fold}" ] && report_opts+=(--fold "${fold}")
case "${task}" in
  cls)
    ${python} -m espnet2_gram.bin.cls_inference --ngpu "$((ngpu > 0 ? 1 : 0))" --batch_size 1 \
      --classification_train_config "${exp_dir}/config.yaml" \
      --classification_model_file "${exp_dir}/${best}" --output_all_probabilities true \
      --data_path_and_name_and_type "${test_speech}" --output_dir "${decode_dir}" \
      > "${decode_dir}/inference.log" 2>&1
    ${python} -m espnet2_gram.bin.score_cls --ref "${test_dir}/utt2label" --hyp_dir "${decode_dir}" \
      --token_list "${exp_dir}/tokens.txt" --multilabel "${multilabel}" --out_dir "${decode_dir}" \
      "${report_opts[@]}" ;;
  doa)
    ${python} -m espnet2_gram.bin.doa_inference --train_config "${exp_dir}/config.yaml" \
      --model_file "${exp_dir}/${best}" --data_path_and_name_and_type "${test_speech}" \
      --device "${device}" --output_dir "${decode_dir}" > "${decode_dir}/inference.log" 2>&1
    ${python} -m espnet2_gram.bin.score_doa --ref "${test_dir}/utt2doa" --hyp "${decode_dir}/utt2doa" \
      --out_dir "${decode_dir}" "${report_opts[@]}" ;;
  seld)
    ${python} -m espnet2_gram.bin.seld_inference --train_config "${exp_dir}/config.yaml" \
      --model_file "${exp_dir}/${best}" --data_path_and_name_and_type "${test_speech}" \
      --chunk_dir "${chunk_dir}" --device "${device}" --output_dir "${decode_dir}" \
      > "${decode_dir}/inference.log" 2>&1
    ${python} -m espnet2_gram.bin.score_seld --ref_dir "${chunk_dir}/metadata" \
      --recordings "${chunk_dir}/recordings" --hyp_dir "${decode_dir}/pred" \
      --num_classes "${num_classes}" --out_dir "${decode_dir}" \
      "${report_opts[@]}" ;;
esac
log "$(${python} -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d['metrics'].items()})" "${decode_dir}/scores.json")"
