"""Downstream runs: train (ESPnet's trainer), infer on the test set, score -> ``scores.json``.

One run is a task (``cls``, ``doa``, ``seld``), a way of training (``probe`` on cached
embeddings, ``finetune`` of GRAM on audio, ``supervised``: SELDnet from scratch on audio), a
model, a seed and three data dirs. Every step runs in this process (the trainer, the
inference and the scorer of ``espnet2_gram.bin``), so that the many runs of a recipe stage
(models x seeds x formats) pay the import of ESPnet once per process, not three times a run.

With ``--grid`` (HEAR's protocol) a run trains one model per point of a grid of trainer options
(``<exp_dir>/grid/p<k>/``), keeps the point with the best validation value of the task's
criterion (``grid.json``; its config and model are copied into ``<exp_dir>``) and scores that
one only. SELD has no validation split, so it has no grid.

A run is checked whole before anything is written (its data dirs, label and embedding files,
config, packed model). Only a finished training counts: ``<exp_dir>/training.done`` (the
inputs' fingerprint) is written once the trainer returned and left its best model; an
interrupted run resumes from ESPnet's ``checkpoint.pth`` and is never scored. A scored,
finished run is skipped, unless its inputs changed (config, options, data lists and labels,
embeddings or packed model): then it starts again from scratch.
"""

import argparse
import contextlib
import hashlib
import importlib
import itertools
import json
import logging
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from espnet2_gram.downstream.spec import TASKS, Decode
from espnet2_gram.formats import num_channels
from espnet2_gram.pretrained.packing import pretrain_steps
from espnet2_gram.utils.fileio import shuffled_keys
from espnet2_gram.utils.training_log import parse_epochs

logger = logging.getLogger("espnet2_gram.downstream")

POOLINGS = ("mean", "mean_std", "attention")
# GRAM with the weights of a pretraining epoch (run.sh --pretrain_snapshots): gram_ep<N>
SNAPSHOT_MODEL = re.compile(r"gram_ep(\d+)")
# GRAM or its random init probed at one encoder layer (run.sh --probe_layers): gram_l<K>
LAYER_MODEL = re.compile(r"(gram|gram_random)_l(\d+)")
# how the training keys are ordered for ESPnet's batches (part of a run's fingerprint)
TRAIN_ORDER = "shuffled by seed"


def step_modules() -> Dict[str, str]:
    """The entry point (a module with ``main(argv)``) of every task's steps."""
    return {step: module for task in TASKS.values() for step, module in task.modules.items()}


class RunError(ValueError):
    """A run that cannot start or did not finish; the message names the option or file."""


@dataclass
class Run:
    """The options of one run (``python -m espnet2_gram.bin.downstream --help``)."""

    task: str
    format: str
    dataset: str
    train_dir: str
    valid_dir: str
    test_dir: str
    task_config: str
    exp_dir: str
    mode: str = "probe"
    model: str = "gram"
    seed: int = 0
    pooling: Optional[str] = None
    fold: Optional[int] = None
    packed_model: Optional[str] = None
    multilabel: bool = False
    num_classes: Optional[int] = None
    chunk_dir: Optional[str] = None
    train_args: List[str] = field(default_factory=list)
    grid: List[str] = field(default_factory=list)
    ngpu: int = 0

    @property
    def probe(self) -> bool:
        return self.mode == "probe"

    @property
    def dirs(self) -> Dict[str, Path]:
        return {"train": Path(self.train_dir), "valid": Path(self.valid_dir),
                "test": Path(self.test_dir)}

    @property
    def speech(self) -> tuple:
        return ("feats.scp", "kaldi_ark") if self.probe else ("wav.scp", "sound")

    @property
    def decode_dir(self) -> Path:
        return Path(self.exp_dir) / f"decode_{self.dirs['test'].name}"


def grid_points(run: Run) -> List[List[str]]:
    """The trainer options of every grid point: axes ``<group>.<key>=<v1>|<v2>...`` (``head``
    stands for the task's head options), e.g. ``optim_conf.lr=1e-3|1e-4``."""
    axes = []
    for axis in run.grid:
        name, sep, values = axis.partition("=")
        group, dot, key = name.partition(".")
        if not (sep and dot and key and values) or "" in values.split("|"):
            raise RunError(f"--grid: expected axes <group>.<key>=<v1>|<v2>..., got '{axis}'")
        group = TASKS[run.task].head_conf if group == "head" else group
        axes.append([[f"--{group}", f"{key}={v}"] for v in values.split("|")])
    return [sum(point, []) for point in itertools.product(*axes)] if axes else []


