"""The RIR bank: sharded kaldiio ark/scp of float32 (channels, samples) arrays plus one JSON
line per scene pack (a target source RIR and 0-5 noise-source RIRs from the same room).

Pack ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the bank is the same for
any number of jobs. Shard ``s`` holds packs ``[s * shard_size, (s + 1) * shard_size)`` and job
``j`` (1-based) of ``n`` writes shards ``s = j - 1, j - 1 + n, ...``. A shard is complete when
its ``.jsonl`` exists (written last, atomically): an interrupted job resumes at the first
incomplete shard and rewrites it from scratch.
"""

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np

from ..utils.fileio import atomic_open, atomic_path
from .acoustics import rt60_schroeder
from .rooms import RenderConfig, RIRRenderer, RoomSampling, sample_room

logger = logging.getLogger(__name__)

SCP = "rirs.scp"
META = "meta.jsonl"
INFO = "bank.json"
CONFIG = "config.json"


def pack_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:07d}"


def noise_id(pid: str, k: int) -> str:
    return f"{pid}-noise{k}"


def make_pack(index: int, seed: int, prefix: str, sampling: RoomSampling,
              renderer: RIRRenderer) -> tuple:
    """Sample and render pack ``index``: ({array id: (C, L)}, metadata dict)."""
    rng = np.random.default_rng([seed, index])
    geom = sample_room(sampling, rng)
    rirs = renderer.render(geom, seed=int(rng.integers(2**63)))
    pid = pack_id(prefix, index)
    arrays = {pid: rirs[0]}
    noise_ids = [noise_id(pid, k) for k in range(1, len(rirs))]
    arrays.update(zip(noise_ids, rirs[1:]))
    directions = geom.directions()
    cfg = renderer.cfg
    meta = {
        "id": pid,
        "format": cfg.format,
        "fs": cfg.fs,
        "method": cfg.method,
        "hrtf": cfg.hrtf if cfg.format == "binaural" else None,
        "room_size": geom.size,
        "rt60_target": geom.rt60,
        "rt60_measured": rt60_schroeder(rirs[0], cfg.fs),
        "absorption": geom.absorption,
        "listener_position": geom.listener_position,
        "listener_yaw": geom.listener_yaw,
        "source_position": geom.source_positions[0],
        "azimuth": float(directions[0, 0]),
        "elevation": float(directions[0, 1]),
        "distance": float(directions[0, 2]),
        "noise_ids": noise_ids,
        "noise_positions": geom.source_positions[1:],
        "noise_directions": directions[1:].tolist(),
        "num_samples": int(rirs.shape[-1]),
    }
    return arrays, meta


def _shard_paths(out_dir: Path, shard: int) -> Dict[str, Path]:
    return {ext: out_dir / "shards" / f"rirs.{shard:05d}.{ext}" for ext in ("ark", "scp", "jsonl")}


def write_shard(out_dir: Path, shard: int, packs: List[tuple]) -> None:
    """Write one shard: ark, then scp, then jsonl (the completion marker), each atomically."""
    import kaldiio

    paths = _shard_paths(out_dir, shard)
    arrays = {k: v for arrays, _ in packs for k, v in arrays.items()}
    with atomic_path(paths["ark"]) as tmp_ark, atomic_path(paths["scp"]) as tmp_scp:
        kaldiio.save_ark(str(tmp_ark), arrays, scp=str(tmp_scp))
        text = tmp_scp.read_text().replace(str(tmp_ark), str(paths["ark"]))
        tmp_scp.write_text(text)
    with atomic_open(paths["jsonl"]) as f:
        for _, meta in packs:
            f.write(json.dumps(meta) + "\n")


