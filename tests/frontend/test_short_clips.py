"""Clips shorter than one crop: encoded as their real patch columns (``lengths`` given), which
is closer to the same audio's frames inside a whole crop than the old zero-padded crop, and
leaves clips of a whole crop or longer unchanged."""

import torch

from espnet2_gram.gram.encoder import GRAMEncoder
from espnet2_gram.frontend.pretrained_gram import build_architecture

ARCH = {"frontend": "binaural",
        "frontend_conf": {"fs": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 32,
                          "fmax": 4000},
        "encoder": "vit",
        "encoder_conf": {"crop_frames": 200, "patch_size": [16, 8], "dim": 32, "depth": 2,
                         "heads": 2}}


def scenes(n, gain, seed=0):
    """2-s binaural clips of dense tone-and-noise events at ``gain``: (n, 16000, 2)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(16000) / 8000
    x = torch.zeros(n, 16000, 2)
    for _ in range(24):
        on, dur = torch.rand(n, 1, generator=g) * 1.8, 0.1 + torch.rand(n, 1, generator=g) * 0.5
        env = torch.exp(-0.5 * ((t - on - dur / 2) / (dur / 4)) ** 2)
        f0 = 100 + torch.rand(n, 1, generator=g) * 3000
        s = env * (torch.sin(2 * torch.pi * f0 * t) + 0.3 * torch.randn(n, 16000, generator=g))
        x[..., 0] += s
        x[..., 1] += 0.7 * torch.roll(s, 3, dims=1)
    return gain * (x + 0.01 * torch.randn(n, 16000, 2, generator=g))


def distance(out, ref):
    """Mean cosine similarity and relative L2 of per-frame embeddings."""
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1).mean().item()
    rel = ((out - ref).norm(dim=-1) / ref.norm(dim=-1)).mean().item()
    return cos, rel


def test_short_clips_are_closer_to_their_frames_in_context():
    torch.manual_seed(0)
    frontend, encoder = build_architecture(ARCH, "test")
    encoder.eval()
    with torch.no_grad():
        for gain in (0.01, 1.0):
            audio = scenes(8, gain)
            feats, _ = frontend(audio)
            ref = encoder.extract(feats[..., :200], "raw")
            for seconds in (0.5, 1.0, 1.5):
                short, frames = frontend(audio[:, :int(seconds * 8000)])
                old = encoder.extract(short, "raw")
                new = encoder.extract(short, "raw", lengths=frames)
                assert new.shape == old.shape
                cos_old, rel_old = distance(old, ref[:, :old.shape[1]])
                cos_new, rel_new = distance(new, ref[:, :new.shape[1]])
                assert cos_new > cos_old and rel_new < rel_old, (gain, seconds)


def test_short_path_is_batch_invariant_and_whole_crops_unchanged():
    torch.manual_seed(0)
    enc = GRAMEncoder(2, n_mels=32, crop_frames=200, patch_size=(16, 8), dim=16, depth=2,
                      heads=2).eval()
    x = torch.randn(3, 2, 32, 437)
    lengths = torch.tensor([437, 51, 200])
    with torch.no_grad():
        for strategy in ("raw", "mean", "cls"):
            # a crop or longer: bit-identical with and without lengths
            whole = x[[0, 2]][..., :200]
            assert torch.equal(enc.extract(whole, strategy, lengths=torch.tensor([200, 200])),
                               enc.extract(whole, strategy))
        together = enc.extract(x.masked_fill(torch.arange(437) >= lengths[:, None, None, None],
                                             0.0), "raw", lengths=lengths, layer=[1, 2])
        alone = enc.extract(x[1:2, ..., :51], "raw", lengths=lengths[1:2], layer=[1, 2])
        for t, a in zip(together, alone):
            torch.testing.assert_close(t[1:2, :7], a, atol=1e-5, rtol=1e-5)
        # the short clip is its 7 real columns alone: the positions of columns 0..6
        manual = enc.forward_layers(torch.nn.functional.pad(
            (lambda v: (v - v.mean()) / (v.var(unbiased=False) + 1e-5).sqrt())(
                x[1:2, ..., :51]), (0, 5)))[-1]
        rows = enc.grid[0]
        expected = manual[:, 1:].reshape(1, rows, 7, 16).transpose(1, 2).reshape(1, 7, -1)
        torch.testing.assert_close(alone[1], expected, atol=1e-5, rtol=1e-5)


def test_mean_of_a_mixed_length_batch_is_each_items_own():
    # A 51-frame clip batched with a 437-frame one: its mean is over its own 7 columns, as
    # when it is encoded alone, not over the batch's 55 columns (48 of them absent).
    torch.manual_seed(0)
    enc = GRAMEncoder(2, n_mels=32, crop_frames=200, patch_size=(16, 8), dim=16, depth=2,
                      heads=2).eval()
    x = torch.randn(2, 2, 32, 437)
    x[1, ..., 51:] = 0.0
    lengths = torch.tensor([437, 51])
    with torch.no_grad():
        together = enc.extract(x, "mean", lengths=lengths)
        alone = [enc.extract(x[i:i + 1, ..., :n], "mean", lengths=lengths[i:i + 1])
                 for i, n in enumerate(lengths.tolist())]
        raw = enc.extract(x[1:2, ..., :51], "raw", lengths=lengths[1:2])
    for i in range(2):
        torch.testing.assert_close(together[i:i + 1], alone[i], atol=1e-5, rtol=1e-5)
    rows = enc.grid[0]
    by_hand = raw.reshape(1, 7, rows, 16).mean(dim=(1, 2))
    torch.testing.assert_close(together[1:2], by_hand, atol=1e-5, rtol=1e-5)


def test_short_clip_benchmark_measures_every_length_and_level(tmp_path):
    import yaml

    from espnet2_gram.benchmarks import short_clips as benchmark_short_clips
    from helpers import TINY

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = benchmark_short_clips.measure(str(config), clips=2, repeats=1)
    assert [r["seconds"] for r in out["short"]] == [0.25] * 3  # the only one under a 0.4-s crop
    for row in out["short"]:
        for path in ("padded", "real_columns"):
            assert -1 <= row[path]["cosine"] <= 1 and row[path]["rel_l2"] >= 0
        assert row["speed_real_over_padded"] > 0
