"""Per-channel masked-patch reconstruction of a packed GRAM, against each crop's channel mean.

    python -m espnet2_gram.bin.channel_reconstruction --model_path exp/packed/gram_foa \
        --data_dir dump/raw/demo_test_loc_foa --output exp/packed/gram_foa/reconstruction.json

prints one row per feature channel (model error, the channel-mean predictor's error, their
ratio, and the channel's share of the target variance) and writes them as JSON. A ratio at or
above 1 on FOA's intensity channels means the model has not learned to predict direction from
the visible patches (see ``espnet2_gram.gram.reconstruction``).
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import torch

from espnet2_gram.gram.reconstruction import channel_reconstruction
from espnet2_gram.pretrained.packing import load_gram
from espnet2_gram.utils.audio import load_audio
from espnet2_gram.utils.cli import run, setup_logging, str2bool
from espnet2_gram.utils.fileio import atomic_open, read_kv


def audio_batches(wav_scp: Path, fs: int, num_clips: int, batch_size: int):
    """``(speech (B, T, C), lengths)`` of the first ``num_clips`` clips of ``wav_scp``,
    zero-padded per batch."""
    paths = list(read_kv(wav_scp).values())[:num_clips]
    for start in range(0, len(paths), batch_size):
        clips = []
        for path in paths[start:start + batch_size]:
            audio = load_audio(path, fs=fs)
            clips.append(torch.from_numpy(audio.samples).reshape(-1, audio.samples.shape[-1]).T)
        lengths = torch.tensor([c.shape[0] for c in clips])
        yield torch.nn.utils.rnn.pad_sequence(clips, batch_first=True), lengths


def table(rows) -> str:
    lines = ["| channel | model MSE | channel-mean MSE | ratio | target share |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.channel} | {r.model_mse:.4f} | {r.mean_predictor_mse:.4f} | {r.ratio:.2f}"
              f" | {100 * r.target_share:.1f}% |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", required=True, help="packed GRAM (directory or .zip)")
    p.add_argument("--data_dir", required=True, help="Kaldi-style dir with wav.scp")
    p.add_argument("--output", default=None, help="JSON file of the rows")
    p.add_argument("--num_clips", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="crops and masks")
    p.add_argument("--random_init", type=str2bool, default=False,
                   help="the same architecture untrained (weights from --seed)")
    args = p.parse_args(argv)
    if args.num_clips < 1 or args.batch_size < 1:
        p.error(f"--num_clips and --batch_size must be >= 1, got {args.num_clips},"
                f" {args.batch_size}")
    wav_scp = Path(args.data_dir) / "wav.scp"
    if not wav_scp.is_file():
        raise FileNotFoundError(f"--data_dir {args.data_dir}: no wav.scp")
    setup_logging()
    torch.manual_seed(args.seed)
    model = load_gram(args.model_path, random_init=args.random_init).eval()
    rows = channel_reconstruction(model, audio_batches(wav_scp, model.frontend.fs,
                                                       args.num_clips, args.batch_size))
    print(table(rows))
    if args.output:
        with atomic_open(args.output) as f:
            json.dump({"model_path": str(args.model_path), "data_dir": str(args.data_dir),
                       "random_init": args.random_init, "seed": args.seed,
                       "num_clips": args.num_clips,
                       "channels": [{**asdict(r), "ratio": r.ratio} for r in rows]}, f, indent=1)


if __name__ == "__main__":
    run(main)
