"""Smoke test of the downstream benchmark on a tiny fresh model (no timing assertions)."""

import json

import yaml

from espnet2_gram.benchmarks import downstream as benchmark_downstream
from helpers import TINY


def test_benchmark_prints_and_writes_every_setup(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "downstream.json"
    benchmark_downstream.main(["--config", str(config), "--batch", "2", "--seconds", "1",
                               "--repeats", "1", "--epochs", "3", "--out", str(out)])
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["rows"]) == set(benchmark_downstream.ROWS)
    for name, row in result["rows"].items():
        assert f"| {name} |" in table
        assert row["clips_per_s"] > 0 and row["ms_per_clip"] > 0
    assert set(result["ratios"]) == {"finetune_over_inference",
                                     "probe_audio_over_cached_per_epoch",
                                     "probe_audio_over_cached_with_caching",
                                     "caching_pays_off_after_epochs"}
    assert "| epochs after which caching pays off |" in table
    assert result["channels"] == 2 and result["frames"] > 0
