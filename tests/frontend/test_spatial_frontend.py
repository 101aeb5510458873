"""GRAM feature frontends: paper settings, log-mel reference, intensity vectors, padding."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet2_gram.frontend import (
    BinauralFrontend,
    FOAFrontend,
    MonoFrontend,
    per_crop_normalize,
)
from espnet2_gram.simulation.geometry import angular_distance_deg, sph_to_cart
from espnet2_gram.simulation.mixing import convolve_multichannel
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer
from helpers import anechoic

FS = 32000


def noise(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_paper_settings_shapes_and_frames():
    x = 0.1 * noise(2, 10 * FS, 4)
    lengths = torch.tensor([10 * FS, 5 * FS + 17])
    for cls, inp, channels in [(MonoFrontend, x[..., 0], 1), (BinauralFrontend, x[..., :2], 2),
                               (FOAFrontend, x, 7)]:
        frontend = cls()
        feats, feats_lengths = frontend(inp, lengths)
        assert frontend.out_channels == channels and frontend.output_size() == 128
        assert feats.shape == (2, channels, 128, 1001) and feats.dtype == torch.float32
        assert feats_lengths.tolist() == [1001, 1 + (5 * FS + 17) // 320]
        assert torch.isfinite(feats).all()
        # Derived buffers stay out of checkpoints.
        assert len(frontend.state_dict()) == 0
    assert MonoFrontend().log_offset == 1e-5 and BinauralFrontend().log_offset == 1e-5
    assert FOAFrontend().log_offset == 1e-6


PRETRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "conf").glob("*/pretrain_*.yaml"))


@pytest.mark.parametrize("config", PRETRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_filterbank_and_logmel_match_torchaudio(config):
    """The demo and paper frontends pool with torchaudio's own filterbank, bit for bit; their
    log-mels equal torchaudio's MelSpectrogram to float32 rounding. A quiet onset makes the low
    bands small, where a filterbank built any other way (e.g. float64, then cast) shows."""
    torchaudio = pytest.importorskip("torchaudio")
    conf = yaml.safe_load(config.read_text())
    cls = {"binaural": BinauralFrontend, "foa": FOAFrontend}[conf["frontend"]]
    frontend = cls(**conf["frontend_conf"])
    fs, n_fft, n_mels = frontend.fs, frontend.n_fft, frontend.n_mels
    ref_fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, frontend.fmin, frontend.fmax,
                                                   n_mels, fs, norm=None, mel_scale="htk")
    assert frontend.mel_fb.dtype == torch.float32 and torch.equal(frontend.mel_fb, ref_fb)
    x = 0.1 * noise(2, fs, frontend.in_channels, seed=1)
    x = x * torch.linspace(0.0, 1.0, fs)[None, :, None] ** 4
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=fs, n_fft=n_fft, win_length=n_fft, hop_length=frontend.hop_length,
        f_min=frontend.fmin, f_max=frontend.fmax, n_mels=n_mels, power=2.0, norm=None,
        mel_scale="htk", center=True, pad_mode="reflect",
    )
    feats, _ = frontend(x)
    expected = torch.log(ref(x.transpose(1, 2)) + frontend.log_offset)
    assert feats.shape[1] == frontend.out_channels
    torch.testing.assert_close(feats[:, :frontend.in_channels], expected, atol=2e-6, rtol=0)


def test_frontend_builds_on_the_meta_device():
    # The converter builds models on "meta" to map keys and shapes; the filterbank follows.
    with torch.device("meta"):
        frontend = FOAFrontend()
    assert frontend.mel_fb.device.type == "meta" and frontend.mel_fb.shape == (513, 128)


def test_binaural_channels_are_independent_log_mels():
    left, right = 0.1 * noise(1, FS, seed=2), 0.3 * noise(1, FS, seed=3)
    frontend = BinauralFrontend()
    feats, _ = frontend(torch.stack([left, right], dim=-1))
    mono = MonoFrontend()
    torch.testing.assert_close(feats[:, 0], mono(left)[0][:, 0])
    torch.testing.assert_close(feats[:, 1], mono(right)[0][:, 0])
    swapped, _ = frontend(torch.stack([left, 0 * right], dim=-1))
    torch.testing.assert_close(swapped[:, 0], feats[:, 0])


def test_pure_tone_lands_in_its_mel_bin():
    frontend = MonoFrontend()
    edges = np.linspace(2595 * np.log10(1 + 50 / 700), 2595 * np.log10(1 + 16000 / 700), 130)
    centres = 700 * (10 ** (edges[1:-1] / 2595) - 1)
    t = torch.arange(FS, dtype=torch.float64) / FS
    for freq in (440.0, 1000.0, 3000.0, 9000.0):
        tone = (0.5 * torch.sin(2 * math.pi * freq * t)).float()[None]
        feats, _ = frontend(tone)
        peak = int(feats[0, 0, :, 5:-5].mean(-1).argmax())
        assert peak == int(np.argmin(np.abs(centres - freq))), freq


def test_padding_frames_are_zero_and_lengths_right():
    frontend = BinauralFrontend(fs=16000, n_fft=512, hop_length=160, n_mels=64, fmax=8000.0)
    x = 0.1 * noise(3, 16000, 2, seed=4)
    lengths = torch.tensor([16000, 8000, 4321])
    x[1, 8000:] = 0
    x[2, 4321:] = 0
    feats, feats_lengths = frontend(x, lengths)
    assert feats_lengths.tolist() == [101, 51, 28]
    for b, n in enumerate(feats_lengths.tolist()):
        assert torch.all(feats[b, :, :, n:] == 0)
        assert torch.all(feats[b, :, :, :n] != 0)
    # Frames that do not reach the padding equal those of the unpadded item.
    alone, _ = frontend(x[1:2, :8000])
    torch.testing.assert_close(feats[1:2, ..., :47], alone[..., :47])


def test_wrong_channel_count_is_an_error():
    x = noise(1, 8000, 2)
    with pytest.raises(ValueError, match=r"4 channels \(W, Y, Z, X; ACN order, SN3D\), got 2"):
        FOAFrontend()(x)
    with pytest.raises(ValueError, match="2 channels.*got 4"):
        BinauralFrontend()(noise(1, 8000, 4))
    with pytest.raises(ValueError, match="1 channel.*got 2"):
        MonoFrontend()(x)
    with pytest.raises(ValueError, match="replicate_mono"):
        BinauralFrontend()(x[..., 0])
    feats, _ = FOAFrontend(replicate_mono=True)(x[..., 0])
    assert feats.shape[1] == 7
    torch.testing.assert_close(feats[:, 1], feats[:, 0])
    feats, _ = BinauralFrontend(replicate_mono=True)(x[..., :1])
    torch.testing.assert_close(feats[:, 1], feats[:, 0])


def test_features_are_float32_under_autocast():
    x = noise(2, 8000, 2).to(torch.bfloat16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        feats, _ = BinauralFrontend()(x)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()


def test_foa_intensity_channels_point_at_anechoic_source():
    renderer = RIRRenderer(RenderConfig(format="foa", fs=FS, method="ism", max_rir_seconds=0.05))
    source = noise(FS // 2, seed=5).numpy()
    frontend = FOAFrontend()
    scenes, directions = [], []
    for i, (az, el) in enumerate((a, e) for e in (0.0, 30.0) for a in (0.0, 90.0, -90.0, 180.0,
                                                                        45.0)):
        rir = renderer.render(anechoic(az, el, yaw=[0.0, 70.0, -120.0][i % 3]))[0]
        scenes.append(convolve_multichannel(source, rir, len(source)).T)
        directions.append((az, el))
    feats, _ = frontend(torch.from_numpy(np.stack(scenes)).float())
    assert feats.shape[1] == 7
    # Mean over frames and mel bins of (I_x, I_y, I_z) = channels (6, 4, 5).
    iv = feats[:, [6, 4, 5]].mean(dim=(-1, -2)).numpy()
    for (az, el), vec in zip(directions, iv):
        err = angular_distance_deg(vec, sph_to_cart(az, el))
        assert err < 2.0, (az, el, vec)
        # A plane wave's normalised intensity is the unit vector, pooled by the filterbank.
        scale = frontend.mel_fb.sum(0).mean().item()
        assert np.linalg.norm(vec) == pytest.approx(scale, rel=0.02)


def test_per_crop_normalize_zero_mean_unit_variance():
    x = 5.0 * noise(3, 7, 16, 20, seed=6) + torch.tensor([3.0, -2.0, 10.0])[:, None, None, None]
    y = per_crop_normalize(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    flat = y.reshape(3, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    # Per example: one example's values do not affect another's.
    torch.testing.assert_close(per_crop_normalize(x[1:2]), y[1:2])
