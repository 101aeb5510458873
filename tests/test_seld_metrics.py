"""DCASE 2022/2023 SELD metrics against hand-computed cases, CSV pairing and score_seld."""

import json

import pytest

from espnet2_gram.bin import score_seld
from espnet2_gram.localization.seld_metrics import (SeldScorer, rows_to_frames,
                                                     score_recordings)
from espnet2_gram.simulation.dcase import DcaseRow, write_dcase_csv
from espnet2_gram.simulation.geometry import sph_to_cart


def _ev(cls, az, el=0.0):
    return (cls, *(float(v) for v in sph_to_cart(az, el)))


def _span(frames, cls, az, out=None):
    """Add class ``cls`` at azimuth ``az`` to every frame of ``frames``."""
    out = {} if out is None else out
    for f in frames:
        out.setdefault(f, []).append(_ev(cls, az))
    return out


def _score(ref, pred, num_classes, num_frames=20):
    scorer = SeldScorer(num_classes)
    scorer.update(ref, pred, num_frames)
    return scorer.compute()


def test_worked_example_two_classes_two_blocks():
    # Block 0 (frames 0-9):
    #   class 0: ref at az 0 in frames 0-9, pred at az 10 in frames 0-9 -> one track, mean
    #            distance 10 <= 20: TP0 = 1, DE_TP0 = 1, total_DE0 = 10, Nref0 = 1.
    #   class 1: pred only (az -90, frames 0-4): FP1 = 1, loc_FP = 1.
    #   -> S += 0, D += 0, I += 1.
    # Block 1 (frames 10-19):
    #   class 0: ref only (az 90, frames 10-14): FN0 = 1, DE_FN0 = 1, loc_FN = 1, Nref0 = 2.
    #   class 1: ref az 180, pred az 150 in frames 10-19 -> mean distance 30 > 20:
    #            DE_TP1 = 1, total_DE1 = 30, FP_spatial1 = 1, loc_FP = 1, Nref1 = 1.
    #   -> S += 1.
    # ER = (S + D + I) / Nref = (1 + 0 + 1) / 3 = 2/3
    # F0 = 1 / (1 + 0 + 0.5 * (0 + 1)) = 2/3, F1 = 0 / (0 + 1 + 0.5 * (1 + 0)) = 0 -> F = 1/3
    # LE0 = 10, LE1 = 30 -> LE = 20;  LR0 = 1 / (1 + 1) = 0.5, LR1 = 1 / 1 = 1 -> LR = 0.75
    # SELD = (2/3 + (1 - 1/3) + 20/180 + (1 - 0.75)) / 4 = 61/144
    # classwise SELD0 = (2/3 + 1/3 + 10/180 + 0.5) / 4 = 7/18, SELD1 = (2/3 + 1 + 1/6 + 0) / 4
    ref = _span(range(10), 0, 0)
    _span(range(10, 15), 0, 90, ref)
    _span(range(10, 20), 1, 180, ref)
    pred = _span(range(10), 0, 10)
    _span(range(5), 1, -90, pred)
    _span(range(10, 20), 1, 150, pred)
    r = _score(ref, pred, num_classes=2)
    assert r["ER20"] == pytest.approx(2 / 3)
    assert r["F20"] == pytest.approx(1 / 3)
    assert r["LE_CD"] == pytest.approx(20.0)
    assert r["LR_CD"] == pytest.approx(0.75)
    assert r["SELD"] == pytest.approx(61 / 144)
    c0, c1 = r["classwise"]
    assert (c0["F20"], c0["LE_CD"], c0["LR_CD"], c0["num_ref"]) == pytest.approx(
        (2 / 3, 10.0, 0.5, 2))
    assert c0["SELD"] == pytest.approx(7 / 18)
    assert (c1["F20"], c1["LE_CD"], c1["LR_CD"], c1["num_ref"]) == pytest.approx(
        (0.0, 30.0, 1.0, 1))
    assert c1["SELD"] == pytest.approx((2 / 3 + 1 + 1 / 6) / 4)
    counts = r["counts"]
    assert (counts["S"], counts["D"], counts["I"]) == (1, 0, 1)
    assert counts["TP"] == [1, 0] and counts["FP"] == [0, 1] and counts["FN"] == [1, 0]


def test_no_predictions():
    r = _score(_span(range(3), 0, 0), {}, num_classes=1)
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"], r["SELD"]) == pytest.approx(
        (1.0, 0.0, 180.0, 0.0, 1.0))


def test_empty_reference_and_prediction():
    # Nothing to find: ER 0 (0 / eps), but F, LR 0 and LE 180 as in the official code.
    r = _score({}, {}, num_classes=1)
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"], r["SELD"]) == pytest.approx(
        (0.0, 0.0, 180.0, 0.0, 0.75))


def test_empty_reference_with_predictions():
    r = _score({}, _span(range(12), 0, 0), num_classes=1)
    # Two blocks with a false positive each: insertions against no reference at all.
    assert r["counts"]["FP"] == [2] and r["counts"]["I"] == 2
    assert r["F20"] == 0.0 and r["ER20"] > 1e6


def test_empty_frames_between_events_and_recording_length():
    # A 30-frame recording with one perfectly predicted frame: the empty blocks count nothing.
    ref = _span([25], 0, 40)
    r = _score(ref, ref, num_classes=1, num_frames=30)
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"]) == pytest.approx((0, 1, 0, 1))


