"""Downstream report (make_report): tables, comparisons, figures and input checks, on a fake
exp dir; plus the training-log helpers shared with summarize_pretraining."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from espnet2_gram.bin import make_report, summarize_pretraining
from espnet2_gram.report.figures import (angle_bins, confusion, doa_confusions,
                                         read_doa_errors, row_normalise)
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.training_log import parse_epochs

PNG = b"\x89PNG\r\n\x1a\n"
LABELS = ["dog", "rain", "siren"]
# DoA median error per (model, format); the comparison line quotes these.
DOA_MEDIAN = {("gram", "binaural"): 30.04, ("gram_random", "binaural"): 70.0,
              ("logmel", "binaural"): 50.0, ("gram", "foa"): 23.14,
              ("gram_random", "foa"): 61.0, ("logmel", "foa"): 40.2}


def epoch_line(epoch: int, loss: float, acc: float = None) -> str:
    """An ESPnet trainer summary line."""
    extra = f", acc={acc}" if acc is not None else ""
    return (f"[host] 2025-01-01 00:00:0{epoch},000 (trainer:338) INFO: {epoch}epoch results: "
            f"[train] iter_time=0.01, forward_time=0.1, loss={loss}{extra}, backward_time=0.1, "
            f"optim0_lr0=1e-3, time=1 minute and 2.3 seconds, total_count=20, "
            f"gpu_max_cached_mem_GB=0.0, [valid] loss={loss + 0.1}{extra}, total_count=4, "
            f"[att_plot] time=0.5 seconds, total_count=0\n")


def write_scores(exp: Path, run_name: str, dataset: str, **fields) -> Path:
    decode = exp / run_name / f"decode_{dataset}"
    decode.mkdir(parents=True)
    (decode / "scores.json").write_text(json.dumps({"dataset": dataset, **fields}))
    return decode


def write_doa_errors(decode: Path, errors: np.ndarray, wrap_row: bool) -> None:
    lines = ["utt\tref_az\tref_el\thyp_az\thyp_el\terror"]
    if wrap_row:
        lines.append("u_wrap\t179\t0\t-179\t0\t2")
    for i, e in enumerate(errors):
        lines.append(f"u{i}\t{10 * i - 90}\t{5 * i - 40}\t{10 * i - 90 + e}\t{5 * i - 40}\t{e}")
    (decode / "doa_errors.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def exp(tmp_path):
    """cls on esc50 (3 folds, 2 models), DoA for 3 models x 2 formats, one SELD run."""
    exp = tmp_path / "exp" / "downstream"
    accs = {"gram": (0.80, 0.85, 0.90), "logmel": (0.60, 0.70, 0.65)}
    for model, values in accs.items():
        for fold, acc in enumerate(values, 1):
            write_scores(exp, f"cls_esc50_{model}_foa_fold{fold}", "esc50", task="cls",
                         format="foa", model=model, mode="probe", num_items=40, fold=fold,
                         multilabel=False, metrics={"accuracy": acc, "mAP": None},
                         labels=LABELS, confusion=[[4, 1, 0], [0, 5, 0], [2, 0, 3]]
                         if (model, fold) == ("gram", 1) else None)
    rng = np.random.default_rng(0)
    for (model, fmt), median in DOA_MEDIAN.items():
        run_name = f"doa_{model}_{fmt}"
        decode = write_scores(
            exp, run_name, "demo_test", task="doa", format=fmt, model=model, mode="probe",
            num_items=12, metrics={"mean_error": median + 5, "median_error": median,
                                   "azimuth_error": median - 1, "elevation_error": 4.0,
                                   "acc20": 0.5, "front_back_confusion":
                                   None if fmt == "binaural" else math.nan})
        write_doa_errors(decode, rng.uniform(0, 2 * median, 12), wrap_row=model == "gram")
        (exp / run_name / "train.log").write_text(
            "".join(epoch_line(e, 1.0 / e, 0.3 * e) for e in (1, 2, 3)))
    write_scores(exp, "seld_gram_foa", "starss23", task="seld", format="foa", model="gram",
                 mode="finetune", num_items=2, classwise=[], length_from="reference",
                 metrics={"ER20": 0.4512, "F20": 0.6123, "LE_CD": 21.04, "LR_CD": 0.7,
                          "SELD": 0.3521})
    (exp / "seld_gram_foa" / "train.log").write_text(epoch_line(1, 2.0))
    return exp


def read_table(text: str, title: str):
    """Rows (lists of cells, header included) of the markdown table under ``## title``."""
    table = text.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [ln.strip("|").split("|") for ln in table.splitlines() if not ln.startswith("|---")]


