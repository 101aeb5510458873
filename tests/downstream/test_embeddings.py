"""Cached frame embeddings of a data directory: pooling by hand, the three extractors against a
tiny packed GRAM model (frame counts, values, caching and its invalidation) and the CLI."""

import json
import math
import os
import re
import shutil

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.bin.extract_embeddings import main as extract_main
from espnet2_gram.downstream.embeddings import (EXTRACTORS, FrameExtractor, extract_data_dir,
                                                pool_frames)
from espnet2_gram.frontend.spatial_features import per_crop_normalize
from espnet2_gram.pretrained.packing import pack_gram
from espnet2_gram.frontend.pretrained_gram import PretrainedGRAM
from espnet2_gram.tasks.gram import build_gram_model
from espnet2_gram.utils.fileio import read_kv
from helpers import TINY  # binaural, 8 kHz, hop 80, 32 mels, 16 x 8 patches, dim 32

FS = TINY["frontend_conf"]["fs"]
# utt -> (seconds, channels); two lengths, one mono clip
CLIPS = {"a1": (0.5, 2), "a2": (0.5, 2), "b1": (0.8, 2), "m1": (0.8, 1)}
# hand-computed: 4000 samples -> 1 + 4000 // 80 = 51 STFT frames -> ceil(51 / 8) = 7 frames;
# 6400 samples -> 81 STFT frames: two whole 40-frame crops and a 1-frame stub (less than one
# 8-frame patch column), which is dropped -> 80 frames -> 10 frames
FRAMES = {"a1": 7, "a2": 7, "b1": 10, "m1": 10}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny GRAM model packed the way stage 7 packs a training directory."""
    root = tmp_path_factory.mktemp("emb_model")
    exp = root / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(TINY))
    torch.manual_seed(1234)
    model = build_gram_model(exp / "config.yaml")
    with torch.no_grad():  # "trained": not the initial weights of any seed
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    torch.save(model.state_dict(), exp / "valid.loss.best.pth")
    return pack_gram(exp, root / "packed" / "gram_tiny", archive=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb_data")
    d = root / "demo_test"
    d.mkdir()
    rng = np.random.default_rng(0)
    audio, wav, label, doa, nsamp = {}, [], [], [], []
    for i, (utt, (seconds, channels)) in enumerate(CLIPS.items()):
        x = (rng.standard_normal((int(seconds * FS), channels)) * 0.1).astype(np.float32)
        path = root / f"{utt}.wav"
        sf.write(path, x, FS, subtype="FLOAT")
        audio[utt] = x
        wav.append(f"{utt} {path}\n")
        label.append(f"{utt} {'dog' if i % 2 else 'cat'}\n")
        doa.append(f"{utt} {10 * i} {-5 * i} 1.5\n")
        nsamp.append(f"{utt} {len(x)}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2label").write_text("".join(label))
    (d / "utt2doa").write_text("".join(doa))
    (d / "utt2num_samples").write_text("".join(nsamp))
    return {"dir": d, "audio": audio}


def read_feats(out_dir):
    with kaldiio.ReadHelper(f"scp:{out_dir / 'feats.scp'}") as reader:
        return {utt: np.array(x) for utt, x in reader}


# --------------------------------------------------------------------------- pool_frames


def test_pool_frames_by_hand():
    b, c, f, t = 2, 2, 3, 10
    feats = torch.zeros(b, c, f, t)
    for i in range(c):
        for j in range(f):
            feats[0, i, j] = 100 * i + 10 * j + torch.arange(t, dtype=torch.float32)
    feats[1] = -feats[0]
    out = pool_frames(feats, 4)
    assert out.shape == (2, 3, 6)  # (B, ceil(10 / 4), C * F)
    # frames 0-3, 4-7, then the last group of 2 frames (8, 9): means 1.5, 5.5, 8.5
    expected = torch.tensor([[100 * i + 10 * j + m for i in range(c) for j in range(f)]
                             for m in (1.5, 5.5, 8.5)])
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(out[1], -expected)
    assert out[0, 2, 4].item() == pytest.approx(100 + 10 + 8.5)  # channel 1, mel 1, last frame


def test_pool_frames_exact_and_short():
    feats = torch.arange(8, dtype=torch.float32).reshape(1, 1, 1, 8)
    assert pool_frames(feats, 4).flatten().tolist() == [1.5, 5.5]
    short = torch.tensor([[[[1.0, 2.0, 6.0]]]])
    assert pool_frames(short, 4).flatten().tolist() == [3.0]
    assert pool_frames(short, 1).flatten().tolist() == [1.0, 2.0, 6.0]


# --------------------------------------------------------------------------- extraction


def test_gram_embeddings_match_the_encoder_on_each_clip(tmp_path, packed, data):
    extractor = FrameExtractor("gram", packed)
    hop = extractor.gram.features.hop_length
    patch = extractor.patch_frames
    assert (hop, patch, extractor.fs) == (80, 8, FS)
    out = tmp_path / "gram" / "demo_test"
    frames = extract_data_dir(data["dir"], out, extractor, packed, batch_size=16)
    for utt, x in data["audio"].items():
        stft_frames = 1 + len(x) // hop
        if stft_frames % 40 < patch:  # crop_frames 40: the stub after whole crops is dropped
            stft_frames -= stft_frames % 40
        assert FRAMES[utt] == math.ceil(stft_frames / patch)
    assert frames == FRAMES
    assert read_kv(out / "utt2num_frames") == {u: str(n) for u, n in FRAMES.items()}
    feats = read_feats(out)
    assert sorted(feats) == sorted(CLIPS)
    dim = extractor.output_size()
    assert dim == 2 * 32  # 32 mels / 16 = 2 rows of 32-dim tokens
    encoder = PretrainedGRAM(str(packed)).eval()
    for utt, x in data["audio"].items():
        assert feats[utt].shape == (FRAMES[utt], dim) and feats[utt].dtype == np.float32
        audio = torch.from_numpy(x if x.shape[1] > 1 else x[:, 0])[None]
        with torch.no_grad():
            alone, lengths = encoder(audio, torch.tensor([len(x)]))
        assert lengths.tolist() == [FRAMES[utt]]
        np.testing.assert_allclose(feats[utt], alone[0].numpy(), rtol=1e-4, atol=1e-5)
    # mono is replicated: the same as the clip copied to both ears
    with torch.no_grad():
        both = encoder(torch.from_numpy(np.repeat(data["audio"]["m1"], 2, axis=1))[None],
                       torch.tensor([len(data["audio"]["m1"])]))[0][0]
    np.testing.assert_allclose(feats["m1"], both.numpy(), rtol=1e-4, atol=1e-5)
    # label files copied unchanged, audio bookkeeping not
    for name in ("utt2label", "utt2doa"):
        assert (out / name).read_text() == (data["dir"] / name).read_text()
    assert not (out / "wav.scp").exists() and not (out / "utt2num_samples").exists()
    meta = json.loads((out / "embeddings.json").read_text())
    assert meta["extractor"] == "gram" and meta["dim"] == dim and meta["fs"] == FS
    assert meta["model_path"] == str(packed) and meta["layer"] is None


def test_batch_size_does_not_change_the_values(tmp_path, packed, data):
    extractor = FrameExtractor("gram", packed)
    extract_data_dir(data["dir"], tmp_path / "b16", extractor, packed, batch_size=16)
    extract_data_dir(data["dir"], tmp_path / "b1", extractor, packed, batch_size=1)
    big, one = read_feats(tmp_path / "b16"), read_feats(tmp_path / "b1")
    for utt in CLIPS:
        np.testing.assert_allclose(big[utt], one[utt], rtol=1e-4, atol=1e-5)


def test_second_call_is_skipped_and_a_changed_request_redone(tmp_path, packed, data,
                                                             monkeypatch):
    out = tmp_path / "emb"
    gram = FrameExtractor("gram", packed)
    first = extract_data_dir(data["dir"], out, gram, packed)
    before = read_feats(out)
    stamp = (out / "feats.ark").stat().st_mtime_ns

    def boom(audio):
        raise AssertionError("a cached extraction must not run the model")

    monkeypatch.setattr(gram, "forward", boom)
    assert extract_data_dir(data["dir"], out, gram, packed) == first
    assert (out / "feats.ark").stat().st_mtime_ns == stamp
    monkeypatch.undo()

    # another extractor kind into the same directory: redone
    logmel = FrameExtractor("logmel", packed)
    assert extract_data_dir(data["dir"], out, logmel, packed) == first  # same frame grid
    assert json.loads((out / "embeddings.json").read_text())["extractor"] == "logmel"
    after = read_feats(out)
    assert not np.allclose(after["a1"], before["a1"])

    # a changed model (new weights, newer file): redone with the new weights
    model = tmp_path / "model_copy"
    shutil.copytree(packed, model)
    extract_data_dir(data["dir"], out, FrameExtractor("gram", model), model)
    reference = read_feats(out)
    np.testing.assert_allclose(reference["b1"], before["b1"], rtol=1e-4, atol=1e-5)
    state = torch.load(model / "model.pth", weights_only=True)
    state = {k: v + 0.05 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, model / "model.pth")
    mtime = (model / "model.pth").stat().st_mtime + 10
    os.utime(model / "model.pth", (mtime, mtime))
    extract_data_dir(data["dir"], out, FrameExtractor("gram", model), model)
    changed = read_feats(out)
    assert not np.allclose(changed["b1"], reference["b1"], atol=1e-3)
    assert json.loads((out / "embeddings.json").read_text())["model_mtime"] == int(mtime)


def test_random_init_differs_from_gram_and_follows_the_seed(tmp_path, packed, data):
    def run(kind, seed, name):
        out = tmp_path / name
        extract_data_dir(data["dir"], out, FrameExtractor(kind, packed, seed=seed), packed)
        return read_feats(out)

    gram = run("gram", 0, "gram")
    rand0 = run("gram_random", 0, "rand0")
    again = run("gram_random", 0, "rand0_again")
    rand1 = run("gram_random", 1, "rand1")
    for utt in CLIPS:
        assert rand0[utt].shape == gram[utt].shape == (FRAMES[utt], 64)
        assert not np.allclose(rand0[utt], gram[utt], atol=1e-3)
        np.testing.assert_array_equal(rand0[utt], again[utt])
        assert not np.allclose(rand0[utt], rand1[utt], atol=1e-3)
    # another seed into a directory made with seed 0 is redone, not served from the cache
    run("gram_random", 1, "rand0")
    for utt in CLIPS:
        np.testing.assert_array_equal(read_feats(tmp_path / "rand0")[utt], rand1[utt])


def test_logmel_is_the_pooled_normalised_spectrogram(tmp_path, packed, data):
    extractor = FrameExtractor("logmel", packed)
    assert extractor.output_size() == 2 * 32  # channels * n_mels
    out = tmp_path / "logmel"
    assert extract_data_dir(data["dir"], out, extractor, packed) == FRAMES
    feats = read_feats(out)
    fe = PretrainedGRAM(str(packed)).features
    for utt, x in data["audio"].items():
        with torch.no_grad():
            spec, _ = fe(torch.from_numpy(x)[None], torch.tensor([len(x)]))  # (1, C, F, T)
        t = 8 * FRAMES[utt] if FRAMES[utt] == 10 else spec.shape[-1]  # the stub frame dropped
        spec = per_crop_normalize(spec[..., :t])[0].numpy()
        c, f, t = spec.shape
        assert (c, f) == (2, 32) and t in (1 + len(x) // 80, 80)
        for j in range(FRAMES[utt]):  # mean over the frame's spectrogram frames, c-major
            want = spec[:, :, 8 * j:min(8 * (j + 1), t)].mean(axis=-1).reshape(c * f)
            np.testing.assert_allclose(feats[utt][j], want, rtol=1e-4, atol=1e-5)
        # z-scored over the whole clip (all channels, mels and frames together)
        assert abs(spec.mean()) < 1e-5 and spec.std() == pytest.approx(1.0, rel=1e-3)


def test_unknown_extractor_names_the_choices(packed):
    assert EXTRACTORS == ("gram", "gram_random", "logmel")
    with pytest.raises(ValueError, match="'mfcc'.*gram, gram_random, logmel"):
        FrameExtractor("mfcc", packed)


def test_cli_writes_one_directory_per_extractor_and_refuses_a_missing_model(tmp_path, packed,
                                                                           data):
    root = tmp_path / "emb"
    extract_main(["--extractor", "logmel", "--extractor", "gram", "--model_path", str(packed),
                  "--data_dir", str(data["dir"]), "--out_root", str(root)])
    for kind in ("logmel", "gram"):
        out = root / kind / "demo_test"
        assert json.loads((out / "embeddings.json").read_text())["extractor"] == kind
        assert {u: v.shape for u, v in read_feats(out).items()} == {
            u: (n, 64) for u, n in FRAMES.items()}
    missing = tmp_path / "no_model"
    with pytest.raises(FileNotFoundError, match=re.escape(f"--model_path {missing}")):
        extract_main(["--extractor", "gram", "--model_path", str(missing),
                      "--data_dir", str(data["dir"]), "--out_root", str(root)])
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        extract_main(["--extractor", "mfcc", "--model_path", str(packed),
                      "--data_dir", str(data["dir"]), "--out_root", str(root)])


def test_logmel_of_an_foa_model_is_plain_log_mel_without_intensity(tmp_path):
    """The log-mel baseline keeps the 4 log-mel channels (W, Y, Z, X) of an FOA model and
    leaves out GRAM's 3 intensity channels."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({**TINY, "frontend": "foa"}))
    torch.save(build_gram_model(exp / "config.yaml").state_dict(),
               exp / "valid.loss.best.pth")
    packed = pack_gram(exp, tmp_path / "gram_foa", archive=False)
    extractor = FrameExtractor("logmel", packed)
    assert extractor.output_size() == 4 * 32
    x = torch.randn(1, 4000, 4) * 0.1
    fe = extractor.gram.features
    with torch.no_grad():
        emb = extractor(x)[0]
        feats, _ = fe(x)
    assert feats.shape[1] == 7  # 4 log-mels + 3 intensity channels reach GRAM
    want = pool_frames(per_crop_normalize(feats[:, :4]), 8)[0]
    torch.testing.assert_close(emb, want)


