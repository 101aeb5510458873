"""Cost of reusing GRAM, measured against baselines in the same run.

    python -m espnet2_gram.benchmarks.reuse --model exp/packed/gram_binaural

1. An ESPnet ASR training step (forward + backward + Adam) with ``frontend: gram``, frozen
   and trained, against the same model with ESPnet's default log-mel frontend (80 mels), with
   a linear input layer and with the 4x conv2d subsampling of the ASR demo's log-mel config;
   all feed the same small transformer encoder/decoder. Ratios are against log-mel (linear).
2. HEAR embedding extraction (``espnet2_gram.hear``) in times real time.
"""

import argparse
import contextlib
import json
import sys
import time

import torch

import espnet2_gram  # noqa: F401  (registers gram in ESPnet's tasks)
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open

ENCODER = {"output_size": 144, "attention_heads": 4, "linear_units": 576, "num_blocks": 4,
           "input_layer": "linear"}
DECODER = {"attention_heads": 4, "linear_units": 576, "num_blocks": 2}


LOGMEL = {"n_fft": 512, "hop_length": 160, "n_mels": 80}
# name: frontend, its options, the encoder's input layer
VARIANTS = {"gram_frozen": ("gram", {"freeze_steps": -1}, "linear"),
            "gram_trained": ("gram", {"freeze_steps": 0}, "linear"),
            "logmel": ("default", LOGMEL, "linear"),
            "logmel_conv2d": ("default", LOGMEL, "conv2d")}


def asr_model(frontend: str, frontend_conf: dict, input_layer: str, vocab: int = 40):
    with contextlib.redirect_stdout(sys.stderr):
        from espnet2.tasks.asr import ASRTask
    args = ASRTask.get_parser().parse_args([])
    args.token_list = [f"t{i}" for i in range(vocab)]
    args.frontend, args.frontend_conf = frontend, frontend_conf
    args.specaug, args.normalize = None, "utterance_mvn"
    args.encoder, args.encoder_conf = "transformer", {**ENCODER, "input_layer": input_layer}
    args.decoder, args.decoder_conf = "transformer", dict(DECODER)
    args.model_conf = {"ctc_weight": 0.3}
    args.input_size = None
    return ASRTask.build_model(args)


def time_steps(model, speech, lengths, text, text_lengths, steps: int) -> float:
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        optim.zero_grad()
        loss = model(speech=speech, speech_lengths=lengths, text=text,
                     text_lengths=text_lengths)[0]
        loss.backward()
        optim.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_asr(model_path: str, batch: int, seconds: float, steps: int) -> dict:
    from espnet2_gram.pretrained.packing import load_gram

    gram_fe = load_gram(model_path).frontend
    fs, channels = gram_fe.fs, gram_fe.in_channels
    speech = torch.randn(batch, int(seconds * fs), channels) * 0.1
    lengths = torch.full((batch,), speech.shape[1])
    text = torch.randint(1, 39, (batch, 12))
    text_lengths = torch.full((batch,), 12)
    results = {"batch": batch, "seconds": seconds}
    for name, (frontend, conf, input_layer) in VARIANTS.items():
        gram = frontend == "gram"
        model = asr_model(frontend, {**conf, "fs": fs, **({"model_path": model_path} if gram
                                                          else {})}, input_layer)
        x = speech if gram else speech[..., 0]
        with torch.no_grad():
            feats, feat_lengths = model.frontend(x, lengths)
            encoded = model.encoder(feats, feat_lengths)[0]
        results[name] = {"step_s": time_steps(model, x, lengths, text, text_lengths, steps),
                         "frontend_s": time_frontend(model, x, lengths, steps),
                         "encoder_frames": int(encoded.shape[1]),
                         "trainable_params": sum(p.numel() for p in model.parameters()
                                                 if p.requires_grad)}
    base = results["logmel"]
    for name in VARIANTS:
        results[name]["step_ratio"] = results[name]["step_s"] / base["step_s"]
        results[name]["frontend_ratio"] = results[name]["frontend_s"] / base["frontend_s"]
    return results


def time_frontend(model, speech, lengths, steps: int) -> float:
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        model.frontend(speech, lengths)
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def bench_hear(model_path: str, seconds: float, repeats: int) -> dict:
    from espnet2_gram import hear

    model = hear.load_model(model_path)
    audio = torch.randn(1, int(seconds * model.sample_rate)) * 0.1
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        hear.get_timestamp_embeddings(audio, model)
        times.append(time.perf_counter() - t0)
    best = sorted(times[1:])[len(times[1:]) // 2]
    return {"seconds": seconds, "extraction_s": best, "times_real_time": seconds / best}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a packed GRAM model")
    p.add_argument("--out", default="exp/benchmark/reuse.json")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    results = {"asr_step": bench_asr(args.model, batch=8, seconds=4.0, steps=args.steps),
               "hear": bench_hear(args.model, seconds=60.0, repeats=3)}
    with atomic_open(args.out) as f:
        json.dump(results, f, indent=2)
    asr, hear_row = results["asr_step"], results["hear"]
    print(f"ASR step, {asr['batch']} x {asr['seconds']:.0f} s (ratios against log-mel, linear):")
    for name in VARIANTS:
        r = asr[name]
        print(f"  {name:14s} step {r['step_s']:.3f} s ({r['step_ratio']:.2f}x), frontend"
              f" {r['frontend_s']:.4f} s ({r['frontend_ratio']:.1f}x), encoder frames"
              f" {r['encoder_frames']}, trainable parameters {r['trainable_params']}")
    print(f"HEAR timestamp embeddings of {hear_row['seconds']:.0f} s of audio:"
          f" {hear_row['extraction_s']:.2f} s = {hear_row['times_real_time']:.0f}x real time")


if __name__ == "__main__":
    run(main)
