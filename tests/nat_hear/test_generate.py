"""Nat-HEAR generation on tiny HEAR-layout tasks made here: the layout and labels carry over,
event onsets move by the direct path, the recorded directions and RT60 are the bank's, the
same seed gives the same files, and an interrupted run resumes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.nat_hear.generate import direct_path_delay_ms, generate, write_spatial_tasks
from espnet2_gram.simulation.geometry import sph_to_cart
from espnet2_gram.simulation.rir_bank import RIRBank, make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling

FS = 8000


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    out = tmp_path_factory.mktemp("nat_hear") / "bank"
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3),
                            rt60=(0.15, 0.3), source_distance=(1.0, 2.0),
                            num_noise_sources=(1, 1))
    make_bank_shards(out, 4, seed=2, sampling=sampling, shard_size=4,
                     render=RenderConfig(format="foa", fs=FS, method="early", ism_order=2,
                                         max_rir_seconds=0.2))
    merge_bank(out)
    return out


def hear_task(root, embedding_type="scene"):
    """A two-split task as hear-preprocess lays it out, with a noise data dir beside it."""
    task = root / "task"
    rng = np.random.default_rng(0)
    labels = {}
    for split in ("train", "test"):
        (task / str(FS) / split).mkdir(parents=True)
        labels[split] = {}
        for i in range(3):
            name = f"{split}{i}.wav"
            sf.write(task / str(FS) / split / name,
                     (0.2 * rng.standard_normal(FS // 2)).astype("float32"), FS)
            labels[split][name] = ([{"label": "dog", "start": 100.0 + i, "end": 300.0}]
                                   if embedding_type == "event" else [f"class{i}"])
        (task / f"{split}.json").write_text(json.dumps(labels[split]))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,dog\n")
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": "toy", "embedding_type": embedding_type,
        "prediction_type": "multiclass", "split_mode": "trainvaltest"}))
    noise = root / "noise"
    noise.mkdir()
    sf.write(root / "n.wav", (0.1 * rng.standard_normal(FS)).astype("float32"), FS)
    (noise / "wav.scp").write_text(f"n1 {root / 'n.wav'}\n")
    return task, noise, labels


def test_layout_labels_targets_and_determinism(bank, tmp_path):
    task, noise, labels = hear_task(tmp_path)
    record = generate(task, bank, tmp_path / "out", noise, seed=3)
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / str(FS) / "train").iterdir()) == \
        ["train0.wav", "train1.wav", "train2.wav"]
    for split in ("train", "test"):
        assert json.loads((out / f"{split}.json").read_text()) == labels[split]
    assert (out / "labelvocabulary.csv").read_text() == "idx,label\n0,dog\n"
    meta = json.loads((out / "task_metadata.json").read_text())
    assert meta["task_name"] == "toy" and meta["nat_hear"]["format"] == "foa"
    audio, fs = sf.read(out / str(FS) / "test" / "test1.wav")
    assert fs == FS and audio.shape == (FS // 2, 4)
    packs = RIRBank(bank)
    by_id = {m["id"]: m for m in packs.meta}
    for name, r in record["files"].items():
        m = by_id[r["rir"]]
        assert (r["azimuth"], r["elevation"], r["rt60"]) == \
            (m["azimuth"], m["elevation"], m["rt60_measured"])
        assert 5.0 <= r["snr_db"] <= 40.0
    again = generate(task, bank, tmp_path / "again", noise, seed=3)
    assert again["files"] == record["files"]
    for split in ("train", "test"):
        for name in labels[split]:
            assert (out / str(FS) / split / name).read_bytes() == \
                (tmp_path / "again" / str(FS) / split / name).read_bytes()
    other = generate(task, bank, tmp_path / "other", noise, seed=4)
    assert other["files"] != record["files"]


def test_spatial_tasks_share_the_audio_and_carry_the_banks_targets(bank, tmp_path):
    task, noise, _ = hear_task(tmp_path)
    out = tmp_path / "toy"
    done = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.make_nat_hear", "--task_dir",
                           str(task), "--bank_dir", str(bank), "--noise_dir", str(noise),
                           "--out_dir", str(out), "--spatial_tasks", "doa", "rt60"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "nat_hear.json").read_text())["files"]
    by_id = {m["id"]: m for m in RIRBank(bank).meta}
    doa, rt60 = tmp_path / "toy-doa", tmp_path / "toy-rt60"
    for split in ("train", "test"):
        vectors = json.loads((doa / f"{split}.json").read_text())
        times = json.loads((rt60 / f"{split}.json").read_text())
        assert sorted(vectors) == sorted(times) == [f"{split}{i}.wav" for i in range(3)]
        for name, xyz in vectors.items():
            m = by_id[record[f"{split}/{name}"]["rir"]]
            np.testing.assert_allclose(xyz, sph_to_cart(m["azimuth"], m["elevation"]), atol=1e-5)
            assert times[name] == [pytest.approx(m["rt60_measured"], abs=1e-6)]
            assert (doa / str(FS) / split / name).read_bytes() == \
                (out / str(FS) / split / name).read_bytes()
    meta = json.loads((doa / "task_metadata.json").read_text())
    assert (meta["task_name"], meta["prediction_type"], meta["evaluation"]) == \
        ("toy-doa", "cartesian-regression", ["DOA"])
    assert json.loads((rt60 / "task_metadata.json").read_text())["evaluation"] == ["distance"]


def test_event_onsets_move_by_the_direct_path(bank, tmp_path):
    task, noise, labels = hear_task(tmp_path, "event")
    record = generate(task, bank, tmp_path / "out", noise, seed=1)
    events = json.loads((tmp_path / "out" / "train.json").read_text())
    for name, evs in events.items():
        delay = record["files"][f"train/{name}"]["delay_ms"]
        # 1-2 m from the listener: 3-6 ms of flight, plus the renderer's filter latency
        assert 2.9 < delay < 15.0
        src = labels["train"][name][0]
        assert evs[0]["start"] == pytest.approx(src["start"] + delay)
        assert evs[0]["end"] == pytest.approx(src["end"] + delay)
    with pytest.raises(ValueError, match="spatial tasks are made from scene tasks"):
        write_spatial_tasks(tmp_path / "out")


def test_direct_path_delay_of_a_hand_made_rir():
    rir = np.zeros((2, 100))
    rir[0, 40], rir[1, 42], rir[0, 70] = 1.0, -0.9, 0.6
    assert direct_path_delay_ms(rir, 1000) == 40.0


def test_resume_rewrites_only_what_is_missing(bank, tmp_path):
    task, noise, _ = hear_task(tmp_path)
    out = tmp_path / "out"
    generate(task, bank, out, noise, seed=3)
    kept = out / str(FS) / "train" / "train0.wav"
    stamp = kept.stat().st_mtime_ns
    gone = out / str(FS) / "test" / "test2.wav"
    before = gone.read_bytes()
    gone.unlink()
    (out / "task_metadata.json").unlink()  # as if killed before the end
    generate(task, bank, out, noise, seed=3)
    assert gone.read_bytes() == before and kept.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other settings"):
        generate(task, bank, out, noise, seed=9)


def test_bad_input_names_the_file(bank, tmp_path):
    task, noise, _ = hear_task(tmp_path)
    (task / str(FS)).rename(task / "16000")
    with pytest.raises(FileNotFoundError, match=r"no audio at the bank's 8000 Hz \(it has"
                                                r" \[16000\]\)"):
        generate(task, bank, tmp_path / "o", noise)
    (task / "task_metadata.json").unlink()
    done = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.make_nat_hear", "--task_dir",
                           str(task), "--bank_dir", str(bank), "--out_dir", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{task / 'task_metadata.json'}: missing (expected a task in HEAR's layout)" \
        in done.stderr


def test_splits_that_do_not_match_the_audio_are_refused(bank, tmp_path):
    task, noise, _ = hear_task(tmp_path)
    (task / str(FS) / "train" / "train1.wav").unlink()
    with pytest.raises(ValueError, match=rf"{task / 'train.json'}: 1 file\(s\) without audio in"
                                         rf" {task / str(FS) / 'train'} \(train1.wav\)"):
        generate(task, bank, tmp_path / "o", noise)
    sf.write(task / str(FS) / "train" / "train1.wav", np.zeros(FS // 2, "float32"), FS)
    sf.write(task / str(FS) / "test" / "stray.wav", np.zeros(FS // 2, "float32"), FS)
    with pytest.raises(ValueError, match=r"test.json: 1 file\(s\) not in the label file"):
        generate(task, bank, tmp_path / "o", noise)


def test_audio_at_another_rate_than_its_folder_is_refused(bank, tmp_path):
    task, noise, _ = hear_task(tmp_path)
    wrong = task / str(FS) / "test" / "test2.wav"
    sf.write(wrong, np.zeros(2 * FS, "float32"), 2 * FS)
    with pytest.raises(ValueError, match=rf"{wrong}: 16000 Hz audio in the 8000-Hz folder"):
        generate(task, bank, tmp_path / "o", noise)
