"""The regression task (Nat-HEAR's RT60): metrics against hand-computed cases, bad utt2target
lines, the target standardisation, and a run on cached embeddings through the runner (train,
infer, score, report) that learns a target carried by the embeddings."""

import json
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from espnet2_gram.downstream.heads import IdentityEncoder
from espnet2_gram.downstream.regression.metrics import read_utt2target, regression_metrics
from espnet2_gram.downstream.regression.regression_model import ESPnetRegressionModel
from helpers import run_downstream

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_by_hand():
    ref = np.array([[0.2], [0.4], [0.6], [0.8]])
    hyp = np.array([[0.3], [0.4], [0.3], [1.0]])  # errors 0.1, 0, 0.3, 0.2
    m = regression_metrics(ref, hyp)
    assert m["median_ae"] == pytest.approx(0.15)
    assert m["mae"] == pytest.approx(0.15)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09 + 0.04) / 4))
    assert m["mae_of_mean"] == pytest.approx(0.2)  # |ref - 0.5|: 0.3, 0.1, 0.1, 0.3
    with pytest.raises(ValueError, match="same"):
        regression_metrics(ref, hyp[:3])


@pytest.mark.parametrize("text, message", [
    ("a 0.5\nb x\n", ":2: expected finite numbers"),
    ("a 0.5\nb 0.1 0.2\n", ":2: expected 'utt' and 1 value"),
    ("a\n", ":1: expected 'utt' and at least one value"),
    ("a 0.5\na 0.4\n", ":2: duplicated utterance 'a'"),
    ("a nan\n", ":1: expected finite numbers"),
])
def test_bad_utt2target_lines_name_the_line(tmp_path, text, message):
    path = tmp_path / "utt2target"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}{message}"):
        read_utt2target(path)


def test_targets_are_standardised_and_predictions_come_back_in_their_unit():
    torch.manual_seed(0)
    model = ESPnetRegressionModel(IdentityEncoder(4), output_size=1, target_mean=0.5,
                                  target_std=0.2, hidden_sizes=[8])
    x = torch.randn(6, 3, 4)
    lengths = torch.full((6,), 3)
    target = torch.full((6, 1), 0.7)  # one std above the mean
    model.eval()
    z = model.out(model.mlp(model.pool(x, lengths)))
    loss, stats, _ = model(x, lengths, target)
    assert loss.item() == pytest.approx(((z - 1.0) ** 2).mean().item(), rel=1e-5)
    assert torch.allclose(model.predict(x, lengths), z * 0.2 + 0.5)
    with pytest.raises(ValueError, match="target_std"):
        ESPnetRegressionModel(IdentityEncoder(4), target_std=0.0)
    with pytest.raises(ValueError, match="target_mean"):
        ESPnetRegressionModel(IdentityEncoder(4), output_size=2, target_mean=[0.1, 0.2, 0.3])


def data_dir(root: Path, name: str, n: int, rng) -> Path:
    """Embeddings whose first dimension carries an RT60-like target (0.2-1.0 s)."""
    d = root / name
    d.mkdir()
    target = rng.uniform(0.2, 1.0, n)
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as writer:
        for i, t in enumerate(target):
            writer(f"u{i:03d}", np.tile(np.r_[t, rng.normal(0, 0.1, 7)], (4, 1))
                   .astype(np.float32))
    (d / "utt2target").write_text("".join(f"u{i:03d} {t:.4f}\n" for i, t in enumerate(target)))
    (d / "embeddings.json").write_text(json.dumps({"dim": 8}))
    return d


def test_a_probe_learns_a_target_through_the_runner(tmp_path):
    rng = np.random.default_rng(0)
    dirs = [data_dir(tmp_path, name, n, rng) for name, n in (("train", 160), ("valid", 32),
                                                             ("test", 48))]
    run_downstream("--task", "reg", "--mode", "probe", "--model", "logmel", "--format",
                   "binaural", "--dataset", "toy-rt60", "--train_dir", dirs[0], "--valid_dir",
                   dirs[1], "--test_dir", dirs[2], "--task_config", "conf/demo/reg_probe.yaml",
                   "--exp_dir", tmp_path / "exp", "--train_args", "--max_epoch 30 --batch_size 16")
    scores = json.loads((tmp_path / "exp" / "decode_test" / "scores.json").read_text())
    m = scores["metrics"]
    assert m["median_ae"] < 0.4 * m["mae_of_mean"], m  # far better than predicting the mean
    assert scores["task"] == "reg" and scores["num_items"] == 48
    config = (tmp_path / "exp" / "config.yaml").read_text()
    assert "target_mean" in config and "output_size: 1" in config
    report = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.make_report", "--exp_dir",
                             tmp_path], capture_output=True, text=True, cwd=ROOT)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Regression: toy-rt60" in text and f"{m['median_ae']:.4f}" in text
