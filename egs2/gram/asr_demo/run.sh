#!/usr/bin/env bash
# ASR demo recipe: recognise sequences of spatialised sound events with a frozen GRAM model
# as the frontend of an ESPnet ASR model (frontend: gram). Run it from the REPOSITORY ROOT
# after the main recipe's stages 1-3 and 6-7 (demo corpus, RIR banks, packed GRAM models):
#
#   egs2/gram/asr_demo/run.sh                               # binaural, every stage
#   egs2/gram/asr_demo/run.sh --format foa                  # with the FOA model and banks
#   egs2/gram/asr_demo/run.sh --stage 5 --stop_stage 6      # decode and score again
#   egs2/gram/asr_demo/run.sh --asr_configs "$(ls egs2/gram/asr_demo/conf/asr_*.yaml)" \
#       --train_seeds "0 1 2"                               # compare the frontends, 3 seeds
#   egs2/gram/asr_demo/run.sh --corpus_dir data/my_speech --nbpe 300   # your own corpus
#
# Stages: 1 event-sequence data (data/asr_demo/<set>_<format>, audio in dump/asr_demo/)
#         2 BPE model and token list (data/asr_demo/token_list/<format>/bpe<nbpe>/)
#           (with --corpus_dir: checks your Kaldi-style train/, valid/, test/ instead)
#         3 statistics per config: shape files and feature statistics (--collect_stats true)
#         4 ASR training per config and seed (exp/asr_demo_<format>/asr_<config>_seed<N>/)
#         5 decoding of test_sets, valid and test (asr_inference, inference_nj jobs each)
#         6 scoring of every decoding (WER, CER, BPE-token ER) and the comparison of the
#           configs (mean +- std over seeds): exp/asr_demo_<format>/RESULTS.md
#         7 packing of every experiment with ESPnet's pack (model, config, BPE model, feature
#           statistics, scores): asr_<config>_seed<N>/asr_<config>_seed<N>_<model>.zip, which
#           decodes without the packed GRAM (its weights are in the checkpoint)
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (asr_demo/run.sh) $*"; }

stage=1
stop_stage=7
format=binaural         # binaural | foa: the RIR banks and the packed GRAM model used
nj=2                    # jobs of stage 3 (stage 1 runs one job per set)
inference_nj=2          # jobs of stage 5
seed=0                  # seed of the data (stage 1); training seeds: --train_seeds
python=python3
datadir=data/asr_demo   # Kaldi-style data directories and the token list
dumpdir=dump/asr_demo   # audio of the event sequences
expdir=exp              # the experiment goes to ${expdir}/asr_demo_<format>
rawdir=dump/raw         # formatted corpora of the main recipe (stage 2 there)
bankdir=exp/rir_bank    # RIR banks of the main recipe (stage 3 there)
packdir=exp/packed      # packed GRAM models of the main recipe (stage 7 there)
fs=16000                # sample rate of the corpora, the banks and the GRAM model

# Stage 1: event sequences, or your own corpus.
corpus_dir=""           # a folder with Kaldi-style train/, valid/ and test/ (wav.scp, text; mono
                        # audio or the GRAM model's channels, at fs) used instead of the event
                        # sequences: experiments go to ${expdir}/asr_<folder name>_<format>
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

# Stages 3-4: models.
asr_configs=egs2/gram/asr_demo/conf/asr_gram.yaml  # ASR configs to train and compare (one
                        # experiment asr_<config name>_seed<N> per training seed); conf/ has the
                        # GRAM frontend frozen (asr_gram: layer weights; asr_gram_last: last
                        # layer), thawed after 100 steps (asr_gram_finetune) and log-mel (asr_logmel)
train_seeds=0           # training seeds of every config, e.g. "0 1 2"
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
check_stages 7
rendered_formats=$(python3 espnet2_gram/formats.py --rendered)  # the registry (stdlib only)
[[ " ${rendered_formats} " == *" ${format} "* && "${format}" != *" "* ]] \
  || die "--format: expected one of ${rendered_formats}, got '${format}'"
