"""The format registry (espnet2_gram.formats) is the one source of channel counts and layouts."""

import pytest
import torch

from espnet2_gram import formats
from espnet2_gram.formats import FORMATS, AudioFormat, get_format
from espnet2_gram.frontend.spatial_features import BinauralFrontend, frontend_classes
from espnet2_gram.scene.simulator import SceneSimulator
from espnet2_gram.hear import _channel_layout
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer
from espnet2_gram.tasks.gram import ChannelCheck
from espnet2_gram.utils.scoring import add_run_options

FRONTENDS = frontend_classes()


def consumers_channels(name):
    """The channel count of format ``name`` as each consumer sees it."""
    seen = {
        "task channel check": ChannelCheck(name).channels,
        "frontend": FRONTENDS[name](fs=16000, n_fft=512, hop_length=160, n_mels=32,
                                  fmax=8000).in_channels,
        "scene simulator": SceneSimulator(format=name, fs=16000, clean_ratio=1.0).channels,
    }
    if FORMATS[name].rendered:
        seen["room renderer"] = RIRRenderer(RenderConfig(format=name, fs=16000)).channels
    return seen


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_consumer_reads_the_registry(name):
    want = FORMATS[name].num_channels
    assert set(consumers_channels(name).values()) == {want}


def test_a_changed_entry_reaches_every_consumer(monkeypatch):
    """No consumer keeps its own copy: a 3-channel binaural entry (a toy) is what they see."""
    toy = AudioFormat("binaural", ("a", "b", "c"), "toy array", rendered=True,
                      receivers="omni", receiver_offsets=((0.1, 0, 0), (0, 0.1, 0), (0, 0, 0.1)))
    monkeypatch.setitem(formats.FORMATS, "binaural", toy)
    seen = consumers_channels("binaural")
    assert set(seen.values()) == {3}, seen
    assert _channel_layout(3) == "toy array (3 channels (a, b, c))"
    frontend = BinauralFrontend(fs=16000, n_fft=512, hop_length=160, n_mels=32,
                                  fmax=8000)
    feats, _ = frontend(torch.randn(1, 1600, 3), torch.tensor([1600]))
    assert feats.shape[1] == frontend.out_channels == 3
    with pytest.raises(ValueError, match=r"3 channels \(a, b, c\), got 2"):
        frontend(torch.randn(1, 1600, 2), torch.tensor([1600]))



NEW_FORMAT = """
import json, sys
from pathlib import Path

import torch, yaml

from espnet2_gram import formats
formats.FORMATS["tri"] = formats.AudioFormat("tri", ("a", "b", "c"), "toy 3-mic array",
                                             rendered=False)
# Nothing else is edited: the task, packing and HEAR below see the new entry.
from espnet2_gram import hear
from espnet2_gram.pretrained.packing import pack_gram
from espnet2_gram.tasks.gram import build_gram_model

root = Path(sys.argv[1])
exp = root / "exp"
exp.mkdir()
(exp / "config.yaml").write_text(yaml.safe_dump({**json.loads(sys.argv[2]), "frontend": "tri"}))
torch.manual_seed(0)
model = build_gram_model(exp / "config.yaml")
loss, _, _ = model(torch.randn(2, 8000, 3) * 0.1, torch.tensor([8000, 8000]))
loss.backward()
torch.save(model.state_dict(), exp / "valid.loss.best.pth")
packed = pack_gram(exp, root / "packed")
embedder = hear.load_model(str(packed))
scene = hear.get_scene_embeddings(torch.randn(2, 3, 8000) * 0.1, embedder)
try:
    hear.get_scene_embeddings(torch.randn(2, 2, 8000), embedder)
except ValueError as e:
    error = str(e)
print(json.dumps({"frontend": type(model.frontend).__name__, "feats": model.frontend.out_channels,
                  "loss": float(loss), "n_channels": embedder.n_channels,
                  "scene": list(scene.shape), "error": error}))
"""


def test_a_new_format_flows_through_features_model_and_hear(tmp_path):
    """A 3-channel format added to the registry, and nowhere else, trains a GRAM, packs it and
    gives HEAR embeddings (its frontend is derived from the entry's feature kind)."""
    import json
    import subprocess
    import sys

    from helpers import TINY

    script = tmp_path / "new_format.py"
    script.write_text(NEW_FORMAT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path), json.dumps(TINY)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["frontend"] == "TriFrontend" and out["feats"] == out["n_channels"] == 3
    assert out["scene"][0] == 2 and out["loss"] > 0
    assert "(n_sounds, 3, n_samples) toy 3-mic array (3 channels (a, b, c)) audio; got 2" \
        in out["error"]

def test_unknown_formats_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"--format must be one of \['binaural', 'foa', 'mic', 'mono'\]"
                                         r", got 'quad'"):
        get_format("quad", "--format")
    with pytest.raises(ValueError, match=r"--format must be one of \['binaural', 'foa', 'mic'\]"):
        RenderConfig(format="mono")
    with pytest.raises(ValueError, match="format must be one of"):
        SceneSimulator(format="tetra")


def test_report_and_scoring_order_and_choices():
    import argparse

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "format")
    assert choices == ["binaural", "foa", "mic", "mono"] == list(FORMATS)
    assert FORMATS["foa"].layout == "4 channels (W, Y, Z, X; ACN order, SN3D)"
    assert FORMATS["mono"].layout == "1 channel (mono)"


def test_shell_scripts_ask_the_registry_without_an_environment(tmp_path):
    # Run as a file with python's isolated mode (-I: no site-packages, no PYTHONPATH), as the
    # recipes do before .venv exists; a format added to the table reaches their checks.
    import subprocess
    import sys
    from pathlib import Path

    script = Path(formats.__file__)
    out = subprocess.run([sys.executable, "-I", str(script), "--rendered"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == [n for n, f in FORMATS.items() if f.rendered] == ["binaural", "foa", "mic"]
    out = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == list(FORMATS)
