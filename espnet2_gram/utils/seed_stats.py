"""Figures over training seeds: ``mean ± std`` (ddof=1), the form every results table uses."""

import numpy as np


def complete(values: np.ndarray) -> bool:
    """Whether there is at least one value and none is missing (NaN or infinite)."""
    return values.size > 0 and bool(np.all(np.isfinite(values)))


def mean_std_cell(values: np.ndarray, decimals: int) -> str:
    """``mean ± std`` (ddof=1) over seeds, the value alone for one seed, "-" when any is
    missing."""
    values = np.asarray(values, dtype=float)
    if not complete(values):
        return "-"
    text = f"{values.mean():.{decimals}f}"
    if values.size > 1:
        text += f" ± {values.std(ddof=1):.{decimals}f}"
    return text
