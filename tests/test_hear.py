"""The HEAR API of espnet2_gram.hear on tiny packed GRAM models (16 kHz, binaural and FOA)."""

import math
import shutil
import time

import numpy as np
import pytest
import torch
import yaml

from espnet2_gram import hear
from espnet2_gram.pretrained.packing import pack_gram
from espnet2_gram.tasks.gram import build_gram_model

from helpers import TINY

FS = 16000
HOP = 160  # 10 ms; raw frames are 8 hops = 80 ms, HEAR timestamps every 40 ms
TINY16 = {  # the tiny GRAM of the task tests, at a HEAR sample rate
    **TINY,
    "frontend_conf": {"fs": FS, "n_fft": 512, "hop_length": HOP, "n_mels": 32, "fmin": 50,
                      "fmax": 8000},
    "encoder_conf": {**TINY["encoder_conf"], "depth": 2},
}
ROWS, DIM, COLS_PER_CHUNK = 2, 32, 5


def build(tmp_path, fmt="binaural", seed=0):
    config = {**TINY16, "frontend": fmt}
    path = tmp_path / f"{fmt}.yaml"
    path.write_text(yaml.safe_dump(config))
    torch.manual_seed(seed)
    return build_gram_model(path).eval(), config


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """(in-memory ESPnetGRAMModel, packed directory, packed .zip) of a tiny binaural model."""
    tmp = tmp_path_factory.mktemp("hear")
    model, config = build(tmp)
    exp = tmp / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(model.state_dict(), exp / "valid.loss.best.pth")
    out = pack_gram(exp, tmp / "packed" / "gram_tiny")
    archive = tmp / "zips" / "gram_tiny.zip"
    archive.parent.mkdir()
    shutil.move(str(out.with_suffix(".zip")), archive)
    return model, out, archive


@pytest.fixture(scope="module")
def hmodel(packed):
    return hear.load_model(str(packed[1]))


@pytest.fixture(scope="module")
def foa(tmp_path_factory):
    model, _ = build(tmp_path_factory.mktemp("foa"), "foa", seed=1)
    return hear.GRAMHearModel(model)


def noise(n, seconds, channels=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n, int(seconds * FS)) if channels is None else (n, channels, int(seconds * FS))
    return torch.rand(shape, generator=g) * 2 - 1


def test_attributes(hmodel):
    assert isinstance(hmodel, torch.nn.Module) and not hmodel.training
    assert hmodel.sample_rate == FS and isinstance(hmodel.sample_rate, int)
    assert hmodel.timestamp_embedding_size == ROWS * DIM
    assert hmodel.scene_embedding_size == ROWS * DIM
    assert all(isinstance(getattr(hmodel, a), int)
               for a in ("timestamp_embedding_size", "scene_embedding_size"))
    assert hmodel.n_channels == 2 and hmodel.hop_ms == pytest.approx(40.0)


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0, 2.56, 0.2])
def test_shapes_dtypes_and_timestamps(hmodel, seconds):
    audio = noise(2, seconds)
    emb, ts = hear.get_timestamp_embeddings(audio, hmodel)
    n = hmodel.num_timestamps(audio.shape[1])
    assert emb.shape == (2, n, ROWS * DIM) and ts.shape == (2, n)
    assert emb.dtype == torch.float32 and ts.dtype == torch.float32
    assert torch.isfinite(emb).all()
    duration_ms = 1000 * audio.shape[1] / FS
    assert torch.equal(ts[0], ts[1])
    diffs = torch.diff(ts[0].double())
    assert torch.all(diffs > 0) and torch.allclose(diffs, torch.full_like(diffs, 40.0))
    # Centre of the first 8 frames (centred at 0, 10, ..., 70 ms) is 35 ms.
    assert ts[0, 0] == pytest.approx(35.0)
    assert duration_ms - 40.0 < ts[0, -1] <= duration_ms


