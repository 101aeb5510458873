"""The recipe end to end: ./run.sh --stop_stage 4 (demo preset, reduced sizes) on a fresh copy
of the repository, then a re-run that must resume without redoing finished work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from espnet2_gram.corpora.demo import EVENTS
from espnet2_gram.downstream.localization.dcase_format import read_dcase_csv
from espnet2_gram.simulation.rir_bank import RIRBank
from espnet2_gram.utils.datadir import read_data_dir

from checkout import copy_checkout

SMALL = ["--num_train_packs", "3", "--num_eval_packs", "2", "--num_seld_train", "1",
         "--num_seld_test", "1", "--eval_sets", "demo_test", "--loc_sets", "demo_valid:1"]


def run_recipe(root: Path, *args: str) -> str:
    env = {**os.environ, "GRAM_SKIP_ENSURE_ENV": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["./run.sh", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def recipe_root(tmp_path_factory):
    root = copy_checkout(tmp_path_factory.mktemp("recipe"))
    run_recipe(root, "--stop_stage", "4", *SMALL)
    return root


def test_stages_1_to_4_produce_data_banks_and_evaluation_sets(recipe_root):
    dump = recipe_root / "dump"
    for name in ("demo_train", "demo_valid", "demo_test", "demo_noise"):
        assert read_data_dir(recipe_root / "data" / name)["wav.scp"]
    for name in ("demo_train", "demo_test", "demo_noise"):  # demo_valid: not in --eval_sets
        assert read_data_dir(dump / "raw" / name)["utt2num_samples"]
    for fmt, channels in (("binaural", 2), ("foa", 4)):
        for split, packs in (("train", 3), ("eval", 2)):
            bank = RIRBank(recipe_root / "exp" / "rir_bank" / f"{split}_{fmt}")
            assert len(bank) == packs and bank.pack(0)[0].shape[0] == channels
        tables = read_data_dir(dump / "raw" / f"demo_test_{fmt}")
        assert set(tables["utt2doa"]) == set(tables["utt2label"]) == set(tables["wav.scp"])
        assert len(tables["wav.scp"]) == len(read_data_dir(dump / "raw" / "demo_test")["wav.scp"])
        loc = read_data_dir(dump / "raw" / f"demo_valid_loc_{fmt}")  # --loc_sets demo_valid:1
        bank = RIRBank(recipe_root / "exp" / "rir_bank" / f"loc_demo_valid_{fmt}")
        assert len(loc["wav.scp"]) == len(bank) == len(set(loc["utt2rir"].values()))
        assert len(set(loc["utt2doa"].values())) == len(bank)  # a direction per clip
        for split in ("train", "test"):
            seld = read_data_dir(dump / "raw" / f"seld_{split}_{fmt}")
            (csv_path,) = seld["utt2metadata"].values()
            assert read_dcase_csv(csv_path)


def test_rerun_resumes_without_redoing_work(recipe_root):
    bank_scp = recipe_root / "exp" / "rir_bank" / "train_foa" / "rirs.scp"
    shards = sorted((bank_scp.parent / "shards").iterdir())
    before = {p: p.stat().st_mtime_ns for p in shards}
    wav = next((recipe_root / "dump" / "raw" / "demo_test_foa" / "data").iterdir())
    wav_time = wav.stat().st_mtime_ns
    out = run_recipe(recipe_root, "--stage", "3", "--stop_stage", "4", *SMALL)
    assert {p: p.stat().st_mtime_ns for p in shards} == before
    assert wav.stat().st_mtime_ns == wav_time
    assert "Stage 4" in out
    log = (bank_scp.parent / "log" / "make_rir_bank.1.log").read_text()
    assert "already complete" in log
    info = json.loads((bank_scp.parent / "bank.json").read_text())
    assert info["num_packs"] == 3


def test_bad_options_are_reported(recipe_root):
    env = {**os.environ, "GRAM_SKIP_ENSURE_ENV": "1"}
    proc = subprocess.run(["./run.sh", "--no_such_option", "1"], cwd=recipe_root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "--no_such_option" in proc.stderr
    proc = subprocess.run(["./run.sh", "--preset", "tiny"], cwd=recipe_root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "--preset tiny" in proc.stderr


def test_stages_5_to_7_pretrain_and_pack_one_model_per_format(recipe_root):
    out = run_recipe(recipe_root, "--stage", "5", "--stop_stage", "7", *SMALL, "--gram_args",
                     "--max_epoch 1 --num_iters_per_epoch 2 --num_workers 1",
                     "--pretrain_snapshots", "1")
    for fmt in ("binaural", "foa"):
        stats = recipe_root / "exp" / f"gram_stats_{fmt}"
        assert (stats / "train" / "feats_stats.npz").exists()
        assert (stats / "train" / "speech_shape").read_text().count("\n") == 16 * len(EVENTS)
        exp = recipe_root / "exp" / f"gram_{fmt}"
        assert (exp / "1epoch.pth").exists() and (exp / "learning_curve.png").exists()
        results = (exp / "RESULTS.md").read_text()
        assert f"final (gram_{fmt}, epoch 1): train loss" in results
        packed = recipe_root / "exp" / "packed" / f"gram_{fmt}"
        assert (packed / "model.pth").exists() and (packed / "README.md").exists()
        assert packed.with_suffix(".zip").exists()
        # --pretrain_snapshots 1: epoch 1 kept and packed beside the final model.
        snapshot = recipe_root / "exp" / "packed" / f"gram_{fmt}_ep1"
        assert (exp / "snapshots" / "1epoch.pth").exists()
        assert yaml.safe_load((snapshot / "weights.yaml").read_text()) == {
            "weights": "1epoch.pth", "epoch": 1, "max_epoch": 1, "steps": 2}
    assert "Stage 7" in out
    # A snapshot that pretraining never reached is an error naming the option and the file.
    env = {**os.environ, "GRAM_SKIP_ENSURE_ENV": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["./run.sh", "--stage", "7", "--stop_stage", "7", *SMALL,
                           "--formats", "foa", "--pretrain_snapshots", "1 3"], cwd=recipe_root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "--pretrain_snapshots 3: no exp/gram_foa/snapshots/3epoch.pth" in proc.stderr


DOWNSTREAM = ["--formats", "foa", "--cls_tasks", "demo:demo_train:demo_test:demo_test",
              "--doa_tasks", "demo:demo_valid_loc:demo_valid_loc:demo_valid_loc",
              "--downstream_seeds", "0", "--pretrain_snapshots", "1", "--probe_layers", "0",
              "--downstream_args", "--max_epoch 2"]


def test_stages_8_to_10_probe_three_models_and_report(recipe_root):
    run_recipe(recipe_root, "--stage", "8", "--stop_stage", "10", *SMALL, *DOWNSTREAM)
    ds = recipe_root / "exp" / "downstream"
    runs = (("cls", "demo", "demo_test_foa"), ("doa", "demo", "demo_valid_loc_foa"),
            ("seld", "sim", "seld_test_foa"))
    for task, dataset, test_set in runs:
        models = [("gram", "probe", 2), ("gram_ep1", "probe", 2), ("gram_random", "probe", 0),
                  ("logmel", "probe", None), ("gram_l0", "probe", None),
                  ("gram_random_l0", "probe", None)]
        if task != "cls":
            models.append(("seldnet", "supervised", None))
        for model, mode, steps in models:
            scores = json.loads((ds / f"{task}_{dataset}_foa_{model}_{mode}_seed0"
                                 / f"decode_{test_set}" / "scores.json").read_text())
            assert scores["task"] == task and scores["model"] == model
            assert scores["seed"] == 0 and scores.get("pretrain_steps") == steps
    results = (ds / "RESULTS.md").read_text()
    for heading in ("## Classification: demo", "## DoA: demo", "## SELD: sim"):
        assert heading in results
    for label in ("GRAM (pretrained)", "GRAM (random init)", "log-mel",
                  "GRAM (pretrained, layer 0)", "GRAM (random init, layer 0)"):
        assert results.count(label) >= 3
    # --probe_layers 0: the patch embeddings, as the layer-0 output of extract
    meta = json.loads((recipe_root / "dump" / "emb" / "foa" / "gram_random_l0" / "demo_test_foa"
                       / "embeddings.json").read_text())
    assert meta["layer"] == 0 and meta["extractor"] == "gram_random"
    assert (ds / "images" / "doa_error_boxplot_demo.png").exists()
    assert "### DoA median error against pretraining steps: demo" in results
    assert (ds / "images" / "pretraining_seld_sim.png").exists()
    # Each clip was embedded once per model; a rerun reuses embeddings and finished runs.
    ark = recipe_root / "dump" / "emb" / "foa" / "gram" / "demo_test_foa" / "feats.ark"
    stamp = ark.stat().st_mtime_ns
    run_recipe(recipe_root, "--stage", "8", "--stop_stage", "9", *SMALL, *DOWNSTREAM)
    assert ark.stat().st_mtime_ns == stamp
    logs = "".join(p.read_text() for p in (ds / "log").glob("*.log"))
    assert logs.count("scored already") >= 11
    # Changed inputs (here the trainer options) retrain a run from scratch.
    run_recipe(recipe_root, "--stage", "8", "--stop_stage", "8", *SMALL, *DOWNSTREAM[:-2],
               "--downstream_args", "--max_epoch 1", "--downstream_models", "gram")
    log = (ds / "log" / "cls.1.log").read_text()
    assert "inputs changed" in log and "scored already" not in log
    assert (ds / "cls_demo_foa_gram_probe_seed0" / "1epoch.pth").exists()
    assert not (ds / "cls_demo_foa_gram_probe_seed0" / "2epoch.pth").exists()


def test_stage_11_nat_hear_table_of_three_models(recipe_root):
    """The demo corpus as a HEAR task, its FOA Nat-HEAR version with DoA and RT60 tasks,
    evaluated for GRAM, its random init and the naive baseline into one table; a rerun reuses
    the rendered audio and the embeddings."""
    args = ["--stage", "11", "--stop_stage", "11", *SMALL, "--formats", "foa",
            "--downstream_seeds", "0", "--hear_sets", "demo:demo_valid:demo_test:demo_test",
            "--nat_hear_formats", "foa", "--nat_hear_spatial", "demo"]
    run_recipe(recipe_root, *args)
    hear = recipe_root / "dump" / "hear"
    clean = json.loads((hear / "clean" / "demo" / "task_metadata.json").read_text())
    assert clean["prediction_type"] == "multiclass" and clean["split_mode"] == "trainvaltest"
    nat = json.loads((hear / "foa" / "demo" / "task_metadata.json").read_text())
    assert nat["nat_hear"]["format"] == "foa"
    assert (hear / "foa" / "demo-doa" / "task_metadata.json").is_file()
    table = (recipe_root / "exp" / "nat_hear" / "NAT_HEAR.md").read_text()
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ")]
    assert sorted((m.strip(), c.strip()) for m, c in rows[1:]) == [
        ("gram_foa", "clean"), ("gram_foa", "foa"), ("gram_random_foa", "clean"),
        ("gram_random_foa", "foa"), ("naive", "clean"), ("naive", "foa")]
    assert "| demo | Avg (tasks) | s(m) | demo-doa DoA (°) | demo-rt60 (s) |" in table
    wav = next((hear / "foa" / "demo" / "16000" / "test").iterdir())
    ark = next((recipe_root / "exp" / "nat_hear" / "emb" / "naive" / "foa" / "_audio")
               .glob("*/feats.ark"))
    stamps = wav.stat().st_mtime_ns, ark.stat().st_mtime_ns
    run_recipe(recipe_root, *args)
    assert (wav.stat().st_mtime_ns, ark.stat().st_mtime_ns) == stamps
