"""HEAR's event tasks: the onset F-measure and the post-processing against hand-computed cases,
bad events files, and a frame probe on cached embeddings through the runner (train, infer with
the minimum duration chosen on validation, score) that finds the events the frames carry."""

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from espnet2_gram.downstream.events.metrics import (frame_targets, frames_to_events,
                                                    onset_f_measure, read_events, write_events)
from helpers import run_downstream


def test_onset_f_measure_by_hand():
    ref = {"a": [(100.0, 400.0, "dog"), (1000.0, 1200.0, "dog"), (500.0, 900.0, "cat")],
           "b": [(0.0, 300.0, "cat")]}
    hyp = {"a": [(250.0, 300.0, "dog"),    # 150 ms late: a hit (offsets are not scored)
                 (1250.0, 1400.0, "dog"),  # 250 ms late: outside the 200-ms collar
                 (550.0, 700.0, "dog")],   # the wrong label
           "b": [(150.0, 300.0, "cat")]}   # within the collar
    m = onset_f_measure(ref, hyp)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 2, 2)
    assert m["onset_f"] == pytest.approx(0.5)
    # one reference onset cannot match two predictions; the maximum matching pairs 2 of 3
    ref = {"a": [(0.0, 10.0, "x"), (300.0, 310.0, "x")]}
    hyp = {"a": [(150.0, 160.0, "x"), (190.0, 200.0, "x"), (480.0, 490.0, "x")]}
    assert onset_f_measure(ref, hyp)["tp"] == 2  # 150 -> 0 (or 300), 190 -> 300 (or 0)


def test_frames_to_events_and_back():
    stamps = np.arange(0, 2000, 50.0)  # 50-ms hop
    probs = np.zeros((len(stamps), 2))
    probs[4:14, 0] = 0.9                 # 200-700 ms: 500 ms of label 0
    probs[8, 0] = 0.1                    # a one-frame gap, closed by the median filter
    probs[20:24, 1] = 0.9                # 1000-1200 ms: 200 ms of label 1, too short
    probs[30, 0] = 0.9                   # a one-frame blip, removed by the median filter
    events = frames_to_events(probs, stamps, ["a", "b"], min_duration_ms=250)
    assert events == [(200.0, 700.0, "a")]
    assert frames_to_events(probs, stamps, ["a", "b"], min_duration_ms=150)[-1] == \
        (1000.0, 1200.0, "b")
    target = frame_targets([(200.0, 700.0, "a")], stamps, ["a", "b"])
    assert target[:, 0].nonzero()[0].tolist() == list(range(4, 14)) and not target[:, 1].any()


def test_bad_events_files_are_named(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"f.wav": [{"label": "x", "start": 5}]}))
    with pytest.raises(ValueError, match=f"{path}: f.wav: expected a list of"):
        read_events(path)
    path.write_text(json.dumps({"f.wav": [{"label": "x", "start": 5, "end": 1}]}))
    with pytest.raises(ValueError, match="ends before it starts"):
        read_events(path)


def event_dir(root: Path, name: str, files: int, rng) -> Path:
    """Frames whose first dimension is high inside one 'beep' event per file, 40-ms hop."""
    d = root / name
    d.mkdir()
    stamps = np.arange(20.0, 2000.0, 40.0)
    events = {}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as feats, \
            kaldiio.WriteHelper(f"ark,scp:{d / 'stamps.ark'},{d / 'stamps.scp'}") as st, \
            kaldiio.WriteHelper(f"ark,scp:{d / 'targets.ark'},{d / 'targets.scp'}") as tg:
        for i in range(files):
            onset = float(rng.uniform(100, 1200))
            events[f"f{i:03d}.wav"] = [(onset, onset + 500.0, "beep")]
            target = frame_targets(events[f"f{i:03d}.wav"], stamps, ["beep"])
            x = np.c_[target * 2.0 - 1.0, rng.normal(0, 0.3, (len(stamps), 5))]
            feats(f"f{i:03d}.wav", x.astype(np.float32))
            st(f"f{i:03d}.wav", stamps.astype(np.float32))
            tg(f"f{i:03d}.wav", target)
    write_events(d / "events.json", events)
    (d / "labels.txt").write_text("beep\n")
    (d / "embeddings.json").write_text(json.dumps({"dim": 6}))
    return d


def test_an_event_probe_finds_the_events_through_the_runner(tmp_path):
    rng = np.random.default_rng(0)
    dirs = [event_dir(tmp_path, n, k, rng) for n, k in (("train", 48), ("valid", 12),
                                                        ("test", 16))]
    run_downstream("--task", "event", "--mode", "probe", "--model", "logmel", "--format", "mono",
                   "--dataset", "beeps", "--train_dir", dirs[0], "--valid_dir", dirs[1],
                   "--test_dir", dirs[2], "--task_config", "conf/demo/event_probe.yaml",
                   "--exp_dir", tmp_path / "exp", "--train_args", "--max_epoch 15")
    decode = tmp_path / "exp" / "decode_test"
    scores = json.loads((decode / "scores.json").read_text())
    assert scores["task"] == "event" and scores["metrics"]["onset_f"] >= 0.9, scores
    post = json.loads((decode / "postprocessing.json").read_text())
    assert post["min_duration_ms"] in (250.0, 500.0) and set(post["valid_onset_f"]) == {
        "250.0", "500.0"}
