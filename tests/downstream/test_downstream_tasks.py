"""The downstream tasks: a tiny DoA model learns to localise, and every task's train ->
inference -> scoring chain runs through ESPnet's trainer on cached embeddings."""

import json
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from pathlib import Path

from espnet2_gram.downstream.embeddings import pool_frames
from espnet2_gram.frontend.spatial_features import FOAFrontend, per_crop_normalize
from espnet2_gram.downstream.heads import IdentityEncoder
from espnet2_gram.downstream.localization.doa_model import (ESPnetDOAModel, angle_between,
                                                            direction_vectors)
from espnet2_gram.downstream.localization.dcase_format import write_dcase_csv
from espnet2_gram.simulation.geometry import listener_to_room, sph_to_cart
from espnet2_gram.simulation.mixing import convolve_multichannel
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer, RoomGeometry

FS = 16000
TRAINER = {"batch_type": "unsorted", "num_workers": 0, "use_tensorboard": False,
           "use_matplotlib": False, "optim": "adam", "seed": 0, "keep_nbest_models": 1}


def random_directions(rng, n):
    az = rng.uniform(-180, 180, n)
    el = np.rad2deg(np.arcsin(rng.uniform(np.sin(np.deg2rad(-60)), np.sin(np.deg2rad(60)), n)))
    return az, el


