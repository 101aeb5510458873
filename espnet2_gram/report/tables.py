"""ESPnet-style ``RESULTS.md`` of the downstream runs of an exp dir, with figures.

Reads ``<exp_dir>/<run>/decode_<dataset>/scores.json`` (plus ``doa_errors.tsv`` beside DoA
scores and ``<exp_dir>/<run>/train.log``) and writes ``<out_dir>/RESULTS.md`` and
``<out_dir>/images/*.png``. A table row gathers the runs of one format, model and mode over
seeds and folds: the folds of a seed are averaged, then a cell is mean ± std over seeds.
"""

import json
import logging
import math
import platform
import re
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_gram.report import figures as report_figures
from espnet2_gram.downstream.localization.seld_metrics import LENGTH_FROM
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.utils.seed_stats import complete, mean_std_cell
from espnet2_gram.formats import FORMATS
from espnet2_gram.downstream.runs import LAYER_MODEL, SNAPSHOT_MODEL
from espnet2_gram.downstream.spec import TASKS, Metric
from espnet2_gram.utils.scoring import MODES
from espnet2_gram.utils.training_log import logged, parse_epochs, plot_curve

logger = logging.getLogger("espnet2_gram.report.tables")

MODELS = {"gram": "GRAM (pretrained)", "gram_random": "GRAM (random init)", "logmel": "log-mel",
          "seldnet": "SELDnet (supervised)"}
REQUIRED = ("task", "dataset", "format", "model", "mode", "metrics")
SEED_NOTE = ("Mean ± standard deviation (ddof=1) over seeds, the folds of each seed averaged"
             " first; a single seed shows its value alone.")
RULE_NOTE = ("Comparisons: the gap between the best model and the runner-up is set against the"
             " sum of their standard deviations over seeds, a simple rule of thumb rather than"
             " a significance test; with fewer than 2 seeds it cannot be judged.")
LATERAL_NOTE = ("Lateral err: median over utterances of |asin(y_hyp) - asin(y_ref)| on unit"
                " vectors, the error with front and back folded together.")


@dataclass
class Scores:
    """One ``scores.json``; ``metrics`` holds floats, NaN for null (optional ones if given)."""

    path: Path
    task: str
    dataset: str
    format: str
    model: str
    mode: str
    seed: Optional[int]
    fold: Optional[int]
    metrics: Dict[str, float]
    data: dict
    pretrain_steps: Optional[int] = None

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


def _optional_int(data: dict, key: str, path: Path) -> Optional[int]:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{path}: {key!r} = {value!r}; expected an integer or null")
    return value


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
    if task not in TASKS:
        raise ValueError(f"{path}: task {task!r}; expected one of {list(TASKS)}")
    raw = data["metrics"]
    required = [m.key for m in TASKS[task].metrics if not m.optional]
    if not isinstance(raw, dict) or any(key not in raw for key in required):
        raise ValueError(f"{path}: 'metrics' must hold {required} for task {task!r}")
    metrics = {m.key: _number(raw[m.key], f"{path}: metrics.{m.key}", m.scale == 100)
               for m in TASKS[task].metrics if m.key in raw}
    seed, fold = _optional_int(data, "seed", path), _optional_int(data, "fold", path)
    if task == "cls" and data.get("confusion") is not None:
        _check_confusion(data, path)
    if task == "seld" and "length_from" in data and data["length_from"] not in LENGTH_FROM:
        raise ValueError(f"{path}: 'length_from' = {data['length_from']!r}; expected one of"
                         f" {list(LENGTH_FROM)}")
    steps = _optional_int(data, "pretrain_steps", path)
    if steps is not None and steps < 0:
        raise ValueError(f"{path}: 'pretrain_steps' = {steps}; expected an integer >= 0")
    return Scores(path, task, data["dataset"], data["format"], data["model"], data["mode"],
                  seed, fold, metrics, data, steps)


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


def model_label(model: str) -> str:
    snapshot = SNAPSHOT_MODEL.fullmatch(model)
    if snapshot:
        return f"GRAM (epoch {snapshot.group(1)})"
    layer = LAYER_MODEL.fullmatch(model)
    if layer:
        return f"{MODELS[layer.group(1)][:-1]}, layer {layer.group(2)})"
    return MODELS.get(model, model)


