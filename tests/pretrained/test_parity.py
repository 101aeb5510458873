"""Parity of a converted GRAM-T with the authors' code, path by path.

Reference-layout state dicts (``RefGRAMT`` of ``test_convert.py``: the authors' key names, a
forward written from their code) are converted and packed with :mod:`espnet2_gram.pretrained.convert`.
Every public path of the converted model is then compared with expectations computed here,
independently of ``espnet2_gram``: the features with torchaudio's transforms as the authors
use them, ``extract`` and the HEAR embeddings with a re-implementation of the authors' HEAR
runtime (``hear_api/runtime.py`` and ``feature_helper_gram_t.py`` of GRAM-T: whole-clip
features, zero padding to whole 2-s chunks, per-chunk encoding, padded columns trimmed,
timestamps ``i * duration / n``, scene = mean of all frames).

Tolerances are float32 noise; the largest differences measured (CPU, torch 2.11) are given
with each test and in docs/conversion.md.
"""

import shutil

import pytest
import torch
import yaml

from espnet2_gram.pretrained import convert as cv
from espnet2_gram import hear
from espnet2_gram.pretrained.packing import load_gram

from test_convert import RefGRAMT, tiny_config

FS = 16000
FRONTEND = {"fs": FS, "n_fft": 512, "hop_length": 160, "n_mels": 32, "fmin": 50, "fmax": 8000}
CROP = 40  # frames per encoder chunk (tiny_config): 0.4 s, 5 columns of 8 frames
FORMATS = ("binaural", "ambisonics", "mono")
INPUT_CHANNELS = {"binaural": 2, "ambisonics": 4, "mono": 1}
# The authors' log offsets: training (GRAMT._wav2fbank; FOA extractor eps) and HEAR runtime
# (torch.finfo().eps in feature_helper_gram_t.py; the FOA extractor again).
TRAINING_LOG_OFFSET = {"binaural": 1e-5, "ambisonics": 1e-6, "mono": 1e-5}
RUNTIME_LOG_OFFSET = {"binaural": torch.finfo(torch.float32).eps, "ambisonics": 1e-6,
                      "mono": torch.finfo(torch.float32).eps}


