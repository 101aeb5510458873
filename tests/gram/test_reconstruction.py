"""Per-channel reconstruction check (espnet2_gram.gram.reconstruction and its entry point)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.frontend.spatial_features import FOAFrontend, per_crop_normalize
from espnet2_gram.gram.patching import patchify
from espnet2_gram.gram.reconstruction import channel_reconstruction, masked_errors
from espnet2_gram.tasks.gram import build_gram_model
from helpers import FS, TINY


def test_feature_channel_names_follow_the_format():
    assert FOAFrontend(fs=FS, n_fft=256, hop_length=80, n_mels=8, fmax=FS / 2).feature_channels == (
        "log-mel W", "log-mel Y", "log-mel Z", "log-mel X",
        "intensity Y", "intensity Z", "intensity X")


class ZeroDecoder(torch.nn.Module):
    def __init__(self, patch_dim):
        super().__init__()
        self.patch_dim = patch_dim

    def forward(self, tokens, mask, visible=None):
        return torch.zeros(*mask.shape, self.patch_dim)


def test_errors_against_a_hand_computed_zero_predictor(tmp_path):
    """A decoder predicting 0 has, per channel, the sum of squared targets over the masked
    patches; the channel-mean predictor the sum of squared deviations from each crop's mean."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    torch.manual_seed(0)
    model = build_gram_model(path).eval()
    model.decoder = ZeroDecoder(2 * 16 * 8)
    speech = torch.randn(3, FS, 2) * 0.1
    lengths = torch.tensor([FS, FS, FS // 2])
    torch.manual_seed(5)
    with torch.no_grad():
        model_sse, mean_sse, count = masked_errors(model, speech, lengths)
    torch.manual_seed(5)  # the same crops and masks, by hand
    feats, frames = model.frontend(speech, lengths)
    crops = per_crop_normalize(model.random_crops(feats, frames))
    mask = model.masking(crops.shape[0], model.encoder.grid)
    want_model, want_mean, want_count = torch.zeros(2), torch.zeros(2), 0
    for i in range(crops.shape[0]):
        tokens = patchify(crops[i:i + 1], (16, 8))[0]
        for n in torch.nonzero(mask[i]).flatten():
            values = tokens[n].reshape(2, -1)
            want_model += values.pow(2).sum(dim=1)
            want_mean += (values - crops[i].mean(dim=(1, 2))[:, None]).pow(2).sum(dim=1)
            want_count += values.shape[1]
    assert count == want_count
    torch.testing.assert_close(model_sse, want_model, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(mean_sse, want_mean, rtol=1e-5, atol=1e-4)


def test_channel_reconstruction_rows_add_up(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    torch.manual_seed(0)
    model = build_gram_model(path).eval()
    batches = [(torch.randn(2, FS, 2) * 0.1, torch.tensor([FS, FS]))] * 2
    rows = channel_reconstruction(model, batches)
    assert [r.channel for r in rows] == ["log-mel left", "log-mel right"]
    assert sum(r.target_share for r in rows) == pytest.approx(1.0)
    assert all(r.model_mse > 0 and r.ratio == r.model_mse / r.mean_predictor_mse for r in rows)
    with pytest.raises(ValueError, match="no audio"):
        channel_reconstruction(model, [])


def test_entry_point_on_a_packed_model(packed, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i, seconds in enumerate((1.0, 0.7, 1.2)):
        wav = tmp_path / f"u{i}.wav"
        sf.write(wav, (0.1 * rng.standard_normal((int(seconds * FS), 2))).astype("float32"), FS)
        lines.append(f"u{i} {wav}\n")
    (data / "wav.scp").write_text("".join(lines))
    out = tmp_path / "rec.json"
    cmd = [sys.executable, "-m", "espnet2_gram.bin.channel_reconstruction", "--model_path",
           str(packed), "--data_dir", str(data), "--batch_size", "2", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| log-mel left |" in done.stdout
    result = json.loads(out.read_text())
    assert [c["channel"] for c in result["channels"]] == ["log-mel left", "log-mel right"]
    again = subprocess.run(cmd + ["--output", str(tmp_path / "again.json")], capture_output=True,
                           text=True, check=True)
    assert again.stdout == done.stdout  # crops and masks come from --seed
    bad = subprocess.run(cmd[:-4] + ["--data_dir", str(tmp_path / "none")], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "--data_dir" in bad.stderr and "no wav.scp" in bad.stderr
