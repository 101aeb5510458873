"""Convert an authors' GRAM-T checkpoint (Hugging Face ``model.safetensors`` or a Lightning
``.ckpt`` of their ``train.py``) into a packed ``espnet2_gram`` model.

    python -m espnet2_gram.bin.convert_gramt --checkpoint model.safetensors \\
        --format binaural --out_dir exp/packed/gramt_binaural

Formats: ``binaural`` (2 log-mel channels), ``ambisonics`` (FOA: 4 log-mels + 3 intensity
channels; alias ``foa``), ``mono``.  The key map and the conventions are in
``docs/conversion.md``.
"""

import argparse
import sys

import espnet2_gram.bin.quiet_espnet  # noqa: F401  (first: ESPnet's notice to stderr)

from espnet2_gram.pretrained.convert import FORMATS, convert_checkpoint, failed_checks
from espnet2_gram.utils.cli import run


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="model.safetensors, or a Lightning .ckpt / .pt state dict")
    p.add_argument("--format", required=True, choices=sorted(FORMATS) + ["foa"])
    p.add_argument("--out_dir", required=True, help="packed model directory to write")
    p.add_argument("--config", help="our training YAML to build the model from (default:"
                                    " the paper config of the format, shipped in the package as"
                                    " espnet2_gram/paper_configs/pretrain_{binaural,foa}.yaml)")
    p.add_argument("--log_offset", type=float,
                   help="override frontend_conf.log_offset, the training offset (the authors'"
                        " HEAR runtime offset is recorded in hear_conf.authors_log_offset and"
                        " used by espnet2_gram.hear with compat='authors')")
    p.add_argument("--allow_missing_decoder", action="store_true",
                   help="accept an encoder-only checkpoint; the decoder keeps a fresh init")
    p.add_argument("--force", action="store_true",
                   help="pack even if the checkpoint's fixed buffers differ from ours")
    p.add_argument("--no_archive", action="store_true", help="do not write <out_dir>.zip")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    out, report = convert_checkpoint(
        args.checkpoint, args.out_dir, fmt=args.format, config=args.config,
        log_offset=args.log_offset, allow_missing_decoder=args.allow_missing_decoder,
        force=args.force, archive=not args.no_archive,
    )
    print(f"converted {args.checkpoint} ({report['format']}, key prefix "
          f"{report['prefix'] or '(none)'!r}): {len(report['mapped'])} tensors mapped, "
          f"{len(report['dropped'])} dropped; decoder {report['decoder']}")
    for check in report["checks"]:
        status = {True: "ok", False: "MISMATCH", None: "not compared"}[check["ok"]]
        print(f"  check {check['name']}: {status} (max |diff| {check['max_abs_diff']})")
    if failed_checks(report):
        print("WARNING: packed despite failed checks (--force)", file=sys.stderr)
    print(f"packed {out}" + ("" if args.no_archive else f" and {out.with_suffix('.zip')}"))


if __name__ == "__main__":
    run(main)
