"""ESPnet-style ``RESULTS.md`` of the downstream runs of an exp dir, with figures.

Reads ``<exp_dir>/<run>/decode_<dataset>/scores.json`` (plus ``doa_errors.tsv`` beside DoA
scores and ``<exp_dir>/<run>/train.log``) and writes ``<out_dir>/RESULTS.md`` and
``<out_dir>/images/*.png``.
"""

import json
import logging
import math
import platform
import re
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import report_figures
from .localization.seld_metrics import LENGTH_FROM
from .utils.fileio import atomic_open
from .utils.training_log import logged, parse_epochs, plot_curve

logger = logging.getLogger("espnet2_gram.downstream_report")

TASKS = {"cls": "Classification", "doa": "DoA", "seld": "SELD"}
MODELS = {"gram": "GRAM (pretrained)", "gram_random": "GRAM (random init)", "logmel": "log-mel"}
FORMATS = ("binaural", "foa", "mono")
MODES = ("probe", "finetune")
REQUIRED = ("task", "dataset", "format", "model", "mode", "metrics")


@dataclass(frozen=True)
class Metric:
    """A table column: ``scale`` 100 marks a fraction shown in %."""

    key: str
    header: str
    scale: float
    decimals: int
    unit: str
    lower_is_better: bool


METRICS = {
    "cls": (Metric("accuracy", "Acc (%)", 100, 1, "%", False),
            Metric("mAP", "mAP (%)", 100, 1, "%", False)),
    "doa": (Metric("mean_error", "Mean err (°)", 1, 1, "°", True),
            Metric("median_error", "Median err (°)", 1, 1, "°", True),
            Metric("azimuth_error", "Azi err (°)", 1, 1, "°", True),
            Metric("elevation_error", "Ele err (°)", 1, 1, "°", True),
            Metric("acc20", "Acc@20° (%)", 100, 1, "%", False),
            Metric("front_back_confusion", "Front-back (%)", 100, 1, "%", True)),
    "seld": (Metric("ER20", "ER20", 1, 2, "", True),
             Metric("F20", "F20 (%)", 100, 1, "%", False),
             Metric("LE_CD", "LE_CD (°)", 1, 1, "°", True),
             Metric("LR_CD", "LR_CD (%)", 100, 1, "%", False),
             Metric("SELD", "SELD", 1, 3, "", True)),
}
HEADLINE = {"doa": ("median_error", "DoA median error"), "seld": ("SELD", "SELD score")}


@dataclass
class Scores:
    """One ``scores.json``; ``metrics`` holds floats, NaN for null."""

    path: Path
    task: str
    dataset: str
    format: str
    model: str
    mode: str
    fold: Optional[int]
    metrics: Dict[str, float]
    data: dict

    @property
    def run(self) -> str:
        return self.path.parent.parent.name


def _number(value, where: str, fraction: bool) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} = {value!r}; expected a number or null")
    if fraction and not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise ValueError(f"{where} = {value!r}; expected a fraction in [0, 1]")
    return float(value)


