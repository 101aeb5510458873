# Paper preset: GRAM-T settings at 32 kHz. Corpora come from local copies named in db.sh
# (or are downloaded where their licence allows: local/data.sh --download true).
corpora="audioset wham esc50 speech_commands fsd50k starss23"
fs=32000
pretrain_sets="audioset_train"
pretrain_valid_set="esc50_fold5"   # AudioSet has no held-out split in the paper's setup
# rendered through the held-out bank (ESC-50 folds serve as training sets of other folds too)
eval_sets="esc50_fold1 esc50_fold2 esc50_fold3 esc50_fold4 esc50_fold5 speechcommands_valid
  speechcommands_test fsd50k_valid fsd50k_eval"
noise_set="wham_noise_tr"
formats="binaural foa"
rir_config=conf/paper/rir_bank.yaml
num_train_packs=50000
num_eval_packs=5000
dcase_config=conf/paper/dcase.yaml
seld_train_source=esc50_fold1   # ESC-50 folds keep training and test clips apart
seld_test_source=esc50_fold5
num_seld_train=600
num_seld_test=200
# Downstream (stages 8-10): HEAR-style probes and fine-tuning, clean and naturalistic.
downstream_train_sets="speechcommands_train fsd50k_train"
downstream_modes="probe finetune"
# HEAR's grid for the probes (learning rate x one or two hidden layers of 1024), chosen on
# validation for every model and seed.
probe_grid="optim_conf.lr=3.2e-3|1e-3|3.2e-4|1e-4 head.hidden_sizes=[1024]|[1024,1024]"
cls_conditions="clean naturalistic"
# ESC-50: 5-fold cross-validation (train 3 folds, validate on the next, test on one).
cls_tasks="esc50:esc50_fold2+esc50_fold3+esc50_fold4:esc50_fold5:esc50_fold1:false:1
  esc50:esc50_fold3+esc50_fold4+esc50_fold5:esc50_fold1:esc50_fold2:false:2
  esc50:esc50_fold4+esc50_fold5+esc50_fold1:esc50_fold2:esc50_fold3:false:3
  esc50:esc50_fold5+esc50_fold1+esc50_fold2:esc50_fold3:esc50_fold4:false:4
  esc50:esc50_fold1+esc50_fold2+esc50_fold3:esc50_fold4:esc50_fold5:false:5
  speechcommands:speechcommands_train:speechcommands_valid:speechcommands_test
  fsd50k:fsd50k_train:fsd50k_valid:fsd50k_eval:true"
# Localisation of spatialised ESC-50 and Speech Commands clips (the paper's two new tasks):
# every render at its own direction in its own room (ESC-50 rendered twice: 2400 training
# directions), with the pretraining bank's settings (hybrid rendering).
loc_rir_config=conf/paper/rir_bank.yaml
loc_sets="esc50_fold1:2 esc50_fold2:2 esc50_fold3:2 esc50_fold4:2 esc50_fold5:2
  speechcommands_train:1 speechcommands_valid:1 speechcommands_test:1"
doa_tasks="esc50:esc50_fold2_loc+esc50_fold3_loc+esc50_fold4_loc:esc50_fold5_loc:esc50_fold1_loc
  speechcommands:speechcommands_train_loc:speechcommands_valid_loc:speechcommands_test_loc"
seld_tasks="sim:seld_train_{fmt}:seld_test_{fmt} starss23:starss23_{fmt}_train:starss23_{fmt}_test:13"
# Nat-HEAR (stage 11): the paper's eleven HEAR tasks from db.sh's HEAR_TASKS (hear-preprocess
# output at 32 kHz), their binaural and FOA versions, the localisation and RT60 tasks of ESC-50
# and Speech Commands, HEAR's grid.
hear_tasks="{HEAR}/dcase2016_task2-hear2021-full {HEAR}/fsd50k-v1.0-full
  {HEAR}/libricount-v1.0.0-hear2021-full {HEAR}/esc50-v2.0.0-full
  {HEAR}/tfds_crema_d-1.0.0-full {HEAR}/vox_lingua_top10-hear2021-full
  {HEAR}/speech_commands-v0.0.2-5h {HEAR}/nsynth_pitch-v2.2.3-5h
  {HEAR}/beijing_opera-v1.0-hear2021-full {HEAR}/mridangam_stroke-v1.5-full
  {HEAR}/mridangam_tonic-v1.5-full"
nat_hear_spatial="esc50-v2.0.0-full speech_commands-v0.0.2-5h"
nat_hear_grid=hear
