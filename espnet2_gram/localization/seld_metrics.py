"""DCASE 2022/2023 SELD metrics: location-dependent detection (ER20, F20) and
class-dependent localisation (LE_CD, LR_CD) of Mesaros et al. (2019), macro-averaged.

Events per recording are ``{frame: [(class_index, x, y, z), ...]}`` with 100-ms label frames
and unit direction vectors. Frames are scored in non-overlapping blocks of
``frames_per_block`` frames (1 s); within a block, the reference and predicted DoAs of a
class are matched frame by frame (Hungarian algorithm on the great-circle angle) and each
reference track's matched distances are averaged over the block.
"""

import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..simulation.dcase import DcaseRow, read_dcase_csv
from ..simulation.geometry import angular_distance_deg, sph_to_cart

EPS = np.finfo(np.float64).eps
Events = Mapping[int, Sequence[Tuple[int, float, float, float]]]
_COUNTS = ("Nref", "TP", "FP", "FP_spatial", "FN", "DE_TP", "DE_FN", "DE_FP", "total_DE")


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
        """Add one recording of ``num_frames`` label frames (events past it extend it)."""
        ref_blocks = _blocks(ref, self.num_classes, self.frames_per_block, "reference")
        pred_blocks = _blocks(pred, self.num_classes, self.frames_per_block, "prediction")
        last = max([num_frames, *(f + 1 for f in ref), *(f + 1 for f in pred)])
        for block in range(math.ceil(last / self.frames_per_block)):
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


def _csvs(folder, option: str) -> Dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{option} {folder}: no such directory")
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


def score_recordings(ref_dir, hyp_dir, num_classes: int, frames_per_block: int = 10,
                     threshold: float = 20.0) -> dict:
    """Score the DCASE CSVs of ``hyp_dir`` against those of ``ref_dir`` (paired by stem,
    not recursive). A reference without a prediction file has no predictions; a prediction
    without a reference is an error. Each recording lasts up to its last labelled or
    predicted frame. Returns :meth:`SeldScorer.compute` plus ``num_recordings``.
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
    scorer = SeldScorer(num_classes, frames_per_block, threshold)
    for stem, path in refs.items():
        ref = rows_to_frames(read_dcase_csv(path))
        pred = rows_to_frames(read_dcase_csv(hyps[stem])) if stem in hyps else {}
        num_frames = max([0, *(f + 1 for f in ref), *(f + 1 for f in pred)])
        scorer.update(ref, pred, num_frames)
    return {**scorer.compute(), "num_recordings": scorer.num_recordings}
