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
# A run whose scores.json exists is skipped and a trained model is not trained again, unless
# its inputs changed (config, options, data lists, embeddings or packed model): then it restarts.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (downstream.sh) $*"; }

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
  if [ -z "${!v}" ]; then echo "$0: ERROR: --${v} is required" >&2; exit 1; fi
done
case "${task}:${mode}" in
  cls:probe|cls:finetune|doa:probe|doa:finetune|seld:probe|seld:finetune) ;;
  *) echo "$0: ERROR: --task ${task} --mode ${mode}: expected task cls|doa|seld, mode probe|finetune" >&2; exit 1 ;;
esac

test_name=$(basename "${test_dir}")
decode_dir="${exp_dir}/decode_${test_name}"

# What the run depends on: the config, the options, the data lists and what made them (the
# embeddings' description, or the packed model). A change retrains from scratch.
if [ "${mode}" = probe ]; then
  made_by=("${train_dir}/embeddings.json" "${valid_dir}/embeddings.json" "${test_dir}/embeddings.json")
else
  [ -n "${packed_model}" ] || { echo "$0: ERROR: --mode finetune needs --packed_model" >&2; exit 1; }
  made_by=("${packed_model}/config.yaml" "${packed_model}/model.pth")
fi
for f in "${task_config}" "${made_by[@]}"; do
  [ -f "${f}" ] || { echo "$0: ERROR: ${f}: no such file" >&2; exit 1; }
done
inputs=$( { echo "${task} ${mode} ${model} ${multilabel} ${num_classes} ${train_args}";
            cat "${task_config}" "${made_by[@]}";
            for d in "${train_dir}" "${valid_dir}" "${test_dir}"; do ls -d "${d}"; cat "${d}"/*.scp; done
          } | md5sum | cut -d' ' -f1)
if [ -f "${exp_dir}/inputs.md5" ] && [ "$(cat "${exp_dir}/inputs.md5")" != "${inputs}" ]; then
  log "${exp_dir}: inputs changed since the last run; training again from scratch"
  rm -rf "${exp_dir}"
fi
if [ -f "${decode_dir}/scores.json" ]; then
  log "${exp_dir}: scored already (${decode_dir}/scores.json)"
  exit 0
fi
mkdir -p "${exp_dir}"
echo "${inputs}" > "${exp_dir}/inputs.md5"

# Inputs of the model and the labels of each task.
if [ "${mode}" = probe ]; then
  speech_file=feats.scp; speech_type=kaldi_ark
  input_size=$(${python} -c "import json,sys; print(json.load(open(sys.argv[1]))['dim'])" "${train_dir}/embeddings.json")
  model_opts=()
else
  speech_file=wav.scp; speech_type=sound
  input_size=$(${python} -c "import sys,yaml; c=yaml.safe_load(open(sys.argv[1]+'/config.yaml')); print({'mono':1,'binaural':2,'foa':4}[c['frontend']])" "${packed_model}")
  random_init=false; [ "${model}" = gram_random ] && random_init=true
  model_opts=(--encoder_conf "model_path=${packed_model}" --encoder_conf "random_init=${random_init}")
fi
case "${task}" in
  cls) label_file=utt2label; label_name=label; label_type=text; best=valid.acc.best.pth ;;
  doa) label_file=utt2doa; label_name=doa; label_type=text_float; best=valid.loss.best.pth ;;
  seld) label_file=tracks.scp; label_name=tracks; label_type=npy; best=train.loss.best.pth
        model_opts+=(--model_conf "num_classes=${num_classes}") ;;
esac
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

if [ ! -f "${exp_dir}/${best}" ]; then
  log "training ${task} ${mode} ${model} ${format} -> ${exp_dir}"
  # shellcheck disable=SC2086
  ${python} -m espnet2_gram.bin.${task}_train --config "${task_config}" --ngpu "${ngpu}" \
    --input_size "${input_size}" --output_dir "${exp_dir}" --resume true \
    "${model_opts[@]}" "${data_opts[@]}" ${train_args} > "${exp_dir}/train.log" 2>&1 \
    || { echo "$0: ERROR: training failed, see ${exp_dir}/train.log" >&2; tail -n 5 "${exp_dir}/train.log" >&2; exit 1; }
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
      --hyp_dir "${decode_dir}/pred" --num_classes "${num_classes}" --out_dir "${decode_dir}" \
      "${report_opts[@]}" ;;
esac
log "$(${python} -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d['metrics'].items()})" "${decode_dir}/scores.json")"
