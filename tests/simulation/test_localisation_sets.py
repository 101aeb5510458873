"""Direction-rich localisation sets: several renders per clip, one pack (room, direction) per
render, and the demo and mini presets' own sets checked for direction count and spread."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from espnet2_gram.corpora.demo import DEFAULT_CLIPS_PER_CLASS, EVENTS
from espnet2_gram.simulation.eval_sets import assign_packs, render_eval_set, render_ids
from espnet2_gram.simulation.rir_bank import make_bank_shards, merge_bank, pack_geometry
from espnet2_gram.simulation.rooms import RenderConfig, RoomSampling
from espnet2_gram.utils.datadir import read_data_dir
from test_format_and_eval_sets import FS, make_dir, tone

ROOT = Path(__file__).resolve().parents[2]


def recipe_vars(preset: str, *names: str) -> dict:
    """Variables of conf/<preset>/recipe.sh, as run.sh reads them."""
    script = f". conf/{preset}/recipe.sh; " + "; ".join(f'echo "${{{n}}}"' for n in names)
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return dict(zip(names, out))


def loc_bank_seed(name: str, seed: int = 0) -> int:
    """The seed run.sh's own ``loc_bank_seed`` gives the bank of set ``name``."""
    func = subprocess.run(["sed", "-n", "/^loc_bank_seed()/,/^}/p", "run.sh"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert func, "run.sh defines loc_bank_seed"
    out = subprocess.run(["bash", "-c", f"seed={seed}; {func}\nloc_bank_seed {name}"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def preset_directions(preset: str):
    """{set: (N, 3) azimuth, elevation, distance; room sizes} of a preset's localisation sets,
    from the geometry of the packs stage 4 assigns (no rendering needed)."""
    v = recipe_vars(preset, "loc_sets", "loc_rir_config", "doa_tasks", "corpus_opts")
    sampling = RoomSampling(**yaml.safe_load((ROOT / v["loc_rir_config"]).read_text())["sampling"])
    clips = dict(DEFAULT_CLIPS_PER_CLASS)
    given = re.search(r"--clips_per_class (\S+)", v["corpus_opts"])
    if given:
        clips.update({k: int(n) for k, n in (kv.split("=") for kv in given.group(1).split(","))})
    out = {}
    for spec in v["loc_sets"].split():
        name, renders = spec.split(":")
        split = name.split("_", 1)[1]
        utts = [f"{name}_{e}_{i:03d}" for e in EVENTS for i in range(clips[split])]
        ids = render_ids(utts, int(renders))
        seed = loc_bank_seed(name)
        packs = assign_packs(ids, len(ids), seed, "distinct")
        assert len(set(packs.values())) == len(ids)  # one pack per render
        geoms = [pack_geometry(i, seed, sampling)[1] for i in sorted(packs.values())]
        out[name] = (np.array([g.directions()[0] for g in geoms]),
                     {tuple(np.round(g.size, 6)) for g in geoms})
    return v, out


@pytest.mark.parametrize("preset, train, test", [("demo", 500, 150), ("mini", 2000, 250)])
def test_preset_localisation_sets_have_many_directions_spread_over_the_sphere(preset, train,
                                                                             test):
    v, sets = preset_directions(preset)
    assert v["doa_tasks"].split(":")[1:] == ["demo_train_loc", "demo_valid_loc", "demo_test_loc"]
    dirs = {name: d for name, (d, _) in sets.items()}
    assert len(np.unique(np.round(dirs["demo_train"][:, :2], 3), axis=0)) >= train
    assert len(np.unique(np.round(dirs["demo_test"][:, :2], 3), axis=0)) >= test
    for name, d in dirs.items():
        az, el = d[:, 0], d[:, 1]
        octants = np.histogram(az, bins=8, range=(-180, 180))[0] / len(az)
        assert octants.min() >= 0.05, (name, octants)   # every 45-degree sector is used
        back = np.mean(np.abs(az) > 90)
        assert 0.3 <= back <= 0.7, (name, back)          # front and back both present
        assert np.mean(el > 20) >= 0.05 and np.mean(el < -10) >= 0.05, name
    rooms = {name: r for name, (_, r) in sets.items()}
    assert not rooms["demo_train"] & rooms["demo_test"]  # training and test rooms disjoint
    assert not rooms["demo_train"] & rooms["demo_valid"]


def test_distinct_assignment_needs_a_pack_per_render():
    ids = render_ids(["a", "b", "c"], 2)
    assert sorted(ids) == ["a-r1", "a-r2", "b-r1", "b-r2", "c-r1", "c-r2"]
    assert ids["b-r2"] == "b"
    packs = assign_packs(ids, 6, 0, "distinct")
    assert sorted(packs.values()) == list(range(6))
    assert packs == assign_packs(ids, 6, 0, "distinct")   # deterministic
    with pytest.raises(ValueError, match="6 renders need at least as many packs, the bank has 5"):
        assign_packs(ids, 5, 0, "distinct")
    with pytest.raises(ValueError, match="--pack_assignment"):
        assign_packs(ids, 6, 0, "sequential")
    assert render_ids(["a"], 1) == {"a": "a"}   # one render keeps the utterance ids


@pytest.fixture(scope="module")
def early_bank(tmp_path_factory):
    out = tmp_path_factory.mktemp("locbank") / "foa"
    sampling = RoomSampling(room_size_min=(3, 3, 2.5), room_size_max=(5, 4, 3), rt60=(0.3, 0.5),
                            source_distance=(0.5, 1.2), num_noise_sources=(1, 1))
    render = RenderConfig(format="foa", fs=FS, method="early", ism_order=2, max_rir_seconds=0.25)
    make_bank_shards(out, 6, seed=7, sampling=sampling, render=render, shard_size=3)
    merge_bank(out)
    return out


def test_renders_each_clip_at_its_own_direction(tmp_path, early_bank):
    clips = {f"u{i}": (tone(0.5, freq=300 + 80 * i), FS) for i in range(3)}
    src = make_dir(tmp_path, "clean", clips, {u: f"c{u[-1]}" for u in clips})
    noise = make_dir(tmp_path / "n", "noise",
                     {"n1": (np.random.default_rng(0).standard_normal(FS) * 0.1, FS)})
    out = tmp_path / "loc"
    summary = render_eval_set(src, early_bank, out, out / "data", noise_dir=noise, seed=1,
                              renders_per_utt=2, pack_assignment="distinct")
    assert summary["rendered"] == 6
    t = read_data_dir(out)
    assert sorted(t["wav.scp"]) == sorted(render_ids(clips, 2))
    assert len(set(t["utt2rir"].values())) == 6 and len(set(t["utt2doa"].values())) == 6
    assert t["utt2label"]["u2-r1"] == t["utt2label"]["u2-r2"] == "c2"
    with pytest.raises(ValueError, match="renders need at least as many packs"):
        render_eval_set(src, early_bank, tmp_path / "x", tmp_path / "x" / "data",
                        renders_per_utt=3, pack_assignment="distinct")
    with pytest.raises(ValueError, match="other settings|--overwrite"):  # provenance
        render_eval_set(src, early_bank, out, out / "data", noise_dir=noise, seed=1,
                        renders_per_utt=1, pack_assignment="distinct")


def test_early_method_keeps_the_image_sources_and_cuts_the_ray_traced_tail():
    from espnet2_gram.simulation.rooms import RIRRenderer, sample_room

    sampling = RoomSampling(room_size_min=(5, 4, 3), room_size_max=(5, 4, 3), rt60=(0.6, 0.6),
                            num_noise_sources=(0, 0))
    geom = sample_room(sampling, np.random.default_rng(3))
    cfg = dict(format="foa", fs=FS, ism_order=3, n_rays=1000, max_rir_seconds=0.8)
    hybrid = RIRRenderer(RenderConfig(method="hybrid", **cfg)).render(geom)[0, 0]
    early = RIRRenderer(RenderConfig(method="early", **cfg)).render(geom)[0, 0]
    peak = int(np.argmax(np.abs(hybrid)))
    assert peak == int(np.argmax(np.abs(early)))            # same direct path
    assert early[peak] == pytest.approx(hybrid[peak], rel=0.05)
    late = slice(int(0.2 * FS), None)
    assert np.sum(early[late] ** 2) < 0.05 * np.sum(hybrid[late] ** 2)   # no late reverberation
