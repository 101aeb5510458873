#!/usr/bin/env bash
# ASR demo recipe: recognise sequences of spatialised sound events with a frozen GRAM model
# as the frontend of an ESPnet ASR model (frontend: gram). Run it from the REPOSITORY ROOT
# after the main recipe's stages 1-3 and 6-7 (demo corpus, RIR banks, packed GRAM models):
#
#   egs2/gram/asr_demo/run.sh                               # binaural, every stage
#   egs2/gram/asr_demo/run.sh --format foa                  # with the FOA model and banks
#   egs2/gram/asr_demo/run.sh --stage 5 --stop_stage 6      # decode and score again
#
# Stages: 1 event-sequence data (data/asr_demo/<set>_<format>, audio in dump/asr_demo/)
#         2 BPE model and token list (data/asr_demo/token_list/<format>/bpe<nbpe>/)
#         3 statistics: shape files and feature statistics (asr_train --collect_stats true)
#         4 ASR training (exp/asr_demo_<format>/asr_<tag>/)
#         5 decoding of test_sets, valid and test (asr_inference, inference_nj jobs each)
#         6 scoring of every decoding (WER, CER, BPE-token ER): exp/asr_demo_<format>/RESULTS.md
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (asr_demo/run.sh) $*"; }

stage=1
stop_stage=6
format=binaural         # binaural | foa: the RIR banks and the packed GRAM model used
nj=2                    # jobs of stage 3 (stage 1 runs one job per set)
inference_nj=2          # jobs of stage 5
seed=0
python=python3
datadir=data/asr_demo   # Kaldi-style data directories and the token list
dumpdir=dump/asr_demo   # audio of the event sequences
expdir=exp              # the experiment goes to ${expdir}/asr_demo_<format>
rawdir=dump/raw         # formatted corpora of the main recipe (stage 2 there)
bankdir=exp/rir_bank    # RIR banks of the main recipe (stage 3 there)
packdir=exp/packed      # packed GRAM models of the main recipe (stage 7 there)
fs=16000                # sample rate of the corpora, the banks and the GRAM model

# Stage 1: event sequences.
train_source=demo_train # single-label clips (wav.scp + utt2label) under ${rawdir}
valid_source=demo_valid
test_source=demo_test
noise_set=demo_noise    # noise recordings under ${rawdir} ("" for no noise)
num_train=300
num_valid=40
num_test=60
text_style=class        # class: one word per event ("chirp_up"), WER = event error rate;
                        # split: "chirp_up" is written "chirp up"
seq_args=""             # more options of make_event_sequences simulate, e.g. "--max_events 3"

# Stage 2: tokens.
nbpe=100                # sentencepiece vocabulary size (<unk>, <s>, </s> included)
bpemode=bpe             # bpe | unigram

# Stages 3-4: model.
asr_config=egs2/gram/asr_demo/conf/asr_gram.yaml
asr_tag=""              # experiment name (default: from the config file name)
asr_args=""             # more options of asr_train, e.g. "--max_epoch 2"
speech_fold_length=160000  # folded batches: smaller above this many samples (10 s)
text_fold_length=150
gram_model=""           # packed GRAM model (default: ${packdir}/gram_<format>)

# Stages 5-6: decoding.
beam_size=4
ctc_weight=0.5          # CTC weight of joint CTC/attention decoding (1.0: CTC only)
inference_args=""       # more options of asr_inference, e.g. "--penalty 0.5"
inference_model=valid.acc.ave.pth
test_sets="valid test"  # sets decoded and scored (valid to choose decoding options on)
inference_tag=""        # decoding name (default: from the options above)

