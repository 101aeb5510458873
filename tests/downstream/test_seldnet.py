"""``encoder: seldnet``: the supervised SELDnet localiser trained from scratch on audio."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.downstream.localization.doa_model import angle_between, direction_vectors
from espnet2_gram.downstream.localization.seldnet import SELDnetEncoder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FS = 16000
SMALL = dict(fs=FS, n_fft=512, n_mels=16, conv_channels=8, pool_freq=[4, 2, 2], gru_hidden=16,
             gru_layers=1, attention_layers=1, attention_heads=4, dropout=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models: one thread is several times faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plane_waves(rng, az, el, samples):
    """SN3D FOA (W, Y, Z, X) of white noise from each direction (degrees): (B, samples, 4)."""
    a, e = np.deg2rad(az)[:, None], np.deg2rad(el)[:, None]
    s = rng.standard_normal((len(a), samples))
    foa = np.stack([s, np.sin(a) * np.cos(e) * s, np.sin(e) * s, np.cos(a) * np.cos(e) * s], -1)
    return torch.from_numpy(0.1 * foa).float()


def random_directions(rng, n):
    az = rng.uniform(-180, 180, n)
    el = np.rad2deg(np.arcsin(rng.uniform(-np.sin(np.deg2rad(60)), np.sin(np.deg2rad(60)), n)))
    return az, el


def binaural(rng, samples, lead, gain):
    """White noise reaching the left ear ``lead`` samples earlier and ``gain`` times louder
    than the right (negative lead, gain < 1: a source on the right): (1, samples, 2)."""
    s = rng.standard_normal(samples + abs(lead))
    early, late = s[abs(lead):], s[:samples]
    left, right = (early, late) if lead >= 0 else (late, early)
    return torch.from_numpy(0.1 * np.stack([gain * left, right], -1)[None]).float()


@pytest.mark.parametrize("channels,cue,feature_channels",
                         [(4, "ipd", 7), (2, "ipd", 4), (2, "ild", 3), (2, "none", 2)])
def test_output_frames_and_padded_batches(channels, cue, feature_channels):
    """ceil(frames / 5) output frames 0.1 s apart; a padded item's valid outputs are its
    unpadded outputs, its padded ones 0."""
    torch.manual_seed(0)
    encoder = SELDnetEncoder(channels, binaural_features=cue, **SMALL).eval()
    assert encoder.output_size() == 16 and math.isclose(encoder.frame_hop_seconds, 0.1)
    lengths = torch.tensor([16000, 11000, 4321])
    x = torch.randn(3, 16000, channels) * (torch.arange(16000)[None, :, None]
                                           < lengths[:, None, None])
    with torch.no_grad():
        feats, _ = encoder.features(x, lengths)
        out, out_lengths, _ = encoder(x, lengths)
        assert feats.shape[1] == feature_channels
        frames = 1 + lengths // 320
        assert out.shape == (3, 11, 16)
        assert out_lengths.tolist() == [math.ceil(f / 5) for f in frames.tolist()] == [11, 7, 3]
        for i, n in enumerate(lengths.tolist()):
            alone, alone_lengths, _ = encoder(x[i:i + 1, :n], lengths[i:i + 1])
            valid = int(alone_lengths[0])
            assert alone.shape[1] == valid
            torch.testing.assert_close(out[i, :valid], alone[0], atol=1e-5, rtol=0)
            assert not out[i, valid:].any()


def test_foa_intensity_channels_point_at_the_source():
    rng = np.random.default_rng(0)
    az, el = np.array([0.0, 90.0, -135.0, 30.0]), np.array([0.0, 20.0, -40.0, 75.0])
    encoder = SELDnetEncoder(4, **SMALL)
    with torch.no_grad():
        feats, _ = encoder.features(plane_waves(rng, az, el, FS // 2), torch.full((4,), FS // 2))
    iy, iz, ix = feats[:, 4:].sum(dim=(2, 3)).unbind(-1)
    errors = angle_between(torch.stack([ix, iy, iz], -1),
                           direction_vectors(torch.tensor(np.stack([az, el], 1))).float())
    assert float(errors.max()) < 1.0, errors


def test_binaural_cues_follow_the_leading_louder_ear():
    """Left source: the left ear leads (IPD sin > 0 below the first phase wrap) and is louder
    (ILD > 0); a right source flips both signs."""
    rng = np.random.default_rng(1)
    band = dict(SMALL, fmax=2000.0)  # a 3-sample lead wraps the phase at 2.7 kHz
    ipd = SELDnetEncoder(2, binaural_features="ipd", **band)
    ild = SELDnetEncoder(2, binaural_features="ild", **band)
    lengths = torch.tensor([FS // 2])
    for lead, gain, sign in ((3, 2.0, 1.0), (-3, 0.5, -1.0)):
        x = binaural(rng, FS // 2, lead, gain)
        with torch.no_grad():
            sin = ipd.features(x, lengths)[0][0, 3, :, 2:-2]
            level = ild.features(x, lengths)[0][0, 2, :, 2:-2]
        assert bool((sign * sin > 0).all())
        torch.testing.assert_close(level.mean(), torch.tensor(sign * 20 * math.log10(2.0)),
                                   atol=0.3, rtol=0)


def test_bad_channel_count_or_cue_is_a_clear_error():
    with pytest.raises(ValueError, match=r"--input_size 3: .*FOA audio, 4 channels.*binaural audio, 2 channels"):
        SELDnetEncoder(3, **SMALL)
    with pytest.raises(ValueError, match="binaural_features='gcc'"):
        SELDnetEncoder(2, **dict(SMALL, binaural_features="gcc"))


def test_runs_under_autocast():
    encoder = SELDnetEncoder(4, **SMALL)
    x, lengths = torch.randn(2, 8000, 4), torch.tensor([8000, 6000])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _, _ = encoder(x, lengths)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def build(task, channels, encoder_conf, model_conf):
    args = task.get_parser().parse_args([
        "--encoder", "seldnet", "--input_size", str(channels), "--encoder_conf",
        yaml.safe_dump(encoder_conf, default_flow_style=True), "--model_conf",
        yaml.safe_dump(model_conf, default_flow_style=True)])
    return task.build_model(args)


def test_doa_task_with_seldnet_learns_to_localise_plane_waves():
    """DOATask + encoder seldnet from scratch on FOA plane waves: held-out directions are found
    far better than the 90-degree chance level."""
    from espnet2_gram.tasks.doa import DOATask

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build(DOATask, 4, SMALL,
                  dict(hidden_sizes=[32], dropout=0.0))
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch, samples = 16, FS // 2
    lengths = torch.full((batch,), samples)
    for _ in range(150):
        az, el = random_directions(rng, batch)
        doa = torch.tensor(np.stack([az, el], 1)).float()
        loss, _, _ = model(plane_waves(rng, az, el, samples), lengths, doa)
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    az, el = random_directions(rng, 64)
    with torch.no_grad():
        pred = model.predict(plane_waves(rng, az, el, samples), torch.full((64,), samples))
    errors = angle_between(pred, direction_vectors(torch.tensor(np.stack([az, el], 1)).float()))
    assert float(errors.median()) < 30.0, errors.median()


def test_seld_task_with_seldnet_predicts_one_vector_per_label_frame():
    from espnet2_gram.tasks.seld import SELDTask

    model = build(SELDTask, 2, SMALL,
                  dict(num_classes=3, hidden_sizes=[16], frame_hop_seconds=0.1))
    x, lengths = torch.randn(2, FS, 2), torch.tensor([FS, FS])
    assert model.predict(x, lengths, 10).shape == (2, 10, 1, 3, 3)
    loss, _, _ = model(x, lengths, torch.zeros(2, 10, 3, 3, 4))
    loss.backward()


def test_demo_config_trains_through_espnet(tmp_path):
    """``python -m espnet2_gram.bin.doa_train --config conf/demo/doa_supervised.yaml`` on
    FOA wav files."""
    rng = np.random.default_rng(2)
    az, el = random_directions(rng, 8)
    audio = plane_waves(rng, az, el, FS // 2).numpy()
    wavs, doas = [], []
    for i in range(8):
        sf.write(tmp_path / f"u{i}.wav", audio[i], FS, subtype="FLOAT")
        wavs.append(f"u{i} {tmp_path / f'u{i}.wav'}\n")
        doas.append(f"u{i} {az[i]:.2f} {el[i]:.2f} 1.5\n")
    (tmp_path / "wav.scp").write_text("".join(wavs))
    (tmp_path / "utt2doa").write_text("".join(doas))
    data = [f"{tmp_path / 'wav.scp'},speech,sound", f"{tmp_path / 'utt2doa'},doa,text_float"]
    exp = tmp_path / "exp"
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_gram.bin.doa_train", "--config",
         os.path.join(REPO, "conf", "demo", "doa_supervised.yaml"), "--input_size", "4",
         "--ngpu", "0", "--max_epoch", "1", "--batch_size", "4", "--output_dir", str(exp),
         *[a for d in data for a in ("--train_data_path_and_name_and_type", d)],
         *[a for d in data for a in ("--valid_data_path_and_name_and_type", d)],
         "--train_shape_file", str(tmp_path / "wav.scp"),
         "--valid_shape_file", str(tmp_path / "wav.scp")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert yaml.safe_load((exp / "config.yaml").read_text())["encoder"] == "seldnet"
    assert (exp / "valid.loss.best.pth").exists()
