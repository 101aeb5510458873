"""ESPnet ``train.log`` epoch summaries: parsing and learning-curve plots."""

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_gram.utils.fileio import atomic_path

EPOCH_LINE = re.compile(r"(\d+)epoch results: (.*)$")
PHASE = re.compile(r"\[(\w+)\] ([^\[]*)")
PHASES = ("train", "valid")


def parse_epochs(log_text: str) -> List[Dict[str, Dict[str, float]]]:
    """One dict per epoch: {"epoch": n, "train": {key: value}, "valid": {...}}."""
    epochs = {}
    for line in log_text.splitlines():
        found = EPOCH_LINE.search(line)
        if not found:
            continue
        entry = {"epoch": int(found.group(1))}
        for phase, body in PHASE.findall(found.group(2)):
            values = {}
            for item in body.split(","):
                key, _, value = item.strip().partition("=")
                try:
                    values[key] = float(value)
                except ValueError:
                    continue
            entry[phase] = values
        epochs[entry["epoch"]] = entry  # a resumed run repeats nothing, but keep the last
    return [epochs[k] for k in sorted(epochs)]


def logged(epochs, key: str) -> bool:
    """Whether any epoch logged ``key`` in the train or valid phase."""
    return any(key in e.get(phase, {}) for e in epochs for phase in PHASES)


def plot_curve(epochs, path: Path, keys: Sequence[str] = ("loss",),
               ylabels: Optional[Sequence[str]] = None, title: Optional[str] = None) -> None:
    """Plot train/valid ``keys`` per epoch, one panel per key, into the PNG ``path``.

    ``ylabels`` defaults to the keys; ``title`` to the name of the folder holding ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    ylabels = list(keys) if ylabels is None else list(ylabels)
    if len(ylabels) != len(keys):
        raise ValueError(f"plot_curve: {len(keys)} keys but {len(ylabels)} ylabels")
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
    for ax, key, ylabel in zip(axes[0], keys, ylabels):
        for phase in PHASES:
            xs = [e["epoch"] for e in epochs if key in e.get(phase, {})]
            ys = [e[phase][key] for e in epochs if key in e.get(phase, {})]
            ax.plot(xs, ys, marker="o", label=phase)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(path.parent.name if title is None else title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
