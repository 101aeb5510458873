"""The downstream tasks, in one table that the runner (:mod:`espnet2_gram.downstream.runs`) and
the report (:mod:`espnet2_gram.report.tables`) read.

A task names its data (the label file of a data dir and how ESPnet reads it), its training
modes, the checkpoint kept, where its head's and its pooling's options go, how a grid point is
chosen, and the metrics of its ``scores.json`` with the one compared in summaries. Its steps are
the entry points ``espnet2_gram.bin.<name>_train``, ``<name>_inference`` and ``score_<name>``
(or the modules of ``entry_points``), and three functions give what only the task knows: a check
of its own run options, its extra training options, and the options of inference and scoring.
A new task is one entry here plus its genuinely new code (model head, metric, entry points).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from espnet2_gram.downstream.regression.metrics import read_utt2target
from espnet2_gram.utils.fileio import atomic_open


@dataclass(frozen=True)
class Metric:
    """A ``scores.json`` metric and its report column: ``scale`` 100 marks a fraction shown in
    %; an ``optional`` metric may be absent and is a column only where some scores have it."""

    key: str
    header: str
    scale: float
    decimals: int
    unit: str
    lower_is_better: bool
    optional: bool = False


@dataclass(frozen=True)
class Decode:
    """What the inference and scoring options of a run are made of."""

    exp: Path            # the run's exp dir (config.yaml, tokens)
    out: Path            # the decode dir (predictions, scores.json)
    model_file: str      # the checkpoint kept
    test: Path           # the test data dir
    speech: str          # ESPnet's path,name,type of the test input
    device: str          # "cpu" or "cuda"


def no_check(run) -> Optional[str]:
    return None


def no_options(run, exp: Path) -> List[str]:
    return []


@dataclass(frozen=True)
class DownstreamTask:
    name: str
    title: str                          # report heading
    modes: Tuple[str, ...]
    label_file: str                     # in each data dir
    label_name: str                     # ESPnet's data name and type of the label file
    label_type: str
    best_checkpoint: str                # the trainer's file kept for inference
    head_conf: str                      # option group of the head (grid axes "head.<key>")
    pooling_conf: Optional[str]         # option group of the frame pooling (None: frames kept)
    criterion: Optional[Tuple[str, str, bool]]  # grid points: (phase, key, higher is better)
    metrics: Tuple[Metric, ...]
    headline: Tuple[str, str]           # (metric key, name) of the one-line comparisons
    decode_options: Callable[..., Tuple[List[str], List[str]]]  # (run, Decode) -> argvs
    train_options: Callable[..., List[str]] = no_options   # (run, exp dir) -> extra options
    check: Callable[..., Optional[str]] = no_check          # (run) -> problem or None
    entry_points: Optional[Dict[str, str]] = None  # step -> "module[:function]" (default bin.<step>)

    @property
    def steps(self) -> Dict[str, str]:
        return {"train": f"{self.name}_train", "inference": f"{self.name}_inference",
                "score": f"score_{self.name}"}

    @property
    def modules(self) -> Dict[str, str]:
        """The entry point of each step name: a module with ``main(argv)`` or
        ``module:function``."""
        return self.entry_points or {step: f"espnet2_gram.bin.{step}"
                                     for step in self.steps.values()}


def cls_train_options(run, exp: Path) -> List[str]:
    """The token list (the training labels, sorted, then <unk>, which ESPnet's classifier
    drops) and the classification type."""
    labels = {w for line in (run.dirs["train"] / "utt2label").read_text().splitlines()
              for w in line.split()[1:]}
    with atomic_open(exp / "tokens.txt") as f:
        f.write("".join(f"{t}\n" for t in sorted(labels)) + "<unk>\n")
    kind = "multi-label" if run.multilabel else "multi-class"
    return ["--token_list", str(exp / "tokens.txt"), "--model_conf",
            f"classification_type={kind}"]


def cls_decode_options(run, d: Decode) -> Tuple[List[str], List[str]]:
    infer = ["--ngpu", str(min(run.ngpu, 1)), "--batch_size", "1",
             "--classification_train_config", str(d.exp / "config.yaml"),
             "--classification_model_file", d.model_file, "--output_all_probabilities", "true",
             "--data_path_and_name_and_type", d.speech, "--output_dir", str(d.out)]
    score = ["--ref", str(d.test / "utt2label"), "--hyp_dir", str(d.out),
             "--token_list", str(d.exp / "tokens.txt"),
             "--multilabel", str(run.multilabel).lower(), "--out_dir", str(d.out)]
    return infer, score


def clip_decode_options(label_file: str) -> Callable[..., Tuple[List[str], List[str]]]:
    """The decode options of a task whose inference writes ``<decode dir>/<label_file>``,
    scored against the test dir's."""
    def options(run, d: Decode) -> Tuple[List[str], List[str]]:
        infer = ["--train_config", str(d.exp / "config.yaml"), "--model_file", d.model_file,
                 "--data_path_and_name_and_type", d.speech, "--device", d.device,
                 "--output_dir", str(d.out)]
        score = ["--ref", str(d.test / label_file), "--hyp", str(d.out / label_file),
                 "--out_dir", str(d.out)]
        return infer, score

    return options


