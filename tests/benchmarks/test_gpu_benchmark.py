"""The prepared GPU benchmark (egs2/gram/scripts/gpu_benchmark.sh ->
espnet2_gram.benchmarks.gpu), run end to end in its tiny CPU configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from espnet2_gram.benchmarks.gpu import parse_epochs, write_synthetic_bank

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "egs2" / "gram" / "scripts" / "gpu_benchmark.sh"


def run_script(*args, timeout=600):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_benchmark")
    proc = run_script("--tiny", "--device", "cpu", "--out_dir", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_tiny_run_has_every_section(tiny_run):
    out, proc = tiny_run
    result = json.loads((out / "gpu_benchmark.json").read_text())
    sections = result["sections"]
    assert list(sections) == ["ceiling", "data", "sweep", "trainer", "attention", "gramt"]
    for name, entry in sections.items():
        if name == "gramt":
            assert entry["status"] == "skipped" and "gramt_source" in entry["reason"]
        else:
            assert entry["status"] == "ok", (name, entry.get("error"), entry.get("reason"))
    env = result["environment"]
    assert env["torch"] == torch.__version__ and env["cpu_count"] >= 1 and env["python"]
    assert sections["ceiling"]["tflops_median"] > 0
    # Data: a bank made by our tool, the loader timed both ways.
    data = sections["data"]
    assert data["bank"]["packs"] >= 1 and data["bank"]["method"] == "early"
    assert (out / "logs" / "rir_bank" / "make_rir_bank.1.log").is_file()
    assert {r["mix_on_device"] for r in data["loader"]} == {True, False}
    assert all(r["scenes_per_s"] > 0 for r in data["loader"])
    # Sweep: an eager point with real figures; compiled points skipped on the CPU by default.
    sweep = sections["sweep"]
    eager = [p for p in sweep["points"] if not p["compile"]]
    assert eager and all(p["status"] == "ok" for p in eager)
    for p in eager:
        assert p["crops_per_s"] > 0 and p["step_s"] > 0 and 0 < p["mfu"]
        assert p["data_wait_s"] >= 0 and p["tflop_per_step"] > 0
    assert all(p["status"] == "skipped" for p in sweep["points"] if p["compile"])
    assert sweep["flops"]["flops_per_crop"] > 0
    assert sweep["sdpa"]["forced"]["MATH"] == "runs"
    # Trainer: loss down over two epochs, then a resume that continues at epoch 3.
    trainer = sections["trainer"]
    assert trainer["loss_last_epoch"] < trainer["loss_first_epoch"]
    assert trainer["resume"]["resumed_line"]
    assert trainer["resume"]["first_epoch_started"] == 3
    assert trainer["resume"]["continued_from_saved_epoch"] and trainer["resume"]["finished"]
    assert "The training was resumed" in (out / "logs" / "trainer" / "resume.log").read_text()
    assert (out / "logs" / "trainer" / "train.yaml").is_file()
    assert not (out / "work").exists()  # audio, bank and checkpoints removed at the end
    # Attention forms: both forms timed, the same result.
    attention = sections["attention"]
    assert {r["impl"] for r in attention["rows"] if r["status"] == "ok"} >= {"windows", "dense"}
    assert attention["max_abs_diff"] < 1e-3
    assert "done in" in proc.stdout


def test_markdown_has_the_tables(tiny_run):
    out, _ = tiny_run
    md = (out / "gpu_benchmark.md").read_text()
    for title in ("## Environment", "## Ceiling", "## Data and loader", "## Training step sweep",
                  "## ESPnet trainer path", "## Decoder attention forms", "## GRAM-T side by side"):
        assert title in md
    assert "| compiled | clips | crops | step ms (median) | crops/s |" in md
    assert "| epoch | train loss | valid loss |" in md
    assert "| impl | fwd+bwd ms |" in md
    assert "skipped: no --gramt_source given" in md
    assert "error:" not in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    proc = run_script("--device", "cuda", "--out_dir", str(tmp_path / "out"), timeout=120)
    assert proc.returncode != 0
    assert "CUDA is not available" in proc.stderr and "--device cuda" in proc.stderr
    assert not (tmp_path / "out").exists()
    # The module itself says the same when called directly.
    direct = subprocess.run([sys.executable, "-m", "espnet2_gram.benchmarks.gpu", "--device",
                             "cuda", "--out_dir", str(tmp_path / "out")], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert direct.returncode == 1 and "CUDA is not available" in direct.stderr


def test_bad_options_are_refused(tmp_path):
    proc = run_script("--device", "tpu", timeout=60)
    assert proc.returncode != 0 and "--device: expected cuda or cpu" in proc.stderr
    proc = run_script("--wheels", str(tmp_path / "none"), timeout=60)
    assert proc.returncode != 0 and "--wheels: no such directory" in proc.stderr


def test_epoch_lines_of_the_trainer_log_are_parsed():
    log = (
        "[host] 2026-11-30 10:00:00,000 (trainer:336) INFO: 1/2epoch started\n"
        "[host] 2026-11-30 10:00:10,500 (trainer:394) INFO: 1epoch results: [train]"
        " iter_time=0.025, loss=2.813, grad_norm=1.2e-04, train_time=0.150, [valid]"
        " loss=2.500, time=0.3 seconds, total_count=3\n"
        "[host] 2026-11-30 10:00:11,000 (trainer:336) INFO: 2/2epoch started, estimated time"
        " to finish: 10 seconds\n"
        "[host] 2026-11-30 10:00:20,000 (trainer:394) INFO: 2epoch results: [train]"
        " loss=2.327, [valid] loss=nan\n"
    )
    epochs = parse_epochs(log)
    assert sorted(epochs) == [1, 2]
    assert epochs[1]["train"]["loss"] == 2.813 and epochs[1]["train"]["grad_norm"] == 1.2e-4
    assert epochs[1]["valid"]["loss"] == 2.5 and epochs[1]["seconds"] == 10.5
    assert epochs[2]["train"]["loss"] == 2.327 and epochs[2]["seconds"] == 9.0


def test_synthetic_bank_stands_in_for_a_failed_make_rir_bank(tmp_path):
    from espnet2_gram.scene.simulator import SceneSimulator
    from espnet2_gram.simulation.rir_bank import RIRBank, merge_bank

    bank = tmp_path / "bank"
    (bank / "log").mkdir(parents=True)
    (bank / "log" / "job.1.log").write_text("the failed job's log")
    (bank / "config.json").write_text("{}")  # left by the failed job: replaced
    write_synthetic_bank(bank, 3, 8000, "binaural", keep=bank / "log")
    assert merge_bank(bank)["num_packs"] == 3
    assert (bank / "log" / "job.1.log").is_file()
    source, _, meta = RIRBank(bank).pack(2)
    assert source.shape == (2, 3200) and meta["method"] == "synthetic"
    scene = SceneSimulator(bank_dir=str(bank), fs=8000, clip_seconds=0.5)(
        "u", {"speech": np.random.default_rng(0).standard_normal(6000).astype(np.float32)})
    assert scene["speech"].shape == (4000, 2) and np.isfinite(scene["speech"]).all()
