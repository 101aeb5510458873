"""Fault matrix of the recipe's entry points: run.sh's options, the JOB=a:b ranges of the
job runners, and the downstream runs' inputs and interrupted trainings.

Every case runs in a subprocess (no ESPnet import); bad input must exit non-zero with a message
naming the option or file, and leave nothing behind. ``espnet2_gram.bin.downstream`` runs with
fake steps that play ESPnet's trainer (its per-epoch files, checkpoint.pth, --resume), inference
and scoring in a few milliseconds.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checkout import copy_checkout

REPO = Path(__file__).resolve().parents[2]
UTILS = REPO / "egs2" / "gram" / "utils"


def listing(root: Path) -> dict:
    """Every file and folder under root, with size and modification time."""
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def bash(args, cwd, env=None):
    return subprocess.run(["bash", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LC_ALL": "C", **(env or {})})


# ------------------------------------------------------------------------------------ run.sh

@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """A copy of the repository (tracked and new files), with a python3 that runs only the
    formats registry (standard library, no environment) and otherwise does nothing and fails
    unless PYTHON3_RC=0: bad options must be refused before the environment is touched."""
    root = copy_checkout(tmp_path_factory.mktemp("recipe"))
    trap = tmp_path_factory.mktemp("bin") / "python3"
    registry = f'[ "$1" = espnet2_gram/formats.py ] && exec {sys.executable} "$@"'
    trap.write_text(f"#!/bin/sh\n{registry}\n"
                    "echo 'python3 must not run here' >&2\nexit ${PYTHON3_RC:-97}\n")
    trap.chmod(0o755)
    env = {"GRAM_SKIP_ENSURE_ENV": "1", "PATH": f"{trap.parent}{os.pathsep}{os.environ['PATH']}"}
    return root, env


def run_recipe(recipe, args, env=None):
    root, base_env = recipe
    before = listing(root)
    proc = bash(["./run.sh", *args], cwd=root, env={**base_env, **(env or {})})
    assert listing(root) == before, "run.sh wrote files"
    return proc


RUN_SH_BAD = [
    # (arguments, words the one-line message must hold)
    (["--stage", "12"], ["--stage", "1 to 11", "'12'"]),
    (["--stage", "0"], ["--stage", "1 to 11", "'0'"]),
    (["--stage", "three"], ["--stage", "integer", "'three'"]),
    (["--stage", "-1"], ["--stage", "'-1'"]),
    (["--stage", "2.5"], ["--stage", "'2.5'"]),
    (["--stage", ""], ["--stage", "''"]),
    (["--stage=12"], ["--stage", "'12'"]),
    (["--stage", "+3"], ["--stage", "'+3'"]),
    (["--stop_stage", "12"], ["--stop_stage", "1 to 11"]),
    (["--stop_stage", "100"], ["--stop_stage", "'100'"]),
    (["--stop_stage", "0"], ["--stop_stage", "'0'"]),
    (["--stage", "5", "--stop_stage", "3"], ["--stop_stage", "--stage (5)", "'3'"]),
    (["--stage=9", "--stop_stage=8"], ["--stop_stage", "'8'"]),
    (["--nj", "two"], ["--nj", "integer", "'two'"]),
    (["--nj", "0"], ["--nj", ">= 1", "'0'"]),
    (["--nj", "-2"], ["--nj", "'-2'"]),
    (["--nj", ""], ["--nj", "''"]),
    (["--nj", "99999999999"], ["--nj", "'99999999999'"]),
    (["--nj", "2 3"], ["--nj", "'2 3'"]),
    (["--ngpu", "one"], ["--ngpu", ">= 0", "'one'"]),
    (["--ngpu", "-1"], ["--ngpu", "'-1'"]),
    (["--seed", "-5"], ["--seed", "'-5'"]),
    (["--seed", "1e3"], ["--seed", "'1e3'"]),
    (["--fs", "0"], ["--fs", ">= 1", "'0'"]),
    (["--fs", "16k"], ["--fs", "'16k'"]),
    (["--num_train_packs", "-1"], ["--num_train_packs", "'-1'"]),
    (["--num_eval_packs", "x"], ["--num_eval_packs", "'x'"]),
    (["--num_seld_train", "1.5"], ["--num_seld_train", "'1.5'"]),
    (["--num_seld_test", " 3"], ["--num_seld_test", "' 3'"]),
    (["--formats", "mono"], ["--formats", "binaural foa mic", "'mono'"]),
    (["--formats", "foa mic"], ["--formats mic", "no conf/demo/pretrain_mic.yaml"]),
    (["--formats", "foa ambisonics"], ["--formats", "'ambisonics'"]),
    (["--formats", "*"], ["--formats", "'*'"]),
    (["--mono_policy", "median"], ["--mono_policy", "first or mean", "'median'"]),
    (["--overwrite", "yes"], ["--overwrite", "true or false", "'yes'"]),
    (["--downstream_models", "wav2vec"], ["--downstream_models", "'wav2vec'"]),
    (["--downstream_models", "gram beats"], ["--downstream_models", "seldnet", "'beats'"]),
    (["--downstream_models", " "], ["--downstream_models", "at least one"]),
    (["--downstream_seeds", ""], ["--downstream_seeds", "one or more integer seeds", "''"]),
    (["--downstream_seeds", "0 one"], ["--downstream_seeds", "'0 one'"]),
    (["--logmel_pooling", "max"], ["--logmel_pooling", "'max'"]),
    (["--pretrain_snapshots", "0 12"], ["--pretrain_snapshots", "positive integers", "'0 12'"]),
    (["--pretrain_snapshots", "10%"], ["--pretrain_snapshots", "'10%'"]),
    (["--probe_layers", "-1"], ["--probe_layers", "integers >= 0", "'-1'"]),
    (["--probe_layers", "last"], ["--probe_layers", "'last'"]),
    (["--probe_grid", "lr=1e-3|1e-4"], ["--probe_grid", "'lr=1e-3|1e-4'"]),
    (["--probe_grid", "optim_conf.lr=1e-3||1e-4"], ["--probe_grid", "'optim_conf.lr=1e-3||1e-4'"]),
    (["--logmel_intensity", "yes"], ["--logmel_intensity", "'yes'"]),
    (["--loc_sets", "demo_train"], ["--loc_sets", "<set>:<renders per clip>", "'demo_train'"]),
    (["--loc_sets", "demo_train:0"], ["--loc_sets", "'demo_train:0'"]),
    (["--loc_rir_config", "conf/none.yaml"], ["--loc_rir_config", "'conf/none.yaml'"]),
    (["--downstream_modes", "train"], ["--downstream_modes", "probe finetune"]),
    (["--cls_conditions", "dry"], ["--cls_conditions", "'dry'"]),
    (["--nat_hear_models", "gram beats"], ["--nat_hear_models", "naive", "'beats'"]),
    (["--nat_hear_grid", "fast"], ["--nat_hear_grid", "hear or none", "'fast'"]),
    (["--nat_hear_snr", "5"], ["--nat_hear_snr", "two numbers", "'5'"]),
    (["--hear_sets", "demo:demo_train"], ["--hear_sets", "name:train:valid:test",
                                          "'demo:demo_train'"]),
    (["--bogus", "1"], ["unknown option --bogus"]),
    (["--stage"], ["--stage", "requires a value"]),
    (["--nj"], ["--nj", "requires a value"]),
    (["--preset"], ["--preset", "preset name"]),
    (["--preset="], ["--preset", "preset name"]),
    (["--preset", "tiny"], ["--preset tiny", "demo mini paper"]),
    (["--preset", "../conf/demo"], ["--preset ../conf/demo", "demo mini paper"]),
    (["--preset", "demo paper"], ["--preset demo paper", "expected one of"]),
    (["--stage", "2", "extra"], ["unexpected argument", "extra"]),
    # a value that looks like an option is not read as one
    (["--gram_args", "--preset", "--stage", "12"], ["--stage", "'12'"]),
]


@pytest.mark.parametrize("args,words", RUN_SH_BAD, ids=[" ".join(a) or "empty" for a, _ in RUN_SH_BAD])
def test_run_sh_rejects_bad_options_before_writing(recipe, args, words):
    proc = run_recipe(recipe, args)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert proc.stderr.startswith("run.sh: "), proc.stderr
    first = proc.stderr.splitlines()[0]
    for word in words:
        assert word in first, proc.stderr
    assert proc.stdout == ""


def test_run_sh_rejects_an_unknown_job_backend(recipe):
    proc = run_recipe(recipe, ["--stage", "10"], env={"GRAM_CMD_BACKEND": "sge"})
    assert proc.returncode != 0 and "GRAM_CMD_BACKEND" in proc.stderr and "'sge'" in proc.stderr
    assert "path.sh" not in proc.stderr  # refused before the environment is touched


def test_run_sh_accepts_good_options_and_normalises_integers(recipe):
    """Valid values pass (stage 10 with no downstream runs does nothing); 08 is eight. The
    stand-in python3 passes path.sh's environment check."""
    proc = run_recipe(recipe, ["--stage", "10", "--stop_stage=10", "--nj", "08", "--seed", "0"],
                      env={"PYTHON3_RC": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "stages 10..10 nj=8" in proc.stdout
    proc = run_recipe(recipe, ["--help"])
    assert proc.returncode == 0 and "Usage:" in proc.stdout


# ------------------------------------------------------------------------ JOB=a:b of the runners

RANGES_BAD = [
    ("JOB=1:two", "expected NAME=START:END"),
    ("JOB=two", "expected NAME=START:END"),
    ("JOB=1:", "expected NAME=START:END"),
    ("JOB=:3", "expected NAME=START:END"),
    ("JOB=", "expected NAME=START:END"),
    ("JOB=1:2:3", "expected NAME=START:END"),
    ("JOB=-1:2", "expected NAME=START:END"),
    ("JOB=1.5:2", "expected NAME=START:END"),
    ("JOB=a:b", "expected NAME=START:END"),
    ("JOB=1:9999999999", "expected NAME=START:END"),
    ("JOB=0:2", "start at 1"),
    ("JOB=0", "start at 1"),
    ("JOB=3:1", "START is above END"),
    ("N=5:4", "START is above END"),
]


@pytest.mark.parametrize("runner", ["run_local.sh", "run_slurm.sh"])
@pytest.mark.parametrize("job_range,reason", RANGES_BAD, ids=[r for r, _ in RANGES_BAD])
def test_runners_reject_bad_job_ranges(tmp_path, runner, job_range, reason):
    """`--nj two` used to run the command with a log file named 'JOB=1:two'."""
    proc = bash([UTILS / runner, job_range, "log/x.JOB.log", "touch", "ran.JOB"], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{runner}: error: job range '{job_range}'"), proc.stderr
    assert reason in proc.stderr
    assert list(tmp_path.iterdir()) == []


RUNNER_BAD = [
    (["JOB=1:2", "JOB=1:2", "l.JOB.log", "true"], "more than one job range"),
    (["--max_jobs_run", "two", "JOB=1:2", "l.JOB.log", "true"], "--max_jobs_run"),
    (["--num_threads", "0", "l.log", "true"], "--num_threads"),
    (["JOB=1:2", "same.log", "true"], "does not contain 'JOB'"),
]


@pytest.mark.parametrize("args,words", RUNNER_BAD, ids=[a[0] for a, _ in RUNNER_BAD])
def test_run_local_rejects_bad_usage(tmp_path, args, words):
    proc = bash([UTILS / "run_local.sh", *args], cwd=tmp_path)
    assert proc.returncode == 1 and words in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ downstream runs

# Fake steps for espnet2_gram.bin.downstream (run in a subprocess): the trainer plays ESPnet's
# (one checkpoint.pth, <N>epoch.pth, latest.pth and best link per epoch, --resume from
# checkpoint.pth, killed by SIGKILL after FAKE_KILL_AT epochs if set), inference records the
# model file it was given and scoring writes a scores.json naming that model.
FAKE_STEPS = textwrap.dedent("""\
    import json, math, os, signal, sys
    from pathlib import Path

    from espnet2_gram.downstream.runs import main, step_modules
    from espnet2_gram.utils.cli import run, setup_logging

    def log(name, argv):
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(json.dumps([name, argv]) + "\\n")

    def train(name, argv):
        log(name, argv)
        opt = lambda o: argv[argv.index(o) + 1]
        out = Path(opt("--output_dir"))
        ckpt = out / "checkpoint.pth"
        start = int(ckpt.read_text()) if opt("--resume") == "true" and ckpt.exists() else 0
        print("resumed at epoch", start)
        best = {"cls": "valid.acc.best.pth", "doa": "valid.loss.best.pth",
                "seld": "train.loss.best.pth"}[name[:-6]]
        lr = next((float(a[3:]) for a in argv if a.startswith("lr=")), 1e-3)
        acc = 1 - abs(math.log10(lr) + 3.5) / 10  # best at lr 3.2e-4
        for epoch in range(start + 1, int(os.environ.get("FAKE_MAX_EPOCH", "2")) + 1):
            print(f"{epoch}epoch results: [train] loss=0.5, [valid] acc={acc:.4f}, loss=0.5")
            (out / f"{epoch}epoch.pth").write_text(str(epoch))
            ckpt.write_text(str(epoch))
            for link in ("latest.pth", best):
                (out / link).unlink(missing_ok=True)
                if not os.environ.get("FAKE_NO_BEST") or link == "latest.pth":
                    (out / link).symlink_to(f"{epoch}epoch.pth")
            if epoch == int(os.environ.get("FAKE_KILL_AT", "0")):
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        (out / "config.yaml").write_text("fake: true\\n")
        if os.environ.get("FAKE_TRAIN_RC"):
            sys.exit(int(os.environ["FAKE_TRAIN_RC"]))

    def infer(name, argv):
        log(name, argv)
        opt = lambda o: argv[argv.index(o) + 1]
        model = opt("--model_file" if "--model_file" in argv else "--classification_model_file")
        out = Path(opt("--output_dir"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_used").write_text(os.path.realpath(model))

    def score(name, argv):
        log(name, argv)
        out = Path(argv[argv.index("--out_dir") + 1])
        model = Path((out / "model_used").read_text()).name
        (out / "scores.json").write_text(json.dumps({"metrics": {"model": model}}))

    kinds = {"train": train, "inference": infer, "score": score}
    steps = {name: (lambda argv, n=name, k=kind: k(n, argv))
             for name in step_modules() for kind_name, kind in kinds.items() if kind_name in name}
    setup_logging()
    run(lambda argv: main(argv, steps), sys.argv[1:])
""")


class Downstream:
    """A tiny probe layout (cached embeddings of three splits) and the runner to run on it."""

    def __init__(self, root: Path):
        self.root = root
        self.script = root / "fake_downstream.py"
        self.script.write_text(FAKE_STEPS)
        self.log = root / "calls.jsonl"
        self.data = root / "dump"
        for split in ("train", "valid", "test"):
            d = self.data / split
            d.mkdir(parents=True)
            (d / "feats.ark").write_bytes(b"\0" * 16)
            (d / "feats.scp").write_text(f"u1 {d}/feats.ark:5\nu2 {d}/feats.ark:11\n")
            (d / "wav.scp").write_text(f"u1 {d}/u1.wav\nu2 {d}/u2.wav\n")
            (d / "utt2label").write_text("u1 dog\nu2 cat\n")
            (d / "utt2doa").write_text("u1 10 0 1.5\nu2 -20 5 1.5\n")
            (d / "tracks.scp").write_text(f"u1 {d}/t1.npy\nu2 {d}/t2.npy\n")
            (d / "embeddings.json").write_text(json.dumps({"dim": 4}))
        (self.data / "chunks" / "metadata").mkdir(parents=True)
        self.packed = root / "packed"
        self.packed.mkdir()
        (self.packed / "config.yaml").write_text("frontend: foa\n")
        (self.packed / "model.pth").write_bytes(b"w")
        self.config = root / "conf" / "cls_probe.yaml"
        self.config.parent.mkdir()
        self.config.write_text("max_epoch: 2\n")
        self.exp = root / "exp" / "run"

    def args(self, **over):
        opts = {"task": "cls", "mode": "probe", "model": "gram", "format": "foa",
                "dataset": "toy", "train_dir": self.data / "train",
                "valid_dir": self.data / "valid", "test_dir": self.data / "test",
                "task_config": self.config, "exp_dir": self.exp}
        opts.update(over)
        return [a for k, v in opts.items() if v is not None for a in (f"--{k}", str(v))]

    def run(self, *extra, env=None, **over):
        self.log.unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, str(self.script), *self.args(**over), *map(str, extra)],
            cwd=self.root, capture_output=True, text=True, timeout=120,
            env={**os.environ, "FAKE_LOG": str(self.log), **(env or {})})

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def trainings(self):
        return [argv for name, argv in self.calls() if name.endswith("_train")]

    def scores(self, exp=None):
        exp = exp or self.exp
        return json.loads((exp / "decode_test" / "scores.json").read_text())["metrics"]


@pytest.fixture
def ds(tmp_path):
    return Downstream(tmp_path)


def _remove(path):
    path.unlink()


def _empty(path):
    path.write_text("")


def _drop_dir(path):
    shutil.rmtree(path)


# (name, change to the layout: (relative path, action), options, words of the message)
DOWNSTREAM_BAD = [
    ("train dir missing", ("dump/train", _drop_dir), {}, ["--train_dir", "dump/train"]),
    ("valid dir missing", ("dump/valid", _drop_dir), {}, ["--valid_dir", "dump/valid"]),
    ("test dir missing", ("dump/test", _drop_dir), {}, ["--test_dir", "dump/test"]),
    ("train list missing", ("dump/train/feats.scp", _remove), {}, ["dump/train/feats.scp"]),
    ("train list empty", ("dump/train/feats.scp", _empty), {}, ["dump/train/feats.scp", "empty"]),
    ("valid labels empty", ("dump/valid/utt2label", _empty), {}, ["dump/valid/utt2label"]),
    ("test labels missing", ("dump/test/utt2label", _remove), {}, ["dump/test/utt2label"]),
    ("doa labels missing", ("dump/train/utt2doa", _remove), {"task": "doa"},
     ["dump/train/utt2doa"]),
    ("seld tracks missing", ("dump/valid/tracks.scp", _remove),
     {"task": "seld", "num_classes": 3, "chunk_dir": "dump/chunks"}, ["dump/valid/tracks.scp"]),
    ("embeddings missing", ("dump/test/feats.ark", _remove), {}, ["dump/test/feats.ark"]),
    ("embeddings description missing", ("dump/valid/embeddings.json", _remove), {},
     ["dump/valid/embeddings.json"]),
    ("config missing", ("conf/cls_probe.yaml", _remove), {}, ["conf/cls_probe.yaml"]),
    ("finetune audio list missing", ("dump/train/wav.scp", _remove), {"mode": "finetune"},
     ["dump/train/wav.scp"]),
    ("finetune without packed model", None, {"mode": "finetune", "packed_model": ""},
     ["--packed_model"]),
    ("packed model missing", ("packed/model.pth", _remove), {"mode": "finetune"},
     ["packed/model.pth"]),
    ("bad ngpu", None, {"ngpu": "x"}, ["--ngpu", "'x'"]),
    ("negative seed", None, {"seed": "-1"}, ["--seed", "'-1'"]),
    ("bad pooling", None, {"pooling": "max"}, ["--pooling", "'max'"]),
    ("cls supervised", None, {"mode": "supervised"}, ["--mode supervised"]),
    ("bad task", None, {"task": "asr"}, ["--task", "asr"]),
    ("bad mode", None, {"mode": "train"}, ["--mode train"]),
    ("no exp dir", None, {"exp_dir": None}, ["--exp_dir"]),
    ("seld without classes", None, {"task": "seld", "chunk_dir": "dump/chunks"},
     ["--num_classes", "''"]),
    ("seld zero classes", None, {"task": "seld", "num_classes": 0, "chunk_dir": "dump/chunks"},
     ["--num_classes", "'0'"]),
    ("seld chunks missing", None, {"task": "seld", "num_classes": 3, "chunk_dir": "dump/none"},
     ["--chunk_dir", "dump/none"]),
    ("bad multilabel", None, {"multilabel": "maybe"}, ["--multilabel", "maybe"]),
    ("grid axis without values", None, {"grid": "optim_conf.lr="}, ["--grid", "optim_conf.lr="]),
    ("grid axis without group", None, {"grid": "lr=1e-3|1e-4"}, ["--grid", "'lr=1e-3|1e-4'"]),
    ("seld grid", None, {"task": "seld", "num_classes": 3, "chunk_dir": "dump/chunks",
                         "grid": "optim_conf.lr=1e-3|1e-4"}, ["--grid", "no validation split"]),
    ("unknown option", None, {"epochs": "3"}, ["--epochs"]),
]


@pytest.mark.parametrize("name,change,over,words", DOWNSTREAM_BAD,
                         ids=[c[0] for c in DOWNSTREAM_BAD])
def test_downstream_rejects_bad_inputs_before_writing(ds, name, change, over, words):
    if change:
        change[1](ds.root / change[0])
    over = {"packed_model": ds.packed, **over}
    if over.get("chunk_dir"):
        over["chunk_dir"] = ds.root / over["chunk_dir"]
    before = listing(ds.root)
    proc = ds.run(**over)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "ERROR" in last or "error:" in last, proc.stderr
    for word in words:
        assert word in last, proc.stderr
    assert listing(ds.root) == before and not ds.exp.exists() and ds.calls() == []


def test_downstream_finished_run_is_scored_once(ds):
    proc = ds.run()
    assert proc.returncode == 0, proc.stderr
    assert ds.scores() == {"model": "2epoch.pth"}
    assert (ds.exp / "training.done").read_text() == (ds.exp / "inputs.md5").read_text()
    proc = ds.run()
    assert proc.returncode == 0 and "scored already" in proc.stderr and ds.calls() == []


def test_downstream_resumes_a_run_killed_mid_training(ds):
    """The process dies (SIGKILL) in epoch 2 of 2: nothing is scored; the re-run resumes
    from checkpoint.pth and scores the final model."""
    proc = ds.run(env={"FAKE_KILL_AT": "1"})
    assert proc.returncode == -9
    assert (ds.exp / "valid.acc.best.pth").exists()  # what the old check took for "trained"
    assert not (ds.exp / "training.done").exists() and not (ds.exp / "decode_test").exists()
    proc = ds.run()
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr
    (train,) = ds.trainings()
    assert train[train.index("--resume") + 1] == "true"
    assert "resumed at epoch 1" in (ds.exp / "train.log").read_text()
    assert ds.scores() == {"model": "2epoch.pth"}


def test_downstream_never_scores_an_interrupted_run_directory(ds):
    """What ESPnet leaves after epoch 1 of 2 (checkpoint, epoch model, best and latest links),
    plus a scores.json an older version made from it: trained on and scored again."""
    assert ds.run(env={"FAKE_MAX_EPOCH": "1"}).returncode == 0
    (ds.exp / "training.done").unlink()
    assert ds.scores() == {"model": "1epoch.pth"}
    proc = ds.run()
    assert proc.returncode == 0, proc.stderr
    assert "scored already" not in proc.stderr and len(ds.trainings()) == 1
    assert ds.scores() == {"model": "2epoch.pth"}
    assert (ds.exp / "training.done").exists()


def test_downstream_retrains_when_the_inputs_change_after_a_finished_run(ds):
    """A finished run's marker is stale once the config changes: trained from scratch."""
    assert ds.run().returncode == 0
    old = (ds.exp / "training.done").read_text()
    ds.config.write_text("max_epoch: 2\noptim: sgd\n")
    proc = ds.run(env={"FAKE_MAX_EPOCH": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "inputs changed" in proc.stderr and "resuming" not in proc.stderr
    assert "resumed at epoch 0" in (ds.exp / "train.log").read_text()
    assert not (ds.exp / "2epoch.pth").exists() and ds.scores() == {"model": "1epoch.pth"}
    assert (ds.exp / "training.done").read_text() != old


def test_downstream_retrains_an_interrupted_run_whose_inputs_changed(ds):
    """Here the training labels change (the data lists stay): the checkpoint is not reused."""
    ds.run(env={"FAKE_KILL_AT": "1"})
    (ds.data / "train" / "utt2label").write_text("u1 cat\nu2 dog\n")
    proc = ds.run()
    assert proc.returncode == 0, proc.stderr
    assert "inputs changed" in proc.stderr
    assert "resumed at epoch 0" in (ds.exp / "train.log").read_text()


@pytest.mark.parametrize("env,words", [
    ({"FAKE_TRAIN_RC": "3"}, ["training failed", "cls_train", "train.log"]),
    ({"FAKE_NO_BEST": "1"}, ["valid.acc.best.pth", "train.log"]),
], ids=["trainer fails", "no best model"])
def test_downstream_failed_training_leaves_no_marker_or_scores(ds, env, words):
    proc = ds.run(env=env)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stderr
    assert not (ds.exp / "training.done").exists() and not (ds.exp / "decode_test").exists()
    assert not list(ds.exp.glob("*.tmp"))


def test_downstream_run_list_shares_runs_and_reports_failures(ds):
    """A run list: each of two processes takes every second run; a run that fails does not stop
    the others, and the process ends with an error naming it."""
    lines = []
    for seed in range(3):
        exp = ds.root / "exp" / f"run_seed{seed}"
        lines.append(" ".join(ds.args(exp_dir=exp, seed=seed)))
    bad = ds.args(exp_dir=ds.root / "exp" / "bad", task_config=ds.root / "nowhere.yaml")
    lines.append(" ".join(bad))
    runs = ds.root / "runs.txt"
    runs.write_text("\n".join(lines) + "\n")
    procs = [subprocess.run([sys.executable, str(ds.script), "--runs", str(runs), "--job",
                             str(j), "--num_jobs", "2"], cwd=ds.root, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "FAKE_LOG": str(ds.log)})
             for j in (1, 2)]
    assert procs[0].returncode == 0, procs[0].stderr         # runs 1 and 3
    assert procs[1].returncode == 1                          # runs 2 and 4 (bad)
    assert "1 of 2 runs failed" in procs[1].stderr and "nowhere.yaml" in procs[1].stderr
    for seed in range(3):
        exp = ds.root / "exp" / f"run_seed{seed}"
        assert ds.scores(exp) == {"model": "2epoch.pth"}
    seeds = sorted(t[t.index("--seed") + 1] for t in ds.trainings())
    assert seeds == ["0", "1", "2"]
    assert not (ds.root / "exp" / "bad").exists()


def test_downstream_grid_keeps_the_point_best_on_validation(ds):
    """HEAR's protocol: one model per grid point, the best validation accuracy kept and scored
    (the fake trainer's accuracy peaks at lr 3.2e-4); head options go to the task's head."""
    proc = ds.run(grid="optim_conf.lr=1e-3|3.2e-4|1e-4 head.hidden_sizes=[8]|[8,8]")
    assert proc.returncode == 0, proc.stderr
    trainings = ds.trainings()
    assert len(trainings) == 6
    assert all(t[t.index("--encoder_conf", t.index("--token_list")) + 1].startswith("hidden_sizes=")
               for t in trainings)
    grid = json.loads((ds.exp / "grid.json").read_text())
    assert grid["criterion"] == "valid acc" and grid["chosen"] == 2
    assert grid["points"][2]["options"] == ["--optim_conf", "lr=3.2e-4",
                                            "--encoder_conf", "hidden_sizes=[8]"]
    assert ds.scores() == {"model": "valid.acc.best.pth"}  # the chosen point's model, copied
    assert (ds.exp / "valid.acc.best.pth").read_text() == "2"
    assert "grid point 2 of 6 chosen" in proc.stderr
    proc = ds.run(grid="optim_conf.lr=1e-3|3.2e-4|1e-4 head.hidden_sizes=[8]|[8,8]")
    assert "scored already" in proc.stderr and ds.calls() == []


def test_downstream_claims_share_a_run_list_dynamically(ds):
    """With --claims, two processes started together take the next unclaimed run each: every
    run is done exactly once, whatever each run costs."""
    lines = [" ".join(ds.args(exp_dir=ds.root / "exp" / f"c{seed}", seed=seed))
             for seed in range(5)]
    runs = ds.root / "runs.txt"
    runs.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "FAKE_LOG": str(ds.log)}
    procs = [subprocess.Popen([sys.executable, str(ds.script), "--runs", str(runs), "--claims",
                               str(ds.root / "claims"), "--job", str(j), "--num_jobs", "2"],
                              cwd=ds.root, env=env, stderr=subprocess.PIPE, text=True)
             for j in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    seeds = sorted(int(t[t.index("--seed") + 1]) for t in ds.trainings())
    assert seeds == [0, 1, 2, 3, 4]                     # each run trained once
    assert sorted(p.name for p in (ds.root / "claims").iterdir()) == ["0", "1", "2", "3", "4"]
    for seed in range(5):
        assert ds.scores(ds.root / "exp" / f"c{seed}") == {"model": "2epoch.pth"}