def check(run: Run) -> List[Path]:
    """Refuse a run that cannot work; returns the files that made its inputs (fingerprinted)."""
    if run.task not in TASKS or run.mode not in TASKS[run.task].modes:
        modes = "; ".join(f"{name}: {'|'.join(t.modes)}" for name, t in TASKS.items())
        raise RunError(f"--task {run.task} --mode {run.mode}: expected a task and one of its"
                       f" modes ({modes})")
    if run.grid and TASKS[run.task].criterion is None:
        raise RunError(f"--grid: task {run.task} has no validation split to choose a point on")
    grid_points(run)
    if run.pooling is not None and run.pooling not in POOLINGS:
        raise RunError(f"--pooling: expected one of {', '.join(POOLINGS)}, got '{run.pooling}'")
    problem = TASKS[run.task].check(run)
    if problem:
        raise RunError(problem)
    speech_file, label_file = run.speech[0], TASKS[run.task].label_file
    for split, d in run.dirs.items():
        if not d.is_dir():
            raise RunError(f"--{split}_dir {d}: no such directory")
        for name in (speech_file, label_file):
            if not (d / name).is_file() or (d / name).stat().st_size == 0:
                raise RunError(f"{d / name}: missing or empty (--{split}_dir)")
        if run.probe:
            arks = {line.split(maxsplit=1)[1].rsplit(":", 1)[0]
                    for line in (d / "feats.scp").read_text().splitlines() if line.strip()}
            for ark in sorted(arks):
                if not Path(ark).is_file():
                    raise RunError(f"{d / 'feats.scp'}: embeddings file {ark} not found")
    if run.probe:
        made_by = [d / "embeddings.json" for d in run.dirs.values()]
    elif run.mode == "finetune":
        if not run.packed_model:
            raise RunError("--mode finetune needs --packed_model")
        made_by = [Path(run.packed_model) / "config.yaml", Path(run.packed_model) / "model.pth"]
    else:
        made_by = []
    for f in [Path(run.task_config), *made_by]:
        if not f.is_file():
            raise RunError(f"{f}: no such file")
    return made_by


def fingerprint(run: Run, made_by: List[Path]) -> str:
    """md5 of what the run depends on: options, config, what made the data, data lists, labels."""
    h = hashlib.md5()
    h.update(" ".join(map(str, (run.task, run.mode, run.model, run.multilabel, run.num_classes,
                                run.seed, run.pooling, TRAIN_ORDER, *run.train_args,
                                *run.grid))).encode())
    for f in [Path(run.task_config), *made_by]:
        h.update(f.read_bytes())
    for d in run.dirs.values():
        h.update(str(d).encode())
        for f in sorted(d.glob("*.scp")) + [d / TASKS[run.task].label_file]:
            h.update(f.read_bytes())
    return h.hexdigest()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def prepare(run: Run, inputs: str) -> bool:
    """Markers: restart a run whose inputs changed; True when it is scored already."""
    exp = Path(run.exp_dir)
    done = exp / "training.done"
    for f in (exp / "inputs.md5", done):
        if f.is_file() and f.read_text().strip() != inputs:
            logger.info("%s: inputs changed since the last run; training again from scratch", exp)
            shutil.rmtree(exp)
            break
    if done.is_file() and (run.decode_dir / "scores.json").is_file():
        logger.info("%s: scored already (%s)", exp, run.decode_dir / "scores.json")
        return True
    if not done.is_file():  # scores of an unfinished run are not kept
        shutil.rmtree(run.decode_dir, ignore_errors=True)
    exp.mkdir(parents=True, exist_ok=True)
    _write(exp / "inputs.md5", inputs + "\n")
    return False


def input_size(run: Run) -> int:
    """Embedding size (probe) or the format's channel count (audio)."""
    if run.probe:
        return int(json.loads((run.dirs["train"] / "embeddings.json").read_text())["dim"])
    return num_channels(run.format)