for v in nj inference_nj fs num_train num_valid num_test nbpe beam_size; do check_int "${v}" 1; done
check_int seed 0
[ -n "${train_seeds// /}" ] || die "--train_seeds: expected one or more integers >= 0, got ''"
for s in ${train_seeds}; do
  [[ "${s}" =~ ^[0-9]{1,9}$ ]] || die "--train_seeds: expected integers >= 0, got '${s}'"
done
[ -n "${asr_configs// /}" ] || die "--asr_configs: expected one or more YAML files, got ''"
declare -A config_of=()
for c in ${asr_configs}; do
  [ -f "${c}" ] || die "--asr_configs: ${c}: no such file"
  t=$(basename "${c}" .yaml)
  [ -z "${config_of[${t}]:-}" ] || die "--asr_configs: ${config_of[${t}]} and ${c} have one name (${t})"
  config_of[${t}]=${c}
done
if [ -n "${corpus_dir}" ]; then
  for split in train valid test; do
    for f in wav.scp text; do
      [ -s "${corpus_dir}/${split}/${f}" ] \
        || die "--corpus_dir: expected ${corpus_dir}/${split}/${f} (Kaldi-style train/, valid/, test/)"
    done
  done
fi

. ./path.sh
. ./cmd.sh

gram_model=${gram_model:-${packdir}/gram_${format}}
corpus=demo
[ -z "${corpus_dir}" ] || corpus=$(basename "$(readlink -f "${corpus_dir}")")
exp_root=${expdir}/asr_${corpus}_${format}
token_dir=${datadir}/token_list/${corpus}_${format}/${bpemode}${nbpe}
bpemodel=${token_dir}/bpe.model
token_list=${token_dir}/tokens.txt
set_dir() {  # <train|valid|test>: its data directory
  case $1 in
    train|valid|test) if [ -n "${corpus_dir}" ]; then echo "${corpus_dir}/$1";
                      else echo "${datadir}/$1_${format}"; fi ;;
    *) die "--test_sets: expected words from: train valid test, got '$1'" ;;
  esac
}
for dset in ${test_sets}; do set_dir "${dset}" > /dev/null; done
train_dir=$(set_dir train)
valid_dir=$(set_dir valid)
experiments() {  # every experiment: <config name> <seed>, in the order of the options
  local c s
  for c in ${asr_configs}; do
    for s in ${train_seeds}; do echo "$(basename "${c}" .yaml) ${s}"; done
  done
}
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

log "format=${format} stages ${stage}..${stop_stage} gram_model=${gram_model} configs: ${asr_configs} seeds: ${train_seeds} exp=${exp_root}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  t0=$(date +%s)
  if [ -n "${corpus_dir}" ]; then
    log "Stage 1: your corpus ${corpus_dir} (train, valid, test)"
    for split in train valid test; do validate_data_dir.sh "${corpus_dir}/${split}"; done
  else
    log "Stage 1: event-sequence data (${num_train}/${num_valid}/${num_test} utterances, ${format})"
    # set, source clips, bank, size, seed: valid uses the training bank, test the held-out one
    while read -r split src bank num dseed; do
      dset=${split}_${format}
      # shellcheck disable=SC2086
      ${train_cmd} "${exp_root}/log/make_data_${dset}.log" \
        ${python} -m espnet2_gram.bin.make_event_sequences simulate --data_dir "${rawdir}/${src}" \
          --bank_dir "${bankdir}/${bank}_${format}" \
          ${noise_set:+--noise_dir "${rawdir}/${noise_set}"} \
          --out_dir "${datadir}/${dset}" --audio_dir "${dumpdir}/${dset}" --num_utts "${num}" \
          --seed "${dseed}" --prefix "${dset}_" --text_style "${text_style}" ${seq_args} < /dev/null &
    done <<EOF
