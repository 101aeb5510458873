"""A model trained with ``frontend: gram`` is self-contained: its config.yaml carries the GRAM
architecture and its checkpoint the weights, so ESPnet's pack and decoding work after the
packed GRAM is deleted. Also: ESPnet's --init and parameter count with a frozen GRAM, the
subsampling input-layer trap, mono ``extract`` and the model card's example."""

import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.pretrained.packing import load_gram
from espnet2_gram.frontend.pretrained_gram import (GRAMESPnetEncoder, GRAMFrontend,
                                                   gram_architecture)
from test_reuse import FS, asr_config, run_task, write_data

TOKENS = "<blank>\n<unk>\na\nb\n<space>\n<sos/eos>\n"




def asr_args(tmp_path, config):
    from espnet2.tasks.asr import ASRTask

    (tmp_path / "tokens.txt").write_text(TOKENS)
    path = tmp_path / "asr.yaml"
    path.write_text(yaml.safe_dump(config))
    return ASRTask, ASRTask.get_parser().parse_args(
        ["--config", str(path), "--token_list", str(tmp_path / "tokens.txt")])


def decode(config, model_file, wavs):
    """(text, token ids, score) of each wav and the GRAM features of the first."""
    from espnet2.bin.asr_inference import Speech2Text

    s2t = Speech2Text(asr_train_config=config, asr_model_file=model_file, beam_size=2,
                      ctc_weight=0.5, nbest=1)
    results = []
    for wav in wavs:
        audio = torch.from_numpy(sf.read(wav, dtype="float32")[0])
        text, _, ids, hyp = s2t(audio)[0]
        results.append((text, ids, float(hyp.score)))
    audio = torch.from_numpy(sf.read(wavs[0], dtype="float32")[0])[None]
    feats = s2t.asr_model.frontend(audio, torch.tensor([audio.shape[1]]))[0]
    return results, feats, s2t.asr_model.frontend.gram.encoder.state_dict()


def test_packed_asr_model_decodes_without_the_packed_gram(tmp_path, packed):  # noqa: F811
    from espnet2.bin.pack import main as pack_main
    from espnet2.main_funcs.pack_funcs import unpack

    gram_dir = tmp_path / "gram"  # a copy, deleted below
    shutil.copytree(packed, gram_dir)
    shutil.copy(packed.with_suffix(".zip"), gram_dir.with_suffix(".zip"))
    scp, text = write_data(tmp_path, "asr", 4, ["ab ba", "abba", "b a"])
    (tmp_path / "tokens.txt").write_text(TOKENS)
    (tmp_path / "asr.yaml").write_text(yaml.safe_dump(asr_config(gram_dir)))
    exp = tmp_path / "exp"
    run_task("espnet2_gram.bin.asr_train", tmp_path / "asr.yaml", exp, scp, text,
             tmp_path / "tokens.txt", "text")
    conf = yaml.safe_load((exp / "config.yaml").read_text())["frontend_conf"]
    assert conf["model_path"] == str(gram_dir)  # kept as provenance
    assert conf["gram_config"] == gram_architecture(yaml.safe_load(
        (packed / "config.yaml").read_text()))

    pack_main(["asr", "--asr_train_config", str(exp / "config.yaml"),
               "--asr_model_file", str(exp / "1epoch.pth"), "--outpath",
               str(tmp_path / "asr_packed.zip")])
    files = unpack(tmp_path / "asr_packed.zip", tmp_path / "unpacked")
    wavs = [line.split()[1] for line in scp.read_text().splitlines()[:2]]
    before, feats, weights = decode(files["asr_train_config"], files["asr_model_file"], wavs)
    reference = load_gram(gram_dir).encoder.state_dict()
    for key, value in reference.items():  # the trained (frozen) GRAM is the packed one
        torch.testing.assert_close(weights[key], value)

    shutil.rmtree(gram_dir)
    gram_dir.with_suffix(".zip").unlink()
    after, feats_after, weights_after = decode(files["asr_train_config"],
                                               files["asr_model_file"], wavs)
    assert after == before
    torch.testing.assert_close(feats_after, feats, rtol=0, atol=0)
    for key, value in reference.items():
        torch.testing.assert_close(weights_after[key], value)


def test_model_path_missing_everywhere_is_a_clear_error(tmp_path, packed):  # noqa: F811
    with pytest.raises(FileNotFoundError, match=r"frontend_conf.model_path is not set; expected"
                                                r" a packed GRAM model.*frontend_conf.gram_config"):
        GRAMFrontend()
    with pytest.raises(FileNotFoundError, match=r"encoder_conf.model_path = .*nowhere: no such"
                                                r".*encoder_conf.gram_config"):
        GRAMESPnetEncoder(input_size=2, model_path=str(tmp_path / "nowhere"))
    # missing at build time but the architecture is inline: built, weights to come from a
    # checkpoint (loaded here as ESPnet does after building)
    arch = gram_architecture(yaml.safe_load((packed / "config.yaml").read_text()))
    original = GRAMFrontend(str(packed), fs=FS)
    rebuilt = GRAMFrontend(str(tmp_path / "moved"), fs=FS, gram_config=arch)
    assert rebuilt.gram.pretrained_params is None
    rebuilt.load_state_dict(original.state_dict(), strict=True)
    audio = torch.randn(1, FS, 2) * 0.1
    torch.testing.assert_close(rebuilt(audio, torch.tensor([FS]))[0],
                               original(audio, torch.tensor([FS]))[0])
    with pytest.raises(ValueError, match="frontend_conf.gram_config does not build"):
        GRAMFrontend(gram_config={**arch, "encoder_conf": {"depth": "two"}})


