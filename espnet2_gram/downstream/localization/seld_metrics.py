"""DCASE 2022/2023 SELD metrics: location-dependent detection (ER20, F20) and
class-dependent localisation (LE_CD, LR_CD) of Mesaros et al. (2019), macro-averaged.

Events per recording are ``{frame: [(class_index, x, y, z), ...]}`` with 100-ms label frames
and unit direction vectors. Frames are scored in non-overlapping blocks of
``frames_per_block`` frames (1 s); within a block, the reference and predicted DoAs of a
class are matched frame by frame (Hungarian algorithm on the great-circle angle) and each
reference track's matched distances are averaged over the block.

How many blocks a recording has (``LENGTH_FROM``): ``reference``, as the official DCASE 2023
scorer (``cls_compute_seld_results.py``) derives it, takes the index ``last`` of the last
reference frame as the number of frames, so with ``B = frames_per_block`` (10) the blocks cover
frames ``0 .. B * ceil(last / B) - 1``: predictions after that are ignored, and a last
reference frame on a multiple of ``B`` starts a block that is not scored at all.
``both_files`` scores up to the last labelled or predicted frame (frames ``0 .. last``).
"""

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from espnet2_gram.downstream.localization.dcase_format import DcaseRow, read_dcase_csv
from espnet2_gram.simulation.geometry import angular_distance_deg, sph_to_cart

EPS = np.finfo(np.float64).eps
Events = Mapping[int, Sequence[Tuple[int, float, float, float]]]
_COUNTS = ("Nref", "TP", "FP", "FP_spatial", "FN", "DE_TP", "DE_FN", "DE_FP", "total_DE")
LENGTH_FROM = {
    "reference": "from the last reference frame, as the official DCASE 2023 scorer"
                 " (predictions after its block ignored)",
    "both_files": "up to the last labelled or predicted frame",
}

logger = logging.getLogger(__name__)


def rows_to_frames(rows: Iterable[DcaseRow]) -> Dict[int, List[Tuple[int, float, float, float]]]:
    """``{frame: [(class, x, y, z), ...]}`` of DCASE rows (distance ignored), each frame's
    events ordered by class and source index."""
    frames = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.frame, r.class_index, r.source)):
        x, y, z = sph_to_cart(row.azimuth, row.elevation)
        frames[row.frame].append((row.class_index, float(x), float(y), float(z)))
    return dict(frames)


