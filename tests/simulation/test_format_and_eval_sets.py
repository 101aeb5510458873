"""Stage 2 (audio formatting) and stage 4 (fixed naturalistic evaluation sets)."""

import json

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.simulation.eval_sets import render_eval_set
from espnet2_gram.simulation.rir_bank import RIRBank, make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.datadir import DataDirError, read_data_dir, write_data_dir
from espnet2_gram.utils.format_data_dir import format_data_dir

FS = 8000


def tone(seconds, fs=FS, freq=440.0, channels=1):
    t = np.arange(int(seconds * fs)) / fs
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1) if channels > 1 else x


def make_dir(tmp_path, name, clips, labels=None):
    """clips: {utt: (array (T,) or (T, C), fs) or a path string}."""
    wavs = {}
    for utt, clip in clips.items():
        if isinstance(clip, str):
            wavs[utt] = clip
            continue
        path = tmp_path / "src" / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, clip[0], clip[1], subtype="FLOAT")
        wavs[utt] = str(path)
    tables = {"wav.scp": wavs}
    if labels:
        tables["utt2label"] = labels
    return write_data_dir(tmp_path / name, tables)


def test_format_resamples_downmixes_and_skips_bad_audio(tmp_path, caplog):
    nan = tone(0.5)
    nan[100] = np.nan
    clips = {
        "a_ok": (tone(0.5), FS),
        "b_44k": (tone(0.5, fs=16000), 16000),
        "c_stereo": (tone(0.5, channels=2), FS),
        "d_silent": (np.zeros(FS // 2), FS),
        "e_nan": (nan, FS),
        "f_missing": str(tmp_path / "nowhere.wav"),
        "g_broken": str(tmp_path / "broken.wav"),
    }
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    labels = {u: "x" for u in clips}
    src = make_dir(tmp_path, "in", clips, labels)
    summary = format_data_dir(src, tmp_path / "out", tmp_path / "out" / "data", FS,
                              mono_policy="mean")
    out = read_data_dir(tmp_path / "out")
    assert sorted(out["wav.scp"]) == ["a_ok", "b_44k", "c_stereo"]
    assert set(out["utt2label"]) == set(out["wav.scp"])
    assert summary["counts"]["resampled"] == 1 and summary["counts"]["downmixed"] == 1
    assert summary["counts"]["silent"] == 1 and summary["counts"]["nan"] == 1
    assert summary["counts"]["unreadable"] == 2
    assert "nowhere.wav" in summary["skipped"]["f_missing"]
    assert "broken.wav: unreadable audio" in summary["skipped"]["g_broken"]
    stereo, fs = sf.read(out["wav.scp"]["c_stereo"])
    assert fs == FS and stereo.ndim == 1
    np.testing.assert_allclose(stereo, tone(0.5) * 0.75, atol=1e-3)  # mean of 0.5x and 1x
    info = sf.info(out["wav.scp"]["b_44k"])
    assert info.samplerate == FS and int(out["utt2num_samples"]["b_44k"]) == info.frames == FS // 2
    assert "nowhere.wav" in caplog.text
    saved = json.loads((tmp_path / "out" / "format_summary.json").read_text())
    assert saved["kept"] == 3


def test_format_resumes_and_keeps_channels_on_request(tmp_path):
    src = make_dir(tmp_path, "in", {"a": (tone(0.25, channels=4), FS), "b": (tone(0.25), FS)})
    out = tmp_path / "out"
    format_data_dir(src, out, out / "data", FS, mono_policy=None)
    wav = out / "data" / "a.wav"
    assert sf.info(str(wav)).channels == 4
    stamp = wav.stat().st_mtime_ns
    (out / "data" / "b.wav").unlink()  # as if the run was killed before b
    summary = format_data_dir(src, out, out / "data", FS, mono_policy=None)
    assert summary["counts"] == {"exists": 1, "ok": 1}
    assert wav.stat().st_mtime_ns == stamp


def test_empty_or_inconsistent_data_dirs_are_reported(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "wav.scp").write_text("u1 /a.wav\nu2 /b.wav\n")
    (d / "utt2label").write_text("u1 dog\nu3 cat\n")
    with pytest.raises(DataDirError, match=r"utt2label lacks \['u2'\].*has \['u3'\]"):
        read_data_dir(d)
    with pytest.raises(DataDirError, match="no wav.scp"):
        read_data_dir(tmp_path)


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    out = tmp_path_factory.mktemp("evalbank") / "binaural"
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3), rt60=(0.15, 0.3),
                            source_distance=(0.5, 1.2), num_noise_sources=(1, 2))
    render = RenderConfig(format="binaural", fs=FS, n_rays=300, max_rir_seconds=0.25)
    make_bank_shards(out, 3, seed=5, sampling=sampling, render=render, shard_size=3)
    merge_bank(out)
    return out


def test_eval_set_renders_every_utterance_with_its_direction(tmp_path, small_bank):
    clips = {f"u{i}": (tone(0.6, freq=300 + 50 * i), FS) for i in range(5)}
    clips["u_silent"] = (np.zeros(FS // 2), FS)
    src = make_dir(tmp_path, "clean", clips, {u: f"c{u[-1]}" for u in clips})
    noise = make_dir(tmp_path / "n", "noise",
                     {"n1": (np.random.default_rng(0).standard_normal(FS) * 0.1, FS)})
    out = tmp_path / "nat"
    summary = render_eval_set(src, small_bank, out, out / "data", noise_dir=noise, seed=1)
    assert summary["rendered"] == 5 and summary["skipped"] == 1
    tables = read_data_dir(out)
    bank = RIRBank(small_bank)
    by_id = {m["id"]: m for m in bank.meta}
    for utt, wav in tables["wav.scp"].items():
        x, fs = sf.read(wav)
        assert fs == FS and x.shape == (int(0.6 * FS), 2)
        assert np.all(np.isfinite(x)) and np.abs(x).max() < 1.0
        meta = by_id[tables["utt2rir"][utt]]
        az, el, dist = map(float, tables["utt2doa"][utt].split())
        assert (az, el) == pytest.approx((meta["azimuth"], meta["elevation"]), abs=0.01)
        assert 5.0 <= float(tables["utt2snr"][utt]) <= 40.0
        assert tables["utt2label"][utt] == f"c{utt[-1]}"
    # Same seed: identical audio; an existing file is reused (resume).
    first = sf.read(tables["wav.scp"]["u0"])[0]
    (out / "data" / "u1.wav").unlink()
    render_eval_set(src, small_bank, out, out / "data", noise_dir=noise, seed=1)
    again = read_data_dir(out)
    assert again == tables
    np.testing.assert_array_equal(sf.read(again["wav.scp"]["u0"])[0], first)
    other = render_eval_set(src, small_bank, tmp_path / "other", tmp_path / "other" / "data",
                            noise_dir=noise, seed=2)
    assert other["rendered"] == 5
    assert read_data_dir(tmp_path / "other")["utt2snr"] != tables["utt2snr"]