def train_argv(run: Run, out_dir: Path = None) -> List[str]:
    """The trainer's options (its output in ``out_dir``, default the run's exp dir)."""
    exp = Path(run.exp_dir)
    speech_file, speech_type = run.speech
    task = TASKS[run.task]
    argv = ["--config", run.task_config, "--ngpu", str(run.ngpu),
            "--input_size", str(input_size(run)), "--output_dir", str(out_dir or exp),
            "--resume", "true",
            "--seed", str(run.seed)]
    if run.mode == "finetune":
        argv += ["--encoder_conf", f"model_path={run.packed_model}",
                 "--encoder_conf", f"random_init={str(run.model == 'gram_random').lower()}"]
    if run.pooling and task.pooling_conf:  # SELD keeps the frames
        argv += [f"--{task.pooling_conf}", f"pooling={run.pooling}"]
    for split in ("train", "valid"):
        d = run.dirs[split]
        order = d / speech_file
        if split == "train":
            order = shuffled_keys(order, Path(out_dir or exp) / "train_order.scp", run.seed)
        argv += [f"--{split}_data_path_and_name_and_type", f"{d / speech_file},speech,{speech_type}",
                 f"--{split}_data_path_and_name_and_type",
                 f"{d / task.label_file},{task.label_name},{task.label_type}",
                 f"--{split}_shape_file", str(order)]
    return argv + task.train_options(run, exp) + list(run.train_args)


def encoder_steps(run: Run) -> Optional[int]:
    """The pretraining steps of a run's encoder (the report's curve): 0 for the random init,
    the packed model's record for GRAM and its snapshots, None for the other models."""
    if run.model == "gram_random":
        return 0
    if (run.model == "gram" or SNAPSHOT_MODEL.fullmatch(run.model)) and run.packed_model:
        return pretrain_steps(run.packed_model)
    return None


def decode_argvs(run: Run) -> tuple:
    """(inference options, scoring options)."""
    exp, out = Path(run.exp_dir), run.decode_dir
    test = run.dirs["test"]
    speech = f"{test / run.speech[0]},speech,{run.speech[1]}"
    device = "cuda" if run.ngpu > 0 else "cpu"
    report = ["--model", run.model, "--mode", run.mode, "--format", run.format,
              "--dataset", run.dataset, "--seed", str(run.seed)]
    if run.fold is not None:
        report += ["--fold", str(run.fold)]
    steps = encoder_steps(run)
    if steps is not None:
        report += ["--pretrain_steps", str(steps)]
    decode = Decode(exp, out, str(exp / TASKS[run.task].best_checkpoint), test, speech, device)
    infer, score = TASKS[run.task].decode_options(run, decode)
    return infer, score + report


@contextlib.contextmanager
def logging_to(path: Path):
    """Route this process's log records, stdout and stderr to ``path`` for a step."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(path, "a", encoding="utf-8") as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"))
        root.handlers, root.level = [handler], logging.INFO
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        finally:
            root.handlers, root.level = saved


def call_step(steps: Dict[str, Callable], name: str, argv: List[str], log: Path) -> None:
    """Run step ``name`` with ``argv``, its output appended to ``log``; RunError on failure
    (an exception, or ``SystemExit`` with a non-zero code, as ESPnet's option parsing ends)."""
    try:
        with logging_to(log):
            steps[name](argv)
        return
    except SystemExit as e:
        if not e.code:
            return
        error = e
    except Exception as e:  # noqa: BLE001 (any failure of a step fails the run, named)
        error = e
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"ERROR: {type(error).__name__}: {error}\n")
    raise RunError(f"{name} failed ({type(error).__name__}: {error}), see {log}") from error


