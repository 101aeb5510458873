"""Smoke test of the Nat-HEAR benchmark on a bank, noise and model made here (no timing
assertions)."""

import json

import numpy as np
import soundfile as sf
import yaml

from espnet2_gram.benchmarks import nat_hear
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from helpers import FS, TINY


def test_benchmark_prints_and_writes_its_figures(tmp_path, capsys):
    bank = tmp_path / "bank"
    make_bank_shards(bank, 2, seed=1, shard_size=2,
                     sampling=RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(4, 4, 3),
                                           rt60=(0.2, 0.3), num_noise_sources=(1, 1)),
                     render=RenderConfig(format="binaural", fs=FS, method="early",
                                         ism_order=1, max_rir_seconds=0.1))
    merge_bank(bank)
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(tmp_path / "n.wav", np.random.default_rng(0).normal(0, 0.1, FS)
             .astype("float32"), FS)
    (noise / "wav.scp").write_text(f"n {tmp_path / 'n.wav'}\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "nat_hear.json"
    nat_hear.main(["--bank_dir", str(bank), "--noise_dir", str(noise), "--config", str(config),
                   "--clips", "5", "--runs", "4", "--out", str(out)])
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["render_clips_per_s"] > 0 and result["io_floor_clips_per_s"] > 0
    assert set(result["embedding"]) == {"naive", "gram"}
    for name, t in result["embedding"].items():
        assert t["computed_s"] > 0 and t["saving"] > 0
        assert f"| {name}: cache saving over 4 probe trainings |" in table
