# Paper preset: GRAM-T settings at 32 kHz. Corpora come from local copies named in db.sh
# (or are downloaded where their licence allows: local/data.sh --download true).
corpora="audioset wham esc50 speech_commands starss23"
fs=32000
pretrain_sets="audioset_train"
pretrain_valid_set="esc50_fold5"   # AudioSet has no held-out split in the paper's setup
eval_sets="esc50 speechcommands_test"
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