def _model_order(model: str) -> Tuple[int, int, int, str]:
    """Known models in MODELS order, GRAM's snapshots right after GRAM by epoch, then each
    GRAM's layers by layer, others last."""
    snapshot = SNAPSHOT_MODEL.fullmatch(model)
    if snapshot:
        return (list(MODELS).index("gram"), 1, int(snapshot.group(1)), model)
    layer = LAYER_MODEL.fullmatch(model)
    if layer:
        return (list(MODELS).index(layer.group(1)), 2, int(layer.group(2)), model)
    return (_order(list(MODELS), model)[0], 0, 0, model)


def _span(counts) -> str:
    """``"3"``, or ``"2-3"`` when the counts differ."""
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclass
class Row:
    """One table row: a model, format and mode, with one ``Scores`` per seed and fold, sorted
    by seed then fold (seed and fold None when not recorded)."""

    format: str
    model: str
    mode: str
    scores: List[Scores]

    @property
    def label(self) -> str:
        return model_label(self.model)

    @property
    def pretrain_steps(self) -> Optional[int]:
        """The pretraining steps of the row's encoder (one value, checked), None if unknown."""
        return self.scores[0].pretrain_steps

    def seeds(self) -> Dict[Optional[int], List[Scores]]:
        """The scores of each seed, in seed order."""
        out = defaultdict(list)
        for s in self.scores:
            out[s.seed].append(s)
        return dict(out)

    @property
    def num_seeds(self) -> int:
        return len(self.seeds())

    @property
    def has_folds(self) -> bool:
        return self.scores[0].fold is not None

    @property
    def folds(self) -> str:
        """Folds per seed, "-" without folds."""
        return _span([len(g) for g in self.seeds().values()]) if self.has_folds else "-"

    def representative(self) -> List[Scores]:
        """The scores of the lowest seed, the one shown in per-run figures."""
        return next(iter(self.seeds().values()))

    def values(self, metric: Metric) -> np.ndarray:
        """One value per seed: the mean over its folds (NaN when any fold lacks it), scaled."""
        return np.array([np.mean([s.metrics.get(metric.key, math.nan) for s in group])
                         for group in self.seeds().values()]) * metric.scale

    def sort_key(self):
        return (_order(list(FORMATS), self.format), _model_order(self.model),
                _order(MODES, self.mode))


def _check_runs(members: List[Scores]) -> None:
    """One score per (seed, fold), and 'seed' (and 'fold') recorded in all scores or none."""
    s = members[0]
    what = f"{s.task} {s.dataset} {s.format} {s.model} {s.mode}"
    for key in ("seed", "fold"):
        given = [getattr(m, key) is not None for m in members]
        if any(given) and not all(given):
            raise ValueError(f"{', '.join(str(m.path) for m in members)}: scores for {what} with"
                             f" and without {key!r}; expected it in all of them or none")
    if len({m.pretrain_steps for m in members}) > 1:
        raise ValueError(f"{', '.join(str(m.path) for m in members)}: scores for {what} with"
                         " different 'pretrain_steps'; expected the same weights in all")
    same = defaultdict(list)
    for m in members:
        same[(m.seed, m.fold)].append(m)
    for (seed, fold), clash in same.items():
        if len(clash) > 1:
            where = ", ".join(f"{k} {v}" for k, v in (("seed", seed), ("fold", fold))
                              if v is not None)
            raise ValueError(f"{', '.join(str(m.path) for m in clash)}: several scores for "
                             f"{what}{f' ({where})' if where else ''}; expected one per 'seed'"
                             f" and 'fold'")


def group_rows(scores: Sequence[Scores]) -> Dict[Tuple[str, str], List[Row]]:
    """Rows per (task, dataset), in task then dataset order; rows sorted by format, model, mode."""
    cells = defaultdict(list)
    for s in scores:
        cells[(s.task, s.dataset, s.format, s.model, s.mode)].append(s)
    tables = defaultdict(list)
    for (task, dataset, fmt, model, mode), members in cells.items():
        _check_runs(members)
        members.sort(key=lambda s: (s.seed or 0, s.fold or 0))
        tables[(task, dataset)].append(Row(fmt, model, mode, members))
    keys = sorted(tables, key=lambda k: (_order(list(TASKS), k[0]), k[1]))
    return {k: sorted(tables[k], key=Row.sort_key) for k in keys}