def foa_scenes(rng, az, el):
    """Anechoic FOA renders of 0.25-s noise bursts from the given directions (yaw varies)."""
    renderer = RIRRenderer(RenderConfig(format="foa", fs=FS, method="ism", max_rir_seconds=0.03))
    scenes = []
    for a, e in zip(az, el):
        listener, yaw = [3.0, 3.0, 1.5], float(rng.uniform(-180, 180))
        pos = listener_to_room(sph_to_cart(a, e, 1.5), listener, yaw)
        room = RoomGeometry(size=[6.0, 6.0, 3.0], rt60=0.3, absorption=1.0, max_order=0,
                            listener_position=listener, listener_yaw=yaw,
                            source_positions=[pos.tolist()])
        rir = renderer.render(room)[0]
        noise = rng.standard_normal(FS // 4).astype(np.float32)
        scenes.append(convolve_multichannel(noise, rir, len(noise)).T)  # (samples, 4)
    return torch.from_numpy(np.stack(scenes)).float()


def test_tiny_doa_model_learns_to_localise_a_simulated_source():
    """FOA log-mel + intensity frames (the log-mel baseline's features), a 64-unit head:
    held-out directions are found far better than the 90-degree chance level."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    az, el = random_directions(rng, 160)
    frontend = FOAFrontend(fs=FS, n_fft=256, hop_length=80, n_mels=16, fmin=50, fmax=8000)
    with torch.no_grad():
        feats, _ = frontend(foa_scenes(rng, az, el))
        x = pool_frames(per_crop_normalize(feats), 8)
    doa = torch.tensor(np.stack([az, el], axis=1), dtype=torch.float32)
    lengths = torch.full((len(x),), x.shape[1])
    model = ESPnetDOAModel(IdentityEncoder(x.shape[-1]), hidden_sizes=[64], dropout=0.0)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    train, test = slice(0, 120), slice(120, None)
    for _ in range(300):
        loss, _, _ = model(x[train], lengths[train], doa[train])
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    with torch.no_grad():
        errors = angle_between(model.predict(x[test], lengths[test]), direction_vectors(doa[test]))
    assert float(errors.median()) < 30.0, errors.median()


def write_ark(path, feats):
    with kaldiio.WriteHelper(f"ark,scp:{path}.ark,{path}.scp") as writer:
        for utt, f in feats.items():
            writer(utt, f.astype(np.float32))
    return f"{path}.scp"


def run(module, *args):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_doa_probe_trains_infers_and_scores(tmp_path):
    """Embeddings that carry the direction: the ESPnet-trained probe recovers it."""
    rng = np.random.default_rng(1)
    az, el = random_directions(rng, 96)
    xyz = sph_to_cart(az, el)
    feats = {f"u{i:03d}": np.tile(np.concatenate([xyz[i], rng.normal(0, 0.05, 5)]), (4, 1))
             for i in range(96)}
    scp = write_ark(tmp_path / "feats", feats)
    doa = tmp_path / "utt2doa"
    doa.write_text("".join(f"u{i:03d} {a:.2f} {e:.2f} 1.5\n" for i, (a, e) in enumerate(zip(az, el))))
    config = tmp_path / "doa.yaml"
    config.write_text(yaml.safe_dump({**TRAINER, "encoder": "identity", "model": "doa",
                                      "model_conf": {"hidden_sizes": [32], "dropout": 0.0},
                                      "batch_size": 16, "max_epoch": 30,
                                      "optim_conf": {"lr": 0.01},
                                      "best_model_criterion": [["valid", "loss", "min"]]}))
    exp = tmp_path / "exp"
    data = [f"{scp},speech,kaldi_ark", f"{doa},doa,text_float"]
    run("espnet2_gram.bin.doa_train", "--config", config, "--input_size", 8, "--ngpu", 0,
        "--output_dir", exp, *[a for d in data for a in ("--train_data_path_and_name_and_type", d)],
        *[a for d in data for a in ("--valid_data_path_and_name_and_type", d)],
        "--train_shape_file", scp, "--valid_shape_file", scp)
    decode = tmp_path / "decode"
    run("espnet2_gram.bin.doa_inference", "--train_config", exp / "config.yaml", "--model_file",
        exp / "valid.loss.best.pth", "--data_path_and_name_and_type", data[0],
        "--output_dir", decode)
    run("espnet2_gram.bin.score_doa", "--ref", doa, "--hyp", decode / "utt2doa", "--format",
        "foa", "--out_dir", decode, "--model", "gram", "--mode", "probe", "--dataset", "toy")
    scores = json.loads((decode / "scores.json").read_text())
    assert scores["num_items"] == 96
    assert scores["metrics"]["median_error"] < 25.0, scores


def test_seld_probe_trains_infers_and_scores(tmp_path):
    """Chunked DCASE recordings; embeddings that carry the ACCDOA target of their frame."""
    from espnet2_gram.downstream.localization.seld_data import make_seld_chunks

    num_classes, fs = 2, 8000
    raw = tmp_path / "raw"
    raw.mkdir()
    wavs, metas = [], []
    rng = np.random.default_rng(2)
    for r in range(4):
        sf.write(raw / f"rec{r}.wav", rng.normal(0, 0.1, (3 * fs, 4)).astype(np.float32), fs)
        rows = [(f, r % 2, 0, 60.0 * (r - 1.5), 10.0) for f in range(5, 25)]
        rows += [(f, (r + 1) % 2, 0, -120.0, -20.0) for f in range(15, 28)]
        write_dcase_csv(raw / f"rec{r}.csv", rows)
        wavs.append(f"rec{r} {raw / f'rec{r}.wav'}\n")
        metas.append(f"rec{r} {raw / f'rec{r}.csv'}\n")
    (raw / "wav.scp").write_text("".join(wavs))
    (raw / "utt2metadata").write_text("".join(metas))
    chunks = tmp_path / "chunks"
    make_seld_chunks(raw, chunks, num_classes, chunk_seconds=1.0)
    feats = {}
    for line in (chunks / "tracks.scp").read_text().splitlines():
        utt, path = line.split()
        target = np.load(path)  # (10, 3, K, 4)
        accdoa = (target[:, 0, :, :1] * target[:, 0, :, 1:]).reshape(10, -1)
        frames = [accdoa[min(9, int(t * 0.08 / 0.1))] for t in range(13)]
        feats[utt] = np.stack(frames) + rng.normal(0, 0.02, (13, accdoa.shape[1]))
    scp = write_ark(tmp_path / "feats", feats)
    config = tmp_path / "seld.yaml"
    config.write_text(yaml.safe_dump({
        **TRAINER, "encoder": "identity", "model": "seld", "batch_size": 4, "max_epoch": 40,
        "model_conf": {"num_classes": num_classes, "hidden_sizes": [32], "dropout": 0.0},
        "optim_conf": {"lr": 0.01}, "best_model_criterion": [["train", "loss", "min"]]}))
    exp = tmp_path / "exp"
    data = [f"{scp},speech,kaldi_ark", f"{chunks / 'tracks.scp'},tracks,npy"]
    run("espnet2_gram.bin.seld_train", "--config", config, "--input_size", 3 * num_classes,
        "--ngpu", 0, "--output_dir", exp,
        *[a for d in data for a in ("--train_data_path_and_name_and_type", d)],
        *[a for d in data for a in ("--valid_data_path_and_name_and_type", d)],
        "--train_shape_file", scp, "--valid_shape_file", scp)
    decode = tmp_path / "decode"
    run("espnet2_gram.bin.seld_inference", "--train_config", exp / "config.yaml", "--model_file",
        exp / "train.loss.best.pth", "--data_path_and_name_and_type", data[0],
        "--chunk_dir", chunks, "--output_dir", decode)
    assert sorted(p.name for p in (decode / "pred").iterdir()) == [f"rec{r}.csv" for r in range(4)]
    run("espnet2_gram.bin.score_seld", "--ref_dir", chunks / "metadata", "--hyp_dir",
        decode / "pred", "--num_classes", num_classes, "--out_dir", decode, "--model", "gram",
        "--mode", "probe", "--dataset", "toy", "--format", "foa")
    metrics = json.loads((decode / "scores.json").read_text())["metrics"]
    assert metrics["F20"] > 0.8 and metrics["LE_CD"] < 15.0, metrics


@pytest.mark.parametrize("multilabel", [False, True])
def test_classification_probe_on_cached_embeddings_through_espnet(tmp_path, multilabel):
    """ESPnet's CLSTask with ``encoder: probe``, its inference and our scoring; multi-label
    clips carry one or two classes (sigmoid + BCE)."""
    rng = np.random.default_rng(3)
    classes = ["bird", "car", "dog"]
    labels = {f"u{i:02d}": [classes[i % 3]] + ([classes[(i + 1) % 3]] if multilabel and i % 2
                                               else []) for i in range(30)}
    feats = {u: np.tile(sum(np.eye(3)[classes.index(c)] for c in cs) + rng.normal(0, 0.1, 3),
                        (5, 1)) for u, cs in labels.items()}
    scp = write_ark(tmp_path / "feats", feats)
    text = tmp_path / "utt2label"
    text.write_text("".join(f"{u} {' '.join(cs)}\n" for u, cs in labels.items()))
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(classes + ["<unk>"]) + "\n")
    config = tmp_path / "cls.yaml"
    config.write_text(yaml.safe_dump({
        **TRAINER, "frontend": None, "normalize": None, "specaug": None, "encoder": "probe",
        "encoder_conf": {"hidden_sizes": [16], "dropout": 0.0}, "decoder": "linear",
        "model_conf": {"classification_type": "multi-label" if multilabel else "multi-class"},
        "batch_size": 10,
        "max_epoch": 15, "optim_conf": {"lr": 0.01},
        "best_model_criterion": [["valid", "acc", "max"]]}))
    exp = tmp_path / "exp"
    data = [f"{scp},speech,kaldi_ark", f"{text},label,text"]
    run("espnet2_gram.bin.cls_train", "--config", config, "--input_size", 3, "--ngpu", 0,
        "--token_list", tokens, "--output_dir", exp,
        *[a for d in data for a in ("--train_data_path_and_name_and_type", d)],
        *[a for d in data for a in ("--valid_data_path_and_name_and_type", d)],
        "--train_shape_file", scp, "--valid_shape_file", scp)
    decode = tmp_path / "decode"
    run("espnet2_gram.bin.cls_inference", "--classification_train_config", exp / "config.yaml",
        "--classification_model_file", exp / "valid.acc.best.pth", "--output_all_probabilities",
        "true", "--data_path_and_name_and_type", data[0], "--output_dir", decode, "--ngpu", 0)
    run("espnet2_gram.bin.score_cls", "--ref", text, "--hyp_dir", decode, "--token_list", tokens,
        "--out_dir", decode, "--model", "logmel", "--mode", "probe", "--dataset", "toy",
        "--format", "foa", "--multilabel", str(multilabel).lower())
    scores = json.loads((decode / "scores.json").read_text())
    assert scores["multilabel"] == multilabel
    assert scores["metrics"]["mAP"] == 1.0 and scores["metrics"]["accuracy"] >= 0.9
    if not multilabel:
        assert np.trace(np.array(scores["confusion"])) == 30 * scores["metrics"]["accuracy"]


def test_trained_model_must_match_its_config(tmp_path):
    """Inference loads strictly: weights of another architecture are refused, naming keys."""
    from espnet2_gram.downstream.inference import load_trained
    from espnet2_gram.pretrained.packing import PackedModelError
    from espnet2_gram.tasks.doa import DOATask

    args = DOATask.get_parser().parse_args(["--encoder", "identity", "--input_size", "8",
                                            "--model_conf", "hidden_sizes=[16]"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(vars(args)))
    other = ESPnetDOAModel(IdentityEncoder(8), hidden_sizes=[32])
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(PackedModelError, match="mlp.blocks.0.weight"):
        load_trained(DOATask, config, tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match="--model_file"):
        load_trained(DOATask, config, tmp_path / "missing.pth")


def test_gram_encoder_with_a_missing_packed_model_is_a_clear_error(tmp_path):
    from espnet2_gram.frontend.pretrained_gram import GRAMESPnetEncoder

    with pytest.raises(FileNotFoundError, match="nowhere"):
        GRAMESPnetEncoder(input_size=4, model_path=str(tmp_path / "nowhere"))


def test_multi_accdoa_model_trains_and_predicts_three_tracks():
    """``output: multi_accdoa``: 3 tracks per class, ADPIT loss; one step lowers the loss."""
    from espnet2_gram.downstream.localization.seld_model import ESPnetSELDModel

    torch.manual_seed(0)
    model = ESPnetSELDModel(IdentityEncoder(6), num_classes=2, output="multi_accdoa",
                            hidden_sizes=[16], dropout=0.0)
    x = torch.randn(4, 13, 6)
    lengths = torch.full((4,), 13)
    tracks = torch.zeros(4, 10, 3, 2, 4)
    tracks[:, 2:6, 0, 1] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # class 1 straight left
    tracks[:, 4:8, 1, 1] = torch.tensor([1.0, 1.0, 0.0, 0.0])  # and a second one in front
    assert model.predict(x, lengths, 10).shape == (4, 10, 3, 2, 3)
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        loss, stats, _ = model(x, lengths, tracks)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="num_classes=2"):
        model(x, lengths, torch.zeros(4, 10, 3, 5, 4))


def test_doa_init_leaves_a_pretrained_gram_encoder_alone(packed, caplog):
    """DOATask's --init re-initialises the head only: GRAM keeps the packed weights and ESPnet
    logs no misleading 'Initialize encoder.gram.*' lines."""
    from espnet2_gram.pretrained.packing import load_gram
    from espnet2_gram.tasks.doa import DOATask

    args = DOATask.get_parser().parse_args([
        "--encoder", "gram", "--encoder_conf", f"model_path={packed}", "--input_size", "2",
        "--init", "xavier_uniform"])
    with caplog.at_level("INFO"):
        model = DOATask.build_model(args)
    assert "Initialize encoder.gram" not in caplog.text
    want = load_gram(packed).encoder.state_dict()
    got = model.encoder.gram.encoder.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_run_mixes_classes_in_its_batches_and_learns_from_class_sorted_data(tmp_path):
    """Data dirs list their keys sorted, by class here (as the demo corpus does). ESPnet's
    unsorted batches take consecutive keys, so without the run's shuffled training order each
    batch would hold one class and the probe's BatchNorm would normalise the class away; with
    it, the demo's probe config learns the four classes."""
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    means = rng.normal(0, 1, (4, 8))

    def data_dir(name, per_class):
        d = tmp_path / name
        d.mkdir()
        feats = {f"{c}_{i:03d}": np.tile(means[k] + rng.normal(0, 0.3, 8), (5, 1))
                 for k, c in enumerate(classes) for i in range(per_class)}
        write_ark(d / "feats", feats)
        (d / "utt2label").write_text("".join(f"{u} {u[0]}\n" for u in feats))
        (d / "embeddings.json").write_text(json.dumps({"dim": 8}))
        return d

    train, valid, test = data_dir("train", 48), data_dir("valid", 8), data_dir("test", 8)
    out = subprocess.run(
        [sys.executable, "-m", "espnet2_gram.bin.downstream", "--task", "cls", "--mode", "probe",
         "--model", "logmel", "--format", "foa", "--dataset", "toy", "--seed", "3",
         "--train_dir", train, "--valid_dir", valid, "--test_dir", test,
         "--task_config", "conf/demo/cls_probe.yaml", "--exp_dir", tmp_path / "exp",
         "--train_args", "--max_epoch 8 --batch_size 16"], capture_output=True, text=True,
        timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    order = (tmp_path / "exp" / "train_order.scp").read_text().splitlines()
    listed = (train / "feats.scp").read_text().splitlines()
    assert sorted(order) == sorted(listed) and order != listed  # a permutation of the list
    assert all(len({line[0] for line in order[i:i + 16]}) >= 3 for i in range(0, 192, 16))
    config = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    assert config["train_shape_file"] == [str(tmp_path / "exp" / "train_order.scp")]
    scores = json.loads((tmp_path / "exp" / "decode_test" / "scores.json").read_text())
    assert scores["metrics"]["accuracy"] >= 0.9, scores["metrics"]