train ${train_source} train ${num_train} ${seed}
valid ${valid_source} train ${num_valid} $((seed + 1))
test ${test_source} eval ${num_test} $((seed + 2))
EOF
    wait_all
    for split in train valid test; do validate_data_dir.sh "$(set_dir "${split}")"; done
  fi
  timing "stage1_data" "${t0}"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  t0=$(date +%s)
  log "Stage 2: ${bpemode} model (${nbpe} pieces) and token list from ${train_dir}/text"
  mkdir -p "${token_dir}"
  ${python} -m espnet2_gram.bin.make_event_sequences bpe --text "${train_dir}/text" \
    --model_prefix "${token_dir}/bpe" --vocab_size "${nbpe}" --model_type "${bpemode}"
  # ESPnet's order: <blank>, <unk>, the units by frequency, <sos/eos>
  ${python} -m espnet2.bin.tokenize_text --token_type bpe --bpemodel "${bpemodel}" \
    --input "${train_dir}/text" --output "${token_list}" --field 2- \
    --cleaner none --g2p none --write_vocabulary true \
    --add_symbol "<blank>:0" --add_symbol "<unk>:1" --add_symbol "<sos/eos>:-1"
  log "token list ${token_list}: $(wc -l < "${token_list}") entries"
  timing "stage2_tokens" "${t0}"
fi

