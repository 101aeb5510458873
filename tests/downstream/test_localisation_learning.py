"""The demo's localisation data can be learned: a DoA probe trained on a small set rendered with
the demo preset's own localisation bank settings (conf/demo/rir_bank_loc.yaml) and demo sounds
reaches a median error well below chance (90 deg) on held-out rooms and directions."""

from pathlib import Path

import numpy as np
import torch
import yaml

from espnet2_gram.corpora.demo import make_demo_corpus
from espnet2_gram.frontend.spatial_features import FOAFrontend
from espnet2_gram.downstream.heads import IdentityEncoder
from espnet2_gram.downstream.localization.doa_model import (ESPnetDOAModel, angle_between,
                                                            direction_vectors)
from espnet2_gram.simulation.eval_sets import render_eval_set
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.audio import load_audio
from espnet2_gram.utils.datadir import read_data_dir

ROOT = Path(__file__).resolve().parents[2]
FS = 16000


def render_set(tmp, name, clean, noise, packs, seed):
    cfg = yaml.safe_load((ROOT / "conf/demo/rir_bank_loc.yaml").read_text())
    bank = tmp / f"bank_{name}"
    make_bank_shards(bank, packs, seed=seed, sampling=RoomSampling(**cfg["sampling"]),
                     render=RenderConfig(format="foa", **cfg["render"]), shard_size=packs)
    merge_bank(bank)
    out = tmp / name
    render_eval_set(clean, bank, out, out / "data", noise_dir=noise, seed=seed,
                    pack_assignment="distinct")
    return read_data_dir(out)


def features(tables, frontend):
    """(N, frames, 7 * mels) log-mel + intensity frames, (N, 2) azimuth and elevation."""
    utts = sorted(tables["wav.scp"])
    audio = torch.stack([torch.from_numpy(load_audio(tables["wav.scp"][u], fs=FS).samples.T)
                         for u in utts])
    with torch.no_grad():
        feats, _ = frontend(audio, torch.full((len(utts),), audio.shape[1]))
    feats = torch.cat([torch.nn.functional.layer_norm(feats[:, :4], feats[:, :4].shape[1:]),
                       feats[:, 4:]], dim=1)  # (N, 7, F, T)
    doa = torch.tensor([[float(v) for v in tables["utt2doa"][u].split()[:2]] for u in utts])
    return feats.flatten(1, 2).transpose(1, 2), doa


def test_doa_probe_learns_the_demo_localisation_data(tmp_path):
    dirs = make_demo_corpus(tmp_path / "audio", tmp_path / "data", fs=FS, clip_seconds=1.0,
                            clips_per_class={"train": 6, "test": 2}, noise_clips=4, seed=3)
    clean = {d.name: d for d in dirs}
    train = render_set(tmp_path, "train", clean["demo_train"], clean["demo_noise"], 96, 11)
    test = render_set(tmp_path, "test", clean["demo_test"], clean["demo_noise"], 32, 12)
    frontend = FOAFrontend(fs=FS, n_fft=512, hop_length=160, n_mels=16, fmax=8000)
    (x, doa), (x_test, doa_test) = features(train, frontend), features(test, frontend)
    torch.manual_seed(0)
    model = ESPnetDOAModel(IdentityEncoder(x.shape[-1]), hidden_sizes=[64], pooling="attention")
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    lengths = torch.full((len(x),), x.shape[1])
    for _ in range(300):
        loss, _, _ = model(x, lengths, doa)
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    with torch.no_grad():
        pred = model.predict(x_test, torch.full((len(x_test),), x_test.shape[1]))
    errors = angle_between(pred, direction_vectors(doa_test)).numpy()
    assert np.median(errors) < 45.0, np.median(errors)   # chance: 90 deg
