"""A downstream task added from its spec entry alone (issue: one source of truth): the entry
plus the task's own code (here a level regressor, its inference and its metric, written in
this file) runs through the runner's training, inference and scoring and into RESULTS.md,
with no other module edited."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_gram.downstream import runs, spec
from espnet2_gram.report.tables import write_report
from espnet2_gram.utils.fileio import read_kv
from espnet2_gram.utils.scoring import add_run_options, run_info, write_scores

FS = 8000
HERE = Path(__file__).stem


def option(argv, name, occurrence=0):
    return [argv[i + 1] for i, a in enumerate(argv) if a == name][occurrence]


def rms_db(path) -> float:
    x, _ = sf.read(path, dtype="float32")
    return float(10 * np.log10(np.mean(x ** 2)))


def train_main(argv):
    """Least squares of the labelled level on the measured one."""
    wavs = read_kv(option(argv, "--train_data_path_and_name_and_type", 0).split(",")[0])
    labels = read_kv(option(argv, "--train_data_path_and_name_and_type", 1).split(",")[0])
    x = np.array([rms_db(wavs[k]) for k in labels])
    y = np.array([float(v) for v in labels.values()])
    slope, offset = np.polyfit(x, y, 1)
    out = Path(option(argv, "--output_dir"))
    (out / "config.yaml").write_text("task: level\n")
    (out / "model.json").write_text(json.dumps({"slope": slope, "offset": offset}))


def inference_main(argv):
    model = json.loads(Path(option(argv, "--model_file")).read_text())
    wavs = read_kv(option(argv, "--data_path_and_name_and_type").split(",")[0])
    out = Path(option(argv, "--output_dir"))
    (out / "utt2level").write_text("".join(
        f"{k} {model['slope'] * rms_db(p) + model['offset']:.4f}\n" for k, p in wavs.items()))


def score_main(argv):
    import argparse

    p = argparse.ArgumentParser()
    for name in ("--ref", "--hyp", "--out_dir"):
        p.add_argument(name, required=True)
    add_run_options(p)
    args = p.parse_args(argv)
    ref, hyp = read_kv(args.ref), read_kv(args.hyp)
    mae = float(np.mean([abs(float(ref[k]) - float(hyp[k])) for k in ref]))
    write_scores(args.out_dir, {**run_info(args, "level"), "metrics": {"mae": mae}})


def level_decode_options(run, d: spec.Decode):
    infer = ["--model_file", d.model_file, "--data_path_and_name_and_type", d.speech,
             "--output_dir", str(d.out)]
    score = ["--ref", str(d.test / "utt2level"), "--hyp", str(d.out / "utt2level"),
             "--out_dir", str(d.out)]
    return infer, score


LEVEL = spec.DownstreamTask(
    "level", "Level", ("supervised",), "utt2level", "level", "text_float", "model.json",
    head_conf="model_conf", pooling_conf=None, criterion=None,
    metrics=(spec.Metric("mae", "MAE (dB)", 1, 2, " dB", True),),
    headline=("mae", "Level error"), decode_options=level_decode_options,
    entry_points={"level_train": f"{HERE}:train_main",
                  "level_inference": f"{HERE}:inference_main",
                  "score_level": f"{HERE}:score_main"})


def level_dir(root: Path, name: str, gains_db) -> Path:
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    wav, labels = [], []
    for i, gain in enumerate(gains_db):
        x = rng.standard_normal(FS // 2)
        x *= 10 ** (gain / 20) / np.sqrt(np.mean(x ** 2))
        path = d / f"{name}{i}.wav"
        sf.write(path, x.astype("float32"), FS, subtype="FLOAT")
        wav.append(f"{name}{i} {path}\n")
        labels.append(f"{name}{i} {gain + 94.0:.2f}\n")  # dB SPL: full scale = 94 dB
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2level").write_text("".join(labels))
    return d


def test_a_task_from_its_spec_entry_runs_into_the_report(tmp_path, monkeypatch):
    monkeypatch.setitem(spec.TASKS, "level", LEVEL)
    dirs = {split: level_dir(tmp_path / "data", split, gains)
            for split, gains in (("train", [-30, -20, -12, -6]), ("valid", [-25, -9]),
                                 ("test", [-18, -3]))}
    config = tmp_path / "level.yaml"
    config.write_text("max_epoch: 1\n")
    exp = tmp_path / "exp"
    for seed in (0, 1):
        runs.main(["--task", "level", "--mode", "supervised", "--model", "rms", "--format",
                   "mono", "--dataset", "toy", "--seed", str(seed), "--train_dir",
                   str(dirs["train"]), "--valid_dir", str(dirs["valid"]), "--test_dir",
                   str(dirs["test"]), "--task_config", str(config), "--exp_dir",
                   str(exp / f"level_rms_seed{seed}")])
    scores = json.loads((exp / "level_rms_seed0" / "decode_test" / "scores.json").read_text())
    assert scores["task"] == "level" and scores["metrics"]["mae"] == pytest.approx(0, abs=1e-3)
    report = write_report(exp).read_text()
    assert "## Level: toy" in report and "MAE (dB)" in report
    assert "|mono|rms|supervised|2|0.00 ± 0.00|" in report.splitlines()
    assert "- Level error, toy, mono (supervised): rms 0.00 ± 0.00 dB (2 seeds)" in report


def test_a_task_without_its_entry_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        runs.main(["--task", "level", "--mode", "supervised", "--format", "mono", "--dataset",
                   "toy", "--train_dir", "a", "--valid_dir", "b", "--test_dir", "c",
                   "--task_config", "x.yaml", "--exp_dir", str(tmp_path / "e")])
    assert "--task: invalid choice: 'level' (choose from 'cls', 'doa', 'event', 'reg', 'seld')" \
        in capsys.readouterr().err