def headline(task: str, rows: Sequence[Row]) -> Tuple[Metric, str]:
    """The metric compared in the one-line summary, and its name."""
    key, name = TASKS[task].headline
    if task == "cls" and any(s.data.get("multilabel") for r in rows for s in r.scores):
        key, name = "mAP", "Classification mAP"
    return next(m for m in TASKS[task].metrics if m.key == key), name


def _verdict(finite: List[Tuple[str, np.ndarray]], metric: Metric) -> str:
    """The best model, and whether its gap to the runner-up exceeds the sum of their stds."""
    ranked = sorted(finite, key=lambda lv: lv[1].mean(), reverse=not metric.lower_is_better)
    (best, b), (second, r) = ranked[:2]
    d, unit = metric.decimals, metric.unit
    diff = abs(b.mean() - r.mean())
    gap = f"best: {best}; gap to {second} {diff:.{d}f}{unit}"
    if min(b.size, r.size) < 2:
        return f"{gap}: cannot be judged with fewer than 2 seeds"
    spread = b.std(ddof=1) + r.std(ddof=1)
    verb = "exceeds" if diff > spread else "does not exceed"
    return f"{gap} {verb} the sum of their standard deviations ({spread:.{d}f}{unit})"


def comparison_lines(task: str, dataset: str, rows: Sequence[Row]) -> List[str]:
    """One line per (format, mode): the headline metric of each model (mean ± std over seeds,
    with the number of seeds), the best, and how its gap to the runner-up compares with the
    sum of their standard deviations."""
    metric, name = headline(task, rows)
    settings = defaultdict(list)
    for row in rows:
        settings[(row.format, row.mode)].append(row)
    lines = []
    for (fmt, mode), members in settings.items():
        parts, finite = [], []
        for row in members:
            values = row.values(metric)
            if complete(values):
                seeds = f"{values.size} seed" + ("s" if values.size > 1 else "")
                parts.append(f"{row.label} {mean_std_cell(values, metric.decimals)}{metric.unit}"
                             f" ({seeds})")
                finite.append((row.label, values))
            else:
                parts.append(f"{row.label} -")
        line = f"{name}, {dataset}, {fmt} ({mode}): {', '.join(parts)}"
        if len(finite) > 1:
            line += "; " + _verdict(finite, metric)
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


def table_metrics(task: str, rows: Sequence[Row]) -> List[Metric]:
    """The metric columns of a table: optional ones only when some of its scores have them."""
    return [m for m in TASKS[task].metrics
            if not m.optional or any(m.key in s.metrics for r in rows for s in r.scores)]


def markdown_table(task: str, rows: Sequence[Row]) -> List[str]:
    """Markdown lines of one table: a ``seeds`` column, and ``folds`` when any row has folds."""
    metrics = table_metrics(task, rows)
    with_folds = any(r.has_folds for r in rows)
    header = ["format", "model", "mode", "seeds", *(["folds"] if with_folds else []),
              *(m.header for m in metrics)]
    lines = ["|" + "|".join(header) + "|", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.format, r.label, r.mode, str(r.num_seeds)]
        if with_folds:
            cells.append(r.folds)
        cells += [mean_std_cell(r.values(m), m.decimals) for m in metrics]
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


def _lowest_seed(summary: str, rows: Sequence[Row]) -> str:
    """``summary``, saying that only the lowest seed is shown when a row has several."""
    return summary + (", lowest seed of each row" if any(r.num_seeds > 1 for r in rows) else "")


def doa_figures(rows: Sequence[Row], dataset: str, scores: Sequence[Scores],
                images: Path) -> List[str]:
    """Box plot of the dataset (every seed and fold of a row pooled) and one confusion figure
    per decode of the lowest seed of each row; returns markdown lines."""
    modes = {r.mode for r in rows}
    groups: Dict[str, List[Tuple[str, np.ndarray]]] = defaultdict(list)
    pooled, confusions = [], []
    for row in rows:
        errors = []
        shown = row.representative()
        for s in row.scores:
            tsv = s.path.parent / "doa_errors.tsv"
            if not tsv.is_file():
                logger.warning("%s: missing; no DoA figures for this decode", tsv)
                continue
            table = report_figures.read_doa_errors(tsv)
            errors.append(table["error"][np.isfinite(table["error"])])
            if any(s is r for r in shown):
                tag = figure_tag(s, scores)
                path = images / f"doa_confusion_{tag}.png"
                report_figures.plot_doa_confusion(table, path, tag)
                confusions.append(_image(images, path, tag))
        if errors and np.concatenate(errors).size:
            label = row.label + (f", {row.mode}" if len(modes) > 1 else "")
            groups[row.format].append((label, np.concatenate(errors)))
            pooled.append(row.num_seeds)
    lines = []
    if groups:
        title = f"DoA error: {dataset}"
        if max(pooled) > 1:
            title += f" ({_span(pooled)} seeds pooled)"
        path = images / f"doa_error_boxplot_{_safe(dataset)}.png"
        report_figures.plot_doa_boxplot(list(groups.items()), path, title)
        lines += ["", _image(images, path, f"DoA error per model: {dataset}")]
    return lines + _details(_lowest_seed("Azimuth and elevation confusion matrices", rows),
                            confusions)


