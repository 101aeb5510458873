"""Fault matrix, bad input per entry point: pretraining's audio check (refuse or skip), the
downstream train and inference entry points, embedding extraction, packing, conversion, the
HEAR loader and scoring. Each case asserts the exit status, that the one-line message names
the file or option, and that nothing partial or stale is left (a full disk is simulated by a
write that raises ``OSError(ENOSPC)``).
"""

import errno
import importlib.util
import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram import hear
from espnet2_gram.downstream import embeddings
from espnet2_gram.bin import (cls_train, convert_gramt, doa_inference, doa_train,
                              extract_embeddings, gram_train, score_doa, seld_inference,
                              seld_train)
from espnet2_gram.downstream.heads import IdentityEncoder
from espnet2_gram.downstream.localization.doa_model import ESPnetDOAModel
from espnet2_gram.pretrained.packing import main as pack_main
from espnet2_gram.utils import datacheck
from espnet2_gram.utils.cli import run

from fault_world import FS
from test_faults_untrusted import call, one_line_error

TRAIN, VALID = "--train_data_path_and_name_and_type", "--valid_data_path_and_name_and_type"


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def expect_error(main, argv, capsys, *named, code=1):
    """Run a failing entry point; its one ``ERROR:`` line holds every text in ``named``."""
    got, err = call(main, argv, capsys)
    assert got == code, err[-2000:]
    line = one_line_error(err) if code == 1 else err
    for text in named:
        assert str(text) in line, line
    return line


# ------------------------------------------------------------------ gram_train: audio check
def bad_clip(kind: str, path: Path) -> str:
    """Write a bad clip of ``kind`` at ``path``; returns what the message must say."""
    if kind == "missing":
        return "audio file not found"
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage" * 10)
        return "unreadable audio"
    if kind == "empty":
        sf.write(path, np.zeros((0, 2), np.float32), FS)
        return "empty audio"
    if kind == "wrong_rate":
        sf.write(path, np.zeros((16000, 2), np.float32), 2 * FS)
        return f"{2 * FS} Hz, but --frontend binaural expects {FS} Hz"
    if kind == "wrong_channels":
        sf.write(path, np.zeros((FS, 3), np.float32), FS)
        return "3 channel(s), but --frontend binaural expects 2"
    raise AssertionError(kind)


BAD_CLIPS = ["missing", "corrupt", "empty", "wrong_rate", "wrong_channels"]


def scp_with_bad_clip(world, tmp_path, kind):
    scp = tmp_path / "train.scp"
    bad = tmp_path / "bad.wav"
    expected = bad_clip(kind, bad)
    scp.write_text(world["train_scp"].read_text() + f"bad {bad}\n")
    return scp, bad, expected


def gram_data_argv(world, out, train_scp, *extra):
    return ["--config", world["config"], "--output_dir", out, TRAIN, f"{train_scp},speech,sound",
            VALID, f"{world['valid_scp']},speech,sound", *extra]


@pytest.mark.parametrize("kind", BAD_CLIPS)
def test_gram_train_refuses_bad_audio_before_training(world, tmp_path, capsys, kind):
    scp, bad, expected = scp_with_bad_clip(world, tmp_path, kind)
    out = tmp_path / "exp"
    line = expect_error(gram_train.main, gram_data_argv(world, out, scp), capsys,
                        TRAIN, scp, "2 ok, 1 bad", f"bad: {bad}: {expected}",
                        "--audio_check skip")
    assert line.count("bad:") == 1
    assert not out.exists()


@pytest.mark.parametrize("kind", BAD_CLIPS)
def test_gram_train_skips_bad_audio_when_asked(world, tmp_path, capsys, kind):
    scp, bad, expected = scp_with_bad_clip(world, tmp_path, kind)
    out = tmp_path / "exp"
    run(gram_train.main, [str(a) for a in gram_data_argv(
        world, out, scp, "--audio_check", "skip", "--train_shape_file", scp, "--dry_run", "true")])
    err = capsys.readouterr().err
    filtered = out / "data_check" / "train" / scp.name
    assert f"{scp}: 2 ok, 1 bad" in err and str(filtered) in err
    assert sorted(datacheck.read_kv(filtered)) == ["u0", "u1"]
    assert expected in (out / "data_check" / "train" / "bad_audio").read_text()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train_data_path_and_name_and_type"] == [[str(filtered), "speech", "sound"]]
    # the batches' key order: the filtered list, shuffled
    assert config["train_shape_file"] == [str(out / "train_order.scp")]
    assert sorted(datacheck.read_kv(out / "train_order.scp")) == ["u0", "u1"]


