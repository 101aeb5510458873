"""Fault matrix, untrusted files: hostile or broken checkpoints, packed archives and scp files
given to the plugin's entry points are refused with one line naming the file, and nothing in
them runs (a payload would create a marker file) or is written outside its place.

Entry points are called in-process (``espnet2_gram.utils.cli.run(main, argv)``), on tiny data
made here; ESPnet's task modules are imported once for the module.
"""

import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from espnet2_gram import hear
from espnet2_gram.bin import (asr_train, cls_inference, cls_train, convert_gramt, doa_inference,
                              doa_train, extract_embeddings, gram_train, seld_train)
from espnet2_gram.pretrained.packing import main as pack_main
from espnet2_gram.simulation.rir_bank import META, SCP, RIRBank
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.safe_load import FORCE_ENV
from espnet2_gram.utils.scp import ALLOW_PIPES_ENV, UnsafeScpError, check_scp




def call(main, argv, capsys):
    """``(exit code, stderr)`` of an entry point that must fail."""
    with pytest.raises(SystemExit) as e:
        run(main, [str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    """The ``ERROR:`` line of ``cli.run`` (there must be exactly one, and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def gram_argv(world, out, *extra):
    return ["--config", world["config"], "--ngpu", "0", "--output_dir", out,
            "--train_data_path_and_name_and_type", f"{world['train_scp']},speech,sound",
            "--valid_data_path_and_name_and_type", f"{world['valid_scp']},speech,sound",
            "--train_shape_file", world["train_scp"], "--valid_shape_file", world["valid_scp"],
            *extra]


# ------------------------------------------------------------------ hostile / broken .pth
def make_checkpoint(kind: str, path: Path, marker: Path) -> Path:
    if kind == "payload":
        torch.save({"w": torch.zeros(1), "x": Payload(marker)}, path)
    elif kind == "legacy_payload":  # a plain pickle, not torch's zip format
        with open(path, "wb") as f:
            pickle.dump({"x": Payload(marker)}, f)
    elif kind == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:700])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_text("not a checkpoint\n")
    return path


def through_pack_gram(world, tmp_path, bad, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    shutil.copyfile(world["config"], exp / "config.yaml")
    shutil.copyfile(bad, exp / "valid.loss.best.pth")
    code, err = call(pack_main, ["--exp_dir", exp, "--out_dir", tmp_path / "packed"], capsys)
    assert not (tmp_path / "packed").exists() and not (tmp_path / "packed.zip").exists()
    return code, err, exp / "valid.loss.best.pth"


def through_hear(world, tmp_path, bad, capsys):
    packed = tmp_path / "packed"
    shutil.copytree(world["packed"], packed)
    shutil.copyfile(bad, packed / "model.pth")
    with pytest.raises(ValueError) as e:
        hear.load_model(str(packed))
    return 1, f"ERROR: {e.value}", packed / "model.pth"


def through_convert(world, tmp_path, bad, capsys):
    code, err = call(convert_gramt.main, ["--checkpoint", bad, "--format", "binaural",
                                          "--out_dir", tmp_path / "out"], capsys)
    assert not (tmp_path / "out").exists()
    return code, err, bad


def through_doa_inference(world, tmp_path, bad, capsys):
    code, err = call(doa_inference.main, [
        "--train_config", world["doa_config"], "--model_file", bad, "--output_dir",
        tmp_path / "decode", "--data_path_and_name_and_type", f"{world['feats']},speech,kaldi_ark"],
        capsys)
    assert not (tmp_path / "decode" / "utt2doa").exists()
    return code, err, bad


def through_init_param(world, tmp_path, bad, capsys):
    out = tmp_path / "exp"
    code, err = call(gram_train.main, gram_argv(world, out, "--init_param", bad), capsys)
    assert not list(out.glob("*.pth"))
    return code, err, bad


def through_resume(world, tmp_path, bad, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    shutil.copyfile(bad, out / "checkpoint.pth")
    code, err = call(gram_train.main, gram_argv(world, out, "--resume", "true"), capsys)
    assert not list(out.glob("*epoch.pth"))
    return code, err, out / "checkpoint.pth"


def through_espnet_build_model_from_file(world, tmp_path, bad, capsys):
    """ESPnet's loader used by cls_inference / asr_inference, after the entry point's guard."""
    from espnet2_gram.tasks.gram import GRAMTask
    from espnet2_gram.utils.safe_load import guard_espnet_loading

    guard_espnet_loading()
    with pytest.raises(ValueError) as e:
        GRAMTask.build_model_from_file(world["config"], bad, "cpu")
    return 1, f"ERROR: {e.value}", bad


LOADERS = {"pack_gram": through_pack_gram, "hear": through_hear, "convert": through_convert,
           "doa_inference": through_doa_inference, "init_param": through_init_param,
           "resume": through_resume, "build_model_from_file": through_espnet_build_model_from_file}


@pytest.mark.parametrize("kind", ["payload", "legacy_payload", "truncated", "empty", "garbage"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_bad_checkpoint_is_refused_naming_it(world, tmp_path, capsys, loader, kind):
    marker = tmp_path / "MARKER"
    bad = make_checkpoint(kind, tmp_path / f"{kind}.pth", marker)
    code, err, named = LOADERS[loader](world, tmp_path, bad, capsys)
    line = one_line_error(err)
    assert code == 1
    assert str(named) in line
    assert ("refused: unpickling it would call posix.system" if kind == "payload"
            else "not a readable torch checkpoint") in line
    assert not marker.exists(), "the payload ran"


def test_cls_inference_refuses_a_hostile_model_file(world, tmp_path, capsys):
    """ESPnet's own cls_inference loads with weights_only=False; the plugin's entry point not."""
    from espnet2.tasks.cls import CLSTask

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("a\nb\n<unk>\n")
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"frontend": None, "normalize": None, "specaug": None,
                                    "encoder": "probe", "encoder_conf": {"hidden_sizes": [8]}}))
    args = CLSTask.get_parser().parse_args(["--config", str(base), "--token_list", str(tokens),
                                            "--input_size", "4"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in vars(args).items()
                                      if not k.endswith("data_path_and_name_and_type")}))
    marker = tmp_path / "MARKER"
    bad = make_checkpoint("payload", tmp_path / "model.pth", marker)
    code, err = call(cls_inference.main, [
        "--classification_train_config", config, "--classification_model_file", bad,
        "--data_path_and_name_and_type", f"{world['feats']},speech,kaldi_ark",
        "--output_dir", tmp_path / "decode", "--ngpu", "0"], capsys)
    assert code == 1 and str(bad) in one_line_error(err) and not marker.exists()


def test_espnet_training_checkpoints_still_resume(world, tmp_path, capsys):
    """Weights-only loading accepts what ESPnet's own trainer writes (numpy statistics)."""
    out = tmp_path / "exp"
    argv = [str(a) for a in gram_argv(world, out, "--resume", "true")]
    run(gram_train.main, argv)
    run(gram_train.main, argv + ["--max_epoch", "2"])
    assert (out / "2epoch.pth").is_file()
    assert os.environ[FORCE_ENV] == "1"


# ------------------------------------------------------------------ hostile / broken .zip
def write_archive(path: Path, members: dict, meta: dict = None, symlink: str = None) -> Path:
    """A packed-model zip: ``members`` {name: bytes}; ``meta`` None: a correct meta.yaml."""
    if meta is None:
        meta = {"files": {"model_file": "exp/model.pth"},
                "yaml_files": {"train_config": "exp/config.yaml"}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.yaml", yaml.safe_dump(meta))
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc/passwd")
    return path


def make_archive(kind: str, world, tmp_path: Path, marker: Path):
    """``(zip, text the message must hold)``."""
    config = (world["packed"] / "config.yaml").read_bytes()
    weights = (world["packed"] / "model.pth").read_bytes()
    good = {"exp/config.yaml": config, "exp/model.pth": weights}
    path = tmp_path / "model.zip"
    if kind == "dotdot_member":
        write_archive(path, {**good, "../escaped.txt": b"x"})
        return path, "'../escaped.txt' is a path with a '..' component"
    if kind == "absolute_member":
        write_archive(path, {**good, f"{tmp_path}/abs_escaped.txt": b"x"})
        return path, "is an absolute path"
    if kind == "symlink_member":
        write_archive(path, good, symlink="exp/link")
        return path, "'exp/link' is a symbolic link"
    if kind == "dotdot_meta":
        write_archive(path, good, meta={"files": {"model_file": "../../model.pth"},
                                        "yaml_files": {"train_config": "exp/config.yaml"}})
        return path, "'../../model.pth'"
    if kind == "no_meta":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("exp/model.pth", weights)
        return path, "no meta.yaml"
    if kind == "missing_member":
        write_archive(path, {"exp/config.yaml": config})
        return path, "which the archive lacks"
    if kind == "truncated":
        write_archive(path, good)
        path.write_bytes(path.read_bytes()[:len(weights) // 2])
        return path, "not a readable zip archive"
    if kind == "not_a_zip":
        path.write_text("hello")
        return path, "not a readable zip archive"
    if kind == "payload_weights":
        payload = tmp_path / "payload.pth"
        make_checkpoint("payload", payload, marker)
        write_archive(path, {**good, "exp/model.pth": payload.read_bytes()})
        return path, f"{path}:exp/model.pth: refused"
    if kind == "bad_yaml_config":
        write_archive(path, {**good, "exp/config.yaml": b"frontend: [unclosed\n"})
        return path, f"{path}:exp/config.yaml: not valid YAML"
    raise AssertionError(kind)


ARCHIVES = ["dotdot_member", "absolute_member", "symlink_member", "dotdot_meta", "no_meta",
            "missing_member", "truncated", "not_a_zip", "payload_weights", "bad_yaml_config"]


@pytest.mark.parametrize("kind", ARCHIVES)
@pytest.mark.parametrize("entry", ["hear", "extract_embeddings"])
def test_bad_archive_is_refused_and_nothing_is_extracted(world, tmp_path, capsys, entry, kind):
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "MARKER"
    archive, expected = make_archive(kind, world, work, marker)
    before = sorted(tmp_path.rglob("*"))
    if entry == "hear":
        with pytest.raises(ValueError) as e:
            hear.load_model(str(archive))
        line = f"ERROR: {e.value}"
    else:
        out = tmp_path / "emb"
        code, err = call(extract_embeddings.main, [
            "--extractor", "gram", "--model_path", archive, "--data_dir", world["data"],
            "--out_root", out], capsys)
        line = one_line_error(err)
        assert code == 1 and not out.exists()
    assert str(archive) in line and expected in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing extracted, here or above
    assert not (tmp_path / "escaped.txt").exists() and not (work.parent / "escaped.txt").exists()
    assert not marker.exists()


def test_a_good_archive_loads_as_the_directory(world):
    a = hear.load_model(str(world["packed"]))
    b = hear.load_model(str(world["packed"].with_suffix(".zip")))
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k


# ------------------------------------------------------------------ command entries in scp files
PIPES = {"trailing_pipe": "touch {marker} |", "leading_pipe": "| touch {marker}"}


def pipe_scp(path: Path, good_lines: str, form: str, marker: Path) -> Path:
    path.write_text(good_lines + f"evil {PIPES[form].format(marker=marker)}\n")
    return path


def _feats_site(world, tmp_path, form, marker, capsys, main, extra, name="doa"):
    scp = pipe_scp(tmp_path / "feats.scp", world["feats"].read_text(), form, marker)
    label = tmp_path / "labels"
    label.write_text(world["utt2doa"].read_text() + "evil 0 0 1.0\n")
    data = [f"{scp},speech,kaldi_ark", f"{label},{name},text_float"]
    argv = [a for d in data for o in ("--train", "--valid")
            for a in (f"{o}_data_path_and_name_and_type", d)]
    code, err = call(main, argv + ["--output_dir", tmp_path / "exp", *extra], capsys)
    return code, err, scp, 4


def site_doa_train(world, tmp_path, form, marker, capsys):
    return _feats_site(world, tmp_path, form, marker, capsys, doa_train.main, ["--input_size", 4])


def site_seld_train(world, tmp_path, form, marker, capsys):
    return _feats_site(world, tmp_path, form, marker, capsys, seld_train.main,
                       ["--input_size", 4], name="tracks")


def site_cls_train(world, tmp_path, form, marker, capsys):
    return _feats_site(world, tmp_path, form, marker, capsys, cls_train.main,
                       ["--input_size", 4], name="label")


def site_asr_train(world, tmp_path, form, marker, capsys):
    return _feats_site(world, tmp_path, form, marker, capsys, asr_train.main, [], name="text")


def site_doa_inference(world, tmp_path, form, marker, capsys):
    scp = pipe_scp(tmp_path / "feats.scp", world["feats"].read_text(), form, marker)
    code, err = call(doa_inference.main, [
        "--train_config", world["doa_config"], "--model_file", tmp_path / "model.pth",
        "--output_dir", tmp_path / "decode", "--data_path_and_name_and_type",
        f"{scp},speech,kaldi_ark"], capsys)
    return code, err, scp, 4


def site_cls_inference(world, tmp_path, form, marker, capsys):
    scp = pipe_scp(tmp_path / "feats.scp", world["feats"].read_text(), form, marker)
    code, err = call(cls_inference.main, [
        "--classification_train_config", tmp_path / "c.yaml", "--classification_model_file",
        tmp_path / "m.pth", "--data_path_and_name_and_type", f"{scp},speech,kaldi_ark",
        "--output_dir", tmp_path / "decode"], capsys)
    return code, err, scp, 4


def site_gram_train_wav_scp(world, tmp_path, form, marker, capsys):
    scp = pipe_scp(tmp_path / "wav.scp", world["train_scp"].read_text(), form, marker)
    code, err = call(gram_train.main, [
        "--config", world["config"], "--output_dir", tmp_path / "exp",
        "--train_data_path_and_name_and_type", f"{scp},speech,sound",
        "--valid_data_path_and_name_and_type", f"{world['valid_scp']},speech,sound"], capsys)
    return code, err, scp, 3


def site_gram_train_noise_scp(world, tmp_path, form, marker, capsys):
    noise = pipe_scp(tmp_path / "noise.scp", world["valid_scp"].read_text(), form, marker)
    code, err = call(gram_train.main, gram_argv(world, tmp_path / "exp", "--scene_conf",
                                                f"noise_scp={noise}"), capsys)
    return code, err, noise, 3


def site_extract_embeddings(world, tmp_path, form, marker, capsys):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    scp = pipe_scp(data / "wav.scp", (world["data"] / "wav.scp").read_text(), form, marker)
    code, err = call(extract_embeddings.main, [
        "--extractor", "logmel", "--model_path", world["packed"], "--data_dir", data,
        "--out_root", tmp_path / "emb"], capsys)
    assert not (tmp_path / "emb").exists()
    return code, err, scp, 3


def _bank(tmp_path, form, marker):
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / META).write_text('{"id": "r0", "format": "binaural", "fs": 8000,'
                             ' "noise_ids": []}\n')
    return bank, pipe_scp(bank / SCP, "", form, marker)


def site_rir_bank(world, tmp_path, form, marker, capsys):
    bank, scp = _bank(tmp_path, form, marker)
    with pytest.raises(UnsafeScpError) as e:
        RIRBank(bank)
    return 1, f"ERROR: {e.value}", scp, 1


def site_gram_train_bank(world, tmp_path, form, marker, capsys):
    bank, scp = _bank(tmp_path, form, marker)
    code, err = call(gram_train.main, gram_argv(world, tmp_path / "exp", "--scene_conf",
                                                f"bank_dir={bank}"), capsys)
    return code, err, scp, 1


SITES = {name[5:]: f for name, f in globals().items() if name.startswith("site_")}


@pytest.mark.parametrize("form", sorted(PIPES))
@pytest.mark.parametrize("site", sorted(SITES))
def test_pipe_entries_are_refused_naming_file_and_line(world, tmp_path, capsys, site, form):
    marker = tmp_path / "MARKER"
    code, err, scp, lineno = SITES[site](world, tmp_path, form, marker, capsys)
    line = one_line_error(err)
    assert code == 1
    assert f"{scp}:{lineno}: entry 'evil' is a shell command" in line, line
    assert ALLOW_PIPES_ENV in line
    assert not marker.exists(), "the command ran"


@pytest.mark.parametrize("value", ["-", "-:12", "cat x.ark |", "|gzip -c", " touch m | "])
def test_every_command_form_is_refused(tmp_path, value):
    scp = tmp_path / "x.scp"
    scp.write_text(f"good a.ark:10\nbad {value}\n")
    with pytest.raises(UnsafeScpError, match=f"{scp}:2: entry 'bad'"):
        check_scp(scp)


def test_plain_entries_pass_and_pipes_can_be_allowed(tmp_path, monkeypatch):
    scp = tmp_path / "x.scp"
    scp.write_text("a a.ark:10\nb dir/b.wav\nc a.ark:12[0:3]\nd my-file.wav\n")
    check_scp(scp)
    scp.write_text("a cat a.ark |\n")
    monkeypatch.setenv(ALLOW_PIPES_ENV, "1")
    check_scp(scp)  # allowed: checked, not run
