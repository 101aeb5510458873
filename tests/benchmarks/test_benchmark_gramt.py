"""benchmark_gramt: a clear error without the authors' source; where a local checkout of it
is present (``.gramt_src``, never committed), their model builds and runs one forward."""

import sys
from pathlib import Path

import pytest
import torch

from espnet2_gram.benchmarks import gramt as benchmark_gramt

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SOURCE = ROOT / ".gramt_src"


def test_missing_source_names_the_folder(tmp_path):
    folder = tmp_path / "not_gramt"
    (folder / "src" / "model").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as err:
        benchmark_gramt.side_by_side(str(folder), "conf/paper/pretrain_binaural.yaml",
                                     crops=1, steps=1)
    assert str(folder) in str(err.value)
    assert "src/model/GRAMT.py" in str(err.value)
    assert "fetch_gramt_source.sh" in str(err.value)


@pytest.mark.skipif(not (LOCAL_SOURCE / benchmark_gramt.GRAMT_FILE).is_file(),
                    reason="no local GRAM-T checkout in .gramt_src (measurement only, not in CI)")
def test_gramt_builds_and_runs_one_forward():
    try:
        model, masker, notes = benchmark_gramt.load_gramt(str(LOCAL_SOURCE))
    except ImportError as e:  # e.g. torchvision / timm absent: fetch_gramt_source.sh --deps
        pytest.skip(f"GRAM-T's requirements are not importable here: {e}")
    assert set(notes["placeholders"]) <= set(benchmark_gramt.IMPORT_ONLY)
    for name in notes["placeholders"]:  # placeholders only live during the import
        assert not isinstance(sys.modules.get(name), benchmark_gramt._Placeholder)
    assert notes["mask_patch"] == 160
    assert (model.p_f_dim, model.p_t_dim) == (8, 25)
    mask = masker(None, 1, 200)
    assert mask.shape == (1, 200) and int(mask.sum()) == 160
    x = torch.randn(1, 2, 200, 128)  # their layout: (B, C, T, F)
    with torch.no_grad():
        pred, patches, loss = model(x, mask)
    assert pred.shape == (1, 200, 2 * 16 * 8) and torch.isfinite(loss)
