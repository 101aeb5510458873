"""GRAM reused in ESPnet's own tasks: `frontend: gram` in ASR, `encoder: gram` in
classification, trained for a step by ESPnet's trainer; pretrained weights survive ESPnet's
initialisation; packing round trip and strict loading."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.downstream.runs import Run, encoder_steps
from espnet2_gram.pretrained.packing import PackedModelError, load_gram, pack_gram, pretrain_steps

FS = 8000




def write_data(root, name, n, labels):
    rng = np.random.default_rng(len(name))
    wav, text = [], []
    for i in range(n):
        path = root / f"{name}{i}.wav"
        sf.write(path, (rng.standard_normal((FS, 2)) * 0.1).astype(np.float32), FS)
        wav.append(f"{name}{i} {path}\n")
        text.append(f"{name}{i} {labels[i % len(labels)]}\n")
    (root / f"{name}.scp").write_text("".join(wav))
    (root / f"{name}.txt").write_text("".join(text))
    return root / f"{name}.scp", root / f"{name}.txt"


def run_task(module, config, out, scp, text, tokens, *extra):
    cmd = [sys.executable, "-m", module, "--config", str(config), "--output_dir", str(out),
           "--ngpu", "0", "--token_list", str(tokens),
           "--train_data_path_and_name_and_type", f"{scp},speech,sound",
           "--train_data_path_and_name_and_type", f"{text},{extra[0]},text",
           "--valid_data_path_and_name_and_type", f"{scp},speech,sound",
           "--valid_data_path_and_name_and_type", f"{text},{extra[0]},text",
           "--train_shape_file", str(scp), "--valid_shape_file", str(scp), *extra[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Initialize frontend.gram" not in proc.stderr  # ESPnet's --init leaves GRAM alone
    assert "Initialize encoder.gram" not in proc.stderr
    return torch.load(out / "1epoch.pth", map_location="cpu", weights_only=True)


TRAINER = {"batch_type": "unsorted", "batch_size": 2, "max_epoch": 1,
           "num_iters_per_epoch": 1, "num_workers": 0, "num_att_plot": 0,
           "use_tensorboard": False, "use_matplotlib": False, "init": "xavier_uniform",
           "optim": "adam", "optim_conf": {"lr": 0.01}}


def asr_config(model_path, **overrides):
    """A tiny ASR config with ``frontend: gram``."""
    config = {
        **TRAINER, "token_type": "char", "frontend": "gram",
        "frontend_conf": {"model_path": str(model_path), "fs": FS, "weighted_sum": True,
                          "freeze_steps": -1},
        "normalize": None, "specaug": None,
        "encoder": "transformer", "encoder_conf": {"output_size": 8, "attention_heads": 2,
                                                   "linear_units": 8, "num_blocks": 1,
                                                   "input_layer": "linear"},
        "decoder": "transformer", "decoder_conf": {"attention_heads": 2, "linear_units": 8,
                                                   "num_blocks": 1},
        "model_conf": {"ctc_weight": 0.5},
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return config


def assert_gram_weights_kept(state, prefix, packed):
    reference = load_gram(packed).encoder.state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(state[f"{prefix}.encoder.{key}"], value)


def test_asr_trains_with_the_gram_frontend_and_keeps_its_weights(tmp_path, packed):
    scp, text = write_data(tmp_path, "asr", 4, ["ab ba", "abba", "b a"])
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\na\nb\n<space>\n<sos/eos>\n")
    config = tmp_path / "asr.yaml"
    config.write_text(yaml.safe_dump(asr_config(packed, frontend_conf={"weighted_sum": False})))
    state = run_task("espnet2_gram.bin.asr_train", config, tmp_path / "asr", scp, text, tokens,
                     "text")
    assert_gram_weights_kept(state, "frontend.gram", packed)
    assert any(k.startswith("encoder.encoders.0") for k in state)  # the ASR model trained


def test_classification_trains_with_the_gram_encoder(tmp_path, packed):
    scp, text = write_data(tmp_path, "cls", 4, ["dog", "cat"])
    tokens = tmp_path / "classes.txt"
    tokens.write_text("cat\ndog\n<unk>\n")
    config = tmp_path / "cls.yaml"
    config.write_text(yaml.safe_dump({
        **TRAINER, "frontend": None, "input_size": 2, "normalize": None, "specaug": None,
        "encoder": "gram", "encoder_conf": {"model_path": str(packed), "fs": FS,
                                            "weighted_sum": True, "freeze_steps": -1},
        "decoder": "linear", "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": "multi-class"},
    }))
    state = run_task("espnet2_gram.bin.cls_train", config, tmp_path / "cls", scp, text, tokens,
                     "label")
    assert_gram_weights_kept(state, "encoder.gram", packed)
    assert "encoder.gram.layer_weights" in state  # the layer weights are trained parameters


def test_frontend_layers_freezing_and_bad_input(packed):
    from espnet2_gram.frontend.pretrained_gram import GRAMFrontend

    fe = GRAMFrontend(str(packed), fs=FS, layer=0)
    audio = torch.randn(2, FS, 2) * 0.1
    out, lengths = fe(audio, torch.tensor([FS, FS // 2]))
    rows, dim = fe.gram.encoder.grid[0], fe.gram.encoder.dim
    assert out.shape == (2, 13, rows * dim) and fe.output_size() == rows * dim
    assert lengths.tolist() == [13, 7]  # 101 and 51 frames, 8 frames per output frame
    last = GRAMFrontend(str(packed), layer=None)(audio, torch.tensor([FS, FS]))[0]
    assert not torch.allclose(out, last)
    mono = GRAMFrontend(str(packed))(audio[..., 0], torch.tensor([FS, FS]))[0]
    both = GRAMFrontend(str(packed))(audio[..., :1].expand(-1, -1, 2), torch.tensor([FS, FS]))[0]
    torch.testing.assert_close(mono, both)  # mono is replicated to both ears
    thawing = GRAMFrontend(str(packed), freeze_steps=1).train()
    assert thawing.gram.frozen()
    thawing(audio, torch.tensor([FS, FS]))
    assert not thawing.gram.frozen()
    with pytest.raises(ValueError, match="expects 8000 Hz"):
        GRAMFrontend(str(packed), fs=16000)
    for bad in (2, -3):  # depth 1: layers 0 .. 1
        with pytest.raises(ValueError, match=rf"^frontend_conf.layer={bad}: out of range for an"
                                             r" encoder of depth 1 \(layers 0 \.\. 1"):
            GRAMFrontend(str(packed), layer=bad)
    with pytest.raises(ValueError, match=r"^layer=5: out of range"):
        fe.gram.encoder.forward_layers(torch.zeros(1, 2, 32, 40), [5])
    with pytest.raises(ValueError, match="channel"):
        fe(torch.randn(2, FS, 3), torch.tensor([FS, FS]))
    with pytest.raises(ValueError, match="empty batch"):
        fe(torch.zeros(0, FS, 2), torch.zeros(0, dtype=torch.long))


def test_pack_round_trip_and_strict_keys(tmp_path, packed):
    a, b = load_gram(packed), load_gram(packed.with_suffix(".zip"))
    audio = torch.randn(1, FS * 3, 2) * 0.1
    torch.testing.assert_close(a.extract(audio, strategy="raw"), b.extract(audio, strategy="raw"))
    state = torch.load(packed / "model.pth", weights_only=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((packed / "config.yaml").read_text())
    del state["encoder.norm.weight"]
    state["encoder.extra.weight"] = torch.zeros(1)
    torch.save(state, broken / "model.pth")
    with pytest.raises(PackedModelError, match=r"missing keys \['encoder.norm.weight'\].*"
                                               r"unexpected keys \['encoder.extra.weight'\]"):
        load_gram(broken)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_gram(tmp_path / "nowhere")


def test_pack_records_the_epoch_and_steps_of_its_weights(tmp_path, packed):
    exp = tmp_path / "exp"
    exp.mkdir()
    config = yaml.safe_load((packed / "config.yaml").read_text())
    config.update(max_epoch=40, num_iters_per_epoch=25, accum_grad=2)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    (exp / "7epoch.pth").write_bytes((packed / "model.pth").read_bytes())
    (exp / "valid.loss.best.pth").symlink_to("7epoch.pth")
    out = pack_gram(exp, tmp_path / "gram_tiny")
    assert yaml.safe_load((out / "weights.yaml").read_text()) == {
        "weights": "7epoch.pth", "epoch": 7, "max_epoch": 40, "steps": 87}  # 7 * 25 // 2
    assert "`7epoch.pth`: epoch 7 of 40, 87 optimiser steps" in (out / "README.md").read_text()
    assert pretrain_steps(out) == 87
    # A checkpoint that is not <N>epoch.pth (the fixture's) has unknown steps.
    assert yaml.safe_load((packed / "weights.yaml").read_text())["steps"] is None
    assert pretrain_steps(packed) is None and pretrain_steps(tmp_path) is None
    # The downstream runs record them: 0 for the random init, none for log-mel.
    run = dict(task="cls", format="binaural", dataset="d", train_dir="t", valid_dir="v",
               test_dir="e", task_config="c", exp_dir="x", packed_model=str(out))
    assert [encoder_steps(Run(model=m, **run))
            for m in ("gram", "gram_ep7", "gram_random", "logmel")] == [87, 87, 0, None]
    (out / "weights.yaml").write_text("steps: -3\n")
    with pytest.raises(PackedModelError, match="weights.yaml: steps = -3; expected an integer"):
        pretrain_steps(out)


def test_reuse_benchmark_compares_the_asr_frontends(packed):
    """benchmark_reuse times one ASR step per frontend variant: the encoder sees GRAM's 80-ms
    frames (here the tiny model's), the 10-ms mel frames, or those subsampled 4x by conv2d;
    a frozen GRAM adds no trainable parameters, a trained one all of its own."""
    from espnet2_gram.benchmarks.reuse import bench_asr
    from espnet2_gram.pretrained.packing import load_gram

    gram = load_gram(packed)
    result = bench_asr(str(packed), batch=2, seconds=1.0, steps=1)
    mel_frames = 1 + gram.frontend.fs // 160  # centred STFT, 10-ms hop
    assert result["logmel"]["encoder_frames"] == mel_frames
    assert result["logmel_conv2d"]["encoder_frames"] == ((mel_frames - 1) // 2 - 1) // 2
    assert result["gram_frozen"]["encoder_frames"] == result["gram_trained"]["encoder_frames"]
    own = sum(p.numel() for part in (gram.frontend, gram.encoder) for p in part.parameters())
    gap = result["gram_trained"]["trainable_params"] - result["gram_frozen"]["trainable_params"]
    assert gap == own and result["logmel"]["step_ratio"] == 1.0
    for name in ("gram_frozen", "gram_trained", "logmel_conv2d"):
        assert result[name]["step_ratio"] > 0 and result[name]["frontend_ratio"] > 0