def shards_of_job(num_packs: int, shard_size: int, job_index: int, num_jobs: int) -> List[int]:
    if not 1 <= job_index <= num_jobs:
        raise ValueError(f"--job_index must be in [1, {num_jobs}], got {job_index}")
    num_shards = -(-num_packs // shard_size)
    return list(range(job_index - 1, num_shards, num_jobs))


def claim_out_dir(out_dir: Path, config: dict) -> None:
    """Record the bank's configuration, or refuse to resume a bank built with another one."""
    path = out_dir / CONFIG
    text = json.dumps(config, sort_keys=True, indent=2)
    if path.exists():
        if json.loads(path.read_text()) != json.loads(text):
            raise ValueError(
                f"{out_dir} holds a bank built with another configuration ({path});"
                " remove it or choose another --out_dir"
            )
        return
    with atomic_open(path) as f:
        f.write(text)


def make_bank_shards(out_dir, num_packs: int, seed: int, sampling: RoomSampling,
                     render: RenderConfig, shard_size: int = 50, job_index: int = 1,
                     num_jobs: int = 1, prefix: str = "rir") -> int:
    """Write this job's missing shards; returns how many packs were rendered."""
    out_dir = Path(out_dir)
    claim_out_dir(out_dir, config_dict(sampling, render, seed=seed, num_packs=num_packs,
                                       shard_size=shard_size, prefix=prefix))
    renderer = RIRRenderer(render)
    rendered = 0
    for shard in shards_of_job(num_packs, shard_size, job_index, num_jobs):
        if _shard_paths(out_dir, shard)["jsonl"].exists():
            logger.info("shard %d already complete, skipped", shard)
            continue
        lo, hi = shard * shard_size, min((shard + 1) * shard_size, num_packs)
        packs = [make_pack(i, seed, prefix, sampling, renderer) for i in range(lo, hi)]
        write_shard(out_dir, shard, packs)
        rendered += hi - lo
        logger.info("shard %d: packs %d-%d written", shard, lo, hi - 1)
    return rendered


def merge_bank(out_dir) -> dict:
    """Concatenate the shards into ``rirs.scp`` and ``meta.jsonl``; write ``bank.json``."""
    out_dir = Path(out_dir)
    if not (out_dir / CONFIG).is_file():
        raise FileNotFoundError(f"{out_dir / CONFIG}: no bank was started here")
    config = json.loads((out_dir / CONFIG).read_text())
    num_shards = -(-config["num_packs"] // config["shard_size"])
    missing = [s for s in range(num_shards) if not _shard_paths(out_dir, s)["jsonl"].exists()]
    if missing:
        raise RuntimeError(f"{out_dir}: shards {missing[:10]} are incomplete; run the jobs again")
    scp_lines, meta_lines = [], []
    for s in range(num_shards):
        paths = _shard_paths(out_dir, s)
        scp_lines += paths["scp"].read_text().splitlines()
        meta_lines += paths["jsonl"].read_text().splitlines()
    with atomic_open(out_dir / SCP) as f:
        f.write("".join(line + "\n" for line in sorted(scp_lines)))
    with atomic_open(out_dir / META) as f:
        f.write("".join(line + "\n" for line in meta_lines))
    metas = [json.loads(line) for line in meta_lines]
    rt60 = np.array([[m["rt60_target"], m["rt60_measured"]] for m in metas])
    info = {
        "num_packs": len(metas),
        "num_rirs": len(scp_lines),
        "rt60_target_mean": float(np.mean(rt60[:, 0])),
        "rt60_measured_mean": float(np.nanmean(rt60[:, 1])),
        "config": config,
    }
    with atomic_open(out_dir / INFO) as f:
        json.dump(info, f, indent=2)
    return info


class RIRBank:
    """Read access to a merged bank: packs by index, each with its source and noise RIRs."""

    def __init__(self, bank_dir):
        import kaldiio

        bank_dir = Path(bank_dir)
        for name in (SCP, META):
            if not (bank_dir / name).is_file():
                raise FileNotFoundError(
                    f"{bank_dir / name}: missing; build the bank first (run.sh stage 3)"
                )
        self.dir = bank_dir
        self.meta = [json.loads(line) for line in open(bank_dir / META)]
        if not self.meta:
            raise ValueError(f"{bank_dir / META}: the bank is empty")
        self._arrays = kaldiio.load_scp(str(bank_dir / SCP))
        self.format = self.meta[0]["format"]
        self.fs = int(self.meta[0]["fs"])

    def __len__(self) -> int:
        return len(self.meta)

    def pack(self, index: int) -> tuple:
        """(source RIR (C, L), noise RIRs (K, C, L), metadata)."""
        meta = self.meta[index]
        source = self._arrays[meta["id"]]
        noises = [self._arrays[k] for k in meta["noise_ids"]]
        shape = (0,) + source.shape
        noise = np.stack(noises) if noises else np.zeros(shape, dtype=source.dtype)
        return source, noise, meta

    def __iter__(self) -> Iterator[tuple]:
        return (self.pack(i) for i in range(len(self)))


def config_dict(sampling: RoomSampling, render: RenderConfig, **extra) -> dict:
    return {"sampling": asdict(sampling), "render": asdict(render), **extra}
