"""DCASE 2022/2023 SELD metrics against hand-computed cases, the recording-length conventions,
CSV pairing, score_seld and the precision of seld_inference's predictions."""

import json

import pytest
import torch

from espnet2_gram.bin import score_seld
from espnet2_gram.downstream.localization.seld_metrics import (SeldScorer, rows_to_frames,
                                                     score_recordings, scored_frames)
from espnet2_gram.downstream.localization.dcase_format import DcaseRow, write_dcase_csv
from espnet2_gram.simulation.geometry import angular_distance_deg, sph_to_cart


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


def _score_as(length_from, ref, pred, num_classes):
    return _score(ref, pred, num_classes, scored_frames(ref, pred, length_from))


def test_scored_frames_official_and_both_files():
    ref, pred = {3: [_ev(0, 0)], 9: [_ev(0, 0)]}, {15: [_ev(0, 0)]}
    # Official: the last reference frame's index itself (not + 1), predictions not counted.
    assert scored_frames(ref, pred) == scored_frames(ref, pred, "reference") == 9
    assert scored_frames(ref, pred, "both_files") == 16
    assert scored_frames({}, pred) == 0 and scored_frames({}, pred, "both_files") == 16
    with pytest.raises(ValueError, match="length_from 'audio'; expected one of"):
        scored_frames(ref, pred, "audio")


def test_predictions_after_the_last_reference_block_are_ignored():
    # Reference: class 0 at az 0 in frames 0-14 (last reference frame 14 -> blocks 0 and 1).
    # Predictions: the same, plus class 1 in frames 15-19 (block 1) and 20-29 (block 2).
    # Official ("reference"), 2 blocks: class 0 TP in both (Nref0 = 2); class 1 FP in block 1
    #   -> I = 1, ER = 1/2; F0 = 1, F1 = 0 -> F 1/2; LE (0 + 180) / 2 = 90; LR (1 + 0) / 2.
    # "both_files", 3 blocks (frames 0-29): block 2 adds one more FP of class 1 -> ER = 2/2.
    ref = _span(range(15), 0, 0)
    pred = _span(range(15), 0, 0)
    _span(range(15, 30), 1, -90, pred)
    official = _score_as("reference", ref, pred, num_classes=2)
    assert (official["ER20"], official["F20"], official["LE_CD"], official["LR_CD"]) == \
        pytest.approx((0.5, 0.5, 90.0, 0.5))
    assert official["counts"]["FP"] == [0, 1] and official["counts"]["I"] == 1
    ours = _score_as("both_files", ref, pred, num_classes=2)
    assert (ours["ER20"], ours["F20"]) == pytest.approx((1.0, 0.5))
    assert ours["counts"]["FP"] == [0, 2] and ours["counts"]["I"] == 2


@pytest.mark.parametrize("last, official_er", [(20, 0.0), (21, 0.5)])
def test_last_reference_frame_on_a_block_boundary_drops_its_block(last, official_er):
    # Reference: class 0 in frames 0-9 and in the last frame; predictions: frames 0-9 only.
    # Last frame 20: the official count is 20 frames = 2 blocks (0-19), so frame 20 and its
    #   block are not scored: Nref 1, ER 0, F 1, LR 1.
    # Last frame 21: 3 blocks; block 2 holds a missed reference: D = 1, Nref 2 -> ER 1/2,
    #   F = 1 / (1 + 0.5 * 1) = 2/3, LR 1/2 -- and "both_files" scores it so in both cases.
    ref = _span([*range(10), last], 0, 0)
    pred = _span(range(10), 0, 0)
    official = _score_as("reference", ref, pred, num_classes=1)
    dropped = official_er == 0.0
    assert (official["ER20"], official["F20"], official["LR_CD"]) == pytest.approx(
        (0.0, 1.0, 1.0) if dropped else (0.5, 2 / 3, 0.5))
    assert official["counts"]["Nref"] == [1 if dropped else 2]
    ours = _score_as("both_files", ref, pred, num_classes=1)
    assert (ours["ER20"], ours["F20"], ours["LR_CD"]) == pytest.approx((0.5, 2 / 3, 0.5))


def test_score_recordings_conventions_on_files_and_cartesian_predictions(tmp_path):
    # The boundary case on files: reference frames 0-9 and 20 (class 0, az 0); predictions
    # in 7-column Cartesian form at az 10 (non-unit vectors), frames 0-9 and 25-29.
    ref_dir, hyp_dir = tmp_path / "ref", tmp_path / "hyp"
    write_dcase_csv(ref_dir / "rec.csv", [(f, 0, 0, 0, 0) for f in [*range(10), 20]])
    hyp_dir.mkdir()
    x, y, _ = (float(v) for v in 0.8 * sph_to_cart(10, 0))
    (hyp_dir / "rec.csv").write_text(
        "".join(f"{f},0,0,{x!r},{y!r},0.0,0\n" for f in [*range(10), *range(25, 30)]))
    official = score_recordings(ref_dir, hyp_dir, num_classes=1)
    assert (official["ER20"], official["F20"], official["LE_CD"], official["LR_CD"]) == \
        pytest.approx((0.0, 1.0, 10.0, 1.0))
    # Frames 0-29: block 2 has a reference (frame 20) and predictions (25-29) never in the same
    # frame: as DCASE does, counted as a false negative (FN 1, D 1 over Nref 2).
    ours = score_recordings(ref_dir, hyp_dir, num_classes=1, length_from="both_files")
    assert (ours["ER20"], ours["F20"], ours["LE_CD"], ours["LR_CD"]) == pytest.approx(
        (0.5, 2 / 3, 10.0, 0.5))


