"""Downstream report over several seeds: cells as mean ± std over seeds (folds of a seed
averaged first), seed counts, the comparison rule, duplicate checks, and figures of pooled or
representative seeds; the scores come from score_doa with --seed where DoA is scored."""

import re

import pytest

from espnet2_gram.report import figures as report_figures
from espnet2_gram.report import tables as downstream_report
from espnet2_gram.bin import make_report, score_doa
from test_downstream_report import epoch_line, read_table, write_scores

CLS = dict(task="cls", dataset="esc50", mode="probe")


def cls_scores(exp, model, fmt, seed, acc, fold=None):
    name = f"cls_esc50_{fmt}_{model}_probe_seed{seed}" + (f"_fold{fold}" if fold else "")
    extra = {"seed": seed} if seed is not None else {}
    if fold is not None:
        extra["fold"] = fold
    return write_scores(exp, name, "esc50", task="cls", format=fmt, model=model, mode="probe",
                        metrics={"accuracy": acc, "mAP": None}, **extra)


def report(exp):
    make_report.main(["--exp_dir", str(exp), "--log_level", "WARNING"])
    return (exp / "RESULTS.md").read_text()


def test_three_seeds_mean_std_and_comparisons(tmp_path):
    # foa: GRAM 80, 84, 88 -> 84.0 ± 4.0; log-mel 60, 62, 64 -> 62.0 ± 2.0: gap 22 > 4 + 2.
    # binaural: GRAM random init 83, 85, 87 -> 85.0 ± 2.0 beats GRAM 84.0 ± 4.0 by 1 < 6.
    # mono: log-mel has one seed, so its gap to GRAM cannot be judged.
    for seed, gram, logmel, rand in zip((1, 2, 3), (.80, .84, .88), (.60, .62, .64),
                                        (.83, .85, .87)):
        for fmt in ("foa", "binaural", "mono"):
            cls_scores(tmp_path, "gram", fmt, seed, gram)
        cls_scores(tmp_path, "logmel", "foa", seed, logmel)
        cls_scores(tmp_path, "gram_random", "binaural", seed, rand)
    cls_scores(tmp_path, "logmel", "mono", 7, 0.5)
    text = report(tmp_path)
    table = read_table(text, "Classification: esc50")
    assert table[0] == ["format", "model", "mode", "seeds", "Acc (%)", "mAP (%)"]
    assert table[1:] == [
        ["binaural", "GRAM (pretrained)", "probe", "3", "84.0 ± 4.0", "-"],
        ["binaural", "GRAM (random init)", "probe", "3", "85.0 ± 2.0", "-"],
        ["foa", "GRAM (pretrained)", "probe", "3", "84.0 ± 4.0", "-"],
        ["foa", "log-mel", "probe", "3", "62.0 ± 2.0", "-"],
        ["mono", "GRAM (pretrained)", "probe", "3", "84.0 ± 4.0", "-"],
        ["mono", "log-mel", "probe", "1", "50.0", "-"]]
    assert ("- Classification accuracy, esc50, foa (probe): GRAM (pretrained) 84.0 ± 4.0%"
            " (3 seeds), log-mel 62.0 ± 2.0% (3 seeds); best: GRAM (pretrained); gap to log-mel"
            " 22.0% exceeds the sum of their standard deviations (6.0%)\n") in text
    assert ("- Classification accuracy, esc50, binaural (probe): GRAM (pretrained) 84.0 ± 4.0%"
            " (3 seeds), GRAM (random init) 85.0 ± 2.0% (3 seeds); best: GRAM (random init);"
            " gap to GRAM (pretrained) 1.0% does not exceed the sum of their standard deviations"
            " (6.0%)\n") in text
    assert ("- Classification accuracy, esc50, mono (probe): GRAM (pretrained) 84.0 ± 4.0%"
            " (3 seeds), log-mel 50.0% (1 seed); best: GRAM (pretrained); gap to log-mel 34.0%:"
            " cannot be judged with fewer than 2 seeds\n") in text
    assert downstream_report.SEED_NOTE in text and downstream_report.RULE_NOTE in text


def test_folds_are_averaged_within_each_seed_first(tmp_path):
    # GRAM: seed means 70, 90, 80 -> 80.0 ± 10.0 (all six folds pooled: ± 17.0).
    for seed, accs in ((1, (.5, .9)), (2, (.85, .95)), (3, (.7, .9))):
        for fold, acc in enumerate(accs, 1):
            cls_scores(tmp_path, "gram", "foa", seed, acc, fold)
    # log-mel: seed 1 has 3 folds (mean 70), seed 2 one (90) -> 80.0 ± 14.1 (pooled mean 75).
    for fold, acc in enumerate((.5, .7, .9), 1):
        cls_scores(tmp_path, "logmel", "foa", 1, acc, fold)
    cls_scores(tmp_path, "logmel", "foa", 2, 0.9, 1)
    table = read_table(report(tmp_path), "Classification: esc50")
    assert table[0] == ["format", "model", "mode", "seeds", "folds", "Acc (%)", "mAP (%)"]
    assert table[1:] == [["foa", "GRAM (pretrained)", "probe", "3", "2", "80.0 ± 10.0", "-"],
                         ["foa", "log-mel", "probe", "2", "1-3", "80.0 ± 14.1", "-"]]


