"""--scene_conf mix_on_device=true: workers send scene ingredients, the model mixes them with
torch.fft; the result equals the CPU mix of the same draws."""

import numpy as np
import pytest
import soundfile as sf
import torch
from espnet2.train.collate_fn import CommonCollateFn

from espnet2_gram.scene.device_mixing import mix_if_needed
from espnet2_gram.scene.simulator import SceneSimulator
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling

FS = 8000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("devmix")
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(4, 4, 3),
                            rt60=(0.15, 0.3), source_distance=(0.5, 1.0),
                            num_noise_sources=(0, 2))
    make_bank_shards(root / "bank", 4, seed=1, sampling=sampling, shard_size=4,
                     render=RenderConfig(format="foa", fs=FS, n_rays=200, max_rir_seconds=0.2))
    merge_bank(root / "bank")
    rng = np.random.default_rng(0)
    sf.write(root / "noise.wav", rng.standard_normal(FS // 2) * 0.1, FS)
    (root / "noise.scp").write_text(f"n1 {root / 'noise.wav'}\n")
    return root


def simulators(root, **kwargs):
    common = dict(bank_dir=str(root / "bank"), noise_scp=str(root / "noise.scp"), format="foa",
                  fs=FS, clip_seconds=1.0, train=False, seed=3, **kwargs)
    return SceneSimulator(**common), SceneSimulator(mix_on_device=True, **common)


@pytest.mark.parametrize("clean_ratio", [0.0, 1.0])
def test_device_mix_equals_cpu_mix(setup, clean_ratio):
    cpu, device = simulators(setup, clean_ratio=clean_ratio)
    rng = np.random.default_rng(1)
    items = [(f"utt{i}", {"speech": (rng.standard_normal(FS) * 0.1).astype(np.float32)})
             for i in range(6)]
    expected = [cpu(uid, data)["speech"] for uid, data in items]
    _, batch = CommonCollateFn(float_pad_value=0.0)([(uid, device(uid, d)) for uid, d in items])
    assert batch["speech"].shape == (6, FS, 1) and batch["scene_params"].shape == (6, 3)
    mixed = mix_if_needed(batch["speech"], batch)
    assert mixed.shape == (6, FS, 4)
    for got, want in zip(mixed.numpy(), expected):
        np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, np.abs(want).max()))
    if clean_ratio == 0.0:
        assert np.isfinite(batch["scene_params"][:, 0].numpy()).any()  # some scenes have noise


def test_batch_without_ingredients_is_left_alone():
    speech = torch.randn(2, 100, 2)
    assert mix_if_needed(speech, {}) is speech
    with pytest.raises(ValueError, match="missing"):
        mix_if_needed(speech, {"source_rir": torch.zeros(2, 1, 2)})
