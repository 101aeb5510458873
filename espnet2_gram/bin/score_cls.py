"""Score the output of ESPnet's ``cls_inference`` against reference labels.

    python -m espnet2_gram.bin.score_cls --ref data/test/text \\
        --hyp_dir exp/cls/decode_test --token_list data/token_list/tokens.txt \\
        --out_dir exp/cls/decode_test

``cls_inference --output_dir DIR`` writes, one ``utt value`` line per utterance:

- ``DIR/prediction/token``: the predicted class ids (multi-class: one id, the argmax;
  multi-label: the ids scoring > 0.5 in ascending order, possibly none); ``-1`` when the
  utterance was too short for the model;
- ``DIR/prediction/score``: with ``--output_all_probabilities true`` the scores of all
  classes in token-list order, else those of the predicted ids only (``0`` for a too-short
  utterance);
- ``DIR/prediction/text``: the predicted labels (not read here).

The model has one output per token-list entry but the last, ``<unk>``. mAP needs all
scores; without them it is null. Too-short utterances count as wrong, get zero scores and
are left out of the confusion matrix.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from espnet2_gram.downstream.classification.metrics import (accuracy, confusion_matrix,
                                                            mean_average_precision)
from espnet2_gram.utils.cli import run, setup_logging, str2bool
from espnet2_gram.utils.fileio import read_kv
from espnet2_gram.utils.scoring import add_run_options, check_same_keys, run_info, write_scores

logger = logging.getLogger("espnet2_gram.score_cls")
UNK = "<unk>"
FAILED_ID = -1  # cls_inference's prediction for a too-short utterance


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="reference 'utt label [label ...]' file")
    parser.add_argument("--hyp_dir", required=True, help="output_dir of ESPnet's cls_inference")
    parser.add_argument("--token_list", required=True, help="token list the model was trained with")
    parser.add_argument("--multilabel", type=str2bool, default=False,
                        help="multi-label classification (default false)")
    parser.add_argument("--out_dir", required=True, help="gets scores.json")
    parser.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    add_run_options(parser)
    return parser


def read_token_list(path) -> List[str]:
    """The class labels: the token list without its last entry, which must be ``<unk>``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--token_list {path}: no such file")
    tokens = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    if len(tokens) < 2 or tokens[-1] != UNK or "" in tokens or len(set(tokens)) < len(tokens):
        raise ValueError(
            f"--token_list {path}: expected distinct non-empty labels, one a line, ending with"
            f" {UNK} (ESPnet's CLSTask gives the model one output per entry but the last)"
        )
    return tokens[:-1]


def read_references(path, labels: List[str], token_list, multilabel: bool) -> Dict[str, List[str]]:
    """``utt -> labels``; every label must be in the token list."""
    refs = {utt: value.split() for utt, value in read_kv(path).items()}
    if not refs:
        raise ValueError(f"--ref {path}: no utterances")
    if not multilabel:
        several = [utt for utt, value in refs.items() if len(value) != 1]
        if several:
            raise ValueError(f"--ref {path}: utterances {several[:5]} have several labels;"
                             " pass --multilabel true for multi-label references")
    known = set(labels)
    unseen = [(label, utt) for utt, value in refs.items() for label in value if label not in known]
    if unseen:
        raise ValueError("; ".join(
            f"label {label} of utterance {utt} was not seen in training (token list {token_list})"
            for label, utt in unseen[:5]
        ) + (f" (and {len(unseen) - 5} more)" if len(unseen) > 5 else ""))
    return refs


def _parse(where: str, text: str, kind, what: str) -> list:
    try:
        return [kind(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"{where}: {what} must be numbers, got {text!r}") from None


def read_predictions(hyp_dir, num_classes: int, multilabel: bool
                     ) -> Tuple[Dict[str, Optional[List[int]]], Dict[str, List[float]], bool]:
    """``(utt -> predicted ids or None if failed, utt -> scores, all scores given)``."""
    pred_dir = Path(hyp_dir) / "prediction"
    files = {name: pred_dir / name for name in ("token", "score")}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"--hyp_dir {hyp_dir}: no {path} (cls_inference output)")
    tokens = read_kv(files["token"], allow_empty_value=True)
    score_lines = read_kv(files["score"], allow_empty_value=True)
    check_same_keys(tokens, score_lines, str(files["token"]), str(files["score"]))
    ids, scores, full = {}, {}, True
    for utt, text in tokens.items():
        pred = _parse(f"{files['token']} {utt}", text, int, "class ids")
        values = _parse(f"{files['score']} {utt}", score_lines[utt], float, "scores")
        if pred == [FAILED_ID]:
            ids[utt], scores[utt] = None, [0.0] * num_classes
            continue
        bad = [i for i in pred if not 0 <= i < num_classes]
        if bad:
            raise ValueError(f"{files['token']} {utt}: class ids {bad} outside 0..{num_classes - 1}"
                             " (token list of another model?)")
        if not multilabel and len(pred) != 1:
            raise ValueError(f"{files['token']} {utt}: {len(pred)} predicted ids; multi-class"
                             " output has one (pass --multilabel true for multi-label models)")
        if len(values) not in (num_classes, len(pred)):
            raise ValueError(f"{files['score']} {utt}: {len(values)} scores; expected"
                             f" {num_classes} (all classes) or {len(pred)} (predicted ones)")
        # A line of the predicted ids' scores equals the full line when all are predicted.
        full = full and len(values) == num_classes
        ids[utt], scores[utt] = pred, values
    return ids, scores, full


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    labels = read_token_list(args.token_list)
    refs = read_references(args.ref, labels, args.token_list, args.multilabel)
    ids, scores, full = read_predictions(args.hyp_dir, len(labels), args.multilabel)
    check_same_keys(refs, ids, f"--ref {args.ref}", f"--hyp_dir {args.hyp_dir}")
    utts = sorted(refs)
    failed = [u for u in utts if ids[u] is None]
    if failed:
        logger.warning("%d utterance(s) too short for the model (counted wrong), e.g. %s",
                       len(failed), failed[:5])
    hyps = {u: [labels[i] for i in ids[u]] if ids[u] is not None else None for u in utts}
    index = {label: k for k, label in enumerate(labels)}
    targets = np.zeros((len(utts), len(labels)), dtype=np.int64)
    for n, utt in enumerate(utts):
        targets[n, [index[label] for label in refs[utt]]] = 1
    mAP = mean_average_precision([scores[u] for u in utts], targets) if full else None
    if args.multilabel:
        acc = accuracy([frozenset(refs[u]) for u in utts],
                       [frozenset(hyps[u]) if hyps[u] is not None else None for u in utts])
        confusion = None
    else:
        acc = accuracy([refs[u][0] for u in utts],
                       [hyps[u][0] if hyps[u] is not None else None for u in utts])
        done = [u for u in utts if hyps[u] is not None]
        confusion = confusion_matrix([refs[u][0] for u in done], [hyps[u][0] for u in done],
                                     labels).tolist()
    path = write_scores(args.out_dir, {
        **run_info(args, "cls"), "num_items": len(utts), "multilabel": args.multilabel,
        "metrics": {"accuracy": acc, "mAP": mAP}, "labels": labels, "confusion": confusion,
    })
    logger.info("%d items: accuracy %.4f, mAP %s -> %s", len(utts), acc,
                "n/a" if mAP is None else f"{mAP:.4f}", path)


if __name__ == "__main__":
    run(main, sys.argv[1:])