# Options shared by statistics collection, training and decoding of one config: the packed
# GRAM model for a GRAM frontend, the sample rate for any frontend.
asr_common_opts() {  # <config name> <seed>
  local config=${config_of[$1]} frontend
  frontend=$(${python} -c 'import sys, yaml
print((yaml.safe_load(open(sys.argv[1])) or {}).get("frontend", "default"))' "${config}")
  echo --config "${config}" --frontend_conf "fs=${fs}" --token_type bpe \
    --bpemodel "${bpemodel}" --token_list "${token_list}" --use_tensorboard false --seed "$2"
  [ "${frontend}" != gram ] || echo --frontend_conf "model_path=${gram_model}"
}
fresh_dir() { rm -rf "$1"; mkdir -p "$1"; }
jobs_for() {  # <scp> <jobs>: the jobs for an scp, at most one per line
  local n
  n=$(wc -l < "$1")
  echo $(( $2 < n ? $2 : n ))
}
split_into() {  # <scp> <jobs> <prefix>: <prefix>.1.scp .. <prefix>.<jobs>.scp
  # shellcheck disable=SC2046
  split_scp.sh "$1" $(for n in $(seq "$2"); do echo "$3.${n}.scp"; done)
}
data_opts() {  # <split: train|valid> <data dir>
  echo --"$1"_data_path_and_name_and_type "$2/wav.scp,speech,sound" \
    --"$1"_data_path_and_name_and_type "$2/text,text,text"
}

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  for tag in $(experiments | awk '!seen[$1]++ { print $1 }'); do
    t0=$(date +%s)
    stats_dir=${exp_root}/stats_${tag}
    log "Stage 3: statistics of ${tag} (shape files, feature statistics) in ${stats_dir}"
    logdir=${stats_dir}/logdir
    fresh_dir "${logdir}"
    _nj=$(jobs_for "${valid_dir}/wav.scp" "${nj}")
    for split in train valid; do
      split_into "$(set_dir "${split}")/wav.scp" "${_nj}" "${logdir}/${split}"
    done
    # shellcheck disable=SC2046
    ${train_cmd} JOB=1:"${_nj}" "${logdir}/stats.JOB.log" \
      ${python} -m espnet2_gram.bin.asr_train --collect_stats true --ngpu 0 --num_workers 0 \
        --normalize none $(asr_common_opts "${tag}" "${seed}") \
        $(data_opts train "${train_dir}") $(data_opts valid "${valid_dir}") \
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
    timing "stage3_stats_${tag}" "${t0}"
  done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  while read -r tag tseed; do
    t0=$(date +%s)
    asr_exp=${exp_root}/asr_${tag}_seed${tseed}
    stats_dir=${exp_root}/stats_${tag}
    log "Stage 4: ASR training (${config_of[${tag}]}, seed ${tseed}) in ${asr_exp}; log: ${asr_exp}/train.log"
    # shellcheck disable=SC2046,SC2086
    ${train_cmd} "${asr_exp}/train.log" \
      ${python} -m espnet2_gram.bin.asr_train --ngpu 0 --resume true \
        $(asr_common_opts "${tag}" "${tseed}") \
        --normalize_conf "stats_file=${stats_dir}/train/feats_stats.npz" \
        $(data_opts train "${train_dir}") $(data_opts valid "${valid_dir}") \
        --train_shape_file "${stats_dir}/train/speech_shape" \
        --train_shape_file "${stats_dir}/train/text_shape.bpe" \
        --valid_shape_file "${stats_dir}/valid/speech_shape" \
        --valid_shape_file "${stats_dir}/valid/text_shape.bpe" \
        --fold_length "${speech_fold_length}" --fold_length "${text_fold_length}" \
        --output_dir "${asr_exp}" ${asr_args} < /dev/null
    log "$(grep -h 'epoch results' "${asr_exp}/train.log" | tail -n 1 | sed 's/.*INFO: //')"
    timing "stage4_train_${tag}_seed${tseed}" "${t0}"
  done < <(experiments)
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  while read -r tag tseed; do
    t0=$(date +%s)
    asr_exp=${exp_root}/asr_${tag}_seed${tseed}
    for name in ${test_sets}; do
      src=$(set_dir "${name}")
      dir=${asr_exp}/${inference_tag}/${name}_${format}
      log "Stage 5: decoding ${src} with ${asr_exp}/${inference_model} into ${dir}"
      logdir=${dir}/logdir
      fresh_dir "${logdir}"
      _nj=$(jobs_for "${src}/wav.scp" "${inference_nj}")
      split_into "${src}/wav.scp" "${_nj}" "${logdir}/keys"
      # shellcheck disable=SC2086
      ${decode_cmd} JOB=1:"${_nj}" "${logdir}/asr_inference.JOB.log" \
        ${python} -m espnet2_gram.bin.asr_inference --ngpu 0 --batch_size 1 --seed "${tseed}" \
          --data_path_and_name_and_type "${src}/wav.scp,speech,sound" \
          --key_file "${logdir}/keys.JOB.scp" --asr_train_config "${asr_exp}/config.yaml" \
          --asr_model_file "${asr_exp}/${inference_model}" --output_dir "${logdir}/output.JOB" \
          --beam_size "${beam_size}" --ctc_weight "${ctc_weight}" --lm_weight 0.0 \
          ${inference_args} < /dev/null
      for f in token text; do
        for n in $(seq "${_nj}"); do cat "${logdir}/output.${n}/1best_recog/${f}"; done \
          | LC_ALL=C sort > "${dir}/${f}.tmp"
        mv "${dir}/${f}.tmp" "${dir}/${f}"
      done
    done
    timing "stage5_decode_${tag}_seed${tseed}" "${t0}"
  done < <(experiments)
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
  t0=$(date +%s)
  # Every decoding of every experiment (the decode_* directories) goes into its score.md, and
  # the decodings named by --inference_tag into the comparison of the configs over seeds.
  compare_opts=()
  while read -r tag tseed; do
    asr_exp=${exp_root}/asr_${tag}_seed${tseed}
    score_opts=()
    for dir in "${asr_exp}"/decode_*/; do
      for name in ${test_sets}; do
        [ -f "${dir}${name}_${format}/text" ] || continue
        score_opts+=(--ref "$(set_dir "${name}")/text" --hyp "${dir}${name}_${format}/text"
                     --dataset "$(basename "${dir}")/${name}_${format}")
      done
    done
    if [ "${#score_opts[@]}" -eq 0 ]; then
      echo "$0: ERROR: no decoding to score in ${asr_exp}/decode_* (run stage 5)" >&2
      exit 1
    fi
    log "Stage 6: scoring $((${#score_opts[@]} / 6)) decoding(s) of ${asr_exp}"
    ${python} -m espnet2_gram.bin.make_event_sequences score "${score_opts[@]}" \
      --bpemodel "${bpemodel}" --output "${asr_exp}/score.md" --write_details true
    for name in ${test_sets}; do
      hyp=${asr_exp}/${inference_tag}/${name}_${format}/text
      [ -f "${hyp}" ] || die "no decoding ${hyp} to compare (run stage 5 with these options)"
      compare_opts+=(--system "${tag}" --dataset "${name}" --ref "$(set_dir "${name}")/text"
                     --hyp "${hyp}")
    done
  done < <(experiments)
  ${python} -m espnet2_gram.bin.make_event_sequences compare "${compare_opts[@]}" \
    --output "${exp_root}/comparison.md"
  results=${exp_root}/RESULTS.md
  sizes=$(for split in train valid test; do
    wc -l < "$(set_dir "${split}")/text"; done | paste -sd/)
  data_note="your corpus ${corpus_dir}"
  if [ -z "${corpus_dir}" ]; then
    data_note="event sequences of the demo corpus, ${format}, ${text_style} transcriptions"
  fi
  wer_note=""
  [ -z "${corpus_dir}" ] && [ "${text_style}" = class ] \
    && wer_note=" (one word per event: the event error rate)"
  {
    echo "<!-- Generated by egs2/gram/asr_demo/run.sh -->"
    echo "# RESULTS"
    echo "## Environments"
    echo "- date: \`$(LC_ALL=C date)\`"
    echo "- python version: \`$(${python} -c 'import sys; print(sys.version.split()[0])')\`"
    echo "- espnet version: \`espnet $(${python} -c 'import espnet; print(espnet.__version__)')\`"
    echo "- pytorch version: \`pytorch $(${python} -c 'import torch; print(torch.__version__)')\`"
    echo "- GRAM model (GRAM frontends): \`${gram_model}\`; ASR configs:" \
      "$(for c in ${asr_configs}; do printf '`%s` ' "${c}"; done)"
    echo "- data: ${data_note}; train/valid/test ${sizes} utterances; tokens: ${bpemode}" \
      "${nbpe} (\`${token_list}\`, $(wc -l < "${token_list}") entries)"
    echo "- WER: words of the transcription${wer_note};" \
      "CER: characters (a space counts as one); TER: ${bpemode} tokens"
    if [ -f "${exp_root}/stage_times.txt" ]; then
      echo "- stage times (latest run of each; $(env -u OMP_NUM_THREADS nproc) CPU cores):" \
        "$(awk '{t[$2] = $3} END {for (k in t) print k "=" t[k] "s"}' \
          "${exp_root}/stage_times.txt" | sort | paste -sd' ')"
    fi
    echo
    echo "## Comparison: ${inference_tag}, mean ± std over training seeds (${train_seeds})"
    echo
    cat "${exp_root}/comparison.md"
    while read -r tag tseed; do
      echo
      echo "## ${exp_root}/asr_${tag}_seed${tseed}"
      cat "${exp_root}/asr_${tag}_seed${tseed}/score.md"
    done < <(experiments)
  } > "${results}.tmp"
  mv "${results}.tmp" "${results}"
  cat "${results}"
  timing "stage6_score" "${t0}"
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  t0=$(date +%s)
  while read -r tag tseed; do
    asr_exp=${exp_root}/asr_${tag}_seed${tseed}
    packed=${asr_exp}/$(basename "${asr_exp}")_${inference_model%.pth}.zip
    log "Stage 7: packing ${asr_exp}/${inference_model} into ${packed}"
    opts=(--option "${bpemodel}" --option "${exp_root}/stats_${tag}/train/feats_stats.npz")
    [ -f "${asr_exp}/score.md" ] && opts+=(--option "${asr_exp}/score.md")
    ${python} -m espnet2.bin.pack asr --asr_train_config "${asr_exp}/config.yaml" \
      --asr_model_file "${asr_exp}/${inference_model}" "${opts[@]}" --outpath "${packed%.zip}.tmp.zip"
    mv "${packed%.zip}.tmp.zip" "${packed}"
  done < <(experiments)
  timing "stage7_pack" "${t0}"
fi

log "Done (stages ${stage}..${stop_stage})"
