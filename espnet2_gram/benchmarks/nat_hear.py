"""Speed of Nat-HEAR: rendering a HEAR task, and what the embedding cache saves.

    python -m espnet2_gram.benchmarks.nat_hear --bank_dir exp/rir_bank/eval_binaural \
        --noise_dir dump/raw/demo_noise --model_path exp/packed/gram_binaural

1. Rendering: ``make_nat_hear`` on a HEAR task of ``--clips`` 2-s clips written here (noise
   bursts and tones at the bank's rate), in clips per second on one core, against reading and
   writing the same clips (the I/O floor) in the same process.
2. Embeddings: ``evaluate_hear``'s scene embeddings of that task for HEAR's naive baseline and
   for GRAM (``--model_path``; default a fresh model of ``--config``): the first pass
   (computed), a second one (read from the cache), and the saving of the cache over computing
   them again for every probe training of the HEAR protocol (grid points x folds x seeds).
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from espnet2_gram.benchmarks import report
from espnet2_gram.nat_hear.evaluate import embed_task, load_hear_module
from espnet2_gram.nat_hear.generate import generate
from espnet2_gram.simulation.rir_bank import RIRBank
from espnet2_gram.utils.audio import load_audio, write_audio
from espnet2_gram.utils.cli import run

SPLITS = {"train": 0.6, "valid": 0.2, "test": 0.2}


def write_task(root: Path, clips: int, fs: int, seconds: float = 2.0) -> Path:
    """A multiclass HEAR task of noise bursts and tones in HEAR's layout."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * fs)) / fs
    start = 0
    for split, share in SPLITS.items():
        count = max(1, round(clips * share))
        (root / str(fs) / split).mkdir(parents=True)
        labels = {}
        for i in range(start, start + count):
            x = (0.3 * np.sin(2 * np.pi * (200 + 50 * (i % 7)) * t) if i % 2
                 else 0.1 * rng.standard_normal(len(t)) * (t % 0.5 < 0.25))
            sf.write(root / str(fs) / split / f"{i}.wav", x.astype("float32"), fs)
            labels[f"{i}.wav"] = ["tone" if i % 2 else "burst"]
        (root / f"{split}.json").write_text(json.dumps(labels))
        start += count
    (root / "task_metadata.json").write_text(json.dumps({
        "task_name": "bench", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "trainvaltest"}))
    return root


def copy_floor(task: Path, out: Path, fs: int) -> float:
    """Seconds to read and write every clip of ``task`` (no rendering)."""
    t0 = time.perf_counter()
    for wav in sorted(task.glob(f"{fs}/*/*.wav")):
        dst = out / wav.relative_to(task)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_audio(dst, load_audio(wav, fs=fs).samples, fs)
    return time.perf_counter() - t0


def time_embedding(task: Path, module: str, model_path: str, out: Path) -> dict:
    loaded = load_hear_module(module, model_path)
    t0 = time.perf_counter()
    embed_task(task, module, model_path, out, loaded=loaded)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed_task(task, module, model_path, out, loaded=loaded)
    return {"computed_s": first, "cached_s": time.perf_counter() - t0}


def bench(bank_dir: str, noise_dir: str, model_path: str, clips: int, runs: int,
          tmp: Path) -> dict:
    torch.set_num_threads(1)
    fs = RIRBank(bank_dir).fs
    task = write_task(tmp / "task", clips, fs)
    floor = copy_floor(task, tmp / "copy", fs)
    t0 = time.perf_counter()
    generate(task, bank_dir, tmp / "nat", noise_dir, seed=0)
    render = time.perf_counter() - t0
    result = {"clips": clips, "fs": fs, "format": RIRBank(bank_dir).format,
              "render_clips_per_s": clips / render, "io_floor_clips_per_s": clips / floor,
              "render_over_io": render / floor, "protocol_runs": runs, "embedding": {}}
    for name, module, path in (("naive", "espnet2_gram.nat_hear.naive", ""),
                               ("gram", "espnet2_gram.hear", model_path)):
        t = time_embedding(tmp / "nat", module, path, tmp / "emb" / name)
        t["clips_per_s"] = clips / t["computed_s"]
        # every probe training embedding again, against the cache: once, then reads
        t["saving"] = runs * t["computed_s"] / (t["computed_s"] + runs * t["cached_s"])
        result["embedding"][name] = t
    return result


def markdown(r: dict) -> str:
    lines = [f"Nat-HEAR, {r['clips']} clips of 2 s, {r['format']} at {r['fs']} Hz, one thread",
             "", "| measure | value |", "|---|---|",
             f"| rendering (clips/s) | {r['render_clips_per_s']:.1f} |",
             f"| read + write only (clips/s) | {r['io_floor_clips_per_s']:.1f} |",
             f"| rendering / read + write (time ratio) | {r['render_over_io']:.2f} |"]
    for name, t in r["embedding"].items():
        lines += [f"| {name}: embedding (clips/s) | {t['clips_per_s']:.1f} |",
                  f"| {name}: cached pass / computed pass (time ratio) |"
                  f" {t['cached_s'] / t['computed_s']:.3f} |",
                  f"| {name}: cache saving over {r['protocol_runs']} probe trainings |"
                  f" {t['saving']:.1f}x |"]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank_dir", required=True, help="a (held-out) RIR bank")
    p.add_argument("--noise_dir", default=None, help="data dir whose wav.scp lists noises")
    p.add_argument("--model_path", help="a packed GRAM model (default: a fresh --config model)")
    p.add_argument("--config", default="conf/demo/pretrain_binaural.yaml")
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--runs", type=int, default=24,
                   help="probe trainings of a task (HEAR: 8 grid points x 3 seeds)")
    p.add_argument("--out", help="write the figures as JSON here too")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    try:
        if args.model_path is None:
            from espnet2_gram.benchmarks.downstream import fresh_packed_model

            args.model_path = str(fresh_packed_model(args.config, tmp))
        result = bench(args.bank_dir, args.noise_dir, args.model_path, args.clips, args.runs,
                       tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(result, args.out, markdown(result))


if __name__ == "__main__":
    run(main)