def test_even_timestamps_are_the_models_raw_frames(packed, hmodel):
    model = packed[0]
    audio = noise(2, 3.3, seed=3)
    emb, _ = hear.get_timestamp_embeddings(audio, hmodel)
    raw = model.extract(audio.unsqueeze(-1).expand(-1, -1, 2), strategy="raw")
    even = emb[:, ::2]
    assert raw.shape[1] >= even.shape[1] >= raw.shape[1] - 1
    torch.testing.assert_close(even, raw[:, :even.shape[1]], atol=1e-5, rtol=0)


def test_odd_timestamps_are_the_model_half_a_frame_later(packed, hmodel):
    """Pass 1 = the model on the audio advanced by 4 hops (40 ms); they differ only in the
    first chunk, where pass 1 sees the real signal instead of a reflect-padded start."""
    model = packed[0]
    audio = noise(1, 3.3, seed=4)
    emb, _ = hear.get_timestamp_embeddings(audio, hmodel)
    advanced = audio[:, 4 * HOP:]
    raw = model.extract(advanced.unsqueeze(-1).expand(-1, -1, 2), strategy="raw")
    odd = emb[:, 1::2]
    torch.testing.assert_close(odd[:, COLS_PER_CHUNK:], raw[:, COLS_PER_CHUNK:odd.shape[1]],
                               atol=1e-5, rtol=0)


def test_scene_is_the_mean_of_timestamp_embeddings(hmodel):
    audio = noise(4, 2.74, seed=5)
    emb, _ = hear.get_timestamp_embeddings(audio, hmodel)
    scene = hear.get_scene_embeddings(audio, hmodel)
    assert scene.shape == (4, hmodel.scene_embedding_size) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, emb.mean(dim=1), atol=1e-6, rtol=0)


def test_cls_scene_strategy(packed):
    model, path, _ = packed
    hm = hear.load_model(str(path), scene_strategy="cls", max_chunks_per_pass=1)
    assert hm.scene_embedding_size == DIM
    audio = noise(2, 2.74, seed=6)
    feats, _ = model.frontend(audio.unsqueeze(-1).expand(-1, -1, 2))
    with torch.no_grad():
        expected = model.encoder.extract(feats, strategy="cls")
    torch.testing.assert_close(hear.get_scene_embeddings(audio, hm), expected, atol=1e-5,
                               rtol=0)
    with pytest.raises(ValueError, match="scene_strategy"):
        hear.load_model(str(path), scene_strategy="max")


def test_batch_independence(hmodel):
    audio = noise(3, 2.3, seed=7)
    audio[1] *= 0.01
    audio[2] = 0.0
    alone, _ = hear.get_timestamp_embeddings(audio[:1], hmodel)
    batch, _ = hear.get_timestamp_embeddings(audio, hmodel)
    torch.testing.assert_close(alone[0], batch[0], atol=1e-5, rtol=0)
    scene_alone = hear.get_scene_embeddings(audio[:1], hmodel)
    torch.testing.assert_close(scene_alone[0], hear.get_scene_embeddings(audio, hmodel)[0],
                               atol=1e-5, rtol=0)


def test_long_input_and_segmentation(packed, hmodel):
    audio = noise(1, 60.0, seed=8)
    start = time.perf_counter()
    emb, ts = hear.get_timestamp_embeddings(audio, hmodel)
    elapsed = time.perf_counter() - start
    assert emb.shape == (1, 1500, ROWS * DIM) and ts[0, -1] == pytest.approx(59995.0)
    assert elapsed < 30, f"60 s of audio took {elapsed:.1f} s"
    # Segments of one chunk give the result of whole-signal processing.
    short = audio[:, : 10 * FS]
    whole, _ = hear.get_timestamp_embeddings(short, hmodel)
    one = hear.GRAMHearModel(packed[0], max_chunks_per_pass=1)
    torch.testing.assert_close(hear.get_timestamp_embeddings(short, one)[0], whole,
                               atol=1e-5, rtol=0)
    # Away from the end of the 10-s excerpt (its last chunk of each pass), its embeddings
    # are those of the 60-s signal: 24 chunks x 5 columns x 2 passes.
    torch.testing.assert_close(whole[:, :240], emb[:, :240], atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["binaural", "foa"])
