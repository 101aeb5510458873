"""Any HEAR module on HEAR-layout tasks: a packed GRAM (``espnet2_gram.hear``) and another
module (``hear_logmel``, written for the tests) evaluated end to end on a Nat-HEAR task made
here and its DoA and RT60 tasks, into one report; folds, channel policies and bad input."""

import json
import os
import subprocess
import sys
import types

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.nat_hear.evaluate import (channel_input, embed_task, evaluate, folds,
                                            load_hear_module)
from espnet2_gram.nat_hear.generate import generate, write_spatial_tasks
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling

FS = 8000
TONES = {"low": 300.0, "mid": 1000.0, "high": 2500.0}


def tone_task(root):
    """A 3-class scene task in HEAR's layout: tones in noise, 8 / 3 / 3 clips per class."""
    rng = np.random.default_rng(0)
    t = np.arange(FS // 2) / FS
    for split, count in (("train", 8), ("valid", 3), ("test", 3)):
        (root / str(FS) / split).mkdir(parents=True)
        labels = {}
        for label, freq in TONES.items():
            for i in range(count):
                name = f"{label}{i}.wav"
                x = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
                sf.write(root / str(FS) / split / name,
                         (x + 0.01 * rng.standard_normal(len(t))).astype("float32"), FS)
                labels[name] = [label]
        (root / f"{split}.json").write_text(json.dumps(labels))
    (root / "task_metadata.json").write_text(json.dumps({
        "task_name": "toy", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest"}))
    return root


def probe_configs(root):
    cls = yaml.safe_load(open("conf/demo/cls_probe.yaml"))
    doa = yaml.safe_load(open("conf/demo/doa_probe.yaml"))
    reg = yaml.safe_load(open("conf/demo/reg_probe.yaml"))
    cls.update(max_epoch=30, batch_size=8, encoder_conf={**cls["encoder_conf"],
                                                           "hidden_sizes": [32]})
    doa.update(max_epoch=5, batch_size=8, model_conf={**doa["model_conf"], "hidden_sizes": [32],
                                                      "pooling": "mean"})
    reg.update(max_epoch=5, batch_size=8, model_conf={**reg["model_conf"], "hidden_sizes": [32]})
    paths = {}
    for kind, conf in (("cls", cls), ("doa", doa), ("reg", reg)):
        paths[kind] = str(root / f"{kind}.yaml")
        (root / f"{kind}.yaml").write_text(yaml.safe_dump(conf))
    return paths


@pytest.fixture(scope="module")
def nat_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("hear_eval")
    bank = root / "bank"
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3),
                            rt60=(0.15, 0.3), source_distance=(1.0, 2.0),
                            num_noise_sources=(0, 0))
    make_bank_shards(bank, 6, seed=5, sampling=sampling, shard_size=6,
                     render=RenderConfig(format="binaural", fs=FS, method="early",
                                         ism_order=1, max_rir_seconds=0.1))
    merge_bank(bank)
    generate(tone_task(root / "clean"), bank, root / "toy", seed=0)
    doa, rt60 = write_spatial_tasks(root / "toy", ["doa", "rt60"])
    return root, root / "toy", doa, rt60


def test_two_modules_into_one_report(nat_task, packed):
    root, task, doa, rt60 = nat_task
    configs = probe_configs(root)
    out = root / "eval"
    evaluate([task, doa, rt60], "hear_logmel", "", "naive", out, seeds=[0, 1], grid=[],
             configs=configs)
    report = evaluate([task, doa, rt60], "espnet2_gram.hear", str(packed), "tinygram", out,
                      seeds=[0, 1], grid=[], configs=configs).read_text()
    assert "## Classification: toy" in report and "## DoA: toy-doa" in report
    assert "## Regression: toy-rt60" in report
    measured = {n: r["rt60"] for n, r in json.loads((task / "nat_hear.json").read_text())["files"]
                .items() if n.startswith("test/")}
    ref = (out / "emb" / "naive" / "binaural" / "toy-rt60" / "test" / "utt2target").read_text(
    ).split()
    assert sorted(map(float, ref[1::2])) == pytest.approx(sorted(measured.values()), abs=1e-5)
    rows = [line for line in report.splitlines() if line.startswith("|binaural|")]
    assert sorted(r.split("|")[2] for r in rows) == ["naive"] * 3 + ["tinygram"] * 3
    scores = json.loads(next((out / "exp").glob("cls_toy_binaural_naive_seed0/decode_*/scores.json"))
                        .read_text())
    assert scores["metrics"]["accuracy"] >= 2 / 3  # chance 1 / 3: the probe learns the tones
    assert (scores["format"], scores["dataset"]) == ("binaural", "toy")
    emb_dir = out / "emb" / "tinygram" / "binaural"
    emb = json.loads((emb_dir / "toy" / "train" / "embeddings.json").read_text())
    assert emb["request"]["module"] == "espnet2_gram.hear" and emb["dim"] > 0
    # the three tasks share their audio, so one set of embeddings serves them all
    scps = {(emb_dir / t / "train" / "feats.scp").read_text() for t in ("toy", "toy-doa",
                                                                      "toy-rt60")}
    assert len(scps) == 1 and len(list((emb_dir / "_audio").iterdir())) == 3  # 3 splits
    ark = next((emb_dir / "_audio").glob("*/feats.ark"))
    stamp = ark.stat().st_mtime_ns
    evaluate([task], "espnet2_gram.hear", str(packed), "tinygram", out, seeds=[0], grid=[],
             configs=configs)  # cached embeddings, scored runs skipped
    assert ark.stat().st_mtime_ns == stamp


def test_the_naive_baseline_embeds_a_task_at_another_rate(nat_task, tmp_path):
    _, task, _, _ = nat_task
    dirs = embed_task(task, "espnet2_gram.nat_hear.naive", "", tmp_path / "emb")
    emb = json.loads((dirs["test"] / "embeddings.json").read_text())
    assert emb["dim"] == 4096 and emb["request"]["audio"].endswith(f"toy/{FS}/test")
    assert len((dirs["test"] / "feats.scp").read_text().splitlines()) == 9


def test_folds_follow_hear():
    assert folds(["train", "valid", "test"]) == [
        (None, {"train": ["train"], "valid": ["valid"], "test": ["test"]})]
    got = folds(["fold00", "fold01", "fold02", "fold03"])
    assert got[0] == (0, {"test": ["fold00"], "valid": ["fold01"],
                          "train": ["fold02", "fold03"]})
    assert got[3] == (3, {"test": ["fold03"], "valid": ["fold00"],
                          "train": ["fold01", "fold02"]})
    with pytest.raises(ValueError, match="expected train/valid/test or >= 3 folds"):
        folds(["fold00", "fold01"])


def test_channel_policies():
    class Mono:
        pass

    class Stereo:
        n_channels = 2

    x = np.array([[1.0, 3.0], [3.0, 5.0]])
    assert channel_input(x, Mono(), "first").tolist() == [1.0, 3.0]
    assert channel_input(x, Mono(), "mean").tolist() == [2.0, 4.0]
    assert channel_input(x, Stereo(), "first").shape == (2, 2)
    assert channel_input(np.array([1.0, 2.0]), Stereo(), "first").tolist() == [[1, 2], [1, 2]]


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="--module json: not a HEAR module"):
        load_hear_module("json")
    done = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.evaluate_hear", "--module",
                           "hear_logmel", "--model_name", "x", "--task_dir", str(tmp_path),
                           "--out_dir", str(tmp_path / "o")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": "tests"})
    assert done.returncode == 1
    assert f"{tmp_path / 'task_metadata.json'}: missing" in done.stderr


class Model:
    sample_rate = 8000
    scene_embedding_size = 4


def hear_module(scene=None, stamps=None, rate=8000):
    """A module with the HEAR API whose outputs the arguments spoil."""
    module = types.ModuleType("broken_hear")
    model = Model()
    model.sample_rate = rate

    def get_scene_embeddings(audio, model):
        return scene(audio) if scene else torch.zeros(len(audio), 4)

    def get_timestamp_embeddings(audio, model):
        n = audio.shape[-1] * 1000.0 / 8000  # clip length, ms
        t = torch.linspace(25.0, n - 25.0, 10).repeat(len(audio), 1)
        return torch.zeros(len(audio), 10, 4), stamps(t) if stamps else t

    module.load_model = lambda path="": model
    module.get_scene_embeddings = get_scene_embeddings
    module.get_timestamp_embeddings = get_timestamp_embeddings
    return module


@pytest.mark.parametrize("spoil, message", [
    ({}, None),
    ({"rate": None}, "sample_rate is None, expected a positive integer"),
    ({"scene": lambda a: np.zeros((len(a), 4))}, "returned ndarray, expected a torch.Tensor"),
    ({"scene": lambda a: torch.zeros(len(a), 4, dtype=torch.float64)},
     "returned torch.float64, expected torch.float32"),
    ({"scene": lambda a: torch.zeros(len(a), 5)}, "width 5, but scene_embedding_size is 4"),
    ({"scene": lambda a: torch.zeros(len(a), 1, 4)}, "shape \\(2, 1, 4\\), expected 2 axes"),
    ({"scene": lambda a: torch.full((len(a), 4), float("nan"))}, "non-finite"),
    ({"stamps": lambda t: t / 1000.0}, "timestamps end at 0.975 for a 1000-ms clip: expected"
                                       " milliseconds"),
    ({"stamps": lambda t: t.flip(1)}, "timestamps not ascending"),
    ({"stamps": lambda t: t.double()}, "get_timestamp_embeddings returned torch.float64"),
])
def test_a_module_that_breaks_the_hear_api_is_named(monkeypatch, spoil, message):
    monkeypatch.setitem(sys.modules, "broken_hear", hear_module(**spoil))
    if message is None:
        load_hear_module("broken_hear")
        return
    with pytest.raises(ValueError, match=f"--module broken_hear: .*{message}"):
        load_hear_module("broken_hear")


def test_model_options_reach_load_model_and_the_cache(nat_task, packed, tmp_path):
    """``{"random_init": true, "seed": 7}`` gives GRAM's untrained embeddings (the same for
    the same seed); an option load_model does not take is named."""
    _, task, _, _ = nat_task

    def embeddings(options, out):
        dirs = embed_task(task, "espnet2_gram.hear", str(packed), out, options=options)
        return dict(kaldiio.load_scp(str(dirs["test"] / "feats.scp")))

    trained = embeddings(None, tmp_path / "a")
    random = embeddings({"random_init": True, "seed": 7}, tmp_path / "b")
    again = embeddings({"random_init": True, "seed": 7}, tmp_path / "c")
    key = sorted(trained)[0]
    assert not np.allclose(trained[key], random[key])
    assert np.array_equal(random[key], again[key])
    with pytest.raises(ValueError, match='--model_options {"bogus": 1}: espnet2_gram.hear'
                                         '.load_model does not take them'):
        load_hear_module("espnet2_gram.hear", str(packed), {"bogus": 1})


def event_task(root):
    """An event task in HEAR's layout: one 1-kHz tone burst per 2-s clip at a known onset."""
    t = np.arange(2 * FS) / FS
    for split, count in (("train", 6), ("valid", 2), ("test", 2)):
        (root / str(FS) / split).mkdir(parents=True)
        labels = {}
        for i in range(count):
            onset = 0.3 + 0.2 * i
            x = 0.3 * np.sin(2 * np.pi * 1000 * t) * ((t >= onset) & (t < onset + 0.6))
            sf.write(root / str(FS) / split / f"c{i}.wav", x.astype("float32"), FS)
            labels[f"c{i}.wav"] = [{"label": "tone", "start": 1000 * onset,
                                    "end": 1000 * (onset + 0.6)}]
        (root / f"{split}.json").write_text(json.dumps(labels))
    (root / "task_metadata.json").write_text(json.dumps({
        "task_name": "beeps", "embedding_type": "event", "prediction_type": "multilabel",
        "split_mode": "trainvaltest"}))
    return root


def test_an_event_task_end_to_end(nat_task, packed):
    root = nat_task[0]
    bank = root / "bank"
    task = root / "beeps"
    generate(event_task(root / "beeps_clean"), bank, task, seed=0)
    config = root / "event.yaml"
    conf = yaml.safe_load(open("conf/demo/event_probe.yaml"))
    conf.update(max_epoch=3, batch_size=4, model_conf={"hidden_sizes": [16]})
    config.write_text(yaml.safe_dump(conf))
    out = root / "eval_events"
    evaluate([task], "espnet2_gram.hear", str(packed), "tinygram", out, seeds=[0], grid=[],
             configs={"event": str(config)})
    d = out / "emb" / "tinygram" / "binaural" / "beeps" / "test"
    ref = json.loads((d / "events.json").read_text())
    shifted = json.loads((task / "test.json").read_text())  # onsets moved by the direct path
    assert ref["c1.wav"][0]["start"] == pytest.approx(shifted["c1.wav"][0]["start"], abs=1e-3)
    assert (d / "labels.txt").read_text() == "tone\n"
    stamps = dict(kaldiio.load_scp(str(d / "stamps.scp")))["c1.wav"]
    target = dict(kaldiio.load_scp(str(d / "targets.scp")))["c1.wav"]
    onset = shifted["c1.wav"][0]["start"]
    assert target.shape == (len(stamps), 1)
    assert target[:, 0].astype(bool).tolist() == [onset <= s < onset + 600 for s in stamps]
    scores = json.loads(next((out / "exp").glob("event_beeps_binaural_tinygram_seed0/decode_*/"
                                                "scores.json")).read_text())
    assert set(scores["metrics"]) >= {"onset_f", "precision", "recall"}
    assert "| beeps | Avg (tasks) |" in (out / "NAT_HEAR.md").read_text()


def test_an_event_task_needs_timestamp_embeddings(tmp_path):
    with pytest.raises(ValueError, match="hear_logmel: no get_timestamp_embeddings, which event"
                                         " tasks need"):
        embed_task(event_task(tmp_path / "beeps"), "hear_logmel", "", tmp_path / "emb")