def test_scores_without_seed_are_one_seed(tmp_path):
    for fold, acc in enumerate((.6, .7, .8), 1):
        cls_scores(tmp_path, "gram", "foa", None, acc, fold)
    cls_scores(tmp_path, "seldnet", "foa", None, 0.5)
    text = report(tmp_path)
    assert read_table(text, "Classification: esc50")[1:] == [
        ["foa", "GRAM (pretrained)", "probe", "1", "3", "70.0", "-"],
        ["foa", "SELDnet (supervised)", "probe", "1", "-", "50.0", "-"]]
    assert "gap to SELDnet (supervised) 20.0%: cannot be judged with fewer than 2 seeds" in text


def test_duplicate_seed_names_both_files(tmp_path):
    cls_scores(tmp_path, "gram", "foa", 1, 0.5)
    first = cls_scores(tmp_path, "gram", "foa", 2, 0.5)
    second = write_scores(tmp_path, "cls_esc50_foa_gram_probe_seed2_again", "esc50",
                          task="cls", format="foa", model="gram", mode="probe", seed=2,
                          metrics={"accuracy": 0.6, "mAP": None})
    message = (f"{first / 'scores.json'}, {second / 'scores.json'}: several scores for cls esc50"
               f" foa gram probe (seed 2); expected one per 'seed' and 'fold'")
    with pytest.raises(ValueError, match=re.escape(message)):
        report(tmp_path)


def test_duplicate_seed_and_fold_and_mixed_seeds_are_errors(tmp_path):
    cls_scores(tmp_path, "gram", "foa", 1, 0.5, fold=1)
    cls_scores(tmp_path, "gram", "foa", 1, 0.5, fold=2)
    write_scores(tmp_path, "copy", "esc50", task="cls", format="foa", model="gram", mode="probe",
                 seed=1, fold=2, metrics={"accuracy": 0.5, "mAP": None})
    with pytest.raises(ValueError, match=r"seed1_fold2/decode_esc50/scores.json, .*copy/decode_"
                                         r"esc50/scores.json: .*\(seed 1, fold 2\)"):
        report(tmp_path)
    (tmp_path / "copy" / "decode_esc50" / "scores.json").unlink()
    cls_scores(tmp_path, "gram", "foa", None, 0.5, fold=1)  # an older run without a seed
    with pytest.raises(ValueError, match="with and without 'seed'"):
        report(tmp_path)


@pytest.mark.parametrize("seed", ["1", 1.5, True])
def test_bad_seed_names_the_file(tmp_path, seed):
    write_scores(tmp_path, "run1", "esc50", task="cls", format="foa", model="gram", mode="probe",
                 seed=seed, metrics={"accuracy": 0.5, "mAP": None})
    with pytest.raises(ValueError, match=r"run1/decode_esc50/scores.json: 'seed' = .*; expected"
                                         r" an integer or null"):
        report(tmp_path)


