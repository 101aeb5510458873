"""Cost of the downstream setups (classification, DoA, SELD) against each other in one run.

    python -m espnet2_gram.benchmarks.downstream --model_path exp/packed/gram_foa

A batch of ``--batch`` clips of ``--seconds`` (2) seconds of audio in the model's format (FOA:
4 channels) and rate; the DoA head of ``conf/demo/doa_*.yaml`` (mean over frames, MLP 256 with
BatchNorm, 3 outputs; the classification and SELD heads are as small); Adam:

1. inference: frozen GRAM encoder + head forward under ``no_grad``;
2. fine-tuning: trainable encoder (``freeze_steps: 0``), forward + backward + Adam step;
3. probe on audio (frozen encoder, every step re-encodes its clips) against the probe on
   cached embeddings (``encoder: identity``), and caching itself (encoding every clip once,
   as ``extract_data_dir`` does): their ratio per step and over ``--epochs`` epochs, and the
   epochs after which caching pays off.

Without ``--model_path`` a model of ``--config`` is built with fresh weights and packed into a
temporary directory (the paper config gives a random-init ViT-B). The five setups take turns;
medians of ``--repeats`` after a warm-up.
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from espnet2_gram.benchmarks import report
from espnet2_gram.utils.cli import run

ROWS = {
    "inference": "frozen encoder + DoA head, forward under no_grad",
    "finetune": "trainable encoder + head, forward + backward + Adam",
    "probe_audio": "frozen encoder on audio + trainable head, forward + backward + Adam",
    "probe_cached": "head on cached embeddings (encoder: identity), forward + backward + Adam",
    "caching": "encoding once (FrameExtractor, no_grad)",
}


def fresh_packed_model(config: str, directory: Path) -> Path:
    """An untrained model of ``config``, packed as stage 7 packs a training directory."""
    from espnet2_gram.pretrained.packing import pack_gram
    from espnet2_gram.tasks.gram import build_gram_model

    exp = directory / "exp"
    exp.mkdir()
    shutil.copyfile(config, exp / "config.yaml")
    torch.save(build_gram_model(config).state_dict(), exp / "valid.loss.best.pth")
    return pack_gram(exp, directory / "packed", archive=False)


def alternating_medians(steps: dict, repeats: int) -> dict:
    """Median seconds of each callable, after a warm-up, the callables taking turns."""
    for fn in steps.values():
        fn()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def doa_model(encoder):
    from espnet2_gram.downstream.localization.doa_model import ESPnetDOAModel

    return ESPnetDOAModel(encoder, hidden_sizes=[256], dropout=0.1, batch_norm=True)


def training_step(model, speech, lengths, doa):
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)  # ESPnet passes them all

    def step():
        optim.zero_grad()
        model(speech, lengths, doa)[0].backward()
        optim.step()

    return step


def bench(model_path, batch: int, seconds: float, repeats: int, epochs: int) -> dict:
    from espnet2_gram.downstream.embeddings import FrameExtractor
    from espnet2_gram.downstream.heads import IdentityEncoder
    from espnet2_gram.frontend.pretrained_gram import GRAMESPnetEncoder

    torch.manual_seed(0)
    extractor = FrameExtractor("gram", model_path)
    fs, channels = extractor.fs, extractor.gram.features.in_channels
    speech = torch.randn(batch, int(seconds * fs), channels) * 0.1
    lengths = torch.full((batch,), speech.shape[1])
    doa = torch.stack([torch.rand(batch) * 360 - 180, torch.rand(batch) * 90 - 45,
                       torch.rand(batch) * 2 + 1], dim=-1)

    def gram(freeze_steps: int):
        return doa_model(GRAMESPnetEncoder(channels, str(model_path),
                                           freeze_steps=freeze_steps))

    inference = gram(-1).eval()
    emb = extractor(speech)
    emb_lengths = torch.full((batch,), emb.shape[1])

    def predict():
        with torch.no_grad():
            inference.predict(speech, lengths)

    steps = alternating_medians({
        "inference": predict,
        "finetune": training_step(gram(0), speech, lengths, doa),
        "probe_audio": training_step(gram(-1), speech, lengths, doa),
        "probe_cached": training_step(doa_model(IdentityEncoder(emb.shape[-1])), emb,
                                      emb_lengths, doa),
        "caching": lambda: extractor(speech),
    }, repeats)
    audio, cached, caching = steps["probe_audio"], steps["probe_cached"], steps["caching"]
    spec = extractor.gram.features(speech[:1], lengths[:1])[0]
    spec_frames = spec.shape[-1]
    encoded_frames = extractor.gram.drop_stub_chunk(spec).shape[-1]
    return {
        "model_path": str(model_path), "batch": batch, "seconds": seconds, "fs": fs,
        "channels": channels, "frames": emb.shape[1], "dim": emb.shape[-1],
        "spectrogram_frames": spec_frames,
        "encoder_chunks_per_clip": extractor.gram.encoder.num_chunks(encoded_frames),
        "threads": torch.get_num_threads(), "epochs": epochs,
        "rows": {name: {"step_s": s, "ms_per_clip": 1000 * s / batch, "clips_per_s": batch / s}
                 for name, s in steps.items()},
        "ratios": {
            "finetune_over_inference": steps["finetune"] / steps["inference"],
            "probe_audio_over_cached_per_epoch": audio / cached,
            "probe_audio_over_cached_with_caching": epochs * audio / (caching + epochs * cached),
            "caching_pays_off_after_epochs": caching / (audio - cached),
        },
    }


def number(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def markdown(result: dict) -> str:
    rows, ratios, epochs = result["rows"], result["ratios"], result["epochs"]
    lines = [f"{result['batch']} clips of {result['seconds']:g} s, {result['channels']} channels"
             f" at {result['fs']} Hz; per clip: {result['spectrogram_frames']} spectrogram"
             f" frames, encoder chunks: {result['encoder_chunks_per_clip']}, {result['frames']}"
             f" frames of {result['dim']}; threads: {result['threads']}", "",
             "| setup | what is timed | ms / clip | clips / s |", "|---|---|---|---|"]
    lines += [f"| {name} | {ROWS[name]} | {number(rows[name]['ms_per_clip'])} |"
              f" {number(rows[name]['clips_per_s'])} |" for name in ROWS]
    lines += ["", "| ratio | value |", "|---|---|",
              f"| fine-tuning / inference, time per clip |"
              f" {ratios['finetune_over_inference']:.2f} |",
              f"| probe on audio / probe on cached embeddings, per epoch |"
              f" {ratios['probe_audio_over_cached_per_epoch']:.1f} |",
              f"| probe on audio / (caching + probe on cached), over {epochs} epochs |"
              f" {ratios['probe_audio_over_cached_with_caching']:.1f} |",
              f"| epochs after which caching pays off |"
              f" {ratios['caching_pays_off_after_epochs']:.2f} |"]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", help="a packed GRAM model (default: a fresh --config model)")
    p.add_argument("--config", default="conf/demo/pretrain_foa.yaml",
                   help="pretraining YAML of the fresh model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs", type=int, default=40, help="as in conf/demo/*_probe.yaml")
    p.add_argument("--out", help="write the figures as JSON here too")
    args = p.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # ESPnet's import-time notices
        import espnet2_gram.tasks.gram  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model_path or fresh_packed_model(args.config, Path(tmp))
        result = bench(model_path, args.batch, args.seconds, args.repeats, args.epochs)
    if args.model_path is None:
        result["model_path"] = f"fresh {args.config}"
    report(result, args.out, markdown(result))


if __name__ == "__main__":
    run(main)