def parity_config(fmt):
    return {**tiny_config(fmt), "frontend_conf": dict(FRONTEND)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """fmt -> (reference module, packed directory of its conversion)."""
    tmp = tmp_path_factory.mktemp("parity")
    out = {}
    for seed, fmt in enumerate(FORMATS):
        ref = RefGRAMT(parity_config(fmt)).randomize(seed + 10).eval()
        path = tmp / f"{fmt}.pt"
        torch.save(ref.state_dict(), path)
        packed, report = cv.convert_checkpoint(path, tmp / f"gramt_{fmt}", fmt,
                                               config=parity_config(fmt),
                                               archive=fmt == "binaural")
        assert not cv.failed_checks(report)
        out[fmt] = ref, packed
    return out


def signal(n, seconds, channels=None, seed=0):
    """Noise with a stretch of digital silence (where the log offset matters) and a quiet
    tone: ``(n, samples)`` or ``(n, channels, samples)``."""
    g = torch.Generator().manual_seed(seed)
    samples = round(seconds * FS)
    shape = (n, samples) if channels is None else (n, channels, samples)
    t = torch.arange(samples) / FS
    x = (torch.rand(shape, generator=g) * 2 - 1) * 0.3 + 0.01 * torch.sin(2 * torch.pi * 440 * t)
    x[..., samples // 4: samples // 4 + FS // 10] = 0.0
    return x


# --------------------------------------------------------------- the authors' code, re-made
def authors_features(ref, audio, fmt, log_offset):
    """The authors' features of ``(B, C, N)`` audio as ``(B, C', F, T)``: torchaudio's
    ``MelSpectrogram`` per channel, ``log(mel + offset)``; FOA: log-mels of the 4 channels
    and ``mel(2 Re(conj(W) S_k) / (offset + sum |S|^2))`` for the 3 others."""
    if fmt != "ambisonics":
        return torch.log(ref.melspec(audio) + log_offset)
    spec = ref.melspec.spectrogram(audio)
    power = spec.abs() ** 2
    logmel = torch.log(ref.melspec.mel_scale(power) + log_offset)
    energy = log_offset + power.sum(dim=1, keepdim=True)
    iv = 2 * torch.real(torch.conj(spec[:, :1]) * spec[:, 1:]) / energy
    return torch.cat([logmel, ref.melspec.mel_scale(iv)], dim=1)


def authors_runtime(ref, audio, fmt):
    """The authors' HEAR runtime on ``(B, N)`` mono or ``(B, C, N)`` audio ->
    (timestamp embeddings, timestamps in ms, scene embeddings)."""
    offset = RUNTIME_LOG_OFFSET[fmt]
    if audio.dim() == 2 and fmt == "binaural":  # mono: one log-mel, duplicated
        one = authors_features(ref, audio[:, None], "mono", offset)
        feats = torch.cat([one, one], dim=1)
    elif audio.dim() == 2:  # mono to FOA: the waveform repeated on the 4 channels
        feats = authors_features(ref, audio[:, None].expand(-1, INPUT_CHANNELS[fmt], -1),
                                 fmt, offset)
    else:
        feats = authors_features(ref, audio, fmt, offset)
    with torch.no_grad():
        emb = ref.runtime_raw(feats, unit=CROP)
    n = emb.shape[1]
    step = audio.shape[-1] / FS / n * 1000
    ts = torch.tensor([step * i for i in range(n)]).expand(audio.shape[0], -1)
    return emb, ts, emb.mean(dim=1)


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


# ------------------------------------------------------------------------------- the paths
@pytest.mark.parametrize("fmt", FORMATS)
def test_features_equal_the_authors(converted, fmt):
    """The frontend (training log offsets). Measured max |diff| 9.5e-7 (binaural, FOA),
    4.8e-7 (mono), on log-mel values of order 10."""
    ref, packed = converted[fmt]
    model = load_gram(packed)
    audio = signal(2, 1.3, INPUT_CHANNELS[fmt], seed=1)
    feats, _ = model.frontend(audio.transpose(1, 2))
    want = authors_features(ref, audio, fmt, TRAINING_LOG_OFFSET[fmt])
    assert max_diff(feats, want) < 5e-6


@pytest.mark.parametrize("fmt", FORMATS)
def test_extract_raw_equals_the_authors_runtime_framing(converted, fmt):
    """``extract(strategy="raw")``: the runtime's chunking on the training features.
    Measured max |diff| 9.5e-7 (binaural, mono), 1.8e-6 (FOA)."""
    ref, packed = converted[fmt]
    model = load_gram(packed)
    audio = signal(2, 1.3, INPUT_CHANNELS[fmt], seed=2)
    with torch.no_grad():
        got = model.extract(audio.transpose(1, 2), strategy="raw")
        want = ref.runtime_raw(authors_features(ref, audio, fmt, TRAINING_LOG_OFFSET[fmt]),
                               unit=CROP)
    assert max_diff(got, want) < 1e-5


# 0.4 s = one chunk of samples, 41 frames: 6 columns (ours keeps 5), the analogue of 2 s
# giving 26 at the paper settings; 0.39 s = 40 frames, a whole chunk (the runtime encodes an
# extra, all-padding one); 1.37 s = 4 chunks, the last one partial; 0.05 s < one column.
@pytest.mark.parametrize("seconds,columns", [(0.4, 6), (0.39, 5), (1.37, 18),
                                             (0.05, 1)])
@pytest.mark.parametrize("fmt", FORMATS)
def test_hear_compat_equals_the_authors_runtime(converted, fmt, seconds, columns):
    """``compat="authors"``, mono and multichannel input, segments of one chunk. Measured max
    |diff|: timestamp embeddings 1.0e-6 (binaural), 1.2e-6 (mono), 2.0e-6 (FOA); scene
    embeddings 3.6e-7 (binaural, mono), 7.2e-7 (FOA); timestamps identical."""
    ref, packed = converted[fmt]
    hm = hear.load_model(str(packed), compat="authors", max_chunks_per_pass=1)
    for audio in (signal(2, seconds, seed=3),  # mono, as HEAR gives it
                  signal(2, seconds, INPUT_CHANNELS[fmt], seed=4)):
        want_emb, want_ts, want_scene = authors_runtime(ref, audio, fmt)
        emb, ts = hear.get_timestamp_embeddings(audio, hm)
        assert emb.shape[1] == columns == hm.num_timestamps(audio.shape[-1])
        assert max_diff(emb, want_emb) < 1e-5
        assert torch.equal(ts, want_ts)
        assert max_diff(hear.get_scene_embeddings(audio, hm), want_scene) < 1e-5


def runtime_frame_count(n_samples, hop, crop, patch_time):
    """The runtime's arithmetic: pad to whole chunks (a whole extra chunk when the frames fill
    the last one), encode, trim ``int(columns * pad / crop)`` padded columns."""
    frames = 1 + n_samples // hop
    pad = crop - frames % crop
    columns = crop // patch_time
    return (frames + pad) // crop * columns - int(columns * pad / crop)


def test_paper_grid_equals_the_authors_runtime():
    """At the paper settings (32 kHz, hop 320, 200-frame chunks, 8-frame columns) 2 s gives
    26 timestamps 2000 / 26 ms apart from 0 (the default: 25 columns per pass, 50 in all)."""
    fmt = "binaural"
    with torch.device("meta"):
        gram = cv.build_target_model(cv.target_config(fmt))
    authors = hear.GRAMHearModel(gram, compat="authors",
                                 authors_log_offset=RUNTIME_LOG_OFFSET[fmt])
    for n in (64000, 63999, 63680, 63679, 32000 * 10, 12345, 513):
        count = runtime_frame_count(n, 320, 200, 8)
        assert authors.num_timestamps(n) == count, n
        step = n / 32000 / count * 1000
        want = torch.tensor([step * i for i in range(count)])
        assert torch.equal(authors.timestamps_ms(n).to(torch.float32), want)
    assert authors.num_timestamps(64000) == 26 and authors.min_samples() == 513
    assert hear.GRAMHearModel(gram).num_timestamps(64000) == 50


def test_default_mode_differs_and_the_runtime_offset_matters(converted):
    """Without ``compat`` the frames, their count and the scene embedding are not the
    runtime's; with the training log offset instead of the runtime's, silence differs."""
    ref, packed = converted["binaural"]
    audio = signal(2, 0.4, seed=5)
    want_emb, _, want_scene = authors_runtime(ref, audio, "binaural")
    ours = hear.load_model(str(packed))
    assert ours.compat == "ours" and ours.num_timestamps(audio.shape[-1]) == 10
    assert max_diff(hear.get_scene_embeddings(audio, ours), want_scene) > 1e-3
    training_offset = hear.GRAMHearModel(load_gram(packed), compat="authors",
                                         authors_log_offset=TRAINING_LOG_OFFSET["binaural"])
    assert max_diff(hear.get_timestamp_embeddings(audio, training_offset)[0], want_emb) > 1e-2


def test_compat_from_the_models_hear_settings(converted, tmp_path):
    """``hear_conf.compat: authors`` in config.yaml selects the mode for ``load_model(path)``
    (the HEAR tools' call); the ESPnet archive carries the same settings."""
    ref, packed = converted["binaural"]
    audio = signal(1, 0.9, seed=6)
    want_emb, want_ts, want_scene = authors_runtime(ref, audio, "binaural")
    archive = hear.load_model(str(packed.with_suffix(".zip")), compat="authors")
    edited = tmp_path / "edited"
    shutil.copytree(packed, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["hear_conf"]["compat"] = "authors"
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    for hm in (archive, hear.load_model(str(edited))):
        assert hm.compat == "authors"
        emb, ts = hear.get_timestamp_embeddings(audio, hm)
        assert max_diff(emb, want_emb) < 1e-5 and torch.equal(ts, want_ts)
        assert max_diff(hear.get_scene_embeddings(audio, hm), want_scene) < 1e-5
    config["hear_conf"]["compat"] = "theirs"
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"edited/config.yaml: hear_conf.compat must be one of"):
        hear.load_model(str(edited))
    assert hear.load_model(str(edited), compat="ours").compat == "ours"  # the argument wins
