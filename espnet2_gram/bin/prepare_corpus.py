"""Prepare the Kaldi-style data directories of one corpus.

    python -m espnet2_gram.bin.prepare_corpus <corpus> [options]

``demo`` synthesises a small labelled corpus; the real corpora are read from
``--src_dir`` (their published layout) or downloaded with ``--download true``
(FSD50K: ``--src_dir`` only).
User errors (bad input, failed download) end with exit status 1 and a one-line message.
"""

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Dict, List

from espnet2_gram.corpora.download import DownloadError
from espnet2_gram.utils.cli import run, setup_logging, str2bool

CORPORA = {  # corpus: (module of espnet2_gram.corpora, preparer)
    "demo": ("demo", "make_demo_corpus"),
    "audioset": ("audioset", "prepare_audioset"),
    "wham": ("wham", "prepare_wham"),
    "esc50": ("esc50", "prepare_esc50"),
    "speech_commands": ("speech_commands", "prepare_speech_commands"),
    "starss23": ("starss23", "prepare_starss23"),
    "fsd50k": ("fsd50k", "prepare_fsd50k"),
}


def clip_counts(value: str) -> Dict[str, int]:
    """Parse 'train=16,valid=4,test=6'."""
    try:
        pairs = (item.split("=") for item in value.split(","))
        return {split.strip(): int(count) for split, count in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected split=count pairs like 'train=16,valid=4,test=6', got {value!r}") from None


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data_dir", default="data", help="where the data dirs are written")
    common.add_argument("--download_dir", default="downloads",
                        help="where downloads and other working files go")
    common.add_argument("--log_level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging level")
    real = argparse.ArgumentParser(add_help=False)
    real.add_argument("--src_dir", help="local copy of the corpus in its published layout")
    real.add_argument("--download", type=str2bool, default=False,
                      help="download the corpus into <download_dir>/<corpus> when no --src_dir")
    real.add_argument("--url", dest="urls", action="append",
                      help="replaces the default download URLs (repeat for several)")
    sub = parser.add_subparsers(dest="corpus", metavar="corpus", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    demo = sub.add_parser("demo", parents=[common], formatter_class=fmt,
                          help="synthetic sound events and noises, generated locally")
    demo.add_argument("--audio_dir", help="where the audio goes; none: <download_dir>/demo")
    demo.add_argument("--fs", type=int, default=16000, help="sample rate in Hz")
    demo.add_argument("--seed", type=int, default=0, help="same seed, same audio")
    demo.add_argument("--clip_seconds", type=float, default=2.0, help="length of event clips")
    demo.add_argument("--clips_per_class", type=clip_counts, default="train=16,valid=4,test=6",
                      help="event clips per class in each split")
    demo.add_argument("--noise_clips", type=int, default=12, help="noise recordings")
    demo.add_argument("--noise_seconds", type=float, default=4.0,
                      help="length of noise recordings")

    audioset = sub.add_parser("audioset", parents=[common, real], formatter_class=fmt,
                              help="AudioSet clips (audio files or WebDataset tar shards)")
    audioset.add_argument("--name", default="train", help="writes <data_dir>/audioset_<name>")
    audioset.add_argument("--segments_csv", dest="segments_csvs", action="append", default=[],
                          help="official *_segments.csv giving the labels, repeat for several; "
                               "none: those in --src_dir")
    audioset.add_argument("--class_labels_csv",
                          help="class_labels_indices.csv; none: the one in --src_dir")
    sub.add_parser("wham", parents=[common, real], formatter_class=fmt, help="WHAM! noise")
    sub.add_parser("esc50", parents=[common, real], formatter_class=fmt, help="ESC-50")
    sub.add_parser("speech_commands", parents=[common, real], formatter_class=fmt,
                   help="Speech Commands v0.02")
    starss23 = sub.add_parser("starss23", parents=[common, real], formatter_class=fmt,
                              help="STARSS23 development set")
    starss23.add_argument("--format", dest="fmt", choices=("foa", "mic"), default="foa",
                          help="first-order ambisonics or tetrahedral microphone audio")
    fsd50k = sub.add_parser("fsd50k", parents=[common], formatter_class=fmt,
                            help="FSD50K (a local copy only)")
    fsd50k.add_argument("--src_dir", help="folder holding the extracted "
                                          "FSD50K.{dev_audio,eval_audio,ground_truth}")
    fsd50k.add_argument("--download", type=str2bool, default=False,
                        help="not supported (split zips): fails with instructions")
    return parser


def prepare(args: argparse.Namespace) -> List[Path]:
    """Call the corpus' preparer with the parsed options."""
    module, function = CORPORA[args.corpus]
    preparer = getattr(importlib.import_module(f"espnet2_gram.corpora.{module}"), function)
    if args.corpus == "demo":
        audio_dir = args.audio_dir or Path(args.download_dir) / "demo"
        return preparer(audio_dir, args.data_dir, fs=args.fs, clip_seconds=args.clip_seconds,
                        clips_per_class=args.clips_per_class, noise_clips=args.noise_clips,
                        noise_seconds=args.noise_seconds, seed=args.seed)
    kwargs = {k: v for k, v in vars(args).items()
              if k not in ("corpus", "log_level", "urls", "data_dir")}
    if getattr(args, "urls", None):  # fsd50k has no --url
        kwargs["urls"] = args.urls
    return preparer(args.data_dir, **kwargs)


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        outs = prepare(args)
    except DownloadError as e:  # not among the generic user errors of utils.cli
        sys.exit(f"ERROR: {e}")
    logging.info("%s: prepared %s", args.corpus, " ".join(str(p) for p in outs))


if __name__ == "__main__":
    run(main)
