"""Classification metrics against hand-computed cases and score_cls on faked ESPnet output."""

import json

import numpy as np
import pytest
from espnet2.fileio.datadir_writer import DatadirWriter

from espnet2_gram.bin import score_cls
from espnet2_gram.downstream.classification.metrics import (accuracy, average_precision,
                                                            confusion_matrix,
                                                            mean_average_precision)


def test_accuracy():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5
    assert accuracy([frozenset("ab"), frozenset("c")], [frozenset("ba"), frozenset()]) == 0.5
    with pytest.raises(ValueError, match="2 references and 1 predictions"):
        accuracy(["a", "b"], ["a"])


def test_mean_average_precision_hand_computed():
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.2, 0.2], [0.7, 0.3, 0.1], [0.6, 0.4, 0.0]])
    targets = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    # Class 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2 = 5/6.
    # Class 1: its one positive has the top score -> 1. Class 2: no positive, left out.
    assert mean_average_precision(scores, targets) == pytest.approx((5 / 6 + 1) / 2)
    targets[3, 1], targets[0, 1] = 0, 1  # class 1 positive now ranked last: 1/4
    assert mean_average_precision(scores, targets) == pytest.approx((5 / 6 + 1 / 4) / 2)
    assert mean_average_precision(scores, np.zeros_like(targets)) is None


def test_average_precision_ties_keep_input_order():
    assert average_precision([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(1.0)


def test_map_bad_inputs():
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(2, 3\)"):
        mean_average_precision(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="0 or 1"):
        mean_average_precision(np.zeros((1, 1)), np.full((1, 1), 2))


def test_confusion_matrix():
    m = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"\['z'\]"):
        confusion_matrix(["a"], ["z"], ["a", "b"])


# ------------------------------------------------------------------ score_cls on ESPnet output


def _write_espnet_output(hyp_dir, rows):
    """``(utt, token, score, text)`` rows written as espnet2.bin.cls_inference does: with
    ESPnet's DatadirWriter, to ``<hyp_dir>/prediction/{score,token,text}``."""
    with DatadirWriter(hyp_dir) as writer:
        for utt, token, score, text in rows:
            writer["prediction"]["score"][utt] = score
            writer["prediction"]["token"][utt] = token
            writer["prediction"]["text"][utt] = text


def _setup(tmp_path, ref_text, rows, tokens="cat\ndog\nbird\n<unk>\n"):
    (tmp_path / "tokens.txt").write_text(tokens)
    (tmp_path / "text").write_text(ref_text)
    _write_espnet_output(tmp_path / "hyp", rows)
    return ["--ref", str(tmp_path / "text"), "--hyp_dir", str(tmp_path / "hyp"),
            "--token_list", str(tmp_path / "tokens.txt"), "--out_dir", str(tmp_path / "out")]


def _scores(tmp_path):
    return json.loads((tmp_path / "out" / "scores.json").read_text())


REF = "u1 cat\nu2 dog\nu3 bird\nu4 cat\n"


def test_score_cls_multiclass_all_scores(tmp_path):
    # --output_all_probabilities true: scores of cat, dog, bird (token-list order, no <unk>).
    rows = [("u1", "0", "0.7 0.2 0.1", "cat"), ("u2", "1", "0.1 0.8 0.1", "dog"),
            ("u3", "0", "0.55 0.4 0.05", "cat"), ("u4", "0", "0.6 0.3 0.1", "cat")]
    args = _setup(tmp_path, REF, rows)
    score_cls.main(args + ["--model", "gram", "--mode", "finetune", "--format", "foa"])
    s = _scores(tmp_path)
    assert list(s) == ["task", "dataset", "format", "model", "mode", "num_items", "multilabel",
                       "metrics", "labels", "confusion"]
    assert (s["task"], s["format"], s["mode"], s["num_items"], s["multilabel"]) == (
        "cls", "foa", "finetune", 4, False)
    # cat: u1 .7, u4 .6 rank 1-2 -> AP 1; dog: u2 top -> 1; bird: u3 ranks last -> 1/4.
    assert s["metrics"] == pytest.approx({"accuracy": 0.75, "mAP": (1 + 1 + 0.25) / 3})
    assert s["labels"] == ["cat", "dog", "bird"]
    assert s["confusion"] == [[2, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_score_cls_reduced_scores_and_too_short_utterance(tmp_path):
    # Default cls_inference: the predicted class's score only; u4 too short ("-1", "0", "").
    rows = [("u1", "0", "0.7", "cat"), ("u2", "1", "0.8", "dog"), ("u3", "0", "0.55", "cat"),
            ("u4", "-1", "0", "")]
    score_cls.main(_setup(tmp_path, REF, rows))
    s = _scores(tmp_path)
    assert s["metrics"] == {"accuracy": 0.5, "mAP": None}
    assert s["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_score_cls_multilabel(tmp_path):
    ref = "u1 cat dog\nu2 bird\nu3 dog\n"
    rows = [("u1", "0 1", "0.9 0.6 0.1", "cat dog"), ("u2", "", "0.2 0.1 0.4", ""),
            ("u3", "1", "0.1 0.7 0.3", "dog")]
    score_cls.main(_setup(tmp_path, ref, rows) + ["--multilabel", "true"])
    s = _scores(tmp_path)
    # Exact match on u1 and u3. AP: cat 1; dog: u3 .7, u1 .6 -> 1; bird: u2 .4 top -> 1.
    assert s["metrics"] == pytest.approx({"accuracy": 2 / 3, "mAP": 1.0})
    assert s["multilabel"] is True and s["confusion"] is None


def test_score_cls_unseen_label(tmp_path):
    args = _setup(tmp_path, "u1 cow\nu2 dog\n", [("u1", "0", "0.7", "cat"), ("u2", "1", "1", "dog")])
    with pytest.raises(ValueError, match=r"label cow of utterance u1 was not seen in training"
                                         r" \(token list .*tokens.txt\)"):
        score_cls.main(args)


def test_score_cls_mismatched_keys(tmp_path):
    args = _setup(tmp_path, REF, [("u1", "0", "0.7", "cat"), ("u9", "1", "0.8", "dog")])
    with pytest.raises(ValueError,
                       match=r"ref .*: 4, .*: 2\).*lacks \['u2', 'u3', 'u4'\].*has \['u9'\]"):
        score_cls.main(args)


def test_score_cls_multilabel_output_needs_flag(tmp_path):
    args = _setup(tmp_path, "u1 cat\n", [("u1", "0 1", "0.9 0.6", "cat dog")])
    with pytest.raises(ValueError, match="--multilabel true"):
        score_cls.main(args)


def test_score_cls_token_list_must_end_with_unk(tmp_path):
    args = _setup(tmp_path, "u1 cat\n", [("u1", "0", "0.9", "cat")], tokens="cat\ndog\n")
    with pytest.raises(ValueError, match="ending with <unk>"):
        score_cls.main(args)