def load_scores(path) -> Scores:
    """Read and check one ``scores.json``; errors name the file and what was expected."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    for key in REQUIRED[:5]:
        if not isinstance(data[key], str) or not data[key]:
            raise ValueError(f"{path}: {key!r} = {data[key]!r}; expected a non-empty string")
    task = data["task"]
    if task not in METRICS:
        raise ValueError(f"{path}: task {task!r}; expected one of {list(METRICS)}")
    raw = data["metrics"]
    if not isinstance(raw, dict) or any(m.key not in raw for m in METRICS[task]):
        raise ValueError(f"{path}: 'metrics' must hold {[m.key for m in METRICS[task]]} "
                         f"for task {task!r}")
    metrics = {m.key: _number(raw[m.key], f"{path}: metrics.{m.key}", m.scale == 100)
               for m in METRICS[task]}
    fold = data.get("fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise ValueError(f"{path}: 'fold' = {fold!r}; expected an integer or null")
    if task == "cls" and data.get("confusion") is not None:
        _check_confusion(data, path)
    if task == "seld" and "length_from" in data and data["length_from"] not in LENGTH_FROM:
        raise ValueError(f"{path}: 'length_from' = {data['length_from']!r}; expected one of"
                         f" {list(LENGTH_FROM)}")
    return Scores(path, task, data["dataset"], data["format"], data["model"], data["mode"],
                  fold, metrics, data)


def _check_confusion(data: dict, path: Path) -> None:
    labels = data.get("labels")
    try:
        counts = np.asarray(data["confusion"], dtype=float)
    except (TypeError, ValueError):
        counts = None
    if (not isinstance(labels, list) or counts is None or counts.ndim != 2
            or counts.shape != (len(labels), len(labels))):
        raise ValueError(f"{path}: expected 'confusion' as a K x K list of counts with K "
                         f"= the number of 'labels'")


def collect_scores(exp_dir) -> List[Scores]:
    """All ``<exp_dir>/<run>/decode_*/scores.json``, sorted by path."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise NotADirectoryError(f"--exp_dir {exp_dir}: no such directory")
    paths = sorted(exp_dir.glob("*/decode_*/scores.json"))
    if not paths:
        raise FileNotFoundError(f"{exp_dir}: no <run>/decode_<dataset>/scores.json found")
    return [load_scores(p) for p in paths]


def _order(known: Sequence[str], name: str) -> Tuple[int, str]:
    return (known.index(name) if name in known else len(known), name)


@dataclass
class Row:
    """One table row: a model, format and mode, with one ``Scores`` per fold."""

    format: str
    model: str
    mode: str
    scores: List[Scores]

    @property
    def label(self) -> str:
        return MODELS.get(self.model, self.model)

    @property
    def num_folds(self) -> Optional[int]:
        return None if self.scores[0].fold is None else len(self.scores)

    def values(self, metric: Metric) -> np.ndarray:
        return np.array([s.metrics[metric.key] for s in self.scores]) * metric.scale

    def sort_key(self):
        return (_order(FORMATS, self.format), _order(list(MODELS), self.model),
                _order(MODES, self.mode))


def _check_folds(members: List[Scores]) -> None:
    folds = [s.fold for s in members]
    repeated = [f for f, n in Counter(folds).items() if n > 1]
    if repeated or (None in folds and len(folds) > 1):
        clash = [str(s.path) for s in members if s.fold in repeated or None in folds]
        s = members[0]
        raise ValueError(f"{', '.join(clash)}: several scores for {s.task} {s.dataset} "
                         f"{s.format} {s.model} {s.mode}; expected one per 'fold'")


def group_rows(scores: Sequence[Scores]) -> Dict[Tuple[str, str], List[Row]]:
    """Rows per (task, dataset), in task then dataset order; rows sorted by format, model, mode."""
    cells = defaultdict(list)
    for s in scores:
        cells[(s.task, s.dataset, s.format, s.model, s.mode)].append(s)
    tables = defaultdict(list)
    for (task, dataset, fmt, model, mode), members in cells.items():
        _check_folds(members)
        members.sort(key=lambda s: s.fold or 0)
        tables[(task, dataset)].append(Row(fmt, model, mode, members))
    keys = sorted(tables, key=lambda k: (_order(list(TASKS), k[0]), k[1]))
    return {k: sorted(tables[k], key=Row.sort_key) for k in keys}


def _complete(values: np.ndarray) -> bool:
    return values.size > 0 and bool(np.all(np.isfinite(values)))


def format_cell(values: np.ndarray, decimals: int) -> str:
    """``mean ± std`` (ddof=1) over folds, the value alone, or "-" when any is missing."""
    if not _complete(values):
        return "-"
    text = f"{values.mean():.{decimals}f}"
    if values.size > 1:
        text += f" ± {values.std(ddof=1):.{decimals}f}"
    return text


def headline(task: str, rows: Sequence[Row]) -> Tuple[Metric, str]:
    """The metric compared in the one-line summary, and its name."""
    key, name = HEADLINE.get(task, ("accuracy", "Classification accuracy"))
    if task == "cls" and any(s.data.get("multilabel") for r in rows for s in r.scores):
        key, name = "mAP", "Classification mAP"
    return next(m for m in METRICS[task] if m.key == key), name


