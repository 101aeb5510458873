"""RIR bank: contract, determinism across job counts, resume, bad configuration."""

import json
import os

import numpy as np
import pytest

from espnet2_gram.bin import make_rir_bank
from espnet2_gram.simulation.rir_bank import RIRBank, make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import GeometryError, RenderConfig, RoomSampling, sample_room

SAMPLING = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3), rt60=(0.15, 0.3),
                        source_distance=(0.5, 1.2), num_noise_sources=(0, 2))
RENDER = RenderConfig(format="foa", fs=8000, n_rays=300, max_rir_seconds=0.25)


def build(out_dir, num_jobs=1, num_packs=5, shard_size=2):
    for job in range(1, num_jobs + 1):
        make_bank_shards(out_dir, num_packs, seed=3, sampling=SAMPLING, render=RENDER,
                         shard_size=shard_size, job_index=job, num_jobs=num_jobs)
    merge_bank(out_dir)
    return RIRBank(out_dir)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bank") / "foa"
    build(out)
    return out


def test_bank_contract(bank_dir):
    bank = RIRBank(bank_dir)
    assert len(bank) == 5 and bank.format == "foa" and bank.fs == 8000
    for source, noise, meta in bank:
        assert source.shape == (4, 2000) and source.dtype == np.float32
        assert noise.shape[1:] == (4, 2000) and len(noise) == len(meta["noise_ids"]) <= 2
        assert len(meta["noise_positions"]) == len(noise)
        assert -180 <= meta["azimuth"] <= 180 and -45 <= meta["elevation"] <= 60
        assert 0.5 - 1e-6 <= meta["distance"] <= 1.2 + 1e-6
        for key in ("room_size", "rt60_target", "rt60_measured", "listener_position",
                    "listener_yaw", "absorption"):
            assert key in meta
        assert np.all(np.isfinite(source)) and np.abs(source).max() > 0
    info = json.loads((bank_dir / "bank.json").read_text())
    assert info["num_packs"] == 5
    assert info["num_rirs"] == 5 + sum(len(m["noise_ids"]) for m in bank.meta)


def test_bank_is_identical_for_any_number_of_jobs(bank_dir, tmp_path):
    other = build(tmp_path / "two_jobs", num_jobs=2)
    ref = RIRBank(bank_dir)
    assert other.meta == ref.meta
    for i in range(len(ref)):
        for a, b in zip(ref.pack(i)[:2], other.pack(i)[:2]):
            np.testing.assert_array_equal(a, b)


def test_interrupted_job_resumes_without_duplicates(bank_dir, tmp_path):
    out = tmp_path / "resumed"
    build(out)
    shards = out / "shards"
    # Simulate a kill while shard 1 was being written: no completion marker, a torn ark.
    (shards / "rirs.00001.jsonl").unlink()
    (shards / "rirs.00001.ark").write_bytes(b"torn")
    before = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    rendered = make_bank_shards(out, 5, seed=3, sampling=SAMPLING, render=RENDER, shard_size=2)
    assert rendered == 2  # only shard 1 was rendered again
    after = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    assert after["rirs.00000.ark"] == before["rirs.00000.ark"]
    assert after["rirs.00001.ark"] != before["rirs.00001.ark"]
    merge_bank(out)
    resumed, ref = RIRBank(out), RIRBank(bank_dir)
    assert resumed.meta == ref.meta
    scp_keys = [line.split()[0] for line in (out / "rirs.scp").read_text().splitlines()]
    assert len(scp_keys) == len(set(scp_keys))
    np.testing.assert_array_equal(resumed.pack(2)[0], ref.pack(2)[0])
    assert not [p for p in shards.iterdir() if p.name.endswith(".tmp")]


def test_merge_refuses_incomplete_bank(tmp_path):
    make_bank_shards(tmp_path, 5, seed=3, sampling=SAMPLING, render=RENDER, shard_size=2,
                     job_index=1, num_jobs=2)
    with pytest.raises(ValueError, match="incomplete"):
        merge_bank(tmp_path)


def test_resuming_with_another_configuration_is_refused(tmp_path):
    make_bank_shards(tmp_path, 2, seed=3, sampling=SAMPLING, render=RENDER, shard_size=2)
    with pytest.raises(ValueError, match="another configuration"):
        make_bank_shards(tmp_path, 2, seed=4, sampling=SAMPLING, render=RENDER, shard_size=2)


def test_impossible_geometry_names_the_option():
    with pytest.raises(GeometryError, match="--wall_margin"):
        RoomSampling(room_size_min=(1.0, 3.0, 2.5), wall_margin=0.5)
    too_far = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(3.5, 3.5, 2.6),
                           source_distance=(5.0, 6.0), max_tries=20)
    with pytest.raises(GeometryError, match="--source_distance"):
        sample_room(too_far, np.random.default_rng(0))
    with pytest.raises(GeometryError, match="--source_elevation"):
        RoomSampling(source_elevation=(-100.0, 10.0))
    with pytest.raises(ValueError, match="--format"):
        RenderConfig(format="5.1")


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    config = tmp_path / "bank.yaml"
    config.write_text("sampling:\n  room_size: [3, 3, 3]\n")
    with pytest.raises(SystemExit) as exc:
        make_rir_bank.run(make_rir_bank.main, ["--config", str(config), "--out_dir",
                                               str(tmp_path / "b"), "--num_packs", "1"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "unknown keys ['room_size']" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        make_rir_bank.run(make_rir_bank.main, ["--config", str(tmp_path / "missing.yaml"),
                                               "--out_dir", str(tmp_path / "b")])
    assert "missing.yaml" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "b" / "rirs.scp")
