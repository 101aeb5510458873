"""GRAMTask through ESPnet's own machinery: --print_config, training, resume after a kill,
DDP on two CPU processes, on-the-fly scenes, and bad input."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from helpers import FS, TINY



def write_config(path: Path, **changes) -> Path:
    config = {**TINY, **changes}
    path.write_text(yaml.safe_dump(config))
    return path


def write_scp(directory: Path, name: str, clips: int, channels: int, seconds=0.8,
              nan=False) -> Path:
    rng = np.random.default_rng(len(name) + clips)
    lines = []
    for i in range(clips):
        x = (rng.standard_normal((int(seconds * FS), channels)) * 0.1).astype(np.float32)
        if nan:
            x[::40] = np.nan  # in every frame
        path = directory / f"{name}_{i}.wav"
        sf.write(path, x, FS, subtype="FLOAT")
        lines.append(f"{name}_{i} {path}\n")
    scp = directory / f"{name}.scp"
    scp.write_text("".join(lines))
    return scp


def train_cmd(config, out, train_scp, valid_scp, *extra):
    return [sys.executable, "-m", "espnet2_gram.bin.gram_train", "--config", str(config),
            "--train_data_path_and_name_and_type", f"{train_scp},speech,sound",
            "--valid_data_path_and_name_and_type", f"{valid_scp},speech,sound",
            "--train_shape_file", str(train_scp), "--valid_shape_file", str(valid_scp),
            "--output_dir", str(out), "--ngpu", "0", *extra]


def run(cmd, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("gramdata")
    return {"dir": d, "train": write_scp(d, "tr", 8, 2), "valid": write_scp(d, "dv", 4, 2)}


def test_print_config_reads_back_as_config(tmp_path, data):
    config = write_config(tmp_path / "tiny.yaml")
    printed = run([sys.executable, "-m", "espnet2_gram.bin.gram_train", "--config", str(config),
                   "--print_config"])
    assert printed.returncode == 0, printed.stderr[-2000:]
    dumped = tmp_path / "printed.yaml"
    dumped.write_text(printed.stdout)
    loaded = yaml.safe_load(printed.stdout)
    assert loaded["encoder_conf"]["dim"] == 32 and loaded["decoder"] == "mwmae"
    out = tmp_path / "dry"
    proc = run(train_cmd(dumped, out, data["train"], data["valid"], "--dry_run", "true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = yaml.safe_load((out / "config.yaml").read_text())
    for key in ("frontend_conf", "encoder_conf", "decoder_conf", "masking_conf", "optim_conf"):
        assert again[key] == loaded[key]


def test_killed_run_resumes_from_its_checkpoint_and_keeps_the_chosen_epochs(tmp_path, data):
    config = write_config(tmp_path / "tiny.yaml", max_epoch=4, num_iters_per_epoch=30)
    out = tmp_path / "exp"
    cmd = train_cmd(config, out, data["train"], data["valid"], "--resume", "true",
                    "--keep_epochs", "1", "3")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 300
        while not (out / "1epoch.pth").exists() and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = {p.name for p in out.glob("*epoch.pth")}
    assert "1epoch.pth" in done_before and "4epoch.pth" not in done_before
    epoch1 = torch.load(out / "1epoch.pth", map_location="cpu")
    resumed = run(cmd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in resumed.stderr
    assert "1epoch results" not in resumed.stderr  # epoch 1 is not trained again
    assert "4epoch results" in resumed.stderr
    state = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert state["reporter"]["epoch"] == 4
    # --keep_epochs: the weights of epochs 1 and 3 stay, whatever ESPnet's n-best keeps.
    snapshots = out / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["1epoch.pth", "3epoch.pth"]
    kept1 = torch.load(snapshots / "1epoch.pth", map_location="cpu")
    kept3 = torch.load(snapshots / "3epoch.pth", map_location="cpu")
    assert kept1.keys() == epoch1.keys() == kept3.keys()
    assert all(torch.equal(kept1[k], epoch1[k]) for k in epoch1)
    assert not all(torch.equal(kept3[k], epoch1[k]) for k in epoch1)
    assert torch.load(out / "4epoch.pth", map_location="cpu").keys() == epoch1.keys()
    # The batches come from the training list in a seeded random order, not the sorted one.
    listed = data["train"].read_text().splitlines()
    order = (out / "train_order.scp").read_text().splitlines()
    assert sorted(order) == sorted(listed) and order != listed
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train_shape_file"] == [str(out / "train_order.scp")]


def test_two_cpu_processes_train_a_step_in_ddp(tmp_path, data):
    config = write_config(tmp_path / "tiny.yaml", num_iters_per_epoch=1)
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m",
           "espnet2_gram.bin.gram_train"] + train_cmd(config, out, data["train"],
                                                      data["valid"])[3:]
    proc = run(cmd + ["--dist_backend", "gloo", "--multiprocessing_distributed", "false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "1epoch.pth").exists()
    assert "distributed: true" in (out / "config.yaml").read_text()
    assert ":0/2]" in proc.stderr  # rank 0 of a world of 2 (other ranks log warnings only)


@pytest.mark.parametrize("on_device", ["false", "true"])
def test_on_the_fly_scenes_feed_the_trainer(tmp_path, on_device):
    bank = tmp_path / "bank"
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(4, 4, 3),
                            rt60=(0.15, 0.3), source_distance=(0.5, 1.0),
                            num_noise_sources=(1, 1))
    make_bank_shards(bank, 2, seed=0, sampling=sampling,
                     render=RenderConfig(format="binaural", fs=FS, n_rays=200,
                                         max_rir_seconds=0.2), shard_size=2)
    merge_bank(bank)
    mono_train = write_scp(tmp_path, "mono", 6, 1)
    mono_valid = write_scp(tmp_path, "monov", 2, 1)
    noise = write_scp(tmp_path, "noise", 1, 1, seconds=1.0)
    config = write_config(tmp_path / "tiny.yaml", num_workers=2)
    out = tmp_path / "scenes"
    proc = run(train_cmd(config, out, mono_train, mono_valid, "--scene_conf",
                         f"bank_dir={bank}", "--scene_conf", f"noise_scp={noise}",
                         "--scene_conf", "clip_seconds=0.6",
                         "--scene_conf", f"mix_on_device={on_device}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "1epoch.pth").exists()


def test_bad_input_gets_clear_errors(tmp_path, data):
    # A channel count that does not match the frontend names the utterance.
    config = write_config(tmp_path / "foa.yaml", frontend="foa")
    proc = run(train_cmd(config, tmp_path / "foa", data["train"], data["valid"]))
    assert proc.returncode != 0
    assert "2 channel(s), but --frontend foa expects 4" in proc.stderr
    # An empty data directory names the file.
    empty = tmp_path / "empty.scp"
    empty.write_text("")
    proc = run(train_cmd(write_config(tmp_path / "tiny.yaml"), tmp_path / "e", empty,
                         data["valid"]))
    assert proc.returncode != 0 and "0 lines found" in proc.stderr and "empty.scp" in proc.stderr
    proc = run(train_cmd(write_config(tmp_path / "tiny.yaml"), tmp_path / "k", data["train"],
                         data["valid"], "--keep_epochs", "0"))
    assert proc.returncode != 0 and "--keep_epochs" in proc.stderr
    assert "expected an epoch >= 1, got 0" in proc.stderr


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, data):
    config = write_config(tmp_path / "tiny.yaml")
    out = tmp_path / "nan"
    first = run(train_cmd(config, out, data["train"], data["valid"], "--resume", "true"))
    assert first.returncode == 0, first.stderr[-3000:]
    digest = hashlib.sha256((out / "checkpoint.pth").read_bytes()).hexdigest()
    bad = write_scp(data["dir"], "bad", 4, 2, nan=True)
    second = run(train_cmd(config, out, bad, data["valid"], "--resume", "true",
                           "--max_epoch", "2"))
    assert second.returncode != 0
    assert "the GRAM loss is nan" in second.stderr
    assert hashlib.sha256((out / "checkpoint.pth").read_bytes()).hexdigest() == digest
