"""The downstream tasks, in one table that the runner (:mod:`espnet2_gram.downstream_runs`) and
the report (:mod:`espnet2_gram.downstream_report`) read.

A task names its data (the label file of a data dir and how ESPnet reads it), its training
modes, the checkpoint kept, where its head's and its pooling's options go, how a grid point is
chosen, and the metrics of its ``scores.json`` with the one compared in summaries. Its steps are
the entry points ``espnet2_gram.bin.<name>_train``, ``<name>_inference`` and ``score_<name>``;
the options of inference and scoring are the runner's (``decode_argvs``).
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


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

    @property
    def steps(self) -> Dict[str, str]:
        return {"train": f"{self.name}_train", "inference": f"{self.name}_inference",
                "score": f"score_{self.name}"}


TASKS: Dict[str, DownstreamTask] = {t.name: t for t in (
    DownstreamTask(
        "cls", "Classification", ("probe", "finetune"), "utt2label", "label", "text",
        "valid.acc.best.pth", head_conf="encoder_conf", pooling_conf="encoder_conf",
        criterion=("valid", "acc", True),
        metrics=(Metric("accuracy", "Acc (%)", 100, 1, "%", False),
                 Metric("mAP", "mAP (%)", 100, 1, "%", False)),
        headline=("accuracy", "Classification accuracy")),
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
        headline=("median_error", "DoA median error")),
    # No SELD validation split (as in DCASE): the checkpoint kept has the best training loss.
    DownstreamTask(
        "seld", "SELD", ("probe", "finetune", "supervised"), "tracks.scp", "tracks", "npy",
        "train.loss.best.pth", head_conf="model_conf", pooling_conf=None, criterion=None,
        metrics=(Metric("ER20", "ER20", 1, 2, "", True),
                 Metric("F20", "F20 (%)", 100, 1, "%", False),
                 Metric("LE_CD", "LE_CD (°)", 1, 1, "°", True),
                 Metric("LR_CD", "LR_CD (%)", 100, 1, "%", False),
                 Metric("SELD", "SELD", 1, 3, "", True)),
        headline=("SELD", "SELD score")),
)}
