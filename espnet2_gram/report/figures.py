"""Figures of the downstream report: DoA error box plots, confusion matrices and results against
pretraining steps (PNG, Agg)."""

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from espnet2_gram.utils.fileio import atomic_path

DOA_COLUMNS = ("utt", "ref_az", "ref_el", "hyp_az", "hyp_el", "error")
AZIMUTH_RANGE = (-180.0, 180.0)
ELEVATION_RANGE = (-90.0, 90.0)
BIN_DEG = 30.0


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    pyplot().close(fig)


def read_doa_errors(path) -> Dict[str, np.ndarray]:
    """Read ``doa_errors.tsv`` (header ``utt ref_az ref_el hyp_az hyp_el error``, degrees).

    Returns one float array per numeric column; the ``utt`` column is dropped.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header != DOA_COLUMNS:
        raise ValueError(f"{path}: expected the header {chr(9).join(DOA_COLUMNS)!r}, "
                         f"got {lines[0] if lines else 'an empty file'!r}")
    rows = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != len(DOA_COLUMNS):
                raise ValueError
            rows.append([float(v) for v in fields[1:]])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected an utterance id and 5 numbers "
                             f"separated by tabs, got {line!r}") from None
    table = np.array(rows, dtype=float).reshape(-1, len(DOA_COLUMNS) - 1)
    return {name: table[:, i] for i, name in enumerate(DOA_COLUMNS[1:])}


def angle_bins(degrees, lo: float, hi: float, width: float = BIN_DEG,
               wrap: bool = False) -> np.ndarray:
    """Index of the ``width``-degree bin of [lo, hi) holding each angle.

    ``wrap`` maps angles onto [lo, hi) modulo ``hi - lo`` first (azimuth: 180 is -180);
    otherwise angles outside are clipped into the first or last bin (elevation 90).
    """
    degrees = np.asarray(degrees, dtype=float)
    if wrap:
        degrees = np.mod(degrees - lo, hi - lo) + lo
    last = int(round((hi - lo) / width)) - 1
    return np.clip(np.floor((degrees - lo) / width).astype(int), 0, last)


def confusion(ref_bins, hyp_bins, num_bins: int) -> np.ndarray:
    """Counts: rows are reference bins, columns predicted bins."""
    counts = np.zeros((num_bins, num_bins), dtype=int)
    np.add.at(counts, (np.asarray(ref_bins), np.asarray(hyp_bins)), 1)
    return counts


def row_normalise(counts) -> np.ndarray:
    """Divide each row by its sum; empty rows stay zero."""
    counts = np.asarray(counts, dtype=float)
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def doa_confusions(errors: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Row-normalised (azimuth, elevation) confusion matrices of finite DoA rows."""
    keep = np.all([np.isfinite(errors[k]) for k in DOA_COLUMNS[1:5]], axis=0)
    out = []
    for ref, hyp, (lo, hi), wrap in (("ref_az", "hyp_az", AZIMUTH_RANGE, True),
                                     ("ref_el", "hyp_el", ELEVATION_RANGE, False)):
        out.append(row_normalise(confusion(
            angle_bins(errors[ref][keep], lo, hi, wrap=wrap),
            angle_bins(errors[hyp][keep], lo, hi, wrap=wrap), int(round((hi - lo) / BIN_DEG)))))
    return out[0], out[1]


def plot_doa_confusion(errors: Dict[str, np.ndarray], path: Path, title: str) -> None:
    """Azimuth and elevation confusion matrices (30-degree bins), side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, matrix, (lo, hi), name, step in zip(
            axes, doa_confusions(errors), (AZIMUTH_RANGE, ELEVATION_RANGE),
            ("azimuth", "elevation"), (60, 30)):
        edges = np.arange(lo, hi + BIN_DEG / 2, BIN_DEG)
        mesh = ax.pcolormesh(edges, edges, matrix, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(np.arange(lo, hi + 1, step))
        ax.set_yticks(np.arange(lo, hi + 1, step))
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_xlabel(f"predicted {name} (°)")
        ax.set_ylabel(f"reference {name} (°)")
        ax.set_title(name)
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{title} (row-normalised)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_doa_boxplot(groups: Sequence[Tuple[str, Sequence[Tuple[str, np.ndarray]]]],
                     path: Path, title: str) -> None:
    """Box plots of DoA errors: ``groups`` is [(format, [(legend label, errors), ...])].

    Boxes share a colour per legend label across the format groups.
    """
    plt = pyplot()
    labels: List[str] = []
    for _, boxes in groups:
        labels += [label for label, _ in boxes if label not in labels]
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    width = max(len(b) for _, b in groups)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.7 * width * len(groups)), 3.8))
    centres = []
    for g, (_, boxes) in enumerate(groups):
        start = g * (width + 1)
        positions = [start + i for i in range(len(boxes))]
        centres.append(start + (len(boxes) - 1) / 2)
        parts = ax.boxplot([errors for _, errors in boxes], positions=positions, widths=0.7,
                           patch_artist=True, medianprops={"color": "black"})
        for patch, (label, _) in zip(parts["boxes"], boxes):
            patch.set_facecolor(colours[label])
            patch.set_alpha(0.7)
    ax.set_xticks(centres, [fmt for fmt, _ in groups])
    ax.set_ylabel("DoA error (°)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=colours[lb], alpha=0.7) for lb in labels]
    ax.legend(handles, labels, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_cls_confusion(counts, labels: Sequence[str], path: Path, title: str) -> None:
    """Row-normalised class confusion matrix with class names on both axes."""
    plt = pyplot()
    matrix = row_normalise(counts)
    k = len(labels)
    side = float(np.clip(2.5 + 0.22 * k, 4.5, 16.0))
    fontsize = 8 if k <= 20 else 6
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(k), labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(k), labels, fontsize=fontsize)
    if k <= 12:
        for i, j in zip(*np.nonzero(matrix)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(f"{title} (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def plot_against_steps(series: Sequence[Tuple[str, Sequence[Tuple[int, np.ndarray]]]],
                       path: Path, title: str, ylabel: str) -> None:
    """One line per series through (steps, mean over seeds), with the standard deviation
    (ddof=1, where several seeds) as error bars and each seed as a dot."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, points in series:
        steps = np.array([x for x, _ in points], dtype=float)
        means = np.array([v.mean() for _, v in points])
        stds = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for _, v in points])
        line = ax.errorbar(steps, means, yerr=stds, marker="o", capsize=3, label=label)
        for x, values in points:
            ax.scatter(np.full(values.size, float(x)), values, s=8, alpha=0.4,
                       color=line[0].get_color())
    ax.set_xlabel("pretraining steps (0: random init)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