def train(run: Run, steps: Dict[str, Callable]) -> None:
    """Train the run's model in its exp dir, or every grid point and keep the best."""
    exp = Path(run.exp_dir)
    points = grid_points(run)
    if not points:
        call_step(steps, TASKS[run.task].steps["train"], train_argv(run), exp / "train.log")
        return
    phase, key, higher = TASKS[run.task].criterion
    results = []
    for k, options in enumerate(points):
        out = exp / "grid" / f"p{k}"
        out.mkdir(parents=True, exist_ok=True)
        call_step(steps, TASKS[run.task].steps["train"], train_argv(run, out) + options,
                  out / "train.log")
        values = [e[phase][key] for e in parse_epochs((out / "train.log").read_text())
                  if key in e.get(phase, {})]
        if not values:
            raise RunError(f"{out / 'train.log'}: no {phase} {key} logged; cannot choose a point")
        results.append({"point": k, "options": options, f"{phase}_{key}":
                        max(values) if higher else min(values)})
    pick = (max if higher else min)(results, key=lambda r: r[f"{phase}_{key}"])
    chosen = exp / "grid" / f"p{pick['point']}"
    best = TASKS[run.task].best_checkpoint
    for name in ("config.yaml", best):
        if (chosen / name).exists():
            shutil.copyfile(chosen / name, exp / name)
    _write(exp / "grid.json", json.dumps({"criterion": f"{phase} {key}", "points": results,
                                          "chosen": pick["point"]}, indent=2) + "\n")
    logger.info("%s: grid point %d of %d chosen (%s %s %.4g)", exp, pick["point"], len(points),
                phase, key, pick[f"{phase}_{key}"])


