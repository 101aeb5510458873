"""Inference of the downstream tasks (DoA, SELD, regression, events): a trained model loaded
strictly, and iterated over its inference data."""

import argparse
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from espnet2_gram.pretrained.packing import check_state_dict
from espnet2_gram.utils.datacheck import check_triplets
from espnet2_gram.utils.safe_load import load_weights


def load_trained(task, train_config, model_file, device: str = "cpu"):
    """``(model, train_args)``; weights that do not match the config are an error listing
    them (ESPnet's own loader ignores them)."""
    for option, path in (("--train_config", train_config), ("--model_file", model_file)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{option} {path}: no such file")
    model, train_args = task.build_model_from_file(train_config, None, device)
    state = load_weights(model_file, device, label=f"--model_file {model_file}")
    check_state_dict(model, state, str(model_file))
    model.load_state_dict(state, strict=True)
    return model.eval(), train_args


def batches(task, train_args: argparse.Namespace, triplets: Sequence[Tuple[str, str, str]],
            batch_size: int) -> Iterator[Tuple[List[str], dict]]:
    """``(keys, batch)`` over the inference data, in the order of the first file."""
    loader = task.build_streaming_iterator(
        data_path_and_name_and_type=list(triplets),
        preprocess_fn=task.build_preprocess_fn(train_args, False),
        collate_fn=task.build_collate_fn(train_args, False),
        batch_size=batch_size, dtype="float32", num_workers=0, inference=True,
    )
    yield from loader


def check_inference_data(args: argparse.Namespace) -> None:
    """The data files exist, name the same utterances and run no command."""
    check_triplets("--data_path_and_name_and_type", args.data_path_and_name_and_type)


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--data_path_and_name_and_type", action="append", required=True,
                        type=lambda v: tuple(v.split(",")), help="path,speech,type")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=int, default=1)


def clip_predictions(task, args: argparse.Namespace) -> Dict[str, np.ndarray]:
    """``{utt: model.predict(...) row}`` over the inference data of ``args`` (the options of
    :func:`add_inference_arguments`), the data checked and the model loaded strictly first."""
    import torch

    check_inference_data(args)
    model, train_args = load_trained(task, args.train_config, args.model_file, args.device)
    out = {}
    with torch.no_grad():
        for keys, batch in batches(task, train_args, args.data_path_and_name_and_type,
                                   args.batch_size):
            pred = model.predict(batch["speech"].to(args.device),
                                 batch["speech_lengths"].to(args.device))
            out.update(zip(keys, pred.cpu().numpy()))
    return out


def parse_inference_args(doc: str, argv, output_name: str) -> Tuple[argparse.Namespace, Path]:
    """The options of :func:`add_inference_arguments`, logging and threads set up, and the
    output ``<output_dir>/<output_name>`` removed first (a failed run leaves none behind)."""
    import torch

    from espnet2_gram.utils.cli import setup_logging

    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inference_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.num_threads)
    output = Path(args.output_dir) / output_name
    output.unlink(missing_ok=True)
    return args, output