def test_report_tables_comparisons_and_figures(exp):
    make_report.main(["--exp_dir", str(exp)])
    text = (exp / "RESULTS.md").read_text()
    assert re.search(r"- date: `.+`", text) and "- pytorch version: `pytorch " in text
    assert "- espnet version: `espnet " in text and "- python version: `3." in text

    cls = read_table(text, "Classification: esc50")
    # no seed recorded: one seed per row; its folds averaged, so no spread is shown
    assert cls[0] == ["format", "model", "mode", "seeds", "folds", "Acc (%)", "mAP (%)"]
    assert cls[1:] == [["foa", "GRAM (pretrained)", "probe", "1", "3", "85.0", "-"],
                       ["foa", "log-mel", "probe", "1", "3", "65.0", "-"]]
    assert ("- Classification accuracy, esc50, foa (probe): GRAM (pretrained) 85.0% (1 seed), "
            "log-mel 65.0% (1 seed); best: GRAM (pretrained); gap to log-mel 20.0%: cannot be"
            " judged with fewer than 2 seeds\n") in text

    doa = read_table(text, "DoA: demo_test")
    assert doa[0][:6] == ["format", "model", "mode", "seeds", "Mean err (°)", "Median err (°)"]
    assert "Lateral err (°)" not in doa[0]  # in no scores.json of the table
    assert [row[:2] for row in doa[1:]] == [
        [fmt, label] for fmt in ("binaural", "foa")
        for label in ("GRAM (pretrained)", "GRAM (random init)", "log-mel")]
    assert doa[4][3:] == ["1", "28.1", "23.1", "22.1", "4.0", "50.0", "-"]  # foa, gram; NaN: -
    assert doa[1][-1] == "-"  # null
    assert ("- DoA median error, demo_test, foa (probe): GRAM (pretrained) 23.1° (1 seed), "
            "GRAM (random init) 61.0° (1 seed), log-mel 40.2° (1 seed); best: GRAM (pretrained);"
            " gap to log-mel 17.1°: cannot be judged with fewer than 2 seeds\n") in text

    seld = read_table(text, "SELD: starss23")
    assert seld[1] == ["foa", "GRAM (pretrained)", "finetune", "1", "0.45", "61.2", "21.0",
                       "70.0", "0.352"]
    assert "- SELD score, starss23, foa (finetune): GRAM (pretrained) 0.352 (1 seed)\n" in text
    assert ("- Recording length in scoring: from the last reference frame, as the official DCASE"
            " 2023 scorer (predictions after its block ignored) (`length_from: reference`).\n"
            in text)

    images = exp / "images"
    expected = {"doa_error_boxplot_demo_test.png", "cls_confusion_cls_esc50_gram_foa_fold1.png",
                "curve_seld_gram_foa.png"}
    expected |= {f"doa_confusion_doa_{m}_{f}.png" for m, f in DOA_MEDIAN}
    expected |= {f"curve_doa_{m}_{f}.png" for m, f in DOA_MEDIAN}  # cls runs: no train.log
    assert {p.name for p in images.iterdir()} == expected
    assert all(p.read_bytes().startswith(PNG) for p in images.iterdir())
    links = set(re.findall(r"\]\((images/[^)]+)\)", text))
    assert {f"images/{name}" for name in expected} == links
    assert not list(exp.rglob("*.tmp"))


def test_out_dir_and_missing_train_log(exp, tmp_path):
    (exp / "seld_gram_foa" / "train.log").unlink()
    out = tmp_path / "report"
    make_report.main(["--exp_dir", str(exp), "--out_dir", str(out)])
    assert (out / "RESULTS.md").is_file() and not (exp / "RESULTS.md").exists()
    assert not (out / "images" / "curve_seld_gram_foa.png").exists()
    assert (out / "images" / "curve_doa_gram_foa.png").read_bytes().startswith(PNG)


