"""Sound events of HEAR's event tasks (DCASE 2016 task 2): reference files, frame targets, the
post-processing of frame probabilities into events, and HEAR's onset F-measure.

Events are ``(onset_ms, offset_ms, label)``; a reference file (``events.json``) maps each audio
file to its events as HEAR's label files do (``{"file": [{"label", "start", "end"}]}``, ms).
The score is HEAR's event-based onset F-measure (sed_eval's ``EventBasedMetrics`` with
``t_collar`` 200 ms, onsets only): a prediction matches a reference event of the same label in
the same file whose onset is within the collar, each event matched at most once (a maximum
matching, as sed_eval's bipartite one), and F = 2 TP / (2 TP + FP + FN) over all files and
labels.
"""

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.ndimage import median_filter

Event = Tuple[float, float, str]
COLLAR_MS = 200.0
MEDIAN_MS = 250.0        # HEAR's median filter
MIN_DURATIONS_MS = (250.0, 500.0)  # HEAR's choices, on validation


def read_events(path) -> Dict[str, List[Event]]:
    """``{file: [(onset_ms, offset_ms, label)]}`` of an ``events.json``; errors name the file,
    the entry and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such events file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {{file: [events]}}")
    out = {}
    for name, events in data.items():
        try:
            out[name] = sorted((float(e["start"]), float(e["end"]), str(e["label"]))
                               for e in events)
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: {name}: expected a list of {{label, start, end}}"
                             " events (ms)") from None
        if any(not (0 <= on <= off) for on, off, _ in out[name]):
            raise ValueError(f"{path}: {name}: an event ends before it starts or starts"
                             " before 0 ms")
    return out


def frame_targets(events: Sequence[Event], stamps_ms: np.ndarray,
                  labels: Sequence[str]) -> np.ndarray:
    """(T, C) float32: frame t is active for a label while one of its events covers the
    frame's timestamp (onset <= t < offset)."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(stamps_ms), len(labels)), dtype=np.float32)
    for onset, offset, label in events:
        out[(stamps_ms >= onset) & (stamps_ms < offset), index[label]] = 1.0
    return out


def frames_to_events(probs: np.ndarray, stamps_ms: np.ndarray, labels: Sequence[str],
                     min_duration_ms: float, median_ms: float = MEDIAN_MS,
                     threshold: float = 0.5) -> List[Event]:
    """Events of (T, C) frame probabilities at ``stamps_ms``: thresholded, median-filtered per
    label over ``median_ms``, runs shorter than ``min_duration_ms`` dropped. An event spans
    from its first frame's timestamp to one hop after its last."""
    if len(stamps_ms) == 0:
        return []
    hop = float(np.median(np.diff(stamps_ms))) if len(stamps_ms) > 1 else median_ms
    width = max(1, int(round(median_ms / hop)))
    width += 1 - width % 2  # odd, centred
    active = median_filter((probs >= threshold).astype(np.int8), size=(width, 1),
                           mode="nearest").astype(bool)
    events = []
    for c, label in enumerate(labels):
        edges = np.diff(np.r_[0, active[:, c].astype(np.int8), 0])
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            onset, offset = float(stamps_ms[start]), float(stamps_ms[stop - 1]) + hop
            if offset - onset >= min_duration_ms:
                events.append((onset, offset, label))
    return sorted(events)


def _matches(ref_onsets: Sequence[float], hyp_onsets: Sequence[float], collar: float) -> int:
    """Size of a maximum matching of predicted to reference onsets within ``collar``."""
    match_of_ref: Dict[int, int] = {}

    def augment(h: int, seen: set) -> bool:
        for r, onset in enumerate(ref_onsets):
            if abs(onset - hyp_onsets[h]) <= collar and r not in seen:
                seen.add(r)
                if r not in match_of_ref or augment(match_of_ref[r], seen):
                    match_of_ref[r] = h
                    return True
        return False

    return sum(augment(h, set()) for h in range(len(hyp_onsets)))


def onset_f_measure(ref: Dict[str, List[Event]], hyp: Dict[str, List[Event]],
                    collar_ms: float = COLLAR_MS) -> Dict[str, float]:
    """HEAR's event-based onset F-measure (see the module) and its parts."""
    tp = fp = fn = 0
    for name in set(ref) | set(hyp):
        r, h = ref.get(name, []), hyp.get(name, [])
        for label in {e[2] for e in r} | {e[2] for e in h}:
            ro = [e[0] for e in r if e[2] == label]
            ho = [e[0] for e in h if e[2] == label]
            matched = _matches(ro, ho, collar_ms)
            tp, fp, fn = tp + matched, fp + len(ho) - matched, fn + len(ro) - matched
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return {"onset_f": f, "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0, "tp": tp, "fp": fp, "fn": fn}


def write_events(path, events: Dict[str, List[Event]]) -> None:
    """An ``events.json`` (the form :func:`read_events` reads), written atomically."""
    from espnet2_gram.utils.fileio import atomic_open

    with atomic_open(path) as f:
        json.dump({name: [{"label": label, "start": round(on, 3), "end": round(off, 3)}
                          for on, off, label in evs] for name, evs in sorted(events.items())},
                  f, indent=1)
