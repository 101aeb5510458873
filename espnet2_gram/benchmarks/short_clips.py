"""How GRAM encodes clips shorter than one crop: the real-column path
(``GRAMEncoder.extract(..., lengths=...)``) against the zero-padded crop, by how close each is
to the same frames encoded inside a whole crop, and how long each takes.

    python -m espnet2_gram.benchmarks.short_clips --config conf/demo/pretrain_binaural.yaml \
        [--model_path exp/packed/gram_binaural] --out exp/benchmark/short_clips.json

On synthetic binaural scenes of dense tone-and-noise events (interaural delay), at three input
levels, the first 0.25-1.5 s of a 2-s scene (those shorter than a crop) are encoded alone and
compared with the first columns of the whole 2-s crop.

Closeness is the mean cosine similarity and relative L2 distance of the per-column (``raw``)
embeddings, last layer. Speed: the two paths on one clip, one thread, interleaved, median.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open

GAINS = (0.01, 0.1, 1.0)
SHORT_SECONDS = (0.25, 0.5, 1.0, 1.5)


def scenes(n: int, seconds: float, fs: int, gain: float, seed: int = 0) -> torch.Tensor:
    """``(n, samples, 2)`` binaural scenes of 24 tone-and-noise events per 2 s."""
    g = torch.Generator().manual_seed(seed)
    samples = int(seconds * fs)
    t = torch.arange(samples) / fs
    x = torch.zeros(n, samples, 2)
    for _ in range(int(12 * seconds)):
        on = torch.rand(n, 1, generator=g) * (seconds - 0.2)
        dur = 0.1 + torch.rand(n, 1, generator=g) * 0.5
        env = torch.exp(-0.5 * ((t - on - dur / 2) / (dur / 4)) ** 2)
        f0 = 100 + torch.rand(n, 1, generator=g) * 3000
        s = env * (torch.sin(2 * torch.pi * f0 * t)
                   + 0.3 * torch.randn(n, samples, generator=g))
        x[..., 0] += s
        x[..., 1] += 0.7 * torch.roll(s, 3, dims=1)
    return gain * (x + 0.01 * torch.randn(n, samples, 2, generator=g))


def closeness(out: torch.Tensor, ref: torch.Tensor) -> dict:
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1).mean().item()
    rel = ((out - ref).norm(dim=-1) / ref.norm(dim=-1)).mean().item()
    return {"cosine": round(cos, 4), "rel_l2": round(rel, 4)}


def seconds_of(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(encoder, feats, frames, ref, repeats: int) -> dict:
    """Both paths on ``feats`` (their real ``frames``) against ``ref``, and their speed on the
    first clip (interleaved, median of ``repeats``)."""
    padded = encoder.extract(feats, "raw")
    real = encoder.extract(feats, "raw", lengths=frames)
    one, one_frames = feats[:1], frames[:1]
    times = {"padded": [], "real": []}
    for _ in range(repeats):
        times["padded"].append(seconds_of(lambda: encoder.extract(one, "raw")))
        times["real"].append(seconds_of(lambda: encoder.extract(one, "raw", lengths=one_frames)))
    ratio = statistics.median(times["real"]) / statistics.median(times["padded"])
    return {"padded": closeness(padded, ref), "real_columns": closeness(real, ref),
            "speed_real_over_padded": round(ratio, 3)}


def measure(config: str, model_path=None, clips: int = 16, repeats: int = 5) -> dict:
    from espnet2_gram.pretrained.packing import load_gram
    from espnet2_gram.tasks.gram import build_gram_model

    torch.manual_seed(0)
    model = load_gram(model_path) if model_path else build_gram_model(config)
    frontend, encoder = model.frontend.eval(), model.encoder.eval()
    fs, crop = frontend.fs, encoder.crop_frames
    hop_s = frontend.hop_length / fs
    out = {"config": config, "model_path": model_path, "clips": clips, "fs": fs,
           "crop_frames": crop, "short": []}
    with torch.no_grad():
        for gain in GAINS:
            audio = scenes(clips, crop * hop_s + 0.1, fs, gain)
            whole = frontend(audio)[0][..., :crop]
            for seconds in (s for s in SHORT_SECONDS if s < crop * hop_s):
                feats, frames = frontend(audio[:, :int(seconds * fs)])
                n = encoder.num_frames(int(frames[0]))
                ref = encoder.extract(whole, "raw")[:, :n]
                row = compare(encoder, feats, frames, ref, repeats)
                out["short"].append({"gain": gain, "seconds": seconds, **row})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/demo/pretrain_binaural.yaml",
                   help="GRAM config (random init) unless --model_path is given")
    p.add_argument("--model_path", default=None, help="a packed GRAM model")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="exp/benchmark/short_clips.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.config, args.model_path, args.clips, args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out) as f:
        json.dump(result, f, indent=2)
    for r in result["short"]:
        print(f"{r['seconds']} s, gain {r['gain']}: cosine padded {r['padded']['cosine']:.3f},"
              f" real columns {r['real_columns']['cosine']:.3f};"
              f" speed {r['speed_real_over_padded']:.2f}x")


if __name__ == "__main__":
    run(main)
