"""Speed of the simulation against bare baselines measured in the same run.

    python -m espnet2_gram.benchmarks.simulation --out exp/benchmark/simulation.json

1. RIR bank: our per-pack cost (sampling, rendering, FOA rotation, RT60 measurement, ark
   writing) against calling pyroomacoustics directly on the same rooms; and the speed-up of
   two jobs over one (separate processes, as ``run.sh --nj``).
2. Scene mixing: ``mix_scene`` against bare ``scipy.signal.fftconvolve`` of the same arrays
   (source with its RIR, the fitted noise with each noise RIR), 10-s scenes at 32 kHz.
3. Render methods on the same rooms (one source each): the localisation banks' ``early``
   (image sources up to order 3, no tail) against the pretraining banks' ``hybrid`` (the same
   image sources plus a ray-traced tail), RIRs per second per core.
Runs alternate between ours and the baseline; medians are reported.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

from espnet2_gram.simulation.mixing import fit_noise, mix_scene, normalize_dbfs
from espnet2_gram.simulation.rir_bank import make_bank_shards
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer, RoomSampling, sample_room
from espnet2_gram.utils.cli import run, setup_logging
from espnet2_gram.utils.fileio import atomic_open

SAMPLING = RoomSampling(rt60=(0.2, 0.7), num_noise_sources=(0, 3))


def bare_pyroomacoustics(geom, render: RenderConfig, directivities) -> list:
    """The same room computed with pyroomacoustics alone (the baseline)."""
    import pyroomacoustics as pra

    pra.random.seed(numpy=0, libroom=0)
    room = pra.ShoeBox(geom.size, fs=render.fs, materials=pra.Material(geom.absorption),
                       max_order=render.ism_order, air_absorption=render.air_absorption)
    for pos in geom.source_positions:
        room.add_source(pos)
    mics = np.tile(np.asarray(geom.listener_position)[:, None], (1, len(directivities)))
    room.add_microphone_array(pra.MicrophoneArray(mics, render.fs, directivity=directivities))
    room.set_ray_tracing(n_rays=render.n_rays)
    room.compute_rir()
    return room.rir


def bench_rir_bank(fmt: str, num_packs: int, repeats: int) -> dict:
    """Per-pack cost once a job is set up; the one-off set-up (HRIR loading and
    directivities, built once per process) is reported separately."""
    render = RenderConfig(format=fmt, fs=16000, n_rays=1000, max_rir_seconds=0.8)
    t0 = time.perf_counter()
    renderer = RIRRenderer(render)
    setup_s = time.perf_counter() - t0
    geoms = [sample_room(SAMPLING, np.random.default_rng([0, i])) for i in range(num_packs)]
    ours, bare = [], []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            make_bank_shards(tmp, num_packs, seed=0, sampling=SAMPLING, render=render,
                             shard_size=num_packs)
            ours.append((time.perf_counter() - t0) / num_packs)
        t0 = time.perf_counter()
        for geom in geoms:
            bare_pyroomacoustics(geom, render, renderer._directivities(geom.listener_yaw))
        bare.append((time.perf_counter() - t0) / num_packs)
    ours_s, bare_s = float(np.median(ours)), float(np.median(bare))
    return {"format": fmt, "packs": num_packs, "setup_s": setup_s, "ours_s_per_pack": ours_s,
            "pyroomacoustics_s_per_pack": bare_s, "overhead": ours_s / bare_s - 1}


def bench_jobs(num_packs: int, config: Path) -> dict:
    """Wall time of the bank CLI with one job against two jobs in parallel."""
    def launch(num_jobs: int, out: str) -> float:
        cmd = [sys.executable, "-m", "espnet2_gram.bin.make_rir_bank", "--config", str(config),
               "--format", "binaural", "--out_dir", out, "--num_packs", str(num_packs),
               "--shard_size", "2", "--num_jobs", str(num_jobs), "--log_level", "WARNING"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd + ["--job_index", str(j)], env=env)
                 for j in range(1, num_jobs + 1)]
        if any(p.wait() for p in procs):
            raise RuntimeError("a benchmark job failed")
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        one = launch(1, f"{tmp}/one")
        two = launch(2, f"{tmp}/two")
    return {"packs": num_packs, "nj1_s": one, "nj2_s": two, "speedup": one / two,
            "cores": os.cpu_count()}


def bench_mixing(channels: int, repeats: int, fs: int = 32000, seconds: float = 10.0,
                 rir_seconds: float = 1.0, num_noise: int = 3) -> dict:
    rng = np.random.default_rng(0)
    t = np.arange(int(rir_seconds * fs)) / fs
    rirs = (rng.standard_normal((1 + num_noise, channels, len(t))) * np.exp(-t / 0.1))
    rirs = rirs.astype(np.float32)
    source = rng.standard_normal(int(seconds * fs)).astype(np.float32)
    noise = rng.standard_normal(int(4 * fs)).astype(np.float32)
    fitted, _, _ = fit_noise(normalize_dbfs(noise, -14.0), len(source), int(0.2 * fs),
                             np.random.default_rng(1))
    ours, bare = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mix_scene(source, rirs[0], noise, rirs[1:], 10.0, np.random.default_rng(1), fs)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scipy.signal.fftconvolve(source[None], rirs[0], axes=-1)
        for r in rirs[1:]:
            scipy.signal.fftconvolve(fitted[None], r, axes=-1)
        bare.append(time.perf_counter() - t0)
    ours_s, bare_s = float(np.median(ours)), float(np.median(bare))
    return {"channels": channels, "fs": fs, "seconds": seconds, "noise_sources": num_noise,
            "ours_s": ours_s, "fftconvolve_s": bare_s, "ratio": ours_s / bare_s,
            "scenes_per_s_per_core": 1.0 / ours_s}


def bench_methods(fmt: str, num_rooms: int, config: Path) -> dict:
    """RIRs per second of each render method of ``config`` (render section) on the same rooms."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    sampling = RoomSampling(**{**cfg["sampling"], "num_noise_sources": (0, 0)})
    geoms = [sample_room(sampling, np.random.default_rng([1, i])) for i in range(num_rooms)]
    rates = {}
    for method in ("hybrid", "early"):
        render = RenderConfig(**{**cfg["render"], "format": fmt, "method": method,
                                 "n_rays": cfg["render"].get("n_rays", 1000)})
        renderer = RIRRenderer(render)
        t0 = time.perf_counter()
        for i, geom in enumerate(geoms):
            renderer.render(geom, seed=i)
        rates[method] = num_rooms / (time.perf_counter() - t0)
    return {"format": fmt, "rooms": num_rooms, "rirs_per_s": rates,
            "early_over_hybrid": rates["early"] / rates["hybrid"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="exp/benchmark/simulation.json")
    p.add_argument("--num_packs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--job_packs", type=int, default=16, help="packs of the --nj comparison")
    p.add_argument("--config", default="conf/demo/rir_bank.yaml")
    p.add_argument("--method_rooms", type=int, default=16, help="rooms of the method comparison")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    results = {
        "rir_bank": [bench_rir_bank(f, args.num_packs, args.repeats) for f in ("binaural", "foa")],
        "jobs": bench_jobs(args.job_packs, Path(args.config)),
        "mixing": [bench_mixing(c, 5 * args.repeats) for c in (2, 4)],
        "methods": [bench_methods(f, args.method_rooms, Path(args.config))
                    for f in ("binaural", "foa")],
    }
    with atomic_open(args.out) as f:
        json.dump(results, f, indent=2)
    for row in results["rir_bank"]:
        print(f"RIR bank {row['format']:8s}: ours {row['ours_s_per_pack']:.3f} s/pack, "
              f"pyroomacoustics {row['pyroomacoustics_s_per_pack']:.3f} s/pack, "
              f"overhead {100 * row['overhead']:+.1f}% (one-off set-up per job {row['setup_s']:.2f} s)")
    jobs = results["jobs"]
    print(f"RIR bank --nj 2 vs --nj 1 ({jobs['packs']} packs, {jobs['cores']} cores): "
          f"{jobs['nj1_s']:.1f} s -> {jobs['nj2_s']:.1f} s, speed-up {jobs['speedup']:.2f}x")
    for row in results["mixing"]:
        print(f"mixing {row['channels']} ch: ours {1000 * row['ours_s']:.1f} ms, bare fftconvolve "
              f"{1000 * row['fftconvolve_s']:.1f} ms, ratio {row['ratio']:.2f}, "
              f"{row['scenes_per_s_per_core']:.1f} scenes/s/core (10 s at 32 kHz)")
    for row in results["methods"]:
        rates = row["rirs_per_s"]
        print(f"render {row['format']:8s}: hybrid {rates['hybrid']:.1f} RIRs/s, early (order 3,"
              f" no tail) {rates['early']:.1f} RIRs/s: {row['early_over_hybrid']:.1f}x")


if __name__ == "__main__":
    run(main)