def test_score_recordings_bad_prediction_files_name_file_and_line(tmp_path):
    ref_dir, hyp_dir = _write_csvs(tmp_path)
    bad = hyp_dir / "rec1.csv"
    bad.write_text("0,0,0,1.0,0.0,0.0,0\n1,0,0,1.0,0.0\n")
    with pytest.raises(ValueError, match=f"{bad}:2: 5 fields where the previous lines have 7"):
        score_recordings(ref_dir, hyp_dir, num_classes=2)
    bad.write_text("0,0,0,1.0,0.0,0.0,0,9\n")
    with pytest.raises(ValueError, match=f"{bad}:1: expected 5 or 6 .* or 7"):
        score_recordings(ref_dir, hyp_dir, num_classes=2)
    bad.write_text("0,0,0,left,0\n")
    with pytest.raises(ValueError, match=f"{bad}:1: bad azimuth 'left'"):
        score_recordings(ref_dir, hyp_dir, num_classes=2)
    # Beyond the recording (known from make_seld_data's recordings): an error, not ignored.
    bad.write_text("0,0,0,10,0\n10,0,0,10,0\n")
    assert score_recordings(ref_dir, hyp_dir, 2, recording_frames={"rec1": 11, "rec2": 10})
    with pytest.raises(ValueError, match=f"{bad}:2: frame 10 is beyond the recording"):
        score_recordings(ref_dir, hyp_dir, 2, recording_frames={"rec1": 10, "rec2": 10})
    with pytest.raises(ValueError, match=r"recordings without a length: \['rec2'\]"):
        score_recordings(ref_dir, hyp_dir, 2, recording_frames={"rec1": 10})


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
    write_dcase_csv(hyp_dir / "rec1.csv", [(f, 0, 0, 10, 0, 150) for f in range(10)]
                    + [(f, 1, 0, 0, 0, 150) for f in range(10, 20)])  # after the reference
    (tmp_path / "recordings").write_text("rec1 20\nrec2 20\n")
    argv = ["--ref_dir", str(ref_dir), "--hyp_dir", str(hyp_dir), "--num_classes", "2",
            "--format", "foa", "--dataset", "toy", "--recordings", str(tmp_path / "recordings")]
    score_seld.main(argv + ["--out_dir", str(tmp_path / "out")])
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert list(scores) == ["task", "dataset", "format", "model", "mode", "num_items",
                            "length_from", "metrics", "classwise"]
    assert scores["task"] == "seld" and scores["num_items"] == 2
    assert scores["length_from"] == "reference"
    assert list(scores["metrics"]) == ["ER20", "F20", "LE_CD", "LR_CD", "SELD"]
    assert scores["metrics"]["LE_CD"] == pytest.approx(95.0)
    assert scores["metrics"]["ER20"] == pytest.approx(0.5)  # frames 10-19 of rec1 ignored
    assert [c["class_index"] for c in scores["classwise"]] == [0, 1]
    score_seld.main(argv + ["--out_dir", str(tmp_path / "ours"), "--length_from", "both_files"])
    scores = json.loads((tmp_path / "ours" / "scores.json").read_text())
    # rec1 block 1: class 1 predicted without reference: I + 1 -> ER (1 + 1) / 2.
    assert scores["length_from"] == "both_files" and scores["metrics"]["ER20"] == 1.0


@pytest.mark.parametrize("output_format", ["polar", "cartesian"])
def test_seld_inference_writes_full_precision(tmp_path, monkeypatch, output_format):
    """Predicted directions reach the scorer unrounded, in both output formats: LE_CD is the
    exact angle between the reference and the predicted vector (integer degrees: 0)."""
    from espnet2_gram.bin import seld_inference

    direction = sph_to_cart(12.345678, -7.654321)
    frames = 10

    class Model:
        tracks, num_classes = 1, 2

        def predict(self, speech, speech_lengths, num_label_frames):
            out = torch.zeros(len(speech), num_label_frames, 1, 2, 3, dtype=torch.float64)
            out[:, :, 0, 1] = 0.9 * torch.from_numpy(direction)
            return out

    monkeypatch.setattr(seld_inference, "load_trained", lambda *args: (Model(), None))
    monkeypatch.setattr(seld_inference, "batches", lambda task, args, triplets, size: iter(
        [(["c0"], {"speech": torch.zeros(1, 4, 3), "speech_lengths": torch.tensor([4])})]))
    chunks = tmp_path / "chunks"
    (chunks / "metadata").mkdir(parents=True)
    (chunks / "recordings").write_text(f"rec {frames}\n")
    (chunks / "utt2recording").write_text(f"c0 rec 0 {frames}\n")
    write_dcase_csv(chunks / "metadata" / "rec.csv", [(f, 1, 0, 12, -8) for f in range(frames)])
    feats = tmp_path / "feats.scp"
    feats.write_text(f"c0 {tmp_path / 'feats.ark'}:4\n")
    (tmp_path / "feats.ark").write_bytes(b"")
    out = tmp_path / "decode"
    seld_inference.main(["--train_config", "c.yaml", "--model_file", "m.pth", "--chunk_dir",
                         str(chunks), "--output_dir", str(out), "--output_format", output_format,
                         "--data_path_and_name_and_type", f"{feats},speech,kaldi_ark"])
    first = (out / "pred" / "rec.csv").read_text().splitlines()[0].split(",")
    assert len(first) == (7 if output_format == "cartesian" else 5)
    r = score_recordings(chunks / "metadata", out / "pred", num_classes=2,
                         recording_frames={"rec": frames})
    expected = angular_distance_deg(sph_to_cart(12, -8), direction)  # 0.487 degrees
    # the model's outputs are float32: 1e-6 degrees
    assert r["classwise"][1]["LE_CD"] == pytest.approx(expected, abs=1e-6)
    assert r["LE_CD"] == pytest.approx((180 + expected) / 2, abs=1e-6)