def test_empty_exp_dir_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "downstream"
    (empty / "some_run" / "decode_x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        make_report.main(["--exp_dir", str(empty)])
    with pytest.raises(SystemExit) as exit_info:
        run(make_report.main, ["--exp_dir", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 1 and "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("model"), r"missing keys \['model'\]"),
    (lambda d: d["metrics"].update(accuracy=85.0), r"metrics.accuracy = 85.0; expected a frac"),
    (lambda d: d.update(confusion=[[1, 2]]), "K x K"),
    (lambda d: d.update(task="asr"), "task 'asr'"),
])
def test_malformed_scores_name_the_file(tmp_path, change, message):
    data = {"task": "cls", "format": "foa", "model": "gram", "mode": "probe",
            "metrics": {"accuracy": 0.5, "mAP": None}, "labels": ["a", "b"], "confusion": None}
    change(data)
    write_scores(tmp_path, "run1", "esc50", **data)
    with pytest.raises(ValueError, match=f"run1/decode_esc50/scores.json: .*{message}"):
        make_report.main(["--exp_dir", str(tmp_path)])


def test_seld_length_convention_is_reported(tmp_path):
    seld = dict(task="seld", format="foa", mode="probe", metrics={
        "ER20": 0.5, "F20": 0.5, "LE_CD": 20.0, "LR_CD": 0.5, "SELD": 0.4})
    write_scores(tmp_path, "seld_gram", "sim", model="gram", length_from="reference", **seld)
    write_scores(tmp_path, "seld_logmel", "sim", model="logmel", length_from="both_files",
                 **seld)
    write_scores(tmp_path, "seld_old", "sim", model="gram_random", **seld)
    make_report.main(["--exp_dir", str(tmp_path)])
    text = (tmp_path / "RESULTS.md").read_text()
    assert ("- Recording length in scoring differs between runs, whose scores are therefore not"
            " comparable: not recorded in scores.json:"
            " seld_old; up to the last labelled or predicted frame (`length_from: both_files`):"
            " seld_logmel; from the last reference frame") in text
    assert "(`length_from: reference`): seld_gram." in text
    write_scores(tmp_path, "seld_bad", "other", model="gram", length_from="audio", **seld)
    with pytest.raises(ValueError, match="seld_bad/decode_other/scores.json: 'length_from' ="
                                         " 'audio'; expected one of"):
        make_report.main(["--exp_dir", str(tmp_path)])


def test_duplicate_scores_are_an_error(tmp_path):
    for name in ("run_a", "run_b"):
        write_scores(tmp_path, name, "esc50", task="cls", format="foa", model="gram",
                     mode="probe", metrics={"accuracy": 0.5, "mAP": None})
    with pytest.raises(ValueError, match="run_a.*run_b.*expected one per 'seed' and 'fold'"):
        make_report.main(["--exp_dir", str(tmp_path)])


def test_angle_bins_wrap_azimuth_and_clip_elevation():
    az = angle_bins([179, -179, 180, -180, 181, 359, 149.9, 150, 0], -180, 180, wrap=True)
    assert az.tolist() == [11, 0, 0, 0, 0, 5, 10, 11, 6]
    el = angle_bins([90, -90, 0, -0.1, 59.9, 60], -90, 90)
    assert el.tolist() == [5, 0, 3, 2, 4, 5]


def test_doa_confusions_are_row_normalised(tmp_path):
    decode = tmp_path / "decode"
    decode.mkdir()
    (decode / "doa_errors.tsv").write_text(
        "utt\tref_az\tref_el\thyp_az\thyp_el\terror\n"
        "a\t179\t10\t-179\t10\t2\n"      # azimuth bin 11 -> 0
        "b\t170\t10\t170\t80\t70\n"      # azimuth 11 -> 11, elevation 3 -> 5
        "c\t-100\t-89\t-100\t-89\t0\n"
        "d\t-100\t-89\tnan\t-89\tnan\n")  # non-finite rows are left out
    az, el = doa_confusions(read_doa_errors(decode / "doa_errors.tsv"))
    assert az.shape == (12, 12) and el.shape == (6, 6)
    assert az[11, 0] == az[11, 11] == 0.5 and az[2, 2] == 1.0 and az.sum() == 2.0
    assert el[3, 3] == el[3, 5] == 0.5 and el[0, 0] == 1.0
    assert row_normalise(confusion([0, 0, 1], [0, 1, 1], 3)).tolist() == [
        [0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_bad_doa_errors_header_names_the_file(tmp_path):
    path = tmp_path / "doa_errors.tsv"
    path.write_text("utt\taz\terror\nu\t1\t2\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: expected the header"):
        read_doa_errors(path)


def test_training_log_shared_with_summarize_pretraining(tmp_path):
    exp = tmp_path / "gram_foa"
    exp.mkdir()
    (exp / "train.log").write_text("noise\n" + epoch_line(1, 0.75) + epoch_line(2, 0.5))
    epochs = parse_epochs((exp / "train.log").read_text())
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["train"]["loss"] == 0.5 and epochs[1]["valid"]["loss"] == 0.6
    assert "time" not in epochs[0]["train"]  # "1 minute and 2.3 seconds" is no number
    summarize_pretraining.main(["--exp_dir", str(exp)])
    assert (exp / "learning_curve.png").read_bytes().startswith(PNG)
    assert ("final (gram_foa, epoch 2): train loss 0.5000, valid loss 0.6000"
            in (exp / "RESULTS.md").read_text())


def test_models_of_snapshots_and_layers_are_labelled_and_ordered():
    """gram_ep<N> and <model>_l<K> rows follow their model, by epoch and by layer."""
    from espnet2_gram.report.tables import _model_order, model_label

    models = ["logmel", "gram_random_l0", "gram_l10", "gram", "gram_l2", "gram_ep4",
              "gram_random", "seldnet", "gram_ep12"]
    assert [model_label(m) for m in sorted(models, key=_model_order)] == [
        "GRAM (pretrained)", "GRAM (epoch 4)", "GRAM (epoch 12)", "GRAM (pretrained, layer 2)",
        "GRAM (pretrained, layer 10)", "GRAM (random init)", "GRAM (random init, layer 0)",
        "log-mel", "SELDnet (supervised)"]
