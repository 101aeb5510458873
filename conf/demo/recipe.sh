# Demo preset: the embedded synthetic corpus, 16 kHz, small banks; every stage on 2 CPU cores.
corpora="demo"
fs=16000
pretrain_sets="demo_train"
pretrain_valid_set="demo_valid"
eval_sets="demo_valid demo_test"
noise_set="demo_noise"
formats="binaural foa"
rir_config=conf/demo/rir_bank.yaml
num_train_packs=32
num_eval_packs=16
dcase_config=conf/demo/dcase.yaml
seld_train_source=demo_train
seld_test_source=demo_test
num_seld_train=8
num_seld_test=4
# Downstream (stages 8-10): probes on cached embeddings of the three models.
downstream_train_sets="demo_train"
cls_tasks="demo:demo_train:demo_valid:demo_test"
# Localisation: every clip rendered at its own directions, each in its own room (stage 4):
# 512 training, 64 validation and 192 test directions per format.
loc_rir_config=conf/demo/rir_bank_loc.yaml
loc_sets="demo_train:2 demo_valid:1 demo_test:2"
doa_tasks="demo:demo_train_loc:demo_valid_loc:demo_test_loc"
seld_tasks="sim:seld_train_{fmt}:seld_test_{fmt}"
# Nat-HEAR (stage 11): the demo corpus written as a HEAR task, its binaural version through the
# held-out bank with its DoA and RT60 tasks, evaluated for GRAM, its random init and HEAR's
# naive baseline (the config's probe for 10 epochs, no grid: the demo's time).
hear_sets="demo:demo_train:demo_valid:demo_test"
nat_hear_formats="binaural"
nat_hear_spatial="demo"
nat_hear_args="--max_epoch 10"