def test_active_in_block_but_never_in_the_same_frame():
    # Official DCASE behaviour: the predictions count as false negatives.
    r = _score(_span(range(5), 0, 0), _span(range(5, 10), 0, 0), num_classes=1)
    assert r["counts"]["FN"] == [1] and r["counts"]["FP"] == [0]
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"]) == pytest.approx((1, 0, 180, 0))


def test_macro_average_counts_a_class_without_references():
    ref = _span(range(10), 0, 0)
    r = _score(ref, ref, num_classes=2)
    # Class 0 perfect; class 1 absent: F 0, LE 180, LR 0.
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"]) == pytest.approx((0, 0.5, 90, 0.5))
    assert r["SELD"] == pytest.approx((0 + 0.5 + 0.5 + 0.5) / 4)
    assert r["classwise"][1]["num_ref"] == 0


def test_hungarian_matching_picks_the_cheaper_assignment():
    # Reference at az 0 and 90, predictions listed as az 85 then az 5: matching by list
    # order would cost 85 + 85 degrees, the optimal assignment 5 + 5.
    ref = {0: [_ev(0, 0), _ev(0, 90)]}
    pred = {0: [_ev(0, 85), _ev(0, 5)]}
    r = _score(ref, pred, num_classes=1, num_frames=10)
    assert r["counts"]["TP"] == [2]
    assert r["LE_CD"] == pytest.approx(5.0)
    assert r["ER20"] == pytest.approx(0.0)


def test_missing_second_event_of_a_class():
    # Two reference events of class 0, one prediction on the first: TP 1, FN 1, Nref 2.
    r = _score({0: [_ev(0, 0), _ev(0, 90)]}, {0: [_ev(0, 2)]}, num_classes=1, num_frames=10)
    assert r["ER20"] == pytest.approx(0.5)  # one deletion over two reference events
    assert r["F20"] == pytest.approx(1 / (1 + 0.5))
    assert (r["LE_CD"], r["LR_CD"]) == pytest.approx((2.0, 0.5))


def test_accumulates_over_recordings():
    scorer = SeldScorer(1)
    scorer.update(_span(range(10), 0, 0), _span(range(10), 0, 0), 10)
    scorer.update(_span(range(10), 0, 0), {}, 10)
    r = scorer.compute()
    assert (r["ER20"], r["F20"], r["LR_CD"]) == pytest.approx((0.5, 1 / 1.5, 0.5))


def test_class_index_out_of_range():
    with pytest.raises(ValueError, match="prediction frame 3: class index 2 outside 0..1"):
        _score({}, {3: [_ev(2, 0)]}, num_classes=2)


def test_rows_to_frames_orders_by_class_and_source():
    rows = [DcaseRow(4, 1, 1, 90, 0), DcaseRow(4, 1, 0, 0, 0), DcaseRow(4, 0, 2, 180, 0)]
    frames = rows_to_frames(rows)
    assert list(frames) == [4]
    assert [e[0] for e in frames[4]] == [0, 1, 1]
    assert frames[4][1][1:] == pytest.approx((1.0, 0.0, 0.0))
    assert frames[4][2][1:] == pytest.approx((0.0, 1.0, 0.0), abs=1e-12)


def _write_csvs(tmp_path):
    ref_dir, hyp_dir = tmp_path / "ref", tmp_path / "hyp"
    write_dcase_csv(ref_dir / "rec1.csv", [(f, 0, 0, 0, 0) for f in range(10)])
    write_dcase_csv(ref_dir / "rec2.csv", [(f, 1, 0, 90, 0) for f in range(10)])
    write_dcase_csv(hyp_dir / "rec1.csv", [(f, 0, 0, 10, 0, 150) for f in range(10)])
    return ref_dir, hyp_dir


def test_score_recordings_missing_prediction_file(tmp_path):
    ref_dir, hyp_dir = _write_csvs(tmp_path)
    r = score_recordings(ref_dir, hyp_dir, num_classes=2)
    # rec1 class 0 found (10 deg off); rec2 class 1 missed.
    assert r["num_recordings"] == 2
    assert (r["ER20"], r["F20"], r["LE_CD"], r["LR_CD"]) == pytest.approx(
        (0.5, 0.5, (10 + 180) / 2, 0.5))


def test_score_recordings_prediction_without_reference(tmp_path):
    ref_dir, hyp_dir = _write_csvs(tmp_path)
    write_dcase_csv(hyp_dir / "zzz.csv", [(0, 0, 0, 0, 0)])
    with pytest.raises(ValueError, match=r"1 prediction file\(s\) without a reference.*'zzz'"):
        score_recordings(ref_dir, hyp_dir, num_classes=2)


def test_score_seld_main(tmp_path):
    ref_dir, hyp_dir = _write_csvs(tmp_path)
    out = tmp_path / "out"
    score_seld.main(["--ref_dir", str(ref_dir), "--hyp_dir", str(hyp_dir), "--num_classes", "2",
                     "--out_dir", str(out), "--format", "foa", "--dataset", "toy"])
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == ["task", "dataset", "format", "model", "mode", "num_items",
                            "metrics", "classwise"]
    assert scores["task"] == "seld" and scores["num_items"] == 2
    assert list(scores["metrics"]) == ["ER20", "F20", "LE_CD", "LR_CD", "SELD"]
    assert scores["metrics"]["LE_CD"] == pytest.approx(95.0)
    assert [c["class_index"] for c in scores["classwise"]] == [0, 1]
