"""On-the-fly scenes in the data loader: shapes, draws, determinism, workers, bad input."""

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet2_gram.scene import simulator as scene_preprocessor
from espnet2_gram.scene.simulator import SceneSimulator
from espnet2_gram.simulation.mixing import convolve_multichannel
from helpers import measured_snr_db
from espnet2_gram.simulation.rir_bank import RIRBank, make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling

FS = 8000
SAMPLING = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3), rt60=(0.15, 0.3),
                        source_distance=(0.5, 1.2), num_noise_sources=(1, 2))
RENDER = RenderConfig(format="foa", fs=FS, ism_order=1, n_rays=100, max_rir_seconds=0.1)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene_bank") / "foa"
    make_bank_shards(out, 3, seed=7, sampling=SAMPLING, render=RENDER, shard_size=3)
    merge_bank(out)
    return str(out)


@pytest.fixture(scope="module")
def noise_scp(tmp_path_factory):
    """Three noises: longer than a clip, at another rate (resampled), shorter than a clip."""
    root = tmp_path_factory.mktemp("noises")
    rng = np.random.default_rng(0)
    lines = []
    for name, fs, seconds in (("long", FS, 3.0), ("hires", 2 * FS, 2.0), ("short", FS, 0.4)):
        path = root / f"{name}.wav"
        sf.write(str(path), 0.1 * rng.standard_normal(int(seconds * fs)), fs)
        lines.append(f"{name} {path}\n")
    scp = root / "wav.scp"
    scp.write_text("".join(lines))
    return str(scp)


