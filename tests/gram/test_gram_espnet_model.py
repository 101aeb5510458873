"""ESPnetGRAMModel: crops, short clips, losses, collect_feats (in-process, tiny model)."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from espnet2_gram.gram.espnet_model import FiniteLossCheck, NonFiniteLossError
from espnet2_gram.tasks.gram import build_gram_model
from helpers import TINY

REPO = Path(__file__).resolve().parents[2]

FS = 8000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    torch.manual_seed(0)
    return build_gram_model(path)


def test_crops_come_from_inside_each_clip(model):
    feats = torch.arange(100, dtype=torch.float32).expand(2, 2, 32, 100).clone()
    lengths = torch.tensor([100, 60])
    crops = model.random_crops(feats, lengths)
    assert crops.shape == (4, 2, 32, 40)  # 2 clips x 2 crops per clip
    starts = crops[:, 0, 0, 0]
    assert torch.all(crops[:, 0, 0] == starts[:, None] + torch.arange(40))  # contiguous frames
    assert torch.all(starts[:2] <= 60) and torch.all(starts[2:] <= 20)  # within valid frames


def test_clip_shorter_than_a_crop_is_zero_padded(model):
    speech = torch.randn(2, int(0.2 * FS), 2) * 0.1  # 21 frames < 40-frame crops
    lengths = torch.tensor([speech.shape[1], speech.shape[1] // 2])
    feats, frames = model.frontend(speech, lengths)
    crops = model.random_crops(feats, frames)
    assert crops.shape[-1] == 40 and torch.all(crops[..., frames[0]:] == 0)
    loss, stats, weight = model(speech, lengths)
    assert torch.isfinite(loss) and stats["loss"] > 0 and int(weight) == 2


def test_loss_is_channel_scaled_masked_mse_and_backpropagates(model):
    speech = torch.randn(3, FS, 2) * 0.1
    loss, _, _ = model(speech, torch.full((3,), FS))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    # Predicting zeros for per-crop normalised targets gives about 1 per value, times 2 channels.
    assert 0.5 < float(loss.detach()) < 6.0
    model.zero_grad()



def test_channel_loss_weights_reach_the_loss_and_leave_checkpoints_alone(tmp_path, model):
    """``model_conf.channel_loss_weights``: a channel of weight 0 gets no reconstruction
    gradient, the weights are not part of the state dict, and a wrong count is refused."""
    path = tmp_path / "weighted.yaml"
    path.write_text(yaml.safe_dump({**TINY, "model_conf": {**TINY.get("model_conf", {}),
                                                          "channel_loss_weights": [1.0, 0.0]}}))
    torch.manual_seed(0)
    weighted = build_gram_model(path)
    assert set(weighted.state_dict()) == set(model.state_dict())
    weighted.load_state_dict(model.state_dict())
    speech = torch.randn(2, FS, 2) * 0.1
    torch.manual_seed(1)
    loss, _, _ = weighted(speech, torch.full((2,), FS))
    loss.backward()
    out = [m for m in weighted.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    per_channel = out.weight.grad.reshape(2, -1, out.weight.shape[1]).abs().sum(dim=(1, 2))
    assert per_channel[0] > 0 and per_channel[1] == 0, per_channel
    path.write_text(yaml.safe_dump({**TINY, "model_conf": {**TINY.get("model_conf", {}),
                                                          "channel_loss_weights": [1.0]}}))
    with pytest.raises(ValueError, match=r"channel_loss_weights \[1.0\]: expected 2 finite"):
        build_gram_model(path)


def test_non_finite_loss_raises(model):
    speech = torch.full((1, FS, 2), float("nan"))
    with pytest.raises(NonFiniteLossError, match="the GRAM loss is nan"):
        model(speech, torch.tensor([FS]))


def test_deferred_loss_check_stops_one_step_later():
    """The GPU form of the check (run here on CPU): a NaN loss passes its own step and stops
    the next one, naming the previous step."""
    check = FiniteLossCheck(defer=True)
    check(torch.tensor(1.0), 2)
    check(torch.tensor(float("nan")), 3)
    with pytest.raises(NonFiniteLossError, match=r"nan \(batch of 3 clips, the previous step"):
        check(torch.tensor(1.0), 2)
    check(torch.tensor(1.0), 2)  # the failure was reported once


def test_compiled_parts_train_like_the_plain_model(model):
    """``--compile_model``: the same loss and gradients, the same parameter names. The graph
    capture and autograd tracing are exercised with the ``aot_eager`` backend (inductor's C++
    code generation takes minutes on a small CPU)."""
    speech, lengths = torch.randn(2, FS, 2) * 0.1, torch.full((2,), FS)
    compiled = copy.deepcopy(model)
    compiled.compile_parts(backend="aot_eager")
    assert list(compiled.state_dict()) == list(model.state_dict())
    grads = []
    for m in (model, compiled):
        m.zero_grad()
        torch.manual_seed(3)
        loss, _, _ = m(speech, lengths)
        loss.backward()
        grads.append([loss.detach()] + [p.grad for p in m.parameters() if p.requires_grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_collect_feats_flattens_channels_and_mels(model):
    out = model.collect_feats(torch.randn(2, FS, 2), torch.tensor([FS, FS // 2]))
    assert out["feats"].shape == (2, 101, 2 * 32)
    assert out["feats_lengths"].tolist() == [101, 51]


@pytest.mark.parametrize("config", sorted(REPO.glob("conf/*/pretrain_*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_pretraining_config_builds(config):
    model = build_gram_model(config)
    encoder = sum(p.numel() for p in model.encoder.parameters())
    if config.parent.name == "paper":
        channels = 7 if "foa" in config.name else 2
        assert model.frontend.out_channels == channels
        expected = 85.75e6 if channels == 7 else 85.25e6
        assert encoder == pytest.approx(expected, rel=0.005)
        assert model.encoder.num_patches == 200 and model.crops_per_clip == 16
