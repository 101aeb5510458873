"""DoA errors and metrics against hand-computed cases, utt2doa reading and score_doa."""

import json

import numpy as np
import pytest

from espnet2_gram.bin import score_doa
from espnet2_gram.downstream.localization.doa_metrics import (doa_errors, doa_metrics, doa_to_xyz,
                                                    read_utt2doa)


def _xyz(*angles):
    az, el = zip(*angles)
    return doa_to_xyz(az, el)


def test_azimuth_wraps_around():
    e = doa_errors(_xyz((179, 0)), _xyz((-179, 0)))
    assert e["error"][0] == pytest.approx(2.0)
    assert e["azimuth_error"][0] == pytest.approx(2.0)
    assert e["elevation_error"][0] == pytest.approx(0.0, abs=1e-9)


def test_poles():
    # Same point (the zenith) given with different azimuths: no great-circle error. The
    # azimuth error keeps the azimuths the vectors were built from (documented caveat).
    e = doa_errors(_xyz((0, 90)), _xyz((120, 90)))
    assert e["error"][0] == pytest.approx(0.0, abs=1e-6)
    assert e["elevation_error"][0] == pytest.approx(0.0, abs=1e-6)
    assert e["azimuth_error"][0] == pytest.approx(120.0)


def test_metrics_hand_computed():
    # ref -> hyp            error  az   el   lateral  front-back
    # (0, 0) -> (10, 0)      10    10   0    10       counted, not confused (mirror 170 off)
    # (90, 0) -> (90, 30)    30    0    30   30       left out: on the interaural plane
    # (30, 0) -> (150, 0)    120   120  0    0        counted, confused: hyp is the mirror
    # (180, 0) -> (180, -15) 15    0    15   0        counted, not confused
    ref = _xyz((0, 0), (90, 0), (30, 0), (180, 0))
    hyp = _xyz((10, 0), (90, 30), (150, 0), (180, -15))
    m = doa_metrics(ref, hyp, front_back=True)
    assert m["mean_error"] == pytest.approx((10 + 30 + 120 + 15) / 4)
    assert m["median_error"] == pytest.approx((15 + 30) / 2)
    assert m["azimuth_error"] == pytest.approx((10 + 0 + 120 + 0) / 4)
    assert m["elevation_error"] == pytest.approx((0 + 30 + 0 + 15) / 4)
    assert m["acc20"] == pytest.approx(0.5)
    assert m["lateral_error"] == pytest.approx((0 + 10) / 2)  # median
    assert m["front_back_confusion"] == pytest.approx(1 / 3)
    assert doa_metrics(ref, hyp, front_back=False)["front_back_confusion"] is None


@pytest.mark.parametrize("ref, hyp, lateral, error", [
    ((30, 0), (150, 0), 0, 120),    # front-back confusion: same lateral angle asin(0.5) = 30
    ((0, 40), (180, -40), 0, 180),  # both on the median plane (y = 0)
    ((90, 0), (0, 0), 90, 90),      # left ear to front: lateral 90 -> 0
    ((0, 0), (90, 30), 60, 90),     # hyp y = cos 30: lateral asin(cos 30) = 60
    ((-90, 0), (90, 0), 180, 180),  # right ear to left ear: lateral -90 -> 90
])
def test_lateral_error_folds_front_and_back(ref, hyp, lateral, error):
    e = doa_errors(_xyz(ref), _xyz(hyp))
    assert e["lateral_error"][0] == pytest.approx(lateral, abs=1e-6)
    assert e["error"][0] == pytest.approx(error, abs=1e-6)


def test_front_back_interaural_margin():
    # 85 deg is 5 deg from the interaural plane: left out; 75 deg is 15 deg off: counted.
    assert doa_metrics(_xyz((85, 0)), _xyz((95, 0)), True)["front_back_confusion"] is None
    assert doa_metrics(_xyz((75, 0)), _xyz((105, 0)), True)["front_back_confusion"] == 1.0
    # Near the zenith every azimuth is close to the interaural plane.
    assert doa_metrics(_xyz((0, 85)), _xyz((180, 85)), True)["front_back_confusion"] is None


