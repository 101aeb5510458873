"""Cost of reusing GRAM, measured against baselines in the same run.

    python -m espnet2_gram.bin.benchmark_reuse --model exp/packed/gram_binaural

1. An ESPnet ASR training step (forward + backward + Adam) with ``frontend: gram`` (frozen)
   against the same model with ESPnet's default log-mel frontend (80 mels); both feed the
   same small transformer encoder/decoder.
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


def asr_model(frontend: str, frontend_conf: dict, vocab: int = 40):
    with contextlib.redirect_stdout(sys.stderr):
        from espnet2.tasks.asr import ASRTask
    args = ASRTask.get_parser().parse_args([])
    args.token_list = [f"t{i}" for i in range(vocab)]
    args.frontend, args.frontend_conf = frontend, frontend_conf
    args.specaug, args.normalize = None, "utterance_mvn"
    args.encoder, args.encoder_conf = "transformer", dict(ENCODER)
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
    from espnet2_gram.packing import load_gram

    gram_fe = load_gram(model_path).frontend
    fs, channels = gram_fe.fs, gram_fe.in_channels
    speech = torch.randn(batch, int(seconds * fs), channels) * 0.1
    lengths = torch.full((batch,), speech.shape[1])
    text = torch.randint(1, 39, (batch, 12))
    text_lengths = torch.full((batch,), 12)
    gram = asr_model("gram", {"model_path": model_path, "fs": fs, "freeze_steps": -1})
    logmel = asr_model("default", {"fs": fs, "n_fft": 512, "hop_length": 160, "n_mels": 80})
    gram_s = time_steps(gram, speech, lengths, text, text_lengths, steps)
    logmel_s = time_steps(logmel, speech[..., 0], lengths, text, text_lengths, steps)
    gram_fe_s = time_frontend(gram, speech, lengths, steps)
    logmel_fe_s = time_frontend(logmel, speech[..., 0], lengths, steps)
    frames = {name: int(m.frontend(x, lengths)[0].shape[1]) for name, m, x in
              (("gram", gram, speech), ("logmel", logmel, speech[..., 0]))}
    return {"batch": batch, "seconds": seconds, "gram_step_s": gram_s, "logmel_step_s": logmel_s,
            "step_ratio": gram_s / logmel_s, "gram_frontend_s": gram_fe_s,
            "logmel_frontend_s": logmel_fe_s, "frontend_ratio": gram_fe_s / logmel_fe_s,
            "encoder_frames": frames}


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
    print(f"ASR step, {asr['batch']} x {asr['seconds']:.0f} s: frontend gram"
          f" {asr['gram_step_s']:.3f} s, default log-mel {asr['logmel_step_s']:.3f} s"
          f" (ratio {asr['step_ratio']:.2f}; encoder frames {asr['encoder_frames']});"
          f" the frontends alone: {asr['gram_frontend_s']:.3f} s vs"
          f" {asr['logmel_frontend_s']:.3f} s (ratio {asr['frontend_ratio']:.1f})")
    print(f"HEAR timestamp embeddings of {hear_row['seconds']:.0f} s of audio:"
          f" {hear_row['extraction_s']:.2f} s = {hear_row['times_real_time']:.0f}x real time")


if __name__ == "__main__":
    run(main)
