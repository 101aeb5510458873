"""Cache frame-level embeddings of data directories (each clip encoded once) for the probes.

    python -m espnet2_gram.bin.extract_embeddings --extractor gram --extractor logmel \
        --model_path exp/packed/gram_foa --out_root dump/emb/foa \
        --data_dir dump/raw/demo_train_foa --data_dir dump/raw/demo_test_foa

writes ``<out_root>/<extractor>/<name of each data dir>/feats.scp`` (see
``espnet2_gram.downstream.embeddings``); ``--out_name gram_ep4`` writes one extractor's under that name
instead (the weights of a pretraining snapshot beside the final model's).
Extractors: gram (pretrained), gram_random (same architecture, untrained), logmel (the model's
spatial log-mel features pooled to the same frames).
"""

import argparse
import re
from pathlib import Path

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

import torch

from espnet2_gram.downstream.embeddings import EXTRACTORS, FrameExtractor, extract_data_dir
from espnet2_gram.utils.cli import run, setup_logging, str2bool


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--extractor", action="append", required=True, choices=EXTRACTORS,
                   help="repeatable")
    p.add_argument("--model_path", required=True,
                   help="packed GRAM model (its frontend settings serve logmel too)")
    p.add_argument("--data_dir", action="append", required=True, help="repeatable")
    p.add_argument("--out_root", required=True)
    p.add_argument("--out_name", default=None,
                   help="folder under --out_root instead of the extractor's name (one extractor)")
    p.add_argument("--layer", type=int, default=None, help="encoder layer (default: last)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="weights of gram_random")
    p.add_argument("--logmel_intensity", type=str2bool, default=False,
                   help="logmel: append FOA's intensity-vector channels")
    p.add_argument("--num_threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.out_name is not None and (len(args.extractor) != 1
                                      or not re.fullmatch(r"[A-Za-z0-9_.-]+", args.out_name)):
        p.error(f"--out_name {args.out_name!r}: expected a folder name ([A-Za-z0-9_.-]) and"
                f" exactly one --extractor, got {len(args.extractor)}")
    setup_logging()
    torch.set_num_threads(args.num_threads)
    if not Path(args.model_path).exists():
        raise FileNotFoundError(f"--model_path {args.model_path}: no such packed GRAM model")
    for kind in args.extractor:
        extractor = FrameExtractor(kind, args.model_path, args.layer, args.seed,
                                   args.logmel_intensity)
        for data_dir in args.data_dir:
            extract_data_dir(data_dir, Path(args.out_root) / (args.out_name or kind)
                             / Path(data_dir).name,
                             extractor, args.model_path, args.layer, args.batch_size)


if __name__ == "__main__":
    run(main)