def test_logmel_intensity_appends_foa_direction_channels(tmp_path):
    """--logmel_intensity: FOA's three intensity channels (not z-scored) follow the four
    z-scored log-mels; for a plane wave from azimuth 90 deg, I_y is about 1 and I_x about 0."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({**TINY, "frontend": "foa"}))
    torch.manual_seed(0)
    model = build_gram_model(exp / "config.yaml")
    torch.save(model.state_dict(), exp / "valid.loss.best.pth")
    packed = pack_gram(exp, tmp_path / "gram_foa", archive=False)
    plain = FrameExtractor("logmel", packed)
    with_iv = FrameExtractor("logmel", packed, logmel_intensity=True)
    assert (plain.output_size(), with_iv.output_size()) == (4 * 32, 7 * 32)
    s = np.random.default_rng(0).standard_normal(FS).astype(np.float32)
    wave = np.stack([s, s, 0 * s, 0 * s], axis=1)  # ACN W, Y, Z, X: a source at +90 deg
    feats = with_iv(torch.from_numpy(wave)[None])[0].numpy()  # (frames, 7 * 32)
    np.testing.assert_allclose(feats[:, :4 * 32], plain(torch.from_numpy(wave)[None])[0].numpy(),
                               rtol=1e-5, atol=1e-6)
    iy, iz, ix = (feats[:, (4 + k) * 32:(5 + k) * 32] for k in range(3))
    assert np.median(iy) > 0.9 and np.abs(np.median(ix)) < 0.05 and np.abs(np.median(iz)) < 0.05
    assert FrameExtractor("gram", packed, logmel_intensity=True).logmel_intensity is False
