"""The synthetic demo corpus: data-dir contract, audio sanity, determinism, resumption,
and that its classes are separable by a nearest-centroid classifier on band energies."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.bin.prepare_corpus import main as prepare_main
from espnet2_gram.corpora.demo import EVENTS, NOISES, STAMP, make_demo_corpus
from espnet2_gram.utils.audio import problem_of
from espnet2_gram.utils.datadir import read_data_dir

SMALL = dict(fs=16000, clip_seconds=1.0, clips_per_class={"train": 8, "valid": 1, "test": 4},
             noise_clips=4, noise_seconds=1.0, seed=0)
TINY = dict(fs=8000, clip_seconds=0.5, clips_per_class={"train": 1, "valid": 1, "test": 1},
            noise_clips=4, noise_seconds=0.5)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_corpus(root / "audio", root / "data", **SMALL)
    return root / "data"


def wav_bytes(audio_dir: Path) -> dict:
    return {str(p.relative_to(audio_dir)): p.read_bytes() for p in sorted(audio_dir.rglob("*.wav"))}


def test_data_dirs_follow_the_contract(small):
    assert sorted(p.name for p in small.iterdir()) == [
        "demo_noise", "demo_test", "demo_train", "demo_valid"]
    for split, per_class in SMALL["clips_per_class"].items():
        tables = read_data_dir(small / f"demo_{split}")
        assert set(tables) == {"wav.scp", "utt2label", "utt2num_samples", "utt2fs"}
        labels = tables["utt2label"]
        assert len(labels) == per_class * len(EVENTS) >= 12 * per_class
        assert sorted(set(labels.values())) == sorted(EVENTS)
        for utt, label in labels.items():
            assert utt.startswith(f"demo_{split}_{label}_")
            path = Path(tables["wav.scp"][utt])
            assert path.is_absolute() and path.is_file() and path.stem == utt
            assert tables["utt2num_samples"][utt] == "16000"
            assert tables["utt2fs"][utt] == "16000"
    noise = read_data_dir(small / "demo_noise")
    assert len(noise["wav.scp"]) == SMALL["noise_clips"]
    assert sorted(set(noise["utt2label"].values())) == sorted(NOISES)
    assert set(noise["utt2num_samples"].values()) == {"16000"}


def test_clips_are_clean_mono_pcm16(small):
    for name in ("demo_train", "demo_valid", "demo_test", "demo_noise"):
        for path in read_data_dir(small / name)["wav.scp"].values():
            info = sf.info(path)
            assert (info.channels, info.subtype, info.samplerate) == (1, "PCM_16", 16000)
            x, _ = sf.read(path)
            assert problem_of(x) == "", path  # finite, not empty, not silent
            peak_db = 20 * np.log10(np.max(np.abs(x)))
            assert -12.1 <= peak_db <= -2.9, (path, peak_db)


def band_features(x: np.ndarray, fs: int, n_bands: int = 20) -> np.ndarray:
    """Log energies in 20 log-spaced bands: mean over the first and second half of the
    active frames (level removed) and their standard deviation over time."""
    win = 256
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::win // 2] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1 / fs)
    edges = np.geomspace(100, fs / 2, n_bands + 1)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1)
                      for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    log_bands = 10 * np.log10(bands + 1e-12)
    log_bands = np.maximum(log_bands, log_bands.max() - 40)
    loudest = log_bands.max(axis=1)
    active = log_bands[loudest > loudest.max() - 30]
    active = active - active.mean()
    half = len(active) // 2
    return np.concatenate([active[:half].mean(0), active[half:].mean(0), active.std(0)])


def test_classes_are_separable_by_nearest_centroid(small):
    def load(split):
        tables = read_data_dir(small / f"demo_{split}")
        feats = [band_features(sf.read(p)[0], 16000) for p in tables["wav.scp"].values()]
        return np.array(feats), np.array(list(tables["utt2label"].values()))

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    classes = sorted(set(y_train))
    centroids = np.stack([x_train[y_train == c].mean(0) for c in classes])
    dist = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
    predicted = np.array(classes)[dist.argmin(1)]
    accuracy = np.mean(predicted == y_test)
    assert accuracy >= 0.9, list(zip(y_test[predicted != y_test], predicted[predicted != y_test]))


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        make_demo_corpus(tmp_path / name / "audio", tmp_path / name / "data", seed=seed, **TINY)
    a, b, c = (wav_bytes(tmp_path / n / "audio") for n in "abc")
    assert len(a) == 3 * len(EVENTS) + 4
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_rerun_keeps_valid_clips_repairs_broken_ones_and_notices_new_parameters(tmp_path):
    audio, data = tmp_path / "audio", tmp_path / "data"
    make_demo_corpus(audio, data, seed=1, **TINY)
    before = wav_bytes(audio)
    mtimes = {p: p.stat().st_mtime_ns for p in audio.rglob("*.wav")}
    broken = sorted(mtimes)[0]
    broken.write_bytes(b"not a wav file")

    make_demo_corpus(audio, data, seed=1, **TINY)
    assert wav_bytes(audio) == before
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p != broken)

    make_demo_corpus(audio, data, seed=2, **TINY)
    after = wav_bytes(audio)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)
    assert json.loads((audio / STAMP).read_text())["seed"] == 2

    fewer = dict(TINY, clips_per_class={"train": 1}, noise_clips=0)
    outs = make_demo_corpus(audio, data, seed=2, **fewer)
    assert [p.name for p in outs] == ["demo_train"]
    assert sorted(p.name for p in data.iterdir()) == ["demo_train"]
    assert len(list(audio.rglob("*.wav"))) == len(EVENTS)


@pytest.mark.parametrize("bad", [dict(fs=4000), dict(clips_per_class={"dev": 1}),
                                 dict(clip_seconds=0.1), dict(seed=-1)])
def test_bad_parameters_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        make_demo_corpus(tmp_path / "audio", tmp_path / "data", **{**TINY, **bad})


def test_command_line(tmp_path):
    prepare_main(["demo", "--data_dir", str(tmp_path / "data"),
                  "--download_dir", str(tmp_path / "dl"), "--fs", "8000", "--seed", "5",
                  "--clip_seconds", "0.5", "--clips_per_class", "train=1,valid=1,test=1",
                  "--noise_clips", "4", "--noise_seconds", "0.5"])
    tables = read_data_dir(tmp_path / "data" / "demo_valid")
    assert len(tables["wav.scp"]) == len(EVENTS)
    assert all(Path(p).parent == (tmp_path / "dl" / "demo" / "valid").resolve()
               for p in tables["wav.scp"].values())
    assert json.loads((tmp_path / "dl" / "demo" / STAMP).read_text())["fs"] == 8000