def reg_train_options(run, exp: Path) -> List[str]:
    """The output size and the standardisation of the targets, from the training labels."""
    targets = np.stack(list(read_utt2target(run.dirs["train"] / "utt2target").values()))
    std = np.where(targets.std(axis=0) > 0, targets.std(axis=0), 1.0)
    as_list = lambda v: "[" + ",".join(f"{x:.6g}" for x in v) + "]"  # noqa: E731
    return ["--model_conf", f"output_size={targets.shape[1]}",
            "--model_conf", f"target_mean={as_list(targets.mean(axis=0))}",
            "--model_conf", f"target_std={as_list(std)}"]


def event_train_options(run, exp: Path) -> List[str]:
    """The labels (``labels.txt`` of the training dir, one output each), kept with the model."""
    labels = (run.dirs["train"] / "labels.txt").read_text()
    with atomic_open(exp / "labels.txt") as f:
        f.write(labels)
    return ["--model_conf", f"num_classes={len(labels.split())}"]


def event_check(run) -> Optional[str]:
    for split, d in run.dirs.items():
        for name in ("labels.txt", "stamps.scp", "events.json"):
            if not (d / name).is_file():
                return f"{d / name}: missing (--{split}_dir of an event task)"
    return None


def event_decode_options(run, d: Decode) -> Tuple[List[str], List[str]]:
    infer = ["--train_config", str(d.exp / "config.yaml"), "--model_file", d.model_file,
             "--data_path_and_name_and_type", d.speech, "--labels", str(d.exp / "labels.txt"),
             "--stamps", str(d.test / "stamps.scp"), "--valid_dir", str(run.dirs["valid"]),
             "--device", d.device, "--output_dir", str(d.out)]
    score = ["--ref", str(d.test / "events.json"), "--hyp", str(d.out / "events.json"),
             "--out_dir", str(d.out)]
    return infer, score


def seld_check(run) -> Optional[str]:
    if run.num_classes is None or run.num_classes < 1:
        got = "" if run.num_classes is None else run.num_classes
        return f"--num_classes: expected a positive integer, got '{got}'"
    if not run.chunk_dir or not (Path(run.chunk_dir) / "metadata").is_dir():
        return f"--chunk_dir '{run.chunk_dir}': expected a make_seld_data dir with metadata/"
    return None


def seld_train_options(run, exp: Path) -> List[str]:
    return ["--model_conf", f"num_classes={run.num_classes}"]


def seld_decode_options(run, d: Decode) -> Tuple[List[str], List[str]]:
    chunks = Path(run.chunk_dir)
    infer = ["--train_config", str(d.exp / "config.yaml"), "--model_file", d.model_file,
             "--data_path_and_name_and_type", d.speech, "--chunk_dir", str(chunks),
             "--device", d.device, "--output_dir", str(d.out)]
    score = ["--ref_dir", str(chunks / "metadata"), "--recordings", str(chunks / "recordings"),
             "--hyp_dir", str(d.out / "pred"), "--num_classes", str(run.num_classes),
             "--out_dir", str(d.out)]
    return infer, score


