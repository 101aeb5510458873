"""Learning curve and final loss of a GRAM pretraining run, from ESPnet's epoch summaries.

    python -m espnet2_gram.bin.summarize_pretraining --exp_dir exp/gram_binaural

Reads the "<N>epoch results: [train] ... loss=... [valid] loss=..." lines of
``<exp_dir>/train.log`` and writes ``learning_curve.png`` and ``RESULTS.md`` there.
"""

import argparse
from pathlib import Path

from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.utils.training_log import parse_epochs, plot_curve


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
    plot_curve(epochs, exp / "learning_curve.png", ylabels=["masked-patch MSE"])
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