def test_mono_equals_replicated_multichannel(hmodel, foa, which):
    hm = hmodel if which == "binaural" else foa
    mono = noise(2, 1.5, seed=9)
    replicated = mono.unsqueeze(1).expand(-1, hm.n_channels, -1)
    a, ta = hear.get_timestamp_embeddings(mono, hm)
    b, tb = hear.get_timestamp_embeddings(replicated, hm)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    torch.testing.assert_close(hear.get_scene_embeddings(mono, hm),
                               hear.get_scene_embeddings(replicated, hm), atol=0, rtol=0)
    # A real multichannel signal is not the same as its first channel.
    multi = noise(2, 1.5, channels=hm.n_channels, seed=10)
    c, _ = hear.get_timestamp_embeddings(multi, hm)
    assert c.shape == a.shape and not torch.allclose(c, hear.get_timestamp_embeddings(
        multi[:, 0], hm)[0])


@pytest.mark.parametrize("which,channels", [("binaural", 1), ("binaural", 4), ("foa", 2),
                                            ("foa", 1)])
def test_wrong_channel_count_is_an_error(hmodel, foa, which, channels):
    hm = hmodel if which == "binaural" else foa
    audio = noise(2, 1.0, channels=channels)
    with pytest.raises(ValueError, match=rf"\(n_sounds, {hm.n_channels}, n_samples\)"):
        hear.get_timestamp_embeddings(audio, hm)
    with pytest.raises(ValueError, match="got audio of shape"):
        hear.get_scene_embeddings(audio[None], hm)


def test_empty_batch_returns_empty_arrays(hmodel):
    audio = torch.zeros(0, int(1.07 * FS))
    emb, ts = hear.get_timestamp_embeddings(audio, hmodel)
    n = hmodel.num_timestamps(audio.shape[1])
    assert n == 26
    assert emb.shape == (0, n, ROWS * DIM) and ts.shape == (0, n)
    assert emb.dtype == ts.dtype == torch.float32
    scene = hear.get_scene_embeddings(audio, hmodel)
    assert scene.shape == (0, hmodel.scene_embedding_size) and scene.dtype == torch.float32


