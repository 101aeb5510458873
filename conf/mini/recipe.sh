# Mini preset: between the demo and the paper, on 2 CPU cores in under two hours. The demo's
# synthetic corpus four times larger (1024 training clips), larger banks, five times longer
# pretraining with the weights kept at 10% and 30% of the steps, and every downstream task
# evaluated at each of them: the curve of results against pretraining steps.
# The demo's settings (tasks, models, seeds, RIR configs), then what differs.
# shellcheck disable=SC1091
. conf/demo/recipe.sh
# Its own directories, so that a mini run leaves the demo's outputs alone.
datadir=data_mini
dumpdir=dump_mini
expdir=exp_mini
download_dir=downloads_mini
corpus_opts="--clips_per_class train=64,valid=8,test=16 --noise_clips 24"
num_train_packs=96
num_eval_packs=32
pretrain_snapshots="4 12"   # epochs of 40: 10% and 30% of the pretraining steps
dcase_config=conf/mini/dcase.yaml
num_seld_train=192
num_seld_test=48
# Localisation: 2048 training, 128 validation and 256 test directions per format.
loc_sets="demo_train:2 demo_valid:1 demo_test:1"
nat_hear_args=""          # the probe configs' own epochs
