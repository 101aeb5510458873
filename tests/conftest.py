"""Fixtures shared across test modules, and the order in which the files run."""

import pytest

# The recipe's stage chain (tests/recipe/test_recipe.py: one module fixture, stages 1 to 11) takes
# about as long as all the other files together. test.sh runs the files on pytest-xdist workers
# (--dist loadfile, in collection order; each worker is handed two files at the start), so the
# chain goes first, one short file second (the chain's worker holds it until the chain ends), then
# the other files of more than two minutes, so that none of them is left to run alone at the end.
CHAIN = "tests/recipe/test_recipe.py"
LONG_FILES = ["tests/downstream/test_downstream_tasks.py", "tests/faults/test_faults_recipe.py",
              "tests/tasks/test_gram_task.py", "tests/recipe/test_asr_demo.py"]


def pytest_collection_modifyitems(items):
    files = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))
    short = [f for f in files if f != CHAIN and f not in LONG_FILES]
    order = [CHAIN, *short[:1], *LONG_FILES, *short[1:]]
    rank = {name: i for i, name in enumerate(order)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(order)))


@pytest.fixture(autouse=True)
def _restore_torch_env(monkeypatch):
    """Entry points force weights-only loading (and may allow pipes) process-wide; undo it
    after each test."""
    from espnet2_gram.utils.safe_load import FORCE_ENV
    from espnet2_gram.utils.scp import ALLOW_PIPES_ENV

    monkeypatch.delenv(FORCE_ENV, raising=False)
    monkeypatch.delenv(ALLOW_PIPES_ENV, raising=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny data and models of the fault-matrix cases (tests/fault_world.py)."""
    from fault_world import make_world

    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny GRAM 'training directory' packed like stage 7 does."""
    import subprocess
    import sys

    import torch
    import yaml

    from espnet2_gram.pretrained.packing import pack_gram
    from espnet2_gram.tasks.gram import build_gram_model
    from helpers import TINY

    root = tmp_path_factory.mktemp("reuse")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    printed = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.gram_train", "--config",
                              str(config), "--print_config"], capture_output=True, text=True,
                             check=True).stdout
    exp = root / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(printed)
    torch.manual_seed(0)
    model = build_gram_model(config)
    torch.save(model.state_dict(), exp / "valid.loss.best.pth")
    return pack_gram(exp, root / "packed" / "gram_tiny")