def comparison_lines(task: str, dataset: str, rows: Sequence[Row]) -> List[str]:
    """One line per (format, mode): the headline metric of each model, and the best."""
    metric, name = headline(task, rows)
    settings = defaultdict(list)
    for row in rows:
        settings[(row.format, row.mode)].append(row)
    lines = []
    for (fmt, mode), members in settings.items():
        parts, finite = [], []
        for row in members:
            values = row.values(metric)
            if _complete(values):
                parts.append(f"{row.label} {values.mean():.{metric.decimals}f}{metric.unit}")
                finite.append((values.mean(), row.label))
            else:
                parts.append(f"{row.label} -")
        line = f"{name}, {dataset}, {fmt} ({mode}): {', '.join(parts)}"
        if len(finite) > 1:
            pick = min if metric.lower_is_better else max
            line += f"; best: {pick(finite, key=lambda vl: vl[0])[1]}"
        lines.append(line)
    return lines


def seld_length_lines(rows: Sequence[Row]) -> List[str]:
    """How the SELD scores of a table took each recording's length (``length_from``)."""
    runs = defaultdict(list)
    for s in (s for r in rows for s in r.scores):
        runs[s.data.get("length_from")].append(s.run)

    def name(key):
        return (f"{LENGTH_FROM[key]} (`length_from: {key}`)" if key else
                "not recorded in scores.json")

    if len(runs) == 1:
        return [f"Recording length in scoring: {name(next(iter(runs)))}."]
    parts = "; ".join(f"{name(key)}: {', '.join(sorted(set(names)))}"
                      for key, names in sorted(runs.items(), key=lambda kv: kv[0] or ""))
    return [f"Recording length in scoring differs between runs, whose scores are therefore"
            f" not comparable: {parts}."]


def markdown_table(task: str, rows: Sequence[Row]) -> List[str]:
    """Markdown lines of one table; a ``folds`` column when any row has folds."""
    metrics = METRICS[task]
    with_folds = any(r.num_folds for r in rows)
    header = ["format", "model", "mode", *(["folds"] if with_folds else []),
              *(m.header for m in metrics)]
    lines = ["|" + "|".join(header) + "|", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.format, r.label, r.mode]
        if with_folds:
            cells.append(str(r.num_folds or "-"))
        cells += [format_cell(r.values(m), m.decimals) for m in metrics]
        lines.append("|" + "|".join(cells) + "|")
    return lines


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def figure_tag(s: Scores, scores: Sequence[Scores]) -> str:
    """``<run>``, or ``<run>_<decode suffix>`` when the run has several decodes of its task."""
    same = [o for o in scores if o.run == s.run and o.task == s.task]
    suffix = s.path.parent.name[len("decode_"):]
    return _safe(s.run if len(same) == 1 else f"{s.run}_{suffix}")


def _image(images: Path, path: Path, alt: str) -> str:
    return f"![{alt}]({images.name}/{path.name})"


def _details(summary: str, links: List[str]) -> List[str]:
    if not links:
        return []
    body = [line for link in links for line in (link, "")]
    return ["", f"<details><summary>{summary} ({len(links)})</summary>", "", *body, "</details>"]


def doa_figures(rows: Sequence[Row], dataset: str, scores: Sequence[Scores],
                images: Path) -> List[str]:
    """Box plot of the dataset and one confusion figure per decode; returns markdown lines."""
    modes = {r.mode for r in rows}
    groups: Dict[str, List[Tuple[str, np.ndarray]]] = defaultdict(list)
    confusions = []
    for row in rows:
        errors = []
        for s in row.scores:
            tsv = s.path.parent / "doa_errors.tsv"
            if not tsv.is_file():
                logger.warning("%s: missing; no DoA figures for this decode", tsv)
                continue
            table = report_figures.read_doa_errors(tsv)
            errors.append(table["error"][np.isfinite(table["error"])])
            tag = figure_tag(s, scores)
            path = images / f"doa_confusion_{tag}.png"
            report_figures.plot_doa_confusion(table, path, tag)
            confusions.append(_image(images, path, tag))
        if errors and np.concatenate(errors).size:
            label = row.label + (f", {row.mode}" if len(modes) > 1 else "")
            groups[row.format].append((label, np.concatenate(errors)))
    lines = []
    if groups:
        path = images / f"doa_error_boxplot_{_safe(dataset)}.png"
        report_figures.plot_doa_boxplot(list(groups.items()), path, f"DoA error: {dataset}")
        lines += ["", _image(images, path, f"DoA error per model: {dataset}")]
    return lines + _details("Azimuth and elevation confusion matrices", confusions)