def test_init_and_parameter_count_with_a_frozen_gram(tmp_path, packed, caplog):  # noqa: F811
    from espnet2.torch_utils.model_summary import model_summary

    task, args = asr_args(tmp_path, asr_config(packed))
    with caplog.at_level("INFO"):
        model = task.build_model(args)  # init: xavier_uniform
    assert "Initialize frontend.gram" not in caplog.text
    assert "Initialize decoder" in caplog.text  # the rest is initialised
    reference = load_gram(packed).encoder.state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(model.frontend.gram.encoder.state_dict()[key], value)
    gram = model.frontend.gram
    frozen = sum(p.numel() for p in gram.gram_parameters())
    assert frozen > 0 and not any(p.requires_grad for p in gram.gram_parameters())
    assert gram.layer_weights.requires_grad
    total = sum(p.numel() for p in model.parameters())
    summary = model_summary(model)
    line = next(x for x in summary.splitlines() if "Number of trainable parameters" in x)
    assert line.endswith(f"({100 * (total - frozen) / total:.1f}%)") and frozen > total / 2
    assert args.frontend_conf["gram_config"] == gram.gram_config  # for config.yaml


def test_freeze_steps_thaws_into_the_optimiser(packed):  # noqa: F811
    fe = GRAMFrontend(str(packed), fs=FS, freeze_steps=1, weighted_sum=True).train()
    params = fe.gram.gram_parameters()
    assert not any(p.requires_grad for p in params)
    optimiser = torch.optim.Adam(fe.parameters(), lr=0.1)  # as ESPnet: all parameters, once
    audio = torch.randn(2, FS, 2) * 0.1
    lengths = torch.tensor([FS, FS])
    start = [p.detach().clone() for p in params]
    for step in range(2):
        optimiser.zero_grad()
        fe(audio, lengths)[0].pow(2).mean().backward()
        optimiser.step()
        changed = any(not torch.equal(p, s) for p, s in zip(params, start))
        assert changed == (step == 1)  # frozen for the first step, trained in the second
    assert all(p.requires_grad for p in params)
    trained = GRAMFrontend(str(packed), freeze_steps=0)
    assert all(p.requires_grad for p in trained.gram.gram_parameters())


@pytest.mark.parametrize("encoder_conf, refused", [
    ({"input_layer": "conv2d"}, "'conv2d'"),
    ({}, "'conv2d'"),  # the transformer encoder's default
    ({"input_layer": "conv2d2"}, "'conv2d2'"),
    ({"input_layer": "linear"}, None),
])
def test_subsampling_input_layer_is_refused(tmp_path, packed, encoder_conf,  # noqa: F811
                                            refused):
    config = asr_config(packed)
    config["encoder_conf"] = {k: v for k, v in config["encoder_conf"].items()
                              if k != "input_layer"} | encoder_conf
    task, args = asr_args(tmp_path, config)
    if refused is None:
        task.build_model(args)
        return
    with pytest.raises(ValueError, match=rf"encoder_conf.input_layer={refused} \(transformer"
                                         r" encoder\) subsamples .* 80 ms apart.*"
                                         r"encoder_conf.input_layer: linear"):
        task.build_model(args)


def test_mono_extract_and_the_model_card_example(tmp_path, packed):  # noqa: F811
    model = load_gram(packed)
    audio = torch.randn(1, FS, 1) * 0.1
    both = model.extract(audio.expand(-1, -1, 2), strategy="raw")
    torch.testing.assert_close(model.extract(audio, strategy="raw"), both)
    torch.testing.assert_close(model.extract(audio[..., 0], strategy="raw"), both)
    with pytest.raises(ValueError, match=r"2 channel\(s\) \(binaural\) or 1 \(mono"):
        model.extract(torch.randn(1, FS, 3))

    card = (packed / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    wav = tmp_path / "clip.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal((FS, 2)) * 0.1).astype(np.float32),
             FS)
    code = code.replace("'this/directory'", repr(str(packed))).replace("'clip.wav'",
                                                                        repr(str(wav)))
    scope = {}
    exec(compile(code, "model card", "exec"), scope)
    assert scope["emb"].shape == (1, model.encoder.dim)
    assert scope["frames"].shape[:2] == (1, 13)