TASKS: Dict[str, DownstreamTask] = {t.name: t for t in (
    DownstreamTask(
        "cls", "Classification", ("probe", "finetune"), "utt2label", "label", "text",
        "valid.acc.best.pth", head_conf="encoder_conf", pooling_conf="encoder_conf",
        criterion=("valid", "acc", True),
        metrics=(Metric("accuracy", "Acc (%)", 100, 1, "%", False),
                 Metric("mAP", "mAP (%)", 100, 1, "%", False)),
        headline=("accuracy", "Classification accuracy"),
        decode_options=cls_decode_options, train_options=cls_train_options),
    DownstreamTask(
        "doa", "DoA", ("probe", "finetune", "supervised"), "utt2doa", "doa", "text_float",
        "valid.loss.best.pth", head_conf="model_conf", pooling_conf="model_conf",
        criterion=("valid", "loss", False),
        metrics=(Metric("mean_error", "Mean err (°)", 1, 1, "°", True),
                 Metric("median_error", "Median err (°)", 1, 1, "°", True),
                 Metric("azimuth_error", "Azi err (°)", 1, 1, "°", True),
                 Metric("elevation_error", "Ele err (°)", 1, 1, "°", True),
                 Metric("lateral_error", "Lateral err (°)", 1, 1, "°", True, optional=True),
                 Metric("acc20", "Acc@20° (%)", 100, 1, "%", False),
                 Metric("front_back_confusion", "Front-back (%)", 100, 1, "%", True)),
        headline=("median_error", "DoA median error"),
        decode_options=clip_decode_options("utt2doa")),
    # No SELD validation split (as in DCASE): the checkpoint kept has the best training loss.
    DownstreamTask(
        "seld", "SELD", ("probe", "finetune", "supervised"), "tracks.scp", "tracks", "npy",
        "train.loss.best.pth", head_conf="model_conf", pooling_conf=None, criterion=None,
        metrics=(Metric("ER20", "ER20", 1, 2, "", True),
                 Metric("F20", "F20 (%)", 100, 1, "%", False),
                 Metric("LE_CD", "LE_CD (°)", 1, 1, "°", True),
                 Metric("LR_CD", "LR_CD (%)", 100, 1, "%", False),
                 Metric("SELD", "SELD", 1, 3, "", True)),
        headline=("SELD", "SELD score"),
        decode_options=seld_decode_options, train_options=seld_train_options,
        check=seld_check),
    # HEAR's event tasks: frame targets, onset F-measure of the post-processed events
    DownstreamTask(
        "event", "Events", ("probe",), "targets.scp", "target", "kaldi_ark",
        "valid.loss.best.pth", head_conf="model_conf", pooling_conf=None,
        criterion=("valid", "loss", False),
        metrics=(Metric("onset_f", "Onset F (%)", 100, 1, "%", False),
                 Metric("precision", "Precision (%)", 100, 1, "%", False),
                 Metric("recall", "Recall (%)", 100, 1, "%", False)),
        headline=("onset_f", "Event onset F-measure"),
        decode_options=event_decode_options, train_options=event_train_options,
        check=event_check),
    # a real target per clip (Nat-HEAR's RT60 in seconds): errors in the target's unit
    DownstreamTask(
        "reg", "Regression", ("probe",), "utt2target", "target", "text_float",
        "valid.loss.best.pth", head_conf="model_conf", pooling_conf="model_conf",
        criterion=("valid", "loss", False),
        metrics=(Metric("median_ae", "Median abs err", 1, 4, "", True),
                 Metric("mae", "Mean abs err", 1, 4, "", True),
                 Metric("rmse", "RMSE", 1, 4, "", True),
                 Metric("mae_of_mean", "Mean abs err of the mean", 1, 4, "", True)),
        headline=("median_ae", "Regression median absolute error"),
        decode_options=clip_decode_options("utt2target"),
        train_options=reg_train_options),
)}
