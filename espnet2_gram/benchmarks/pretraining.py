"""Speed and memory of GRAM pretraining on this machine, against baselines in the same run.

    python -m espnet2_gram.benchmarks.pretraining --out exp/benchmark/pretraining.json

1. Training step (forward + backward + AdamW) throughput in 2-s crops per second for the demo
   and paper configs, peak resident memory of each (separate processes), and the fraction of
   the machine's matmul peak (a large float32 matmul timed in the same process) reached,
   counting the step's FLOPs with ``torch.utils.flop_counter``.
2. The decoder's two exact forms of windowed attention (windows vs the dense ``(heads, N, N)``
   mask), interleaved in one process on the same batch: the decoder alone (forward +
   backward) and the whole training step of the paper config.
3. Embedding extraction with the paper encoder against an equally sized
   ``torch.nn.TransformerEncoder`` (12 x 768, 12 heads, 3072, pre-LN, GELU) on the same
   number of tokens (201 per 2-s crop).
"""

import argparse
import json
import subprocess
import sys
import time

import torch

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open


def matmul_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


def train_step_benchmark(config: str, clips: int, crops_per_clip: int, steps: int) -> dict:
    """Runs in its own process so that the peak memory belongs to this config alone."""
    import resource

    from torch.utils.flop_counter import FlopCounterMode

    from espnet2_gram.tasks.gram import build_gram_model

    model = build_gram_model(config, model_conf={"crops_per_clip": crops_per_clip})
    fs = model.frontend.fs
    seconds = model.encoder.crop_frames * model.frontend.hop_length / fs
    speech = torch.randn(clips, int(seconds * fs), model.frontend.in_channels) * 0.1
    lengths = torch.full((clips,), speech.shape[1])
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        optim.zero_grad()
        loss, _, _ = model(speech, lengths)
        loss.backward()
        optim.step()

    step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = model(speech, lengths)
        loss.backward()
    flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    step_s = sorted(times)[len(times) // 2]
    peak = matmul_peak_flops()
    return {
        "config": config, "crops_per_step": clips * crops_per_clip, "step_s": step_s,
        "crops_per_s": clips * crops_per_clip / step_s,
        "gflop_per_step": flops / 1e9, "achieved_gflops": flops / step_s / 1e9,
        "matmul_peak_gflops": peak / 1e9, "fraction_of_peak": flops / step_s / peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def window_forms_benchmark(config: str, crops: int, repeats: int) -> dict:
    """Seconds (median) of the decoder (forward + backward) and of the training step with
    windowed heads computed as windows and as a dense mask, timed alternately."""
    from espnet2_gram.gram.attention import set_window_attention
    from espnet2_gram.tasks.gram import build_gram_model

    torch.manual_seed(0)
    model = build_gram_model(config, model_conf={"crops_per_clip": crops})
    fs = model.frontend.fs
    seconds = model.encoder.crop_frames * model.frontend.hop_length / fs
    speech = torch.randn(1, int(seconds * fs), model.frontend.in_channels) * 0.1
    lengths = torch.full((1,), speech.shape[1])
    grid = model.encoder.grid
    mask = model.masking(crops, grid)
    visible = grid[0] * grid[1] - model.masking.num_masked(grid)
    tokens = torch.randn(crops, 1 + visible, model.encoder.output_size())

    def decoder():
        model.zero_grad()
        model.decoder(tokens, mask, visible).square().mean().backward()

    def step():
        model.zero_grad()
        model(speech, lengths)[0].backward()

    out = {"crops": crops}
    for name, fn in (("decoder", decoder), ("step", step)):
        times = {"windows": [], "dense": []}
        for form in times:
            set_window_attention(model, form)
            fn()  # warm-up
        for _ in range(repeats):
            for form in times:
                set_window_attention(model, form)
                t0 = time.perf_counter()
                fn()
                times[form].append(time.perf_counter() - t0)
        med = {form: sorted(t)[len(t) // 2] for form, t in times.items()}
        out[name] = {"windows_s": med["windows"], "dense_s": med["dense"],
                     "ratio": med["windows"] / med["dense"]}
    return out


def extraction_benchmark(config: str, crops: int, repeats: int) -> dict:
    from espnet2_gram.tasks.gram import build_gram_model

    encoder = build_gram_model(config).encoder.eval()
    dim, depth, heads = encoder.output_size(), encoder.depth, encoder.heads
    reference = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                         batch_first=True, norm_first=True), depth,
        enable_nested_tensor=False,
    ).eval()
    x = torch.randn(crops, encoder.in_channels, encoder.n_mels, encoder.crop_frames)
    tokens = torch.randn(crops, 1 + encoder.num_patches, dim)
    ours, ref = [], []
    with torch.inference_mode():
        encoder(x), reference(tokens)
        for _ in range(repeats):
            t0 = time.perf_counter()
            encoder(x)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reference(tokens)
            ref.append(time.perf_counter() - t0)
    ours_s, ref_s = sorted(ours)[repeats // 2], sorted(ref)[repeats // 2]
    return {"crops": crops, "gram_encoder_s": ours_s, "torch_transformer_s": ref_s,
            "throughput_ratio": ref_s / ours_s, "gram_crops_per_s": crops / ours_s}


def in_subprocess(function: str, **kwargs) -> dict:
    code = (f"import json; from espnet2_gram.benchmarks.pretraining import {function}; "
            f"print(json.dumps({function}(**{kwargs!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="exp/benchmark/pretraining.json")
    p.add_argument("--demo_config", default="conf/demo/pretrain_binaural.yaml")
    p.add_argument("--paper_config", default="conf/paper/pretrain_binaural.yaml")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    results = {
        "train_step": [
            in_subprocess("train_step_benchmark", config=args.demo_config, clips=16,
                          crops_per_clip=4, steps=args.steps),
            in_subprocess("train_step_benchmark", config=args.paper_config, clips=2,
                          crops_per_clip=4, steps=args.steps),
        ],
        "window_forms": in_subprocess("window_forms_benchmark", config=args.paper_config,
                                      crops=8, repeats=args.steps),
        "extraction": in_subprocess("extraction_benchmark", config=args.paper_config,
                                    crops=8, repeats=args.steps),
    }
    with atomic_open(args.out) as f:
        json.dump(results, f, indent=2)
    for row in results["train_step"]:
        print(f"{row['config']}: {row['crops_per_s']:.1f} crops/s ({row['crops_per_step']} crops"
              f" per step, {row['step_s']:.2f} s), {row['achieved_gflops']:.1f} GFLOP/s ="
              f" {100 * row['fraction_of_peak']:.0f}% of the matmul peak"
              f" ({row['matmul_peak_gflops']:.1f} GFLOP/s), peak RSS {row['peak_rss_mb']:.0f} MB")
    forms = results["window_forms"]
    for name in ("decoder", "step"):
        row = forms[name]
        print(f"paper {name}, {forms['crops']} crops: windowed heads as windows"
              f" {row['windows_s']:.2f} s, as a dense mask {row['dense_s']:.2f} s,"
              f" ratio {row['ratio']:.2f}")
    ext = results["extraction"]
    print(f"extraction, paper encoder: {ext['gram_crops_per_s']:.1f} crops/s,"
          f" {100 * ext['throughput_ratio']:.0f}% of torch.nn.TransformerEncoder's throughput")


if __name__ == "__main__":
    run(main)