def test_gram_train_skip_with_nothing_usable_left_refuses(world, tmp_path, capsys):
    scp = tmp_path / "train.scp"
    scp.write_text(f"a {tmp_path / 'gone.wav'}\n")
    out = tmp_path / "exp"
    expect_error(gram_train.main, gram_data_argv(world, out, scp, "--audio_check", "skip"),
                 capsys, scp, "0 ok, 1 bad", "gone.wav")
    assert not out.exists()


def test_gram_train_full_disk_while_filtering_leaves_nothing(world, tmp_path, capsys,
                                                             monkeypatch):
    scp, bad, _ = scp_with_bad_clip(world, tmp_path, "missing")
    out = tmp_path / "exp"
    monkeypatch.setattr(datacheck, "write_kv", full_disk)
    expect_error(gram_train.main, gram_data_argv(world, out, scp, "--audio_check", "skip"),
                 capsys, "No space left on device", out / "data_check" / "train")
    assert not list(out.rglob("*.scp")) and not (out / "config.yaml").exists()


@pytest.mark.parametrize("case", ["duplicate_id", "empty_scp", "missing_scp", "valid_split",
                                  "noise_missing", "bank_missing"])
def test_gram_train_bad_lists(world, tmp_path, capsys, case):
    scp, out = tmp_path / "train.scp", tmp_path / "exp"
    extra = []
    if case == "duplicate_id":
        scp.write_text(world["train_scp"].read_text() * 2)
        named = [scp, "duplicated key 'u0'"]
    elif case == "empty_scp":
        scp.write_text("")
        named = [scp, "0 lines found"]
    elif case == "missing_scp":
        named = [TRAIN, scp, "no such file"]
    elif case == "valid_split":
        shutil.copyfile(world["train_scp"], scp)
        valid = tmp_path / "valid.scp"
        valid.write_text(world["valid_scp"].read_text() + f"x {tmp_path / 'nope.wav'}\n")
        named = [VALID, valid, "nope.wav: audio file not found"]
        argv = gram_data_argv(world, out, scp)
        argv[argv.index(f"{world['valid_scp']},speech,sound")] = f"{valid},speech,sound"
    elif case == "noise_missing":
        shutil.copyfile(world["train_scp"], scp)
        noise = tmp_path / "noise.scp"
        noise.write_text(f"n0 {tmp_path / 'no_noise.wav'}\n")
        extra = ["--scene_conf", f"noise_scp={noise}"]
        named = ["--scene_conf noise_scp", noise, "no_noise.wav: audio file not found"]
    elif case == "bank_missing":
        shutil.copyfile(world["train_scp"], scp)
        extra = ["--scene_conf", f"bank_dir={tmp_path / 'no_bank'}"]
        named = ["no_bank"]
    if case != "valid_split":
        argv = gram_data_argv(world, out, scp, *extra)
    expect_error(gram_train.main, argv, capsys, *named)
    assert not out.exists()


@pytest.mark.parametrize("argv, named", [
    (["--audio_check", "maybe"], "--audio_check"),
    (["--frontend", "stereo"], "--frontend"),
    ([TRAIN, "only,two"], TRAIN),
])
def test_gram_train_bad_options_are_usage_errors(world, tmp_path, capsys, argv, named):
    expect_error(gram_train.main, gram_data_argv(world, tmp_path / "exp", world["train_scp"],
                                                 *argv), capsys, named, code=2)