def _blocks(events: Events, num_classes: int, frames_per_block: int, what: str) -> Dict:
    """``{block: {class: {frame: (n, 3) DoAs}}}``; errors name ``what``."""
    out: Dict[int, Dict[int, Dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    for frame, items in events.items():
        if int(frame) != frame or frame < 0:
            raise ValueError(f"{what}: frame {frame!r} must be an integer >= 0")
        per_class = defaultdict(list)
        for item in items:
            if len(item) != 4:
                raise ValueError(f"{what} frame {frame}: expected (class, x, y, z), got {item!r}")
            cls = item[0]
            if int(cls) != cls or not 0 <= cls < num_classes:
                raise ValueError(
                    f"{what} frame {frame}: class index {cls!r} outside 0..{num_classes - 1}"
                )
            per_class[int(cls)].append(item[1:])
        for cls, doas in per_class.items():
            out[int(frame) // frames_per_block][cls][int(frame)] = np.asarray(doas, np.float64)
    return out


class SeldScorer:
    """Accumulates the SELD counts of recordings; :meth:`compute` gives the macro scores."""

    def __init__(self, num_classes: int, frames_per_block: int = 10, threshold: float = 20.0):
        if num_classes < 1 or frames_per_block < 1:
            raise ValueError(
                f"num_classes and frames_per_block must be >= 1, got {num_classes},"
                f" {frames_per_block}"
            )
        self.num_classes = num_classes
        self.frames_per_block = frames_per_block
        self.threshold = threshold
        self.counts = {name: np.zeros(num_classes) for name in _COUNTS}
        self.S = self.D = self.I = 0
        self.num_recordings = 0

    def update(self, ref: Events, pred: Events, num_frames: int) -> None:
        """Add one recording scored over ``ceil(num_frames / frames_per_block)`` blocks
        (see :func:`scored_frames`); events in later blocks are ignored."""
        ref_blocks = _blocks(ref, self.num_classes, self.frames_per_block, "reference")
        pred_blocks = _blocks(pred, self.num_classes, self.frames_per_block, "prediction")
        for block in range(math.ceil(num_frames / self.frames_per_block)):
            loc_fp = loc_fn = 0
            for cls in range(self.num_classes):
                gt = ref_blocks.get(block, {}).get(cls, {})
                hyp = pred_blocks.get(block, {}).get(cls, {})
                fp, fn = self._score_class(cls, gt, hyp)
                loc_fp, loc_fn = loc_fp + fp, loc_fn + fn
            self.S += min(loc_fp, loc_fn)
            self.D += max(0, loc_fn - loc_fp)
            self.I += max(0, loc_fp - loc_fn)
        self.num_recordings += 1

    def _score_class(self, cls: int, gt: Dict, hyp: Dict) -> Tuple[int, int]:
        """Update the counts of class ``cls`` in one block; returns its (FP, FN) there."""
        c = self.counts
        nb_gt = max((len(d) for d in gt.values()), default=0)
        nb_pred = max((len(d) for d in hyp.values()), default=0)
        c["Nref"][cls] += nb_gt
        if gt and hyp:
            tracks = defaultdict(list)  # reference position in its frame -> matched distances
            for frame in sorted(set(gt) & set(hyp)):
                dist = angular_distance_deg(gt[frame][:, None, :], hyp[frame][None, :, :])
                rows, cols = linear_sum_assignment(dist)
                for r, k in zip(rows, cols):
                    tracks[int(r)].append(dist[r, k])
            if not tracks:
                # Active in both but never in the same frame: as the official DCASE code does,
                # the predictions count as false negatives (not false positives).
                c["FN"][cls] += nb_pred
                c["DE_FN"][cls] += nb_pred
                return 0, nb_pred
            fp = fn = 0
            for distances in tracks.values():
                avg = float(np.mean(distances))
                c["total_DE"][cls] += avg
                c["DE_TP"][cls] += 1
                if avg <= self.threshold:
                    c["TP"][cls] += 1
                else:
                    c["FP_spatial"][cls] += 1
                    fp += 1
            if nb_pred > nb_gt:
                c["FP"][cls] += nb_pred - nb_gt
                c["DE_FP"][cls] += nb_pred - nb_gt
                fp += nb_pred - nb_gt
            elif nb_pred < nb_gt:
                c["FN"][cls] += nb_gt - nb_pred
                c["DE_FN"][cls] += nb_gt - nb_pred
                fn += nb_gt - nb_pred
            return fp, fn
        if gt:
            c["FN"][cls] += nb_gt
            c["DE_FN"][cls] += nb_gt
            return 0, nb_gt
        if hyp:
            c["FP"][cls] += nb_pred
            c["DE_FP"][cls] += nb_pred
            return nb_pred, 0
        return 0, 0

    def compute(self) -> dict:
        """Macro scores: ``ER20``, ``F20``, ``LE_CD`` (degrees), ``LR_CD``, ``SELD``,
        ``classwise`` (per class index: ``F20``, ``LE_CD``, ``LR_CD``, ``SELD`` with the
        global ER20, ``num_ref``) and ``counts`` (per-class lists and S, D, I).

        Every class counts in the macro means, also one without reference events (its F20
        and LR_CD are 0 and its LE_CD 180), as in the official DCASE code.
        """
        c = self.counts
        er = (self.S + self.D + self.I) / (c["Nref"].sum() + EPS)
        f = c["TP"] / (c["TP"] + c["FP_spatial"] + 0.5 * (c["FP"] + c["FN"]) + EPS)
        le = np.where(c["DE_TP"] > 0, c["total_DE"] / np.maximum(c["DE_TP"], 1), 180.0)
        lr = c["DE_TP"] / (c["DE_TP"] + c["DE_FN"] + EPS)
        seld = np.mean([np.full(self.num_classes, er), 1 - f, le / 180, 1 - lr], axis=0)
        classwise = [
            {"class_index": k, "num_ref": int(c["Nref"][k]), "F20": float(f[k]),
             "LE_CD": float(le[k]), "LR_CD": float(lr[k]), "SELD": float(seld[k])}
            for k in range(self.num_classes)
        ]
        counts = {name: [float(v) if name == "total_DE" else int(v) for v in values]
                  for name, values in c.items()}
        counts.update(S=int(self.S), D=int(self.D), I=int(self.I))
        return {
            "ER20": float(er),
            "F20": float(f.mean()),
            "LE_CD": float(le.mean()),
            "LR_CD": float(lr.mean()),
            "SELD": float(np.mean([er, 1 - f.mean(), le.mean() / 180, 1 - lr.mean()])),
            "classwise": classwise,
            "counts": counts,
        }


def scored_frames(ref: Events, pred: Events, length_from: str = "reference") -> int:
    """The ``num_frames`` of :meth:`SeldScorer.update` for one recording (see ``LENGTH_FROM``).

    ``reference``: the last reference frame's index, not + 1, as the official code (0 for a
    reference without events, which the official code cannot score); ``both_files``: the
    last labelled or predicted frame + 1.
    """
    if length_from == "reference":
        return max(ref, default=0)
    if length_from == "both_files":
        return max([0, *(f + 1 for f in ref), *(f + 1 for f in pred)])
    raise ValueError(f"length_from {length_from!r}; expected one of {list(LENGTH_FROM)}")


def _csvs(folder, option: str) -> Dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{option} {folder}: no such directory")
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


def score_recordings(ref_dir, hyp_dir, num_classes: int, frames_per_block: int = 10,
                     threshold: float = 20.0, length_from: str = "reference",
                     recording_frames: Optional[Mapping[str, int]] = None) -> dict:
    """Score the DCASE CSVs of ``hyp_dir`` (polar or Cartesian) against those of ``ref_dir``
    (paired by stem, not recursive), each recording as long as ``length_from`` says.

    A reference without a prediction file has no predictions (the official code skips it);
    a prediction without a reference is an error. ``recording_frames`` (recording -> label
    frames, e.g. ``make_seld_data``'s ``recordings``) makes a predicted frame beyond its
    recording an error. Returns :meth:`SeldScorer.compute` plus ``num_recordings``.
    """
    refs = _csvs(ref_dir, "--ref_dir")
    hyps = _csvs(hyp_dir, "--hyp_dir")
    if not refs:
        raise ValueError(f"--ref_dir {ref_dir}: no .csv files")
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise ValueError(
            f"--hyp_dir {hyp_dir}: {len(extra)} prediction file(s) without a reference in"
            f" {ref_dir}, e.g. {extra[:5]}"
        )
    unknown = sorted(set(refs) - set(recording_frames)) if recording_frames is not None else []
    if unknown:
        raise ValueError(f"--ref_dir {ref_dir}: recordings without a length: {unknown[:5]}")
    scorer = SeldScorer(num_classes, frames_per_block, threshold)
    ignored = 0
    for stem, path in refs.items():
        ref = rows_to_frames(read_dcase_csv(path))
        length = None if recording_frames is None else recording_frames[stem]
        pred = rows_to_frames(read_dcase_csv(hyps[stem], length)) if stem in hyps else {}
        num_frames = scored_frames(ref, pred, length_from)
        end = math.ceil(num_frames / frames_per_block) * frames_per_block
        ignored += sum(len(events) for frame, events in pred.items() if frame >= end)
        scorer.update(ref, pred, num_frames)
    if ignored:
        logger.info("%d predicted events after the last scored block ignored (length %s)",
                    ignored, LENGTH_FROM[length_from])
    return {**scorer.compute(), "num_recordings": scorer.num_recordings}
