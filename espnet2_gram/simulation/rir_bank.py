"""The RIR bank: sharded kaldiio ark/scp of float32 (channels, samples) arrays plus one JSON
line per scene pack (a target source RIR and 0-5 noise-source RIRs from the same room).

Pack ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the bank is the same for
any number of jobs. Shard ``s`` holds packs ``[s * shard_size, (s + 1) * shard_size)`` and job
``j`` (1-based) of ``n`` writes shards ``s = j - 1, j - 1 + n, ...``. A shard is complete when
its ``.jsonl`` exists (written last, atomically): an interrupted job resumes at the first
incomplete shard and rewrites it from scratch.

A job validates everything it can (job index, HRTF, the geometry of its packs) before it claims
the folder: ``config.json`` is created at once or not at all, and a job whose settings differ
from the claimed ones is refused, so concurrent jobs never mix shards of two configurations.
Scp files hold ark paths relative to the bank, so a bank opens from any working directory.
"""

import io
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np

from espnet2_gram.utils.fileio import atomic_open, atomic_path, remove_stale_temps, write_once
from espnet2_gram.utils.provenance import describe_differences
from espnet2_gram.simulation.acoustics import rt60_schroeder
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer, RoomSampling, sample_room

logger = logging.getLogger(__name__)

SCP = "rirs.scp"
META = "meta.jsonl"
INFO = "bank.json"
CONFIG = "config.json"


def pack_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:07d}"


def noise_id(pid: str, k: int) -> str:
    return f"{pid}-noise{k}"


def check_rt60_fits(sampling: RoomSampling, render: RenderConfig) -> None:
    """Refuse RIRs too short for their reverberation: the highest ``sampling.rt60`` must not
    exceed ``render.max_rir_seconds`` (the RIR holds at least a 60 dB decay)."""
    if sampling.rt60[1] > render.max_rir_seconds:
        raise ValueError(
            f"sampling.rt60 reaches {sampling.rt60[1]} s but render.max_rir_seconds is"
            f" {render.max_rir_seconds} s: an RIR must hold its whole reverberation time;"
            " raise render.max_rir_seconds or lower sampling.rt60"
        )


def pack_geometry(index: int, seed: int, sampling: RoomSampling) -> tuple:
    """(generator, room) of pack ``index``; the generator goes on to draw the rendering seed."""
    rng = np.random.default_rng([seed, index])
    return rng, sample_room(sampling, rng)


def make_pack(index: int, seed: int, prefix: str, sampling: RoomSampling,
              renderer: RIRRenderer) -> tuple:
    """Sample and render pack ``index``: ({array id: (C, L)}, metadata dict)."""
    rng, geom = pack_geometry(index, seed, sampling)
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
        "hrtf": cfg.hrtf if renderer.format.receivers == "hrtf" else None,
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
    """Write one shard: ark, then scp (paths relative to the bank), then jsonl (the completion
    marker), each atomically; temporary files of a killed attempt are removed first."""
    import kaldiio

    paths = _shard_paths(out_dir, shard)
    remove_stale_temps(paths["ark"].parent, f"rirs.{shard:05d}.*")
    arrays = {k: v for arrays, _ in packs for k, v in arrays.items()}
    with atomic_path(paths["ark"]) as tmp_ark, atomic_path(paths["scp"]) as tmp_scp:
        kaldiio.save_ark(str(tmp_ark), arrays, scp=str(tmp_scp))
        text = tmp_scp.read_text().replace(str(tmp_ark), str(paths["ark"].relative_to(out_dir)))
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
    """Claim ``out_dir`` for ``config`` (atomically), or refuse a folder claimed by another."""
    path = out_dir / CONFIG
    if write_once(path, json.dumps(config, sort_keys=True, indent=2)):
        return
    claimed = json.loads(path.read_text())
    config = json.loads(json.dumps(config))
    if claimed != config:
        raise ValueError(
            f"{out_dir} holds a bank of another configuration ({path}:"
            f" {describe_differences(claimed, config)}); remove it or choose another --out_dir"
        )


def make_bank_shards(out_dir, num_packs: int, seed: int, sampling: RoomSampling,
                     render: RenderConfig, shard_size: int = 50, job_index: int = 1,
                     num_jobs: int = 1, prefix: str = "rir") -> int:
    """Write this job's missing shards; returns how many packs were rendered."""
    out_dir = Path(out_dir)
    shards = shards_of_job(num_packs, shard_size, job_index, num_jobs)
    renderer = RIRRenderer(render)  # loads the HRTF
    ranges = {s: range(s * shard_size, min((s + 1) * shard_size, num_packs)) for s in shards}
    for indices in ranges.values():  # geometry errors surface before the folder is claimed
        for i in indices:
            pack_geometry(i, seed, sampling)
    claim_out_dir(out_dir, config_dict(sampling, render, seed=seed, num_packs=num_packs,
                                       shard_size=shard_size, prefix=prefix))
    rendered = 0
    for shard, indices in ranges.items():
        if _shard_paths(out_dir, shard)["jsonl"].exists():
            logger.info("shard %d already complete, skipped", shard)
            continue
        packs = [make_pack(i, seed, prefix, sampling, renderer) for i in indices]
        write_shard(out_dir, shard, packs)
        rendered += len(indices)
        logger.info("shard %d: packs %d-%d written", shard, indices[0], indices[-1])
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
        raise ValueError(f"{out_dir}: shards {missing[:10]} are incomplete; run the jobs again")
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


def _load_scp(scp: Path):
    """kaldiio's lazy reader of a bank's scp, ark paths resolved against the bank's folder
    (banks of older versions, with paths relative to the working directory, still open)."""

    bank_dir = scp.parent.absolute()
    found: Dict[str, bool] = {}
    lines = []
    for line in scp.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(" ")
        ark, sep, offset = value.strip().rpartition(":")
        if ark not in found:
            found[ark] = (bank_dir / ark).is_file()
        if found[ark]:
            value = f"{bank_dir / ark}{sep}{offset}"
        lines.append(f"{key} {value}\n")
    from espnet2_gram.utils.scp import load_scp  # refuses command entries unless allowed

    return load_scp(io.StringIO("".join(lines)), name=scp)


def _read_meta(path: Path) -> List[dict]:
    metas = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            metas.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not a JSON line ({e}); rebuild the bank") from e
    return metas


class RIRBank:
    """Read access to a merged bank: packs by index, each with its source and noise RIRs."""

    def __init__(self, bank_dir):
        bank_dir = Path(bank_dir)
        for name in (SCP, META):
            if not (bank_dir / name).is_file():
                raise FileNotFoundError(
                    f"{bank_dir / name}: missing; build the bank first (run.sh stage 3)"
                )
        self.dir = bank_dir
        self.meta = _read_meta(bank_dir / META)
        if not self.meta:
            raise ValueError(f"{bank_dir / META}: the bank is empty")
        self._arrays = _load_scp(bank_dir / SCP)
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
