"""HEAR's naive baseline (espnet2_gram.nat_hear.naive) against its definition, computed here
by hand with librosa's mel filterbank and numpy's FFT."""

import librosa
import numpy as np
import torch

from espnet2_gram.nat_hear import naive


def test_embeddings_equal_a_hand_computed_baseline():
    model = naive.load_model()
    fs, n_fft = 44100, 4096
    np.testing.assert_array_equal(model.mel_fb.T.numpy(),
                                  librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=256))
    torch.manual_seed(0)  # the projection is the first draw of seed 0, as hearbaseline's
    np.testing.assert_array_equal(model.projection.detach().numpy(),
                                  (torch.rand(256, 4096) / 16).numpy())
    audio = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 11025)))
    emb, times = naive.get_timestamp_embeddings(audio, model)
    hop = 2205  # 50 ms
    assert emb.shape == (2, 11025 // hop + 1, 4096) and emb.dtype == torch.float32
    np.testing.assert_allclose(times[0].numpy(), np.arange(6) * 50.0)
    padded = np.pad(audio[1].numpy(), (n_fft // 2, n_fft // 2))
    frame = padded[3 * hop:3 * hop + n_fft] * np.hanning(n_fft + 1)[:-1]  # periodic Hann
    logmel = np.log(librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=256)
                    @ np.abs(np.fft.rfft(frame)) ** 2 + 1e-4)
    want = logmel @ model.projection.detach().double().numpy()
    np.testing.assert_allclose(emb[1, 3].double().numpy(), want, rtol=2e-4, atol=2e-3)
    scene = naive.get_scene_embeddings(audio, model)
    frames, _ = naive.get_timestamp_embeddings(audio, model, hop_ms=250)
    torch.testing.assert_close(scene, frames.mean(dim=1))