def cls_figures(rows: Sequence[Row], scores: Sequence[Scores], images: Path) -> List[str]:
    """One confusion-matrix figure per decode with a confusion, of the lowest seed of each row;
    returns markdown lines."""
    links = []
    for s in (s for r in rows for s in r.representative()):
        if s.data.get("confusion") is None:
            continue
        tag = figure_tag(s, scores)
        path = images / f"cls_confusion_{tag}.png"
        report_figures.plot_cls_confusion(s.data["confusion"], s.data["labels"], path, tag)
        links.append(_image(images, path, tag))
    return _details(_lowest_seed("Confusion matrices", rows), links)


def curve_figures(exp_dir: Path, runs: Sequence[str], images: Path,
                  summary: str = "Training curves") -> List[str]:
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
    return _details(summary, links)


def pretraining_curve(task: str, dataset: str, rows: Sequence[Row], images: Path) -> List[str]:
    """Where GRAM's pretraining snapshots were evaluated: the headline metric of every row with
    recorded pretraining steps (random init, snapshots, final model) against those steps, per
    format and mode, as a table and a figure; no lines otherwise."""
    if not any(SNAPSHOT_MODEL.fullmatch(r.model) for r in rows):
        return []
    metric, name = headline(task, rows)
    curves = defaultdict(list)
    for row in rows:
        if row.pretrain_steps is not None and complete(row.values(metric)):
            curves[(row.format, row.mode)].append(row)
    lines = ["", f"### {name} against pretraining steps: {dataset}", "",
             "|format|mode|model|steps|seeds|" + metric.header + "|", "|---|---|---|---|---|---|"]
    series = []
    for (fmt, mode), members in curves.items():
        members.sort(key=lambda r: r.pretrain_steps)
        for r in members:
            lines.append(f"|{fmt}|{mode}|{r.label}|{r.pretrain_steps}|{r.num_seeds}|"
                         f"{mean_std_cell(r.values(metric), metric.decimals)}|")
        series.append((f"{fmt}, {mode}", [(r.pretrain_steps, r.values(metric)) for r in members]))
    path = images / f"pretraining_{task}_{_safe(dataset)}.png"
    report_figures.plot_against_steps(series, path, f"{name}: {dataset}",
                                      f"{metric.header}, mean ± std over seeds")
    return lines + ["", _image(images, path, f"{name} against pretraining steps: {dataset}")]


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
    lines += environment() + ["", f"Runs: `{exp_dir}/<run>/decode_<dataset>/scores.json`",
                              "", RULE_NOTE]
    tables = group_rows(scores)
    for (task, dataset), rows in tables.items():
        lines += ["", f"## {TASKS[task].title}: {dataset}", ""] + markdown_table(task, rows)
        lines += ["", SEED_NOTE]
        if any(m.key == "lateral_error" for m in table_metrics(task, rows)):
            lines[-1] += " " + LATERAL_NOTE
        notes = comparison_lines(task, dataset, rows)
        if task == "seld":
            notes += seld_length_lines(rows)
        lines += [""] + [f"- {line}" for line in notes]
        lines += pretraining_curve(task, dataset, rows, images)
        if task == "doa":
            lines += doa_figures(rows, dataset, scores, images)
        elif task == "cls":
            lines += cls_figures(rows, scores, images)
    rows = [r for members in tables.values() for r in members]
    runs = sorted({s.run for r in rows for s in r.representative()})
    curves = curve_figures(exp_dir, runs, images, _lowest_seed("Training curves", rows))
    if curves:
        lines += ["", "## Training curves"] + curves
    path = out_dir / "RESULTS.md"
    with atomic_open(path, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    logger.info("wrote %s (%d scores files)", path, len(scores))
    return path
