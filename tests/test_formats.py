"""The format registry (espnet2_gram.formats) is the one source of channel counts and layouts."""

import pytest
import torch

from espnet2_gram import formats
from espnet2_gram.formats import FORMATS, AudioFormat, get_format
from espnet2_gram.frontend.spatial_features import BinauralFrontend, FOAFrontend, MonoFrontend
from espnet2_gram.gram.scene_preprocessor import SceneSimulator
from espnet2_gram.hear import _channel_layout
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer
from espnet2_gram.tasks.gram import ChannelCheck
from espnet2_gram.utils.scoring import add_run_options

FRONTENDS = {"mono": MonoFrontend, "binaural": BinauralFrontend, "foa": FOAFrontend}


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
    toy = AudioFormat("binaural", ("a", "b", "c"), "toy array", rendered=True)
    monkeypatch.setitem(formats.FORMATS, "binaural", toy)
    seen = consumers_channels("binaural")
    del seen["room renderer"]  # the renderer's receivers are two ears: see below
    assert set(seen.values()) == {3}, seen
    assert _channel_layout(3) == "toy array (3 channels (a, b, c))"
    frontend = BinauralFrontend(fs=16000, n_fft=512, hop_length=160, n_mels=32,
                                  fmax=8000)
    feats, _ = frontend(torch.randn(1, 1600, 3), torch.tensor([1600]))
    assert feats.shape[1] == frontend.out_channels == 3
    with pytest.raises(ValueError, match=r"3 channels \(a, b, c\), got 2"):
        frontend(torch.randn(1, 1600, 2), torch.tensor([1600]))


def test_unknown_formats_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"--format must be one of \['binaural', 'foa', 'mono'\]"
                                         r", got 'quad'"):
        get_format("quad", "--format")
    with pytest.raises(ValueError, match=r"--format must be one of \['binaural', 'foa'\]"):
        RenderConfig(format="mono")
    with pytest.raises(ValueError, match="format must be one of"):
        SceneSimulator(format="tetra")


def test_report_and_scoring_order_and_choices():
    import argparse

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "format")
    assert choices == ["binaural", "foa", "mono"] == list(FORMATS)
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
    assert out.split() == [n for n, f in FORMATS.items() if f.rendered] == ["binaural", "foa"]
    out = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == list(FORMATS)