def test_gram_train_unknown_config_key_is_a_usage_error(world, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(world["config"].read_text() + "renderr: 1\n")
    argv = gram_data_argv(world, tmp_path / "exp", world["train_scp"])
    argv[1] = config
    expect_error(gram_train.main, argv, capsys, "renderr", code=2)
    assert not (tmp_path / "exp").exists()


# ------------------------------------------------------------------ downstream training
def write_labels(path: Path, lines) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def train_argv(feats, label, name, out, *extra, label_type="text"):
    data = [f"{feats},speech,kaldi_ark", f"{label},{name},{label_type}"]
    return [a for d in data for o in (TRAIN, VALID) for a in (o, d)] + [
        "--output_dir", out, "--input_size", "4", *extra]


DOA_CASES = {
    "out_of_range": (["f0 10 0 1", "f1 400 0 1", "f2 0 0 1"], "azimuth"),
    "mismatched_ids": (["f0 10 0 1", "f1 20 0 1", "g9 0 0 1"], "utterance ids disagree"),
    "duplicate_id": (["f0 10 0 1", "f0 20 0 1", "f2 0 0 1"], "duplicated key 'f0'"),
    "not_numbers": (["f0 10 0 1", "f1 left up 1", "f2 0 0 1"], ":2: bad azimuth 'left'"),
}


@pytest.mark.parametrize("case", sorted(DOA_CASES))
def test_doa_train_bad_labels(world, tmp_path, capsys, case):
    lines, text = DOA_CASES[case]
    label = write_labels(tmp_path / "utt2doa", lines)
    out = tmp_path / "exp"
    expect_error(doa_train.main, train_argv(world["feats"], label, "doa", out), capsys,
                 label, text)
    assert not out.exists()


def test_doa_train_missing_feats(world, tmp_path, capsys):
    out = tmp_path / "exp"
    expect_error(doa_train.main, train_argv(tmp_path / "feats.scp", world["utt2doa"], "doa",
                                            out), capsys, tmp_path / "feats.scp", "no such file")
    assert not out.exists()


def test_doa_train_missing_init_param(world, tmp_path, capsys):
    config = tmp_path / "doa.yaml"
    config.write_text(yaml.safe_dump({"encoder": "identity", "model": "doa", "batch_size": 2,
                                      "batch_type": "unsorted", "max_epoch": 1,
                                      "use_tensorboard": False, "use_matplotlib": False}))
    out = tmp_path / "exp"
    argv = train_argv(world["feats"], world["utt2doa"], "doa", out, "--config", config,
                      "--train_shape_file", world["feats"], "--valid_shape_file",
                      world["feats"], "--init_param", tmp_path / "nowhere.pth", "--ngpu", "0",
                      label_type="text_float")
    expect_error(doa_train.main, argv, capsys, "--init_param", tmp_path / "nowhere.pth",
                 "no such file")
    assert not list(out.glob("*.pth"))


@pytest.mark.parametrize("case", ["unseen_label", "mismatched_ids", "missing_token_list"])
def test_cls_train_bad_labels(world, tmp_path, capsys, case):
    tokens = write_labels(tmp_path / "tokens.txt", ["dog", "cat", "<unk>"])
    label = write_labels(tmp_path / "utt2label", ["f0 dog", "f1 cat", "f2 dog"])
    named = [label]
    if case == "unseen_label":
        write_labels(label, ["f0 dog", "f1 cow", "f2 dog"])
        named = [label, "'cow' (f1)"]
    elif case == "mismatched_ids":
        write_labels(label, ["f0 dog", "f1 cat"])
        named = [label, "lacks ['f2']"]
    else:
        tokens = tmp_path / "no_tokens.txt"
        named = [tokens]
    out = tmp_path / "exp"
    expect_error(cls_train.main, train_argv(world["feats"], label, "label", out,
                                            "--token_list", tokens), capsys, *named)
    assert not out.exists()


@pytest.mark.parametrize("case", ["mismatched_ids", "missing_tracks"])
def test_seld_train_bad_data(world, tmp_path, capsys, case):
    tracks = tmp_path / "tracks.scp"
    if case == "mismatched_ids":
        write_labels(tracks, ["f0 a.npy", "f1 b.npy"])
        named = [tracks, "lacks ['f2']"]
    else:
        named = [tracks, "no such file"]
    out = tmp_path / "exp"
    expect_error(seld_train.main, train_argv(world["feats"], tracks, "tracks", out), capsys,
                 *named)
    assert not out.exists()


# ------------------------------------------------------------------ DoA / SELD inference
@pytest.fixture(scope="module")
def doa_model(world):
    """A DoA model of the world's DoA config, saved as ESPnet saves one."""
    from espnet2_gram.tasks.doa import DOATask

    model, _ = DOATask.build_model_from_file(world["doa_config"], None, "cpu")
    path = world["root"] / "doa_model.pth"
    torch.save(model.state_dict(), path)
    return path


def doa_inference_argv(world, model, out, feats=None, config=None):
    return ["--train_config", config or world["doa_config"], "--model_file", model,
            "--output_dir", out, "--data_path_and_name_and_type",
            f"{feats or world['feats']},speech,kaldi_ark"]


@pytest.mark.parametrize("case", ["missing_config", "missing_model", "other_architecture",
                                  "missing_feats", "bad_yaml_config"])
def test_doa_inference_bad_inputs_leave_no_output(world, doa_model, tmp_path, capsys, case):
    out = tmp_path / "decode"
    out.mkdir()
    (out / "utt2doa").write_text("f0 1 2 1.0\n")  # a stale result of an earlier run
    model, feats, config = doa_model, None, None
    if case == "missing_config":
        config = tmp_path / "none.yaml"
        named = ["--train_config", config]
    elif case == "missing_model":
        model = tmp_path / "none.pth"
        named = ["--model_file", model]
    elif case == "other_architecture":
        model = tmp_path / "other.pth"
        torch.save(ESPnetDOAModel(IdentityEncoder(4), hidden_sizes=[3]).state_dict(), model)
        named = [model, "does not match its configuration"]
    elif case == "missing_feats":
        feats = tmp_path / "feats.scp"
        named = ["--data_path_and_name_and_type", feats, "no such file"]
    else:
        config = tmp_path / "bad.yaml"
        config.write_text("encoder: [identity\n")
        named = [config]
    expect_error(doa_inference.main, doa_inference_argv(world, model, out, feats, config),
                 capsys, *named)
    assert not (out / "utt2doa").exists()


def test_doa_inference_full_disk_names_the_output(world, doa_model, tmp_path, capsys,
                                                  monkeypatch):
    out = tmp_path / "decode"
    monkeypatch.setattr(doa_inference, "write_kv", full_disk)
    expect_error(doa_inference.main, doa_inference_argv(world, doa_model, out), capsys,
                 out / "utt2doa", "No space left on device")
    assert not (out / "utt2doa").exists()


@pytest.mark.parametrize("case", ["malformed_placement", "ids_disagree", "unknown_recording",
                                  "missing_chunk_dir"])
def test_seld_inference_bad_chunk_dir(world, tmp_path, capsys, case):
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    (chunks / "recordings").write_text("r0 30\n")
    placement = {"f0": "r0 0 10", "f1": "r0 10 10", "f2": "r0 20 10"}
    if case == "malformed_placement":
        placement["f1"] = "r0 ten 10"
        named = [chunks / "utt2recording", "f1", "expected 'recording start frames'"]
    elif case == "ids_disagree":
        del placement["f2"]
        named = ["--chunk_dir", "has ['f2']"]
    elif case == "unknown_recording":
        placement["f2"] = "r9 20 10"
        named = [chunks / "recordings", "['r9']"]
    else:
        shutil.rmtree(chunks)
        named = [chunks / "recordings", "no such file"]
    if chunks.exists():
        write_labels(chunks / "utt2recording", [f"{k} {v}" for k, v in placement.items()])
    out = tmp_path / "decode"
    (out / "pred").mkdir(parents=True)
    (out / "pred" / "r0.csv").write_text("stale\n")
    expect_error(seld_inference.main, [
        "--train_config", tmp_path / "c.yaml", "--model_file", tmp_path / "m.pth",
        "--chunk_dir", chunks, "--output_dir", out, "--data_path_and_name_and_type",
        f"{world['feats']},speech,kaldi_ark"], capsys, *named)
    assert not (out / "pred").exists()


# ------------------------------------------------------------------ embedding extraction
def data_dir_with(world, tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    lines = (world["data"] / "wav.scp").read_text()
    bad = tmp_path / "bad.wav"
    if kind == "nan":
        x = np.full((FS // 2, 2), 0.1, np.float32)
        x[100] = np.nan
        sf.write(bad, x, FS, subtype="FLOAT")
        text = "NaN or inf"
    elif kind == "silent":
        sf.write(bad, np.zeros((FS // 2, 2), np.float32), FS)
        text = None
    elif kind == "duplicate_id":
        (data / "wav.scp").write_text(lines + lines)
        return data, None, "duplicated key 'u0'"
    elif kind == "three_channels":
        sf.write(bad, np.full((FS // 2, 3), 0.1, np.float32), FS)
        text = "3 channel(s), but the model takes 2"
    else:
        text = {"missing": "audio file not found", "corrupt": "unreadable audio",
                "empty": "empty audio"}[kind]
        if kind != "missing":
            bad_clip(kind, bad)
    (data / "wav.scp").write_text(lines + f"bad {bad}\n")
    return data, bad, text


@pytest.mark.parametrize("kind", ["nan", "missing", "corrupt", "empty", "duplicate_id",
                                  "three_channels"])
def test_extract_embeddings_bad_audio_leaves_no_features(world, tmp_path, capsys, kind):
    data, bad, text = data_dir_with(world, tmp_path, kind)
    out_root = tmp_path / "emb"
    stale = out_root / "logmel" / "data"
    stale.mkdir(parents=True)
    for name in embeddings.OUTPUTS:
        (stale / name).write_text("stale\n")
    expect_error(extract_embeddings.main, [
        "--extractor", "logmel", "--model_path", world["packed"], "--data_dir", data,
        "--out_root", out_root], capsys, *[t for t in (bad, text) if t])
    assert not [p for p in stale.iterdir() if p.name in embeddings.OUTPUTS]


def test_extract_embeddings_silent_audio_gives_finite_features(world, tmp_path):
    data, _, _ = data_dir_with(world, tmp_path, "silent")
    run(extract_embeddings.main, ["--extractor", "gram", "--model_path", str(world["packed"]),
                                  "--data_dir", str(data), "--out_root", str(tmp_path / "emb")])
    feats = kaldiio.load_scp(str(tmp_path / "emb" / "gram" / "data" / "feats.scp"))
    assert all(np.isfinite(feats[k]).all() for k in feats)


def test_extract_embeddings_missing_model(world, tmp_path, capsys):
    expect_error(extract_embeddings.main, [
        "--extractor", "gram", "--model_path", tmp_path / "none", "--data_dir", world["data"],
        "--out_root", tmp_path / "emb"], capsys, "--model_path", tmp_path / "none")
    assert not (tmp_path / "emb").exists()


def test_extract_embeddings_out_name_needs_one_extractor_and_a_folder_name(world, tmp_path,
                                                                          capsys):
    for extra, got in ((["--extractor", "logmel"], "got 2"), ([], "got 1")):
        name = "gram_ep4" if extra else "../up"
        expect_error(extract_embeddings.main, [
            "--extractor", "gram", *extra, "--out_name", name, "--model_path", world["packed"],
            "--data_dir", world["data"], "--out_root", tmp_path / "emb"], capsys,
            f"--out_name '{name}'", got, code=2)
    assert not (tmp_path / "emb").exists()


def test_extract_embeddings_full_disk_leaves_nothing_partial(world, tmp_path, capsys,
                                                            monkeypatch):
    out = tmp_path / "emb" / "logmel" / "data"
    monkeypatch.setattr(embeddings, "write_kv", full_disk)
    expect_error(extract_embeddings.main, [
        "--extractor", "logmel", "--model_path", world["packed"], "--data_dir", world["data"],
        "--out_root", tmp_path / "emb"], capsys, out, "No space left on device")
    assert not [p for p in out.iterdir() if p.name in embeddings.OUTPUTS]


# ------------------------------------------------------------------ packing, conversion, HEAR
def exp_dir(world, tmp_path, case):
    exp = tmp_path / "exp"
    exp.mkdir()
    config = world["exp"] / "config.yaml"
    weights = world["exp"] / "valid.loss.best.pth"
    if case == "no_config":
        return exp, [exp / "config.yaml", "not a GRAM training directory"]
    shutil.copyfile(config, exp / "config.yaml")
    if case == "no_model":
        return exp, [exp, "no model file"]
    shutil.copyfile(weights, exp / "valid.loss.best.pth")
    if case == "other_architecture":
        state = torch.load(weights, weights_only=True)
        del state["encoder.norm.weight"]
        torch.save(state, exp / "valid.loss.best.pth")
        return exp, [exp / "valid.loss.best.pth", "missing keys ['encoder.norm.weight']"]
    if case == "bad_yaml":
        (exp / "config.yaml").write_text("frontend: [binaural\n")
        return exp, [exp / "config.yaml", "not valid YAML"]
    if case == "not_a_mapping":
        (exp / "config.yaml").write_text("- binaural\n")
        return exp, [exp / "config.yaml", "expected a mapping"]
    if case == "unbuildable":
        (exp / "config.yaml").write_text(config.read_text().replace("binaural", "stereo"))
        return exp, [exp / "config.yaml", "does not build a GRAM model", "stereo"]
    return exp, []


@pytest.mark.parametrize("case", ["no_config", "no_model", "other_architecture", "bad_yaml",
                                  "not_a_mapping", "unbuildable", "missing_stats"])
def test_pack_gram_bad_training_dir(world, tmp_path, capsys, case):
    exp, named = exp_dir(world, tmp_path, case)
    extra = []
    if case == "missing_stats":
        extra = ["--stats_file", tmp_path / "feats_stats.npz"]
        named = ["--stats_file", tmp_path / "feats_stats.npz"]
    out = tmp_path / "packed" / "gram"
    expect_error(pack_main, ["--exp_dir", exp, "--out_dir", out, *extra], capsys, *named)
    assert not out.exists() and not out.with_suffix(".zip").exists()


def test_pack_gram_full_disk_leaves_the_old_pack_alone_and_no_temporaries(world, tmp_path,
                                                                          capsys, monkeypatch):
    exp, _ = exp_dir(world, tmp_path, "good")
    out = tmp_path / "packed" / "gram"
    run(pack_main, ["--exp_dir", str(exp), "--out_dir", str(out)])
    before = {p: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    expect_error(pack_main, ["--exp_dir", exp, "--out_dir", out], capsys,
                 "No space left on device", "model.pth")
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["gram", "gram.zip"]


@pytest.mark.parametrize("case", ["missing", "bad_safetensors", "bad_format"])
def test_convert_gramt_bad_inputs(tmp_path, capsys, case):
    checkpoint = tmp_path / "model.safetensors"
    argv = ["--checkpoint", checkpoint, "--format", "binaural", "--out_dir", tmp_path / "out"]
    code, named = 1, ["--checkpoint", checkpoint, "no such file"]
    if case == "bad_safetensors":
        checkpoint.write_bytes((10).to_bytes(8, "little") + b"{not json}")
        # The safetensors package's reader where it is importable, else our own.
        readable = importlib.util.find_spec("safetensors") is not None
        named = [checkpoint, "not a readable safetensors file" if readable
                 else "not a safetensors file"]
    elif case == "bad_format":
        argv[3], code, named = "quadraphonic", 2, ["--format", "quadraphonic"]
    expect_error(convert_gramt.main, argv, capsys, *named, code=code)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["empty_path", "missing", "bad_yaml", "unbuildable",
                                  "other_architecture"])
def test_hear_load_model_bad_inputs(world, tmp_path, case):
    if case == "empty_path":
        path, named = "", ["packed GRAM model"]
    elif case == "missing":
        path, named = tmp_path / "none", [tmp_path / "none"]
    else:
        path, named = exp_dir(world, tmp_path, case)
    with pytest.raises(ValueError if case != "missing" else FileNotFoundError) as e:
        hear.load_model(str(path))
    for text in named:
        assert str(text) in str(e.value)


# ------------------------------------------------------------------ scoring
@pytest.mark.parametrize("case", ["missing_hyp", "mismatched_ids", "malformed_hyp"])
def test_score_doa_bad_inputs(world, tmp_path, capsys, case):
    hyp = tmp_path / "hyp"
    if case == "mismatched_ids":
        write_labels(hyp, ["f0 1 2", "f1 3 4"])
        named = ["--hyp", hyp, "f2"]
    elif case == "malformed_hyp":
        write_labels(hyp, ["f0 1 2", "f1 three 4", "f2 5 6"])
        named = [f"{hyp}:2: bad azimuth 'three'"]
    else:
        named = [hyp]
    out = tmp_path / "scores"
    expect_error(score_doa.main, ["--ref", world["utt2doa"], "--hyp", hyp, "--out_dir", out,
                                  "--format", "foa", "--model", "gram", "--mode", "probe",
                                  "--dataset", "toy"], capsys, *named)
    assert not (out / "scores.json").exists()


# ------------------------------------------------------------------ gram_train: device options
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gram_train_ngpu_without_cuda_is_refused(world, tmp_path, capsys):
    out = tmp_path / "exp"
    expect_error(gram_train.main, gram_data_argv(world, out, world["train_scp"], "--ngpu", "1"),
                 capsys, "--ngpu 1", "CUDA is not available", "--ngpu 0")
    assert not out.exists()


def test_gram_train_amp_on_cpu_says_it_does_nothing(world, tmp_path, capsys):
    out = tmp_path / "exp"
    run(gram_train.main, [str(a) for a in gram_data_argv(
        world, out, world["train_scp"], "--use_amp", "true", "--dry_run", "true")])
    assert "--use_amp true does nothing with --ngpu 0" in capsys.readouterr().err


def test_gram_train_compile_without_torch_compile_is_refused(world, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.delattr(torch, "compile")
    out = tmp_path / "exp"
    expect_error(gram_train.main, gram_data_argv(world, out, world["train_scp"],
                                                 "--compile_model", "true"),
                 capsys, "--compile_model true", "has no torch.compile")
    assert not out.exists()
