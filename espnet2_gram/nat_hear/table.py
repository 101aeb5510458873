"""The table of the GRAM paper's HEAR / Nat-HEAR results, for the models and tasks an evaluation
(:mod:`espnet2_gram.nat_hear.evaluate`) holds: one row per model and condition (``clean``
HEAR, or the format a Nat-HEAR task was rendered in), one column per HEAR task (HEAR's
metric: accuracy, mAP for multi-label tasks, onset F for event tasks), their average, the normalised score s(m), and the
spatial tasks (DoA median error, RT60 median absolute error).

s(m) follows the MW-MAE paper's overall score, as the reference presumes the GRAM paper does:
per task and condition, ``100 (x - min) / (max - min)`` over the models of the table, averaged
over the tasks every model has. It depends on which models the table holds (the paper's
tables normalise over about 25 models), so it compares models of one table only.
"""

import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from espnet2_gram.downstream.spec import TASKS
from espnet2_gram.formats import FORMATS
from espnet2_gram.report.figures import pyplot, save_figure
from espnet2_gram.report.tables import Row, collect_scores, group_rows
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.utils.seed_stats import complete, mean_std_cell

logger = logging.getLogger(__name__)

# the paper's 11 HEAR tasks, in its column order, with its abbreviations
PAPER_TASKS = {
    "dcase2016_task2-hear2021-full": "DCASE", "fsd50k-v1.0-full": "FSD50K",
    "libricount-v1.0.0-hear2021-full": "LC", "esc50-v2.0.0-full": "ESC-50",
    "tfds_crema_d-1.0.0-full": "CD", "vox_lingua_top10-hear2021-full": "VL",
    "speech_commands-v0.0.2-5h": "SC-5", "nsynth_pitch-v2.2.3-5h": "NS",
    "beijing_opera-v1.0-hear2021-full": "BO", "mridangam_stroke-v1.5-full": "Mri-S",
    "mridangam_tonic-v1.5-full": "Mri-T"}
HEAR_SCORED = ("cls", "event")  # HEAR's tasks, in % (their average and s(m))
INDEX = "tasks"  # <task name>: its prediction type, written by the evaluation
NOTE = ("Cells: mean ± standard deviation over seeds (folds of a seed averaged first), in %"
        " for HEAR's tasks (accuracy; mAP for multi-label ones; onset F for event tasks),"
        " degrees for DoA (median error) and seconds for RT60 (median absolute error). Avg: mean of the HEAR-task"
        " means. s(m): per task and condition 100 (x - min) / (max - min) over this table's"
        " models, averaged over the tasks (MW-MAE's overall score; it depends on the models in"
        " the table).")


def condition_of(fmt: str) -> str:
    return "clean" if fmt == "mono" else fmt


def record_task(out_root: Path, name: str, prediction_type: str) -> None:
    """Note a task's prediction type (its metric follows it) in ``out_root/tasks/<name>``: one
    file per task, so that evaluations running in parallel do not overwrite each other."""
    path = Path(out_root) / INDEX / name
    if not path.is_file() or path.read_text() != prediction_type:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            f.write(prediction_type)


