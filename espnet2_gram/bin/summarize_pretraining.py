"""Learning curve and final loss of a GRAM pretraining run, from ESPnet's epoch summaries.

    python -m espnet2_gram.bin.summarize_pretraining --exp_dir exp/gram_binaural

Reads the "<N>epoch results: [train] ... loss=... [valid] loss=..." lines of
``<exp_dir>/train.log`` and writes ``learning_curve.png`` and ``RESULTS.md`` there.
"""

import argparse
import re
from pathlib import Path
from typing import Dict, List

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open, atomic_path

EPOCH_LINE = re.compile(r"(\d+)epoch results: (.*)$")
PHASE = re.compile(r"\[(\w+)\] ([^\[]*)")


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


def plot_curve(epochs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for phase in ("train", "valid"):
        xs = [e["epoch"] for e in epochs if "loss" in e.get(phase, {})]
        ys = [e[phase]["loss"] for e in epochs if "loss" in e.get(phase, {})]
        ax.plot(xs, ys, marker="o", label=phase)
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked-patch MSE")
    ax.set_title(path.parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True)
    args = p.parse_args(argv)
    exp = Path(args.exp_dir)
    log = exp / "train.log"
    if not log.is_file():
        raise FileNotFoundError(f"{log}: no training log")
    epochs = parse_epochs(log.read_text(errors="replace"))
    if not epochs:
        raise ValueError(f"{log}: no 'epoch results' line; did the training finish an epoch?")
    plot_curve(epochs, exp / "learning_curve.png")
    rows = ["| epoch | train loss | valid loss |", "|---|---|---|"]
    for e in epochs:
        rows.append(f"| {e['epoch']} | {e.get('train', {}).get('loss', float('nan')):.4f} | "
                    f"{e.get('valid', {}).get('loss', float('nan')):.4f} |")
    last = epochs[-1]
    final = (f"final ({exp.name}, epoch {last['epoch']}): train loss "
             f"{last.get('train', {}).get('loss', float('nan')):.4f}, valid loss "
             f"{last.get('valid', {}).get('loss', float('nan')):.4f}")
    with atomic_open(exp / "RESULTS.md") as f:
        f.write(f"# GRAM pretraining: {exp.name}\n\n![learning curve](learning_curve.png)\n\n")
        f.write("\n".join(rows) + "\n\n" + final + "\n")


if __name__ == "__main__":
    run(main)