def entry_point(target: str) -> Callable:
    """The function of ``module`` (its ``main``) or ``module:function``."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "main")


def default_steps() -> Dict[str, Callable]:
    return {name: (lambda argv, t=target: entry_point(t)(argv))
            for name, target in step_modules().items()}


def execute(run: Run, steps: Dict[str, Callable] = None) -> Path:
    """Train, infer and score one run (or skip it when scored); returns its scores.json."""
    steps = steps or default_steps()
    made_by = check(run)
    inputs = fingerprint(run, made_by)
    if prepare(run, inputs):
        return run.decode_dir / "scores.json"
    exp = Path(run.exp_dir)
    done = exp / "training.done"
    if not done.is_file():
        resumed = (exp / "checkpoint.pth").is_file()
        if resumed:
            logger.info("resuming the unfinished training in %s from checkpoint.pth", exp)
        else:
            logger.info("training %s %s %s %s seed %d -> %s", run.task, run.mode, run.model,
                        run.format, run.seed, exp)
        try:
            train(run, steps)
        except RunError as e:
            hint = (f" (resumed from {exp / 'checkpoint.pth'}; remove {exp} to train from"
                    " scratch)") if resumed else ""
            raise RunError(f"training failed{hint}: {e}") from e
        best = exp / TASKS[run.task].best_checkpoint
        if not best.exists():
            raise RunError(f"training ended without {best}, see {exp / 'train.log'}")
        _write(done, inputs + "\n")
    logger.info("inference on %s -> %s", run.dirs["test"], run.decode_dir)
    run.decode_dir.mkdir(parents=True, exist_ok=True)
    infer, score = decode_argvs(run)
    task_steps = TASKS[run.task].steps
    call_step(steps, task_steps["inference"], infer, run.decode_dir / "inference.log")
    call_step(steps, task_steps["score"], score, run.decode_dir / "scoring.log")
    scores = run.decode_dir / "scores.json"
    metrics = json.loads(scores.read_text())["metrics"]
    logger.info("%s %s", scores, {k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in metrics.items()})
    return scores


def get_parser() -> argparse.ArgumentParser:
    from espnet2_gram.utils.cli import str2bool

    p = argparse.ArgumentParser(
        description="One downstream run, or those of a run list (--runs); see "
                    "espnet2_gram.downstream.runs.")
    p.add_argument("--runs", help="file with the options of one run per line (shell words);"
                                  " with --job/--num_jobs this process takes every num_jobs-th")
    p.add_argument("--job", type=int, default=1, help="1-based share of --runs")
    p.add_argument("--num_jobs", type=int, default=1)
    p.add_argument("--claims", help="a fresh directory shared by the processes of --runs: each"
                                    " takes the next run nobody has claimed (instead of every"
                                    " num_jobs-th), so long runs do not pile up in one process")
    g = p.add_argument_group("one run")
    g.add_argument("--task", choices=sorted(TASKS))
    g.add_argument("--mode", default="probe", help="probe | finetune | supervised")
    g.add_argument("--model", default="gram",
                   help="gram | gram_ep<N> (the weights of pretraining epoch N) | gram_random |"
                        " gram_l<K> | gram_random_l<K> (probes of layer K) | logmel | seldnet")
    g.add_argument("--format", help="binaural | foa | mono")
    g.add_argument("--dataset", help="name in the report")
    g.add_argument("--fold", type=int, default=None, help="cross-validation fold")
    g.add_argument("--seed", type=int, default=0, help="trainer seed")
    g.add_argument("--pooling", default=None,
                   help="probes: frame pooling mean | mean_std | attention (default: config's)")
    for split in ("train", "valid", "test"):
        g.add_argument(f"--{split}_dir")
    g.add_argument("--task_config", help="YAML of the trainer")
    g.add_argument("--exp_dir")
    g.add_argument("--packed_model", help="the packed GRAM model (finetune: required; its"
                                          " weights.yaml gives the pretraining steps)")
    g.add_argument("--multilabel", type=str2bool, default=False, help="cls: multi-label")
    g.add_argument("--num_classes", type=int, default=None, help="seld")
    g.add_argument("--chunk_dir", help="seld: make_seld_data dir of the test set")
    g.add_argument("--train_args", default="", help="more trainer options, e.g. '--max_epoch 2'")
    g.add_argument("--grid", default="",
                   help="HEAR-style grid, axes <group>.<key>=<v1>|<v2>... separated by spaces"
                        " ('head' = the task's head options), e.g. 'optim_conf.lr=1e-3|1e-4"
                        " head.hidden_sizes=[1024]|[1024,1024]'; the best point on validation"
                        " is kept")
    g.add_argument("--ngpu", type=int, default=0)
    return p


REQUIRED = ("task", "format", "dataset", "train_dir", "valid_dir", "test_dir", "task_config",
            "exp_dir")


def run_from_args(args: argparse.Namespace) -> Run:
    for name in REQUIRED:
        if not getattr(args, name):
            raise RunError(f"--{name} is required")
    if args.ngpu < 0:
        raise RunError(f"--ngpu: expected an integer >= 0, got '{args.ngpu}'")
    if args.seed < 0:
        raise RunError(f"--seed: expected an integer >= 0, got '{args.seed}'")
    opts = {k: getattr(args, k) for k in Run.__dataclass_fields__
            if k not in ("train_args", "grid")}
    opts["pooling"] = opts["pooling"] or None
    opts["packed_model"] = opts["packed_model"] or None
    return Run(train_args=shlex.split(args.train_args), grid=args.grid.split(), **opts)


def read_runs(path, parser: argparse.ArgumentParser) -> List[Run]:
    """The runs of a run list, each line checked as options (errors name the line)."""
    runs = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            args = parser.parse_args(shlex.split(line))
        except SystemExit as e:
            raise RunError(f"{path}:{lineno}: bad run options (see above)") from e
        if args.runs:
            raise RunError(f"{path}:{lineno}: --runs inside a run list")
        try:
            runs.append(run_from_args(args))
        except RunError as e:
            raise RunError(f"{path}:{lineno}: {e}") from e
    return runs


def claimed(runs: List[Run], claims: Path):
    """The runs this process claims, one at a time, in list order: run ``i`` belongs to the
    process that creates ``claims/<i>`` first (``mkdir`` is atomic)."""
    for i, run in enumerate(runs):
        try:
            (claims / str(i)).mkdir()
        except FileExistsError:
            continue
        yield run


def main(argv=None, steps: Dict[str, Callable] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.runs:
        if not 1 <= args.job <= args.num_jobs:
            raise RunError(f"--job must be in [1, --num_jobs {args.num_jobs}], got {args.job}")
        runs = read_runs(args.runs, parser)
        if args.claims:
            Path(args.claims).mkdir(parents=True, exist_ok=True)
            runs = claimed(runs, Path(args.claims))
        else:
            runs = runs[args.job - 1::args.num_jobs]
    else:
        runs = [run_from_args(args)]
    failed, done = [], 0
    for run in runs:
        done += 1
        try:
            execute(run, steps)
        except RunError as e:
            if not args.runs:
                raise
            logger.error("%s: %s", run.exp_dir, e)
            failed.append(run.exp_dir)
    if failed:
        raise RunError(f"{len(failed)} of {done} runs failed: {', '.join(failed)}")
    sys.stdout.flush()