def test_bad_audio_is_an_error(hmodel):
    with pytest.raises(ValueError, match="too short"):
        hear.get_timestamp_embeddings(torch.zeros(1, 100), hmodel)
    with pytest.raises(ValueError, match="too short"):
        hear.get_timestamp_embeddings(torch.zeros(0, 0), hmodel)
    bad = noise(1, 1.0)
    bad[0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        hear.get_scene_embeddings(bad, hmodel)
    with pytest.raises(ValueError, match="float"):
        hear.get_scene_embeddings((noise(1, 1.0) * 32767).short(), hmodel)
    # The shortest accepted audio gives one embedding.
    emb, ts = hear.get_timestamp_embeddings(torch.zeros(1, hmodel.min_samples()), hmodel)
    assert emb.shape[1] == 1 and ts[0, 0] <= 1000 * hmodel.min_samples() / FS


def test_pack_round_trip(packed):
    model, path, archive = packed
    in_memory = hear.GRAMHearModel(model)
    audio = noise(2, 2.2, seed=11)
    expected, expected_ts = hear.get_timestamp_embeddings(audio, in_memory)
    for source in (path, archive):
        hm = hear.load_model(str(source))
        emb, ts = hear.get_timestamp_embeddings(audio, hm)
        assert torch.equal(emb, expected) and torch.equal(ts, expected_ts)
        assert torch.equal(hear.get_scene_embeddings(audio, hm),
                           hear.get_scene_embeddings(audio, in_memory))
    with pytest.raises(ValueError, match="packed GRAM model"):
        hear.load_model()


def test_layer_selection(packed, hmodel):
    path = str(packed[1])
    audio = noise(1, 1.2, seed=12)
    last, _ = hear.get_timestamp_embeddings(audio, hmodel)
    explicit, _ = hear.get_timestamp_embeddings(audio, hear.load_model(path, layer=-1))
    torch.testing.assert_close(explicit, last, atol=0, rtol=0)
    first, _ = hear.get_timestamp_embeddings(audio, hear.load_model(path, layer=1))
    assert first.shape == last.shape and not torch.allclose(first, last)
    assert hear.load_model(path, layer=-3).layer == -3  # the patch embeddings, from the end
    for bad in (3, -4):
        with pytest.raises(ValueError, match=rf"^layer={bad}: out of range for an encoder of"
                                             r" depth 2 \(layers 0 \.\. 2, or -3 \.\. -1"):
            hear.load_model(path, layer=bad)


def test_resample_to_model(hmodel):
    audio = noise(2, 1.0)[:, :8000]  # 1 s at 8 kHz
    out = hear.resample_to_model(audio, 8000, hmodel)
    assert out.shape == (2, 16000) and out.dtype == torch.float32
    assert out.device == audio.device
    same = hear.resample_to_model(audio.double().numpy(), FS, hmodel)
    assert same.dtype == torch.float32 and torch.allclose(same, audio)
    # A 1-kHz tone stays a 1-kHz tone.
    t = np.arange(44100) / 44100
    tone = torch.from_numpy(np.sin(2 * np.pi * 1000 * t)).float()[None]
    y = hear.resample_to_model(tone, 44100, hmodel)[0].numpy()
    assert y.shape == (16000,)
    peak = np.argmax(np.abs(np.fft.rfft(y)))
    assert math.isclose(peak * FS / len(y), 1000, abs_tol=2)


def test_non_hear_sample_rate_warns(tmp_path):
    config = {**TINY16, "frontend_conf": {**TINY16["frontend_conf"], "fs": 8000,
                                          "fmax": 4000, "n_fft": 256, "hop_length": 80}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.warns(UserWarning, match="HEAR accepts only"):
        hear.GRAMHearModel(build_gram_model(path))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_outputs_on_the_inputs_device(packed):
    hm = hear.load_model(str(packed[1])).to("cuda")
    audio = noise(2, 1.3, seed=13)
    emb, ts = hear.get_timestamp_embeddings(audio.cuda(), hm)
    assert emb.device.type == ts.device.type == "cuda"
    cpu, _ = hear.get_timestamp_embeddings(audio, hear.load_model(str(packed[1])))
    torch.testing.assert_close(emb.cpu(), cpu, atol=1e-4, rtol=0)
    assert hear.get_scene_embeddings(audio.cuda(), hm).device.type == "cuda"


def test_compat_authors_needs_a_converted_gramt(packed, tmp_path):
    """Our own packed model has no ``hear_conf``: the authors' runtime mode is refused with
    the file and the option named, whether asked by argument or by config.yaml."""
    model, path, archive = packed
    for source in (path, archive):
        with pytest.raises(ValueError, match=r"compat 'authors' asks for the GRAM authors' HEAR"
                                             r" runtime.*convert_gramt") as err:
            hear.load_model(str(source), compat="authors")
        assert "config.yaml" in str(err.value) and str(source) in str(err.value)
        assert "hear_conf.authors_log_offset" in str(err.value)
    edited = tmp_path / "edited"
    shutil.copytree(path, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    (edited / "config.yaml").write_text(yaml.safe_dump({**config,
                                                        "hear_conf": {"compat": "authors"}}))
    with pytest.raises(ValueError,
                       match=r"edited/config.yaml: hear_conf.compat 'authors' asks for"):
        hear.load_model(str(edited))
    with pytest.raises(ValueError, match="compat must be one of"):
        hear.load_model(str(path), compat="hear")
    with pytest.raises(ValueError, match="needs authors_log_offset"):
        hear.GRAMHearModel(model, compat="authors")
    for bad in ({"passes": 2}, {"scene_strategy": "cls"}):
        with pytest.raises(ValueError, match="one pass and the mean scene embedding"):
            hear.GRAMHearModel(model, compat="authors", authors_log_offset=1e-7, **bad)