def recorded_tasks(out_root: Path) -> Dict[str, str]:
    folder = Path(out_root) / INDEX
    return {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else {}


def _column(task: str, dataset: str, index: Dict[str, str]) -> Tuple[str, str, int]:
    """(header, metric key, decimals) of a task's column."""
    short = PAPER_TASKS.get(dataset, dataset)
    if task == "doa":
        return f"{short} DoA (°)", "median_error", 1
    if task == "reg":
        return f"{short} (s)", "median_ae", 4
    if task == "event":
        return short, "onset_f", 1
    return short, ("mAP" if index.get(dataset) == "multilabel" else "accuracy"), 1


def _values(row: Row, key: str, scale: float) -> np.ndarray:
    return np.array([np.mean([s.metrics.get(key, np.nan) for s in group])
                     for group in row.seeds().values()]) * scale


def collect(out_root) -> Tuple[List[Tuple[str, str]], Dict[Tuple[str, str], Dict], list]:
    """(columns as (task, dataset), cells {(model, condition): {column: seed values}}, the
    scene columns)."""
    out_root = Path(out_root)
    index = recorded_tasks(out_root)
    cells: Dict[Tuple[str, str], Dict] = {}
    columns = []
    for (task, dataset), rows in group_rows(collect_scores(out_root / "exp")).items():
        column = (task, dataset)
        columns.append(column)
        _, key, _ = _column(task, dataset, index)
        for row in rows:
            scale = 100.0 if task in HEAR_SCORED else 1.0
            cells.setdefault((row.model, condition_of(row.format)), {})[column] = \
                _values(row, key, scale)
    order = list(PAPER_TASKS)
    scene = sorted((c for c in columns if c[0] in HEAR_SCORED),
                   key=lambda c: (order.index(c[1]) if c[1] in order else len(order), c[1]))
    spatial = sorted(c for c in columns if c[0] not in HEAR_SCORED)
    return scene + spatial, cells, scene


def normalised_scores(cells: Dict, scene: Sequence) -> Dict[Tuple[str, str], float]:
    """s(m) per (model, condition), over the scene tasks every model of the condition has."""
    out = {}
    for cond in {c for _, c in cells}:
        rows = {k: v for k, v in cells.items() if k[1] == cond}
        shared = [c for c in scene if all(c in v and complete(v[c]) for v in rows.values())]
        if not shared:
            continue
        for key, values in rows.items():
            parts = []
            for c in shared:
                means = [float(np.mean(v[c])) for v in rows.values()]
                lo, hi = min(means), max(means)
                parts.append(100.0 if hi == lo else 100.0 * (np.mean(values[c]) - lo) / (hi - lo))
            out[key] = float(np.mean(parts))
    return out


def _row_order(key: Tuple[str, str]):
    model, cond = key
    conds = ["clean", *FORMATS]
    return (conds.index(cond) if cond in conds else len(conds), model)


def write_table(out_root) -> Path:
    """``out_root/NAT_HEAR.md`` and ``out_root/images/nat_hear.png``; returns the Markdown."""
    out_root = Path(out_root)
    index = recorded_tasks(out_root)
    columns, cells, scene = collect(out_root)
    s_m = normalised_scores(cells, scene)
    heads = [_column(t, d, index) for t, d in columns]
    lines = ["<!-- Generated by espnet2_gram.nat_hear.table -->", "# HEAR and Nat-HEAR", "",
             "| model | condition | " + " | ".join(h for h, _, _ in heads[:len(scene)])
             + " | Avg (tasks) | s(m) | " + " | ".join(h for h, _, _ in heads[len(scene):])
             + " |", "|---" * (len(columns) + 4) + "|"]
    averages = {}
    for key in sorted(cells, key=_row_order):
        values = cells[key]
        means = [float(np.mean(values[c])) for c in scene if c in values and complete(values[c])]
        averages[key] = float(np.mean(means)) if means else np.nan
        cell = [mean_std_cell(values[c], dec) if c in values else "-"
                for c, (_, _, dec) in zip(columns, heads)]
        avg = f"{averages[key]:.1f} ({len(means)})" if means else "-"
        s = f"{s_m[key]:.1f}" if key in s_m else "-"
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cell[:len(scene)])
                     + f" | {avg} | {s} | " + " | ".join(cell[len(scene):]) + " |")
    lines += ["", NOTE]
    if scene:
        lines += ["", "![scene tasks](images/nat_hear.png)"]
        _figure(out_root / "images" / "nat_hear.png", scene, cells)
    path = out_root / "NAT_HEAR.md"
    with atomic_open(path, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    logger.info("wrote %s (%d rows, %d tasks)", path, len(cells), len(columns))
    return path


def _figure(path: Path, scene: Sequence, cells: Dict) -> None:
    """Grouped bars: per scene task, one bar per model and condition (mean, std as error)."""
    plt = pyplot()
    keys = sorted(cells, key=_row_order)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(scene) * max(1, len(keys)) / 3), 3.2))
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        vals = [cells[key].get(c, np.array([np.nan])) for c in scene]
        ax.bar(np.arange(len(scene)) + i * width, [np.mean(v) for v in vals], width,
               yerr=[np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals],
               label=f"{key[0]} ({key[1]})")
    ax.set_xticks(np.arange(len(scene)) + 0.4 - width / 2)
    ax.set_xticklabels([PAPER_TASKS.get(d, d) for _, d in scene])
    ax.set_ylabel("score (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
