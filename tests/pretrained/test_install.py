"""The package as users install it: the built package (not the editable checkout) converts the
authors' weights with the paper configs it ships and runs a recipe stage from another
directory; the old ``python -m espnet2_gram.bin.benchmark_*`` commands still run."""

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from test_convert import TINY, make_reference
from fault_world import BANK

REPO = Path(__file__).resolve().parents[2]


def built_package(tmp_path) -> Path:
    """What the project's wheel installs (setuptools' build_py: the packages and their package
    data), built from a copy of the tracked files so that nothing in the checkout is written."""
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = REPO / name, source / name
        if src.is_file() and not src.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q",
                    "build_py", "--build-lib", str(site)], cwd=source, check=True,
                   capture_output=True)
    return site


def test_the_installed_package_converts_and_runs_a_stage(tmp_path):
    site = built_package(tmp_path)
    assert (site / "espnet2_gram" / "paper_configs" / "pretrain_foa.yaml").is_file()
    work = tmp_path / "work"  # outside the repository: no conf/, no checkout on the path
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}

    def python(*args):
        done = subprocess.run([sys.executable, *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = python("-c", "import espnet2_gram.pretrained.convert as cv, json;"
                   " print(json.dumps([cv.__file__, cv.target_config('foa')['frontend']]))")
    assert where.strip() == f'["{site / "espnet2_gram" / "pretrained" / "convert.py"}", "foa"]'
    ckpt = work / "gramt.ckpt"
    torch.save({"state_dict": make_reference("binaural", seed=5).state_dict()}, ckpt)
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = python("-m", "espnet2_gram.bin.convert_gramt", "--checkpoint", ckpt, "--format",
                 "binaural", "--out_dir", work / "packed", "--config", work / "tiny.yaml",
                 "--no_archive")
    assert "tensors mapped" in out and (work / "packed" / "config.yaml").is_file()
    (work / "bank.yaml").write_text(yaml.safe_dump(BANK))
    python("-m", "espnet2_gram.bin.make_rir_bank", "--config", work / "bank.yaml", "--out_dir",
           work / "bank", "--seed", 3, "--log_level", "WARNING")
    python("-m", "espnet2_gram.bin.make_rir_bank", "--out_dir", work / "bank", "--merge", "true")
    assert (work / "bank" / "meta.jsonl").read_text().count("\n") == BANK["bank"]["num_packs"]


def test_old_benchmark_commands_still_run():
    aliases = sorted((REPO / "espnet2_gram" / "bin").glob("benchmark_*.py"))
    assert aliases
    for alias in aliases:
        target = alias.stem.removeprefix("benchmark_")
        assert (REPO / "espnet2_gram" / "benchmarks" / f"{target}.py").is_file(), alias
    done = subprocess.run([sys.executable, "-m", "espnet2_gram.bin.benchmark_simulation",
                           "--help"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0 and "--out" in done.stdout, done.stderr[-2000:]
    assert "deprecated; use python -m espnet2_gram.benchmarks.simulation" in done.stderr
