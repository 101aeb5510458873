"""``utt2target`` files (``utt v1 [v2 ...]``: a real target per clip, e.g. Nat-HEAR's RT60 in
seconds) and the errors of a regression against them."""

from pathlib import Path
from typing import Dict

import numpy as np

from espnet2_gram.downstream.localization.dcase_format import parse_finite_float
from espnet2_gram.utils.fileio import numbered_fields


def read_utt2target(path) -> Dict[str, np.ndarray]:
    """``utt -> (D,) float64``; every line has the same number of values. Raises
    ``ValueError`` naming ``file:line`` on a non-numeric or non-finite value, a line without
    values or of another width, or a duplicated utterance."""
    path = Path(path)
    out: Dict[str, np.ndarray] = {}
    width = None
    for where, fields, line in numbered_fields(path, "utt2target"):
        if len(fields) < 2 or (width is not None and len(fields) - 1 != width):
            want = "at least one value" if width is None else f"{width} value(s)"
            raise ValueError(f"{where}: expected 'utt' and {want}, got {line!r}")
        try:
            values = np.array([parse_finite_float(v) for v in fields[1:]])
        except ValueError:
            raise ValueError(f"{where}: expected finite numbers, got {line!r}") from None
        if fields[0] in out:
            raise ValueError(f"{where}: duplicated utterance {fields[0]!r}")
        width = len(values)
        out[fields[0]] = values
    if not out:
        raise ValueError(f"{path}: no targets")
    return out


def regression_metrics(ref: np.ndarray, hyp: np.ndarray) -> Dict[str, float]:
    """Errors of ``hyp`` against ``ref``, both (N, D), over all N x D values: ``median_ae``
    (median absolute error, the GRAM paper's RT60 figure), ``mae`` (mean absolute error),
    ``rmse``, and ``mae_of_mean`` (the mean absolute error of predicting the reference's
    mean: what a model that learnt nothing scores)."""
    ref, hyp = np.asarray(ref, dtype=np.float64), np.asarray(hyp, dtype=np.float64)
    if ref.shape != hyp.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise ValueError(f"reference {ref.shape} and prediction {hyp.shape}: expected the"
                         " same (N, D) shape with N > 0")
    error = np.abs(hyp - ref)
    return {"median_ae": float(np.median(error)), "mae": float(error.mean()),
            "rmse": float(np.sqrt((error ** 2).mean())),
            "mae_of_mean": float(np.abs(ref - ref.mean(axis=0)).mean())}