def test_zero_prediction_counts_as_90_degrees():
    m = doa_metrics(_xyz((0, 0), (45, 0)), np.array([[0.0, 0, 0], [2.0, 0, 0]]), True)
    assert m["mean_error"] == pytest.approx((90 + 45) / 2)
    assert m["lateral_error"] == pytest.approx((90 + 45) / 2)  # (2, 0, 0) is normalised
    assert m["acc20"] == 0.0
    assert m["front_back_confusion"] == 0.0


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((0, 3)), np.zeros((2, 2)),
                                 np.array([[np.nan, 0.0, 1.0]])])
def test_bad_shapes_and_values(bad):
    with pytest.raises(ValueError, match="ref_xyz"):
        doa_metrics(bad, np.ones((1, 3)), False)


def test_shape_is_named():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        doa_errors(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="differ"):
        doa_errors(np.ones((2, 3)), np.ones((1, 3)))


def test_read_utt2doa(tmp_path):
    path = tmp_path / "utt2doa"
    path.write_text("a 10 -5 1.5\n\nb -180 90 0\n")
    assert read_utt2doa(path) == {"a": (10.0, -5.0, 1.5), "b": (-180.0, 90.0, 0.0)}
    path.write_text("a 10 -5\n")
    assert read_utt2doa(path, require_distance=False) == {"a": (10.0, -5.0, None)}
    with pytest.raises(ValueError, match="utt azimuth elevation distance"):
        read_utt2doa(path)


@pytest.mark.parametrize("line, message", [
    ("b 200 0 1", "azimuth '200'"),
    ("b 0 -95 1", "elevation '-95'"),
    ("b 0 0 -1", "distance '-1'"),
    ("b 0 x 1", "bad elevation 'x'"),
    ("b 0 nan 1", "bad elevation 'nan'"),
    ("a 0 0 1", "duplicated utterance 'a'"),
])
def test_read_utt2doa_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "utt2doa"
    path.write_text(f"a 0 0 1\n{line}\n")
    with pytest.raises(ValueError, match=rf"utt2doa:2: {message}"):
        read_utt2doa(path)


def test_score_doa_main(tmp_path):
    ref, hyp, out = tmp_path / "ref", tmp_path / "hyp", tmp_path / "out"
    ref.write_text("u1 0 0 1.0\nu2 30 0 2.0\n")
    hyp.write_text("u2 150 0\nu1 10 0\n")
    score_doa.main(["--ref", str(ref), "--hyp", str(hyp), "--format", "binaural",
                    "--out_dir", str(out), "--model", "seldnet", "--mode", "supervised",
                    "--dataset", "toy", "--seed", "2"])
    scores = json.loads((out / "scores.json").read_text())
    assert {k: v for k, v in scores.items() if k != "metrics"} == {
        "task": "doa", "dataset": "toy", "format": "binaural", "model": "seldnet",
        "mode": "supervised", "seed": 2, "num_items": 2}
    assert scores["metrics"]["mean_error"] == pytest.approx(65.0)
    assert scores["metrics"]["lateral_error"] == pytest.approx((10 + 0) / 2)
    assert scores["metrics"]["front_back_confusion"] == pytest.approx(0.5)
    lines = (out / "doa_errors.tsv").read_text().splitlines()
    assert lines[0] == "utt\tref_az\tref_el\thyp_az\thyp_el\terror"
    assert lines[1:] == ["u1\t0\t0\t10\t0\t10.000", "u2\t30\t0\t150\t0\t120.000"]

    score_doa.main(["--ref", str(ref), "--hyp", str(hyp), "--format", "foa",
                    "--out_dir", str(out)])
    scores = json.loads((out / "scores.json").read_text())
    assert scores["metrics"]["front_back_confusion"] is None
    assert scores["model"] is None and scores["mode"] is None and "seed" not in scores


def test_score_doa_mismatched_keys(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.write_text("u1 0 0 1\nu2 0 0 1\nu3 0 0 1\n")
    hyp.write_text("u1 0 0\nu9 0 0\n")
    with pytest.raises(ValueError,
                       match=r"ref: 3, .*hyp: 2\).*lacks \['u2', 'u3'\].*has \['u9'\]"):
        score_doa.main(["--ref", str(ref), "--hyp", str(hyp), "--format", "mono",
                        "--out_dir", str(tmp_path / "out")])