def cls_figures(rows: Sequence[Row], scores: Sequence[Scores], images: Path) -> List[str]:
    """One confusion-matrix figure per decode with a confusion; returns markdown lines."""
    links = []
    for s in (s for r in rows for s in r.scores):
        if s.data.get("confusion") is None:
            continue
        tag = figure_tag(s, scores)
        path = images / f"cls_confusion_{tag}.png"
        report_figures.plot_cls_confusion(s.data["confusion"], s.data["labels"], path, tag)
        links.append(_image(images, path, tag))
    return _details("Confusion matrices", links)


def curve_figures(exp_dir: Path, runs: Sequence[str], images: Path) -> List[str]:
    """Loss (and accuracy, if logged) per epoch of each run with a ``train.log``."""
    links = []
    for run in runs:
        log = exp_dir / run / "train.log"
        epochs = parse_epochs(log.read_text(errors="replace")) if log.is_file() else []
        if not epochs:
            continue
        keys = ["loss"] + (["acc"] if logged(epochs, "acc") else [])
        path = images / f"curve_{_safe(run)}.png"
        plot_curve(epochs, path, keys, ylabels=["loss", "accuracy"][:len(keys)], title=run)
        links.append(_image(images, path, run))
    return _details("Training curves", links)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> List[str]:
    """ESPnet's "Environments" bullet list: date, versions and, in a git checkout, the commit."""
    lines = ["## Environments",
             f"- date: `{time.strftime('%a %b %d %H:%M:%S %Z %Y')}`",
             f"- python version: `{platform.python_version()}`",
             f"- espnet version: `espnet {_version('espnet')}`",
             f"- pytorch version: `pytorch {_version('torch')}`"]
    try:
        git = subprocess.run(["git", "log", "-1", "--format=%H%n%cd"], capture_output=True,
                             text=True, check=False)
    except OSError:  # no git: the commit lines are optional
        return lines
    if git.returncode == 0 and git.stdout.count("\n") == 2:
        commit, date = git.stdout.splitlines()
        lines += [f"- Git hash: `{commit}`", f"  - Commit date: `{date}`"]
    return lines


def write_report(exp_dir, out_dir=None) -> Path:
    """Write ``<out_dir>/RESULTS.md`` and its figures; ``out_dir`` defaults to ``exp_dir``."""
    exp_dir = Path(exp_dir)
    out_dir = exp_dir if out_dir is None else Path(out_dir)
    scores = collect_scores(exp_dir)
    images = out_dir / "images"
    lines = ["<!-- Generated by python -m espnet2_gram.bin.make_report -->", "# RESULTS", ""]
    lines += environment() + ["", f"Runs: `{exp_dir}/<run>/decode_<dataset>/scores.json`"]
    for (task, dataset), rows in group_rows(scores).items():
        lines += ["", f"## {TASKS[task]}: {dataset}", ""] + markdown_table(task, rows)
        if any(r.num_folds for r in rows):
            lines += ["", "Mean ± standard deviation (ddof=1) over the folds found."]
        notes = comparison_lines(task, dataset, rows)
        if task == "seld":
            notes += seld_length_lines(rows)
        lines += [""] + [f"- {line}" for line in notes]
        if task == "doa":
            lines += doa_figures(rows, dataset, scores, images)
        elif task == "cls":
            lines += cls_figures(rows, scores, images)
    curves = curve_figures(exp_dir, sorted({s.run for s in scores}), images)
    if curves:
        lines += ["", "## Training curves"] + curves
    path = out_dir / "RESULTS.md"
    with atomic_open(path, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    logger.info("wrote %s (%d scores files)", path, len(scores))
    return path
