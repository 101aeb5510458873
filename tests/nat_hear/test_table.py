"""The HEAR / Nat-HEAR table from scores written here: HEAR's metric per task (mAP for
multi-label), folds and seeds, the average, s(m) computed by hand, and the spatial columns."""

import json

import pytest

from espnet2_gram.nat_hear.table import collect, normalised_scores, record_task, write_table

CLS = {"accuracy": 0.0, "mAP": 0.0}
DOA = {k: 0.0 for k in ("mean_error", "median_error", "azimuth_error", "elevation_error",
                        "acc20", "front_back_confusion")}
REG = {"median_ae": 0.0, "mae": 0.0, "rmse": 0.0, "mae_of_mean": 0.0}


def score(root, task, dataset, fmt, model, seed, metrics, fold=None):
    run = root / "exp" / f"{task}_{dataset}_{fmt}_{model}_{seed}_{fold}" / "decode_test"
    run.mkdir(parents=True)
    data = {"task": task, "dataset": dataset, "format": fmt, "model": model, "mode": "probe",
            "seed": seed, "metrics": metrics}
    if fold is not None:
        data["fold"] = fold
    (run / "scores.json").write_text(json.dumps(data))


def test_table_by_hand(tmp_path):
    esc, fsd = "esc50-v2.0.0-full", "fsd50k-v1.0-full"
    record_task(tmp_path, esc, "multiclass")
    record_task(tmp_path, fsd, "multilabel")
    # accuracy per (model, condition, seed); ESC-50 has two folds, averaged within a seed
    acc = {("gram", "mono"): (0.80, 0.90), ("naive", "mono"): (0.40, 0.40),
           ("gram", "binaural"): (0.70, 0.70), ("naive", "binaural"): (0.30, 0.50)}
    for (model, fmt), values in acc.items():
        for seed, a in enumerate(values):
            score(tmp_path, "cls", esc, fmt, model, seed, {**CLS, "accuracy": a - 0.05}, fold=0)
            score(tmp_path, "cls", esc, fmt, model, seed, {**CLS, "accuracy": a + 0.05}, fold=1)
            # FSD50K scored by mAP (its accuracy is ignored)
            score(tmp_path, "cls", fsd, fmt, model, seed,
                  {"accuracy": 0.99, "mAP": 0.5 if model == "gram" else 0.2})
    score(tmp_path, "doa", "esc50-doa", "binaural", "gram", 0, {**DOA, "median_error": 12.5})
    score(tmp_path, "reg", "esc50-rt60", "binaural", "gram", 0, {**REG, "median_ae": 0.0213})
    columns, cells, scene = collect(tmp_path)
    assert [d for _, d in scene] == [fsd, esc]  # the paper's order: FSD50K before ESC-50
    assert cells[("gram", "clean")][("cls", esc)].tolist() == pytest.approx([80.0, 90.0])
    assert cells[("naive", "clean")][("cls", fsd)].tolist() == pytest.approx([20.0, 20.0])
    s = normalised_scores(cells, scene)
    assert s[("gram", "clean")] == pytest.approx(100.0)
    assert s[("naive", "clean")] == pytest.approx(0.0)
    # binaural: ESC-50 gram 70 vs naive 40 -> 100 / 0; FSD50K 50 vs 20 -> 100 / 0
    assert s[("naive", "binaural")] == pytest.approx(0.0)
    text = write_table(tmp_path).read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in text.splitlines()
            if line.startswith("| gram") or line.startswith("| naive")}
    assert "| 50.0 ± 0.0 | 85.0 ± 7.1 | 67.5 (2) | 100.0 |" in rows[("gram", "clean")]
    assert "| 12.5 | 0.0213 |" in rows[("gram", "binaural")]
    assert rows[("naive", "binaural")].endswith("| - | - |")
    assert "| FSD50K | ESC-50 | Avg (tasks) | s(m) | esc50-doa DoA (°) | esc50-rt60 (s) |" in text
    assert (tmp_path / "images" / "nat_hear.png").stat().st_size > 0


def test_a_middle_model_scores_between(tmp_path):
    for model, a in (("a", 0.2), ("b", 0.5), ("c", 0.8)):
        score(tmp_path, "cls", "t1", "foa", model, 0, {**CLS, "accuracy": a})
        score(tmp_path, "cls", "t2", "foa", model, 0, {**CLS, "accuracy": 1.0 - a})
    _, cells, scene = collect(tmp_path)
    s = normalised_scores(cells, scene)
    assert s[("b", "foa")] == pytest.approx(50.0)
    assert s[("a", "foa")] == pytest.approx(50.0)  # 0 on t1, 100 on t2
