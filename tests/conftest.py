"""Fixtures shared across test modules."""

import pytest


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