def clip(seconds=1.5, seed=1, channels=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    shape = (n, channels) if channels else (n,)
    envelope = np.linspace(0.2, 1.0, n)[:, None] if channels else np.linspace(0.2, 1.0, n)
    return (0.05 * rng.standard_normal(shape) * envelope).astype(np.float32)


def rms_dbfs(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def simulator(bank_dir, noise_scp, **kwargs):
    conf = dict(bank_dir=bank_dir, noise_scp=noise_scp, format="foa", fs=FS, clip_seconds=1.0)
    conf.update(kwargs)
    return SceneSimulator(**conf)


def test_scene_shape_dtype_and_other_keys(bank_dir, noise_scp):
    sim = simulator(bank_dir, noise_scp, seed=3)
    assert sim.channels == 4
    marker = np.arange(3)
    out = sim("utt1", {"speech": clip(), "other": marker})
    speech = out["speech"]
    assert speech.shape == (FS, 4) and speech.dtype == np.float32
    assert speech.flags["C_CONTIGUOUS"] and np.all(np.isfinite(speech))
    assert out["other"] is marker
    assert sim.last_info["pack"] is not None and sim.last_info["noise"] is not None
    assert 5.0 <= sim.last_info["snr_db"] <= 40.0
    # A spatial scene, not a copy of one signal.
    assert not np.allclose(speech[:, 0], speech[:, 3])
    assert SceneSimulator(format="binaural", clean_ratio=1.0).channels == 2
    assert SceneSimulator(format="mono").channels == 1


def test_short_clip_is_zero_padded_and_normalised():
    sim = SceneSimulator(format="mono", fs=FS, clip_seconds=1.0, source_level_dbfs=-20.0)
    src = clip(seconds=0.5)
    out = sim("short", {"speech": src})["speech"]
    assert out.shape == (FS, 1)
    assert np.all(out[FS // 2:] == 0)
    assert rms_dbfs(out[:FS // 2, 0]) == pytest.approx(-20.0, abs=0.01)
    np.testing.assert_allclose(out[:FS // 2, 0] / src, out[0, 0] / src[0], rtol=1e-4)
    # Longer clips are cropped to exactly one clip; silence is left silent.
    assert sim("long", {"speech": clip(seconds=2.3)})["speech"].shape == (FS, 1)
    silent = sim("silent", {"speech": np.zeros(FS // 2, dtype=np.float32)})["speech"]
    assert silent.shape == (FS, 1) and not np.any(silent)


def test_clean_ratio_one_gives_the_dry_clip_on_every_channel(bank_dir, noise_scp):
    src = clip(seconds=0.8)
    for sim in (simulator(bank_dir, noise_scp, clean_ratio=1.0),
                SceneSimulator(format="foa", fs=FS, clip_seconds=1.0, clean_ratio=1.0)):
        out = sim("dry", {"speech": src})["speech"]
        assert out.shape == (FS, 4) and sim.last_info["clean"]
        for c in range(4):
            np.testing.assert_array_equal(out[:, c], out[:, 0])
        assert rms_dbfs(out[:len(src), 0]) == pytest.approx(-14.0, abs=0.01)
        assert not np.any(out[len(src):])
    assert sim._bank is None  # no bank needed for dry scenes


def test_multichannel_source_is_reduced_by_mono_policy():
    src = clip(seconds=1.0, channels=2)
    for policy, expected in (("first", src[:, 0]), ("mean", src.mean(axis=1))):
        sim = SceneSimulator(format="mono", fs=FS, clip_seconds=1.0, mono_policy=policy)
        out = sim("stereo", {"speech": src})["speech"][:, 0]
        np.testing.assert_allclose(out / np.abs(out).max(), expected / np.abs(expected).max(),
                                   atol=1e-5)


def test_validation_scenes_are_fixed_per_uid(bank_dir, noise_scp):
    sim = simulator(bank_dir, noise_scp, train=False, seed=5)
    a = sim("utt-a", {"speech": clip()})["speech"]
    b = sim("utt-b", {"speech": clip()})["speech"]
    again = simulator(bank_dir, noise_scp, train=False, seed=5)("utt-a", {"speech": clip()})
    np.testing.assert_array_equal(a, sim("utt-a", {"speech": clip()})["speech"])
    np.testing.assert_array_equal(a, again["speech"])
    assert not np.allclose(a, b)
    other_seed = simulator(bank_dir, noise_scp, train=False, seed=6)("utt-a", {"speech": clip()})
    assert not np.allclose(a, other_seed["speech"])


def test_training_scenes_follow_the_worker_seed(bank_dir, noise_scp):
    state = torch.random.get_rng_state()
    try:
        outs = []
        for worker_seed in (11, 12, 11):
            torch.manual_seed(worker_seed)
            sim = simulator(bank_dir, noise_scp, seed=0)
            outs.append([sim("u", {"speech": clip()})["speech"] for _ in range(2)])
        # Successive draws differ, other worker seeds differ, the same seed reproduces.
        assert not np.allclose(outs[0][0], outs[0][1])
        assert not np.allclose(outs[0][0], outs[1][0])
        for x, y in zip(outs[0], outs[2]):
            np.testing.assert_array_equal(x, y)
        # A re-seeded process (new epoch) gets a new generator.
        torch.manual_seed(13)
        assert not np.allclose(sim("u", {"speech": clip()})["speech"], outs[0][0])
    finally:
        torch.random.set_rng_state(state)


def test_bank_format_or_rate_mismatch_is_a_clear_error(bank_dir, noise_scp):
    with pytest.raises(ValueError, match=r"(?s)foa.*8000.*binaural"):
        simulator(bank_dir, noise_scp, format="binaural")("u", {"speech": clip()})
    sim = simulator(bank_dir, noise_scp, fs=16000)
    with pytest.raises(ValueError, match="8000 Hz.*fs=16000") as err:
        sim("u", {"speech": clip()})
    assert bank_dir in str(err.value)
    with pytest.raises(ValueError, match="needs bank_dir"):
        SceneSimulator(format="foa", fs=FS)
    with pytest.raises(ValueError, match="bank_dir is not used"):
        SceneSimulator(bank_dir=bank_dir, format="mono", fs=FS)
    with pytest.raises(ValueError, match="mono_policy"):
        SceneSimulator(format="mono", mono_policy=None)


def test_bad_source_names_the_utterance():
    sim = SceneSimulator(format="mono", fs=FS, clip_seconds=1.0)
    bad = clip()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="utt-nan.*NaN"):
        sim("utt-nan", {"speech": bad})
    bad[10] = np.inf
    with pytest.raises(ValueError, match="utt-nan"):
        sim("utt-nan", {"speech": bad})


def test_scene_is_mix_scene_of_its_draws(bank_dir, noise_scp, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        scene = real(*args, **kwargs)
        calls.append((args, kwargs, scene))
        return scene

    real = scene_preprocessor.mix_scene
    monkeypatch.setattr(scene_preprocessor, "mix_scene", spy)
    sim = simulator(bank_dir, noise_scp, snr_range=(10.0, 20.0), seed=9)
    bank = RIRBank(bank_dir)
    seen = set()
    for i in range(8):
        out = sim(f"utt{i}", {"speech": clip(seed=i)})["speech"]
        args, kwargs, scene = calls[-1]
        info = sim.last_info
        seen.add(info["noise"])
        np.testing.assert_array_equal(out, scene.mix.T)
        assert 10.0 <= info["snr_db"] <= 20.0
        assert measured_snr_db(scene) == pytest.approx(info["snr_db"], abs=1e-3)
        # Independently: the reverberant source of the drawn pack plus noise at that SNR.
        index = [m["id"] for m in bank.meta].index(info["pack"])
        source_rir, noise_rirs, _ = bank.pack(index)
        np.testing.assert_array_equal(args[1], source_rir)
        image = convolve_multichannel(args[0], source_rir, FS)
        np.testing.assert_allclose(scene.source_image, image, atol=1e-6)
        noise = out.T - image
        if scene.noise_length == FS:  # the noise covers the clip
            snr = 10 * np.log10(np.sum(image.astype(np.float64) ** 2) / np.sum(noise ** 2.0))
            assert snr == pytest.approx(info["snr_db"], abs=0.05)
    assert len(seen) >= 2


def test_dataloader_workers_load_the_bank_lazily(bank_dir, noise_scp):
    sim = simulator(bank_dir, noise_scp, train=False, seed=2)
    clips = {f"utt{i}": clip(seed=i, seconds=1.2) for i in range(4)}

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return len(clips)

        def __getitem__(self, i):
            uid = f"utt{i}"
            return uid, sim(uid, {"speech": clips[uid]})["speech"]

    def collate(items):
        return [u for u, _ in items], torch.from_numpy(np.stack([x for _, x in items]))

    loader = torch.utils.data.DataLoader(Clips(), batch_size=2, num_workers=2,
                                         collate_fn=collate)
    batches = list(loader)
    assert sim._bank is None  # only the workers loaded it
    uids = [u for us, _ in batches for u in us]
    speech = torch.cat([x for _, x in batches])
    assert uids == list(clips) and speech.shape == (4, FS, 4)
    # Validation scenes do not depend on the process that renders them.
    for uid, x in zip(uids, speech):
        np.testing.assert_array_equal(x.numpy(), sim(uid, {"speech": clips[uid]})["speech"])
    # Pickled copies (spawned workers) load the bank again.
    copy = pickle.loads(pickle.dumps(sim))
    assert copy._bank is None and copy("utt0", {"speech": clips["utt0"]})["speech"].shape == (
        FS, 4)