help_message="Usage: $0 [--stage N] [--stop_stage N] [--format <a rendered format: python3 espnet2_gram/formats.py --rendered>] [--<option> value ...]
(run from the repository root; options are the variables at the top of this script)"
. egs2/gram/utils/parse_options.sh
if [ $# -ne 0 ]; then
  echo "$0: ERROR: unexpected argument(s): $*" >&2
  echo "${help_message}" >&2
  exit 1
fi
if [ ! -f path.sh ] || [ ! -d espnet2_gram ]; then
  echo "$0: ERROR: run this recipe from the repository root (egs2/gram/asr_demo/run.sh)" >&2
  exit 1
fi
prog=asr_demo/run.sh
. egs2/gram/utils/lib_options.sh
check_stages 6
rendered_formats=$(python3 espnet2_gram/formats.py --rendered)  # the registry (stdlib only)
[[ " ${rendered_formats} " == *" ${format} "* && "${format}" != *" "* ]] \
  || die "--format: expected one of ${rendered_formats}, got '${format}'"
for v in nj inference_nj fs num_train num_valid num_test nbpe beam_size; do check_int "${v}" 1; done
check_int seed 0

. ./path.sh
. ./cmd.sh

gram_model=${gram_model:-${packdir}/gram_${format}}
[ -n "${asr_tag}" ] || asr_tag=$(basename "${asr_config}" .yaml)
exp_root=${expdir}/asr_demo_${format}
asr_exp=${exp_root}/asr_${asr_tag}
stats_dir=${exp_root}/stats
token_dir=${datadir}/token_list/${format}/${bpemode}${nbpe}
bpemodel=${token_dir}/bpe.model
token_list=${token_dir}/tokens.txt
train_set=train_${format}
valid_set=valid_${format}
test_set=test_${format}
if [ -z "${inference_tag}" ]; then
  inference_tag=decode_beam${beam_size}_ctc${ctc_weight}
  [ -z "${inference_args}" ] ||
    inference_tag=${inference_tag}$(echo " ${inference_args}" | sed -e 's/ --/_/g' -e 's/ /_/g')
  inference_tag=${inference_tag}_${inference_model%.pth}
fi
mkdir -p "${exp_root}"
wait_all() {  # wait for this shell's background jobs; fails when one of them failed
  local pid rc=0
  for pid in $(jobs -p); do wait "${pid}" || rc=1; done
  return "${rc}"
}
timing() {  # <stage name> <start seconds>: log and record how long a stage took
  local secs=$(($(date +%s) - $2))
  log "$1 done in ${secs} s"
  echo "$(date '+%Y-%m-%dT%H:%M:%S') $1 ${secs} s" >> "${exp_root}/stage_times.txt"
}

log "format=${format} stages ${stage}..${stop_stage} gram_model=${gram_model} exp=${asr_exp}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  t0=$(date +%s)
  log "Stage 1: event-sequence data (${num_train}/${num_valid}/${num_test} utterances, ${format})"
  # set, source clips, bank, size, seed: valid uses the training bank, test the held-out one
  while read -r dset src bank num dseed; do
    # shellcheck disable=SC2086
    ${train_cmd} "${exp_root}/log/make_data_${dset}.log" \
      ${python} -m espnet2_gram.bin.make_event_sequences simulate --data_dir "${rawdir}/${src}" \
        --bank_dir "${bankdir}/${bank}_${format}" \
        ${noise_set:+--noise_dir "${rawdir}/${noise_set}"} \
        --out_dir "${datadir}/${dset}" --audio_dir "${dumpdir}/${dset}" --num_utts "${num}" \
        --seed "${dseed}" --prefix "${dset}_" --text_style "${text_style}" ${seq_args} < /dev/null &
  done <<EOF
${train_set} ${train_source} train ${num_train} ${seed}
${valid_set} ${valid_source} train ${num_valid} $((seed + 1))
${test_set} ${test_source} eval ${num_test} $((seed + 2))
EOF
  wait_all
  for dset in ${train_set} ${valid_set} ${test_set}; do
    validate_data_dir.sh "${datadir}/${dset}"
  done
  timing "stage1_data" "${t0}"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  t0=$(date +%s)
  log "Stage 2: ${bpemode} model (${nbpe} pieces) and token list from ${datadir}/${train_set}/text"
  mkdir -p "${token_dir}"
  ${python} -m espnet2_gram.bin.make_event_sequences bpe --text "${datadir}/${train_set}/text" \
    --model_prefix "${token_dir}/bpe" --vocab_size "${nbpe}" --model_type "${bpemode}"
  # ESPnet's order: <blank>, <unk>, the units by frequency, <sos/eos>
  ${python} -m espnet2.bin.tokenize_text --token_type bpe --bpemodel "${bpemodel}" \
    --input "${datadir}/${train_set}/text" --output "${token_list}" --field 2- \
    --cleaner none --g2p none --write_vocabulary true \
    --add_symbol "<blank>:0" --add_symbol "<unk>:1" --add_symbol "<sos/eos>:-1"
  log "token list ${token_list}: $(wc -l < "${token_list}") entries"
  timing "stage2_tokens" "${t0}"
fi

# Options shared by statistics collection, training and decoding.
asr_common_opts() {
  echo --config "${asr_config}" --frontend_conf "model_path=${gram_model}" \
    --frontend_conf "fs=${fs}" --token_type bpe --bpemodel "${bpemodel}" \
    --token_list "${token_list}" --use_tensorboard false --seed "${seed}"
}
data_opts() {  # <split: train|valid> <data dir>
  echo --"$1"_data_path_and_name_and_type "$2/wav.scp,speech,sound" \
    --"$1"_data_path_and_name_and_type "$2/text,text,text"
}

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  t0=$(date +%s)
  log "Stage 3: statistics (shape files, feature statistics) in ${stats_dir}"
  logdir=${stats_dir}/logdir
  rm -rf "${logdir}"
  mkdir -p "${logdir}"
  _nj=$(( nj < num_valid ? nj : num_valid ))
  for split in train valid; do
    dset=${train_set}; [ "${split}" = valid ] && dset=${valid_set}
    # shellcheck disable=SC2046
    split_scp.sh "${datadir}/${dset}/wav.scp" \
      $(for n in $(seq "${_nj}"); do echo "${logdir}/${split}.${n}.scp"; done)
  done
  # shellcheck disable=SC2046
  ${train_cmd} JOB=1:"${_nj}" "${logdir}/stats.JOB.log" \
    ${python} -m espnet2_gram.bin.asr_train --collect_stats true --ngpu 0 --num_workers 0 \
      --normalize none \
      $(asr_common_opts) $(data_opts train "${datadir}/${train_set}") \
      $(data_opts valid "${datadir}/${valid_set}") \
      --train_shape_file "${logdir}/train.JOB.scp" --valid_shape_file "${logdir}/valid.JOB.scp" \
      --output_dir "${logdir}/stats.JOB"
  # shellcheck disable=SC2046
  ${python} -m espnet2.bin.aggregate_stats_dirs \
    $(for n in $(seq "${_nj}"); do echo --input_dir "${logdir}/stats.${n}"; done) \
    --output_dir "${stats_dir}"
  for split in train valid; do  # token counts and vocabulary size (ESPnet's text_shape.<type>)
    awk -v N="$(wc -l < "${token_list}")" '{ print $0 "," N }' \
      "${stats_dir}/${split}/text_shape" > "${stats_dir}/${split}/text_shape.bpe"
  done
  timing "stage3_stats" "${t0}"
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  t0=$(date +%s)
  log "Stage 4: ASR training (${asr_config}) in ${asr_exp}; log: ${asr_exp}/train.log"
  # shellcheck disable=SC2046,SC2086
  ${train_cmd} "${asr_exp}/train.log" \
    ${python} -m espnet2_gram.bin.asr_train --ngpu 0 --resume true \
      $(asr_common_opts) --normalize_conf "stats_file=${stats_dir}/train/feats_stats.npz" \
      $(data_opts train "${datadir}/${train_set}") $(data_opts valid "${datadir}/${valid_set}") \
      --train_shape_file "${stats_dir}/train/speech_shape" \
      --train_shape_file "${stats_dir}/train/text_shape.bpe" \
      --valid_shape_file "${stats_dir}/valid/speech_shape" \
      --valid_shape_file "${stats_dir}/valid/text_shape.bpe" \
      --fold_length "${speech_fold_length}" --fold_length "${text_fold_length}" \
      --output_dir "${asr_exp}" ${asr_args}
  log "$(grep -h 'epoch results' "${asr_exp}/train.log" | tail -n 1 | sed 's/.*INFO: //')"
  timing "stage4_train" "${t0}"
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  t0=$(date +%s)
  for dset in ${test_sets}; do
    dset=${dset}_${format}
    dir=${asr_exp}/${inference_tag}/${dset}
    log "Stage 5: decoding ${dset} with ${asr_exp}/${inference_model} into ${dir}"
    logdir=${dir}/logdir
    rm -rf "${logdir}"
    mkdir -p "${logdir}"
    num=$(wc -l < "${datadir}/${dset}/wav.scp")
    _nj=$(( inference_nj < num ? inference_nj : num ))
    # shellcheck disable=SC2046
    split_scp.sh "${datadir}/${dset}/wav.scp" \
      $(for n in $(seq "${_nj}"); do echo "${logdir}/keys.${n}.scp"; done)
    # shellcheck disable=SC2086
    ${decode_cmd} JOB=1:"${_nj}" "${logdir}/asr_inference.JOB.log" \
      ${python} -m espnet2_gram.bin.asr_inference --ngpu 0 --batch_size 1 --seed "${seed}" \
        --data_path_and_name_and_type "${datadir}/${dset}/wav.scp,speech,sound" \
        --key_file "${logdir}/keys.JOB.scp" --asr_train_config "${asr_exp}/config.yaml" \
        --asr_model_file "${asr_exp}/${inference_model}" --output_dir "${logdir}/output.JOB" \
        --beam_size "${beam_size}" --ctc_weight "${ctc_weight}" --lm_weight 0.0 ${inference_args}
    for f in token text; do
      for n in $(seq "${_nj}"); do cat "${logdir}/output.${n}/1best_recog/${f}"; done \
        | LC_ALL=C sort > "${dir}/${f}"
    done
  done
  timing "stage5_decode" "${t0}"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
  t0=$(date +%s)
  # Every decoding of this experiment (the decode_* directories) goes into RESULTS.md.
  score_opts=()
  for dir in "${asr_exp}"/decode_*/; do
    for dset in ${test_sets}; do
      dset=${dset}_${format}
      [ -f "${dir}${dset}/text" ] || continue
      score_opts+=(--ref "${datadir}/${dset}/text" --hyp "${dir}${dset}/text"
                   --dataset "$(basename "${dir}")/${dset}")
    done
  done
  if [ "${#score_opts[@]}" -eq 0 ]; then
    echo "$0: ERROR: no decoding to score in ${asr_exp}/decode_* (run stage 5)" >&2
    exit 1
  fi
  log "Stage 6: scoring $((${#score_opts[@]} / 6)) decoding(s) of ${asr_exp}"
  ${python} -m espnet2_gram.bin.make_event_sequences score "${score_opts[@]}" \
    --bpemodel "${bpemodel}" --output "${asr_exp}/score.md" --write_details true
  results=${exp_root}/RESULTS.md
  sizes=$(for dset in ${train_set} ${valid_set} ${test_set}; do
    wc -l < "${datadir}/${dset}/text"; done | paste -sd/)
  wer_note=""
  [ "${text_style}" = class ] && wer_note=" (one word per event: the event error rate)"
  {
    echo "<!-- Generated by egs2/gram/asr_demo/run.sh -->"
    echo "# RESULTS"
    echo "## Environments"
    echo "- date: \`$(LC_ALL=C date)\`"
    echo "- python version: \`$(${python} -c 'import sys; print(sys.version.split()[0])')\`"
    echo "- espnet version: \`espnet $(${python} -c 'import espnet; print(espnet.__version__)')\`"
    echo "- pytorch version: \`pytorch $(${python} -c 'import torch; print(torch.__version__)')\`"
    echo "- GRAM frontend (frozen): \`${gram_model}\`; ASR config: \`${asr_config}\`"
    echo "- data: event sequences of the demo corpus, ${format}, ${text_style} transcriptions;" \
      "train/valid/test ${sizes} utterances; tokens: ${bpemode} ${nbpe}" \
      "(\`${token_list}\`, $(wc -l < "${token_list}") entries)"
    echo "- WER: words of the transcription${wer_note};" \
      "CER: characters (a space counts as one); TER: ${bpemode} tokens"
    if [ -f "${exp_root}/stage_times.txt" ]; then
      echo "- stage times (latest run of each; $(env -u OMP_NUM_THREADS nproc) CPU cores):" \
        "$(awk '{t[$2] = $3} END {for (k in t) print k "=" t[k] "s"}' \
          "${exp_root}/stage_times.txt" | sort | paste -sd' ')"
    fi
    echo
    echo "## ${asr_exp}"
    cat "${asr_exp}/score.md"
  } > "${results}"
  cat "${results}"
  timing "stage6_score" "${t0}"
fi

log "Done (stages ${stage}..${stop_stage})"