def test_doa_seeds_from_score_doa_pooled_box_and_lowest_seed_figures(tmp_path, monkeypatch):
    ref = tmp_path / "utt2doa"
    ref.write_text("u1 0 0 1\nu2 30 0 1\nu3 90 0 1\n")
    exp = tmp_path / "exp"
    # seed -> predictions of u1, u2, u3; errors (great-circle, lateral):
    # seed 3: (10, 10) (120, 0) (90, 90): median 90, lateral median 10
    # seed 5: (0, 0) (0, 0) (20, 20): median 0, lateral median 0
    # seed 9: (20, 20) (10, 10) (0, 0): median 10, lateral median 10
    predictions = {3: ("10 0", "150 0", "0 0"), 5: ("0 0", "30 0", "70 0"),
                   9: ("20 0", "40 0", "90 0")}
    for seed, hyps in predictions.items():
        run_dir = exp / f"doa_demo_binaural_seldnet_supervised_seed{seed}"
        hyp = tmp_path / f"hyp{seed}"
        hyp.write_text("".join(f"u{i} {h}\n" for i, h in enumerate(hyps, 1)))
        score_doa.main(["--ref", str(ref), "--hyp", str(hyp), "--format", "binaural",
                        "--out_dir", str(run_dir / "decode_demo"), "--model", "seldnet",
                        "--mode", "supervised", "--dataset", "demo", "--seed", str(seed),
                        "--log_level", "WARNING"])
        (run_dir / "train.log").write_text(epoch_line(1, 1.0))
    old = write_scores(exp, "doa_old_gram", "demo", task="doa", format="binaural", model="gram",
                       mode="probe", metrics={"mean_error": 5.0, "median_error": 4.0,
                                              "azimuth_error": 3.0, "elevation_error": 2.0,
                                              "acc20": 1.0, "front_back_confusion": None})
    (old / "doa_errors.tsv").write_text("utt\tref_az\tref_el\thyp_az\thyp_el\terror\n"
                                        "u1\t0\t0\t4\t0\t4\n")
    boxes = []
    monkeypatch.setattr(report_figures, "plot_doa_boxplot",
                        lambda groups, path, title: boxes.append((groups, title)))
    text = report(exp)
    table = read_table(text, "DoA: demo")
    assert table[0][3:10] == ["seeds", "Mean err (°)", "Median err (°)", "Azi err (°)",
                              "Ele err (°)", "Lateral err (°)", "Acc@20° (%)"]
    # median errors 90, 0, 10 -> 33.3 ± 49.3; lateral medians 10, 0, 10 -> 6.7 ± 5.8
    seldnet = table[2]
    assert seldnet[:4] == ["binaural", "SELDnet (supervised)", "supervised", "3"]
    assert seldnet[5] == "33.3 ± 49.3" and seldnet[8] == "6.7 ± 5.8"
    assert table[1][3] == "1" and table[1][8] == "-"  # old scores: no lateral error
    assert downstream_report.LATERAL_NOTE in text
    assert ("- DoA median error, demo, binaural (probe): GRAM (pretrained) 4.0° (1 seed)\n"
            in text)
    assert ("- DoA median error, demo, binaural (supervised): SELDnet (supervised) 33.3 ± 49.3°"
            " (3 seeds)\n") in text
    # the box of SELDnet pools the 9 errors of its 3 seeds, and the title says so
    [(groups, title)] = boxes
    assert title == "DoA error: demo (1-3 seeds pooled)"
    [(fmt, [(old_label, old_errors), (label, errors)])] = groups
    assert (fmt, old_label, old_errors.tolist()) == ("binaural", "GRAM (pretrained), probe", [4])
    assert (label, errors.size) == ("SELDnet (supervised), supervised", 9)
    # confusions and curves: seed 3 only
    images = {p.name for p in (exp / "images").iterdir()}
    assert images == {"doa_confusion_doa_demo_binaural_seldnet_supervised_seed3.png",
                      "doa_confusion_doa_old_gram.png",
                      "curve_doa_demo_binaural_seldnet_supervised_seed3.png"}
    assert "<summary>Azimuth and elevation confusion matrices, lowest seed of each row (2)" in text
    assert "<summary>Training curves, lowest seed of each row (1)" in text


def test_snapshots_give_a_curve_against_pretraining_steps(tmp_path, monkeypatch):
    # foa GRAM at 0 (random init), 100 (epoch 4), 300 (epoch 12) and 1000 steps (final);
    # log-mel (no steps) stays out of the curve.
    plotted = {}
    monkeypatch.setattr(report_figures, "plot_against_steps",
                        lambda series, path, *a: plotted.update({path.name: series}))
    points = {"gram_random": (0, (.50, .54)), "gram_ep12": (300, (.70, .74)),
              "gram_ep4": (100, (.60, .62)), "gram": (1000, (.80, .86))}
    for model, (steps, accs) in points.items():
        for seed, acc in enumerate(accs):
            name = f"cls_esc50_foa_{model}_probe_seed{seed}"
            write_scores(tmp_path, name, "esc50", task="cls", format="foa", model=model,
                         mode="probe", metrics={"accuracy": acc, "mAP": None}, seed=seed,
                         pretrain_steps=steps)
    for seed in (0, 1):
        cls_scores(tmp_path, "logmel", "foa", seed, 0.4)
    text = report(tmp_path)
    assert [r[1] for r in read_table(text, "Classification: esc50")[1:]] == [
        "GRAM (pretrained)", "GRAM (epoch 4)", "GRAM (epoch 12)", "GRAM (random init)",
        "log-mel"]
    curve = read_table(text, "Classification accuracy against pretraining steps: esc50")
    assert curve == [["format", "mode", "model", "steps", "seeds", "Acc (%)"],
                     ["foa", "probe", "GRAM (random init)", "0", "2", "52.0 ± 2.8"],
                     ["foa", "probe", "GRAM (epoch 4)", "100", "2", "61.0 ± 1.4"],
                     ["foa", "probe", "GRAM (epoch 12)", "300", "2", "72.0 ± 2.8"],
                     ["foa", "probe", "GRAM (pretrained)", "1000", "2", "83.0 ± 4.2"]]
    ((label, series),) = plotted["pretraining_cls_esc50.png"]
    assert label == "foa, probe" and [x for x, _ in series] == [0, 100, 300, 1000]
    assert series[-1][1] == pytest.approx([80.0, 86.0])
    # A row whose seeds disagree on the steps is an error naming the files.
    write_scores(tmp_path, "cls_esc50_foa_gram_probe_seed2", "esc50", task="cls",
                 format="foa", model="gram", mode="probe",
                 metrics={"accuracy": 0.9, "mAP": None}, seed=2, pretrain_steps=900)
    with pytest.raises(ValueError, match="different 'pretrain_steps'"):
        downstream_report.write_report(tmp_path)


def test_report_without_snapshots_has_no_curve(tmp_path):
    for seed in (0, 1):
        cls_scores(tmp_path, "gram", "foa", seed, 0.8)
        cls_scores(tmp_path, "gram_random", "foa", seed, 0.7)
    assert "against pretraining steps" not in report(tmp_path)
