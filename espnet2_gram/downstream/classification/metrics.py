"""Accuracy, mean average precision and confusion matrices of classification outputs."""

from typing import Hashable, Optional, Sequence

import numpy as np


def accuracy(ref_labels: Sequence[Hashable], hyp_labels: Sequence[Hashable]) -> float:
    """Fraction of items whose prediction equals the reference (for multi-label outputs,
    pass label sets: the exact-match rate)."""
    if len(ref_labels) != len(hyp_labels) or not ref_labels:
        raise ValueError(
            f"accuracy needs as many predictions as references (> 0), got {len(ref_labels)}"
            f" references and {len(hyp_labels)} predictions"
        )
    return float(np.mean([r == h for r, h in zip(ref_labels, hyp_labels)]))


def average_precision(scores, targets) -> float:
    """AP of one class: mean, over its positive items, of the precision at their rank.

    Items are ranked by descending score; ties keep the input order (stable sort), so a
    tied positive listed first ranks first (unlike scikit-learn, which groups ties).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(targets)[order] > 0
    if not hits.any():
        raise ValueError("average precision needs at least one positive item")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(scores, targets) -> Optional[float]:
    """Macro mean of the AP of each class (column) with at least one positive, from
    ``scores`` (N, K) and 0/1 ``targets`` (N, K); None when no class has a positive."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape or scores.shape[0] == 0:
        raise ValueError(
            f"scores and targets must both be (N, K) with N > 0, got {scores.shape} and"
            f" {targets.shape}"
        )
    if not np.all(np.isin(targets, (0, 1))):
        raise ValueError("targets must be 0 or 1")
    aps = [average_precision(scores[:, k], targets[:, k])
           for k in range(scores.shape[1]) if targets[:, k].any()]
    return float(np.mean(aps)) if aps else None


def confusion_matrix(ref: Sequence[Hashable], hyp: Sequence[Hashable],
                     labels: Sequence[Hashable]) -> np.ndarray:
    """(K, K) counts, rows = reference label, columns = predicted label, in ``labels`` order."""
    if len(ref) != len(hyp):
        raise ValueError(f"{len(ref)} references but {len(hyp)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(x) for x in (*ref, *hyp) if x not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not in the label list")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r, h in zip(ref, hyp):
        matrix[index[r], index[h]] += 1
    return matrix
