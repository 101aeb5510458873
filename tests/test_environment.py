"""The locked environment: requirements.lock against pyproject.toml, the smoke check
(egs2/gram/utils/check_env.py) and ensure_env.sh (run on a fake .venv: nothing is installed)."""

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
UTILS = REPO / "egs2" / "gram" / "utils"
LOCK = REPO / "requirements.lock"


def load_check_env():
    spec = importlib.util.spec_from_file_location("check_env", UTILS / "check_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_env = load_check_env()


def project_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


# --------------------------------------------------------------------------
# the lock


def test_lock_satisfies_every_requirement_of_pyproject():
    pins = check_env.read_lock(LOCK)
    env = default_environment()
    for req in project_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = check_env.canonical(req.name)
        assert name in pins, f"{LOCK.name} has no pin for {req}; run egs2/gram/utils/refresh_lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, which pyproject.toml's {req} excludes;"
            " run egs2/gram/utils/refresh_lock.sh"
        )


def test_lock_pins_a_loadable_torch_pair_and_the_installer():
    pins = check_env.read_lock(LOCK)
    assert check_env.release(pins["torch"]) == check_env.release(pins["torchaudio"])
    assert "uv" in pins  # ensure_env.sh installs this uv first
    # a lock line that is not name==version is refused, naming file and line
    bad = LOCK.parent / "tests" / "__bad.lock"
    try:
        bad.write_text("torch>=2\n")
        with pytest.raises(ValueError, match=r"__bad.lock:1: expected 'name==version'"):
            check_env.read_lock(bad)
    finally:
        bad.unlink()


def test_pyproject_excludes_the_torchaudio_release_that_does_not_load():
    (audio,) = [r for r in project_requirements() if r.name == "torchaudio"]
    (torch,) = [r for r in project_requirements() if r.name == "torch"]
    assert not audio.specifier.contains("2.11.1")
    assert not torch.specifier.contains("2.12.1")


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
    reason="only the project's own .venv is installed from the lock",
)
def test_this_environment_is_exactly_the_lock():
    assert check_env.check_lock(LOCK) == []


# --------------------------------------------------------------------------
# the smoke check's messages


def test_mismatched_torch_pair_is_named(monkeypatch):
    versions = {"torch": "2.12.1", "torchaudio": "2.11.1"}
    monkeypatch.setattr(check_env, "installed", lambda d: versions.get(d, "not installed"))
    (problem,) = check_env.check_pair()
    assert "torchaudio 2.11.1" in problem and "torch 2.12.1" in problem
    versions["torch"] = "2.11.1+cu130"
    assert check_env.check_pair() == []


def test_failed_import_names_module_and_versions(monkeypatch):
    monkeypatch.setattr(check_env, "IMPORTS", (("no_such_module_xyz", ("torch", "numpy")),))
    (problem,) = check_env.check_imports()
    assert "no_such_module_xyz" in problem
    assert f"torch {check_env.installed('torch')}" in problem and "numpy" in problem


def test_lock_mismatch_is_named(tmp_path, capsys, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# comment\nnumpy==0.0.1\nnot-a-package-xyz==1.0 ; python_version >= '3'\n")
    problems = check_env.check_lock(lock)
    assert f"numpy {check_env.installed('numpy')} where requirements.lock pins 0.0.1" in problems
    assert "not-a-package-xyz not installed where requirements.lock pins 1.0" in problems
    monkeypatch.setattr(check_env, "IMPORTS", ())
    assert check_env.main(["--lock", str(lock)]) == 1
    err = capsys.readouterr().err
    assert "does not fit together" in err and "numpy" in err
    assert check_env.main(["--lock", str(tmp_path / "missing.lock")]) == 1
    assert "--lock" in capsys.readouterr().err


# --------------------------------------------------------------------------
# ensure_env.sh on a fake .venv

FAKE_TOOL = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    echo "${0##*/} $*" >> "$(dirname "$0")/../calls"
    case "$*" in
      --version) echo "uv ${FAKE_UV_VERSION:-0.13.9}" ;;
      *check_env.py*) exit "${FAKE_CHECK_RC:-0}" ;;
      "pip sync"*)  # uv takes the venv's own .lock: ensure_env.sh must not hold it
        flock -w 2 "$(dirname "$0")/../.lock" true || { echo "venv .lock held" >&2; exit 7; } ;;
    esac
    exit 0
    """
)


def run(args, cwd, env=None):
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, "LC_ALL": "C", **(env or {})},
        capture_output=True, text=True, timeout=60,
    )


def ensure_env(root, **env):
    return run(["bash", str(UTILS / "ensure_env.sh")], cwd=root, env=env)


SYNC = "uv pip sync --compile-bytecode --python .venv/bin/python .venv/.requirements.txt"


def fingerprint(root, options="--compile-bytecode\n"):
    return hashlib.sha256((root / "pyproject.toml").read_bytes() + (root / "requirements.lock").read_bytes()
                          + options.encode()).hexdigest()


@pytest.fixture
def fake_root(tmp_path):
    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (root / "requirements.lock").write_text("numpy==2.0.0\nuv==0.13.9\n")
    for tool in ("python", "uv"):
        (root / ".venv" / "bin" / tool).write_text(FAKE_TOOL)
        (root / ".venv" / "bin" / tool).chmod(0o755)
    (root / ".venv" / ".installed").write_text(fingerprint(root) + "\n")
    return root


def calls(root):
    path = root / ".venv" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_up_to_date_env_does_nothing(fake_root):
    p = ensure_env(fake_root)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == "" and calls(fake_root) == []


def test_changed_lock_syncs_checks_then_stamps(fake_root):
    (fake_root / "requirements.lock").write_text("numpy==2.1.0\nuv==0.13.9\n")
    p = ensure_env(fake_root)
    assert p.returncode == 0, p.stderr
    log = calls(fake_root)
    sync = log.index(SYNC)
    check = log.index("python egs2/gram/utils/check_env.py --lock requirements.lock")
    assert sync < check
    # one sync installs the lock and the project: the project is never uninstalled
    assert (fake_root / ".venv" / ".requirements.txt").read_text() == (
        "numpy==2.1.0\nuv==0.13.9\n-e .\n")
    assert not any("pip install -q uv" in c for c in log)  # the pinned uv is there
    assert (fake_root / ".venv" / ".installed").read_text().strip() == fingerprint(fake_root)
    (fake_root / ".venv" / "calls").unlink()
    assert ensure_env(fake_root).returncode == 0 and calls(fake_root) == []


def test_other_uv_version_is_replaced_by_the_pinned_one(fake_root):
    (fake_root / ".venv" / ".installed").unlink()
    p = ensure_env(fake_root, FAKE_UV_VERSION="0.1.0")
    assert p.returncode == 0, p.stderr
    log = calls(fake_root)
    assert log.index("python -m pip install -q uv==0.13.9") < log.index(SYNC)


def test_env_installed_without_bytecode_is_synced_again(fake_root):
    """A .venv stamped before installs compiled bytecode is brought up to date once."""
    (fake_root / ".venv" / ".installed").write_text(fingerprint(fake_root, options="") + "\n")
    p = ensure_env(fake_root)
    assert p.returncode == 0, p.stderr
    assert "install options changed" in p.stdout and SYNC in calls(fake_root)
    assert (fake_root / ".venv" / ".installed").read_text().strip() == fingerprint(fake_root)


def test_the_project_env_imports_from_compiled_bytecode():
    """uv compiles nothing unless told; with PYTHONDONTWRITEBYTECODE every process would then
    compile torch and ESPnet anew. The environment the suite runs in carries their bytecode."""
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not running in the project's .venv")
    for name in ("torch", "espnet2", "inflect"):
        origin = Path(importlib.util.find_spec(name).origin)
        assert Path(importlib.util.cache_from_source(str(origin))).is_file(), name


def test_failed_smoke_check_leaves_no_stamp(fake_root):
    (fake_root / ".venv" / ".installed").unlink()
    p = ensure_env(fake_root, FAKE_CHECK_RC="1")
    assert p.returncode == 1 and "smoke check" in p.stderr
    assert not (fake_root / ".venv" / ".installed").exists()
    p = ensure_env(fake_root)  # fixed: the next call installs again and stamps
    assert p.returncode == 0 and (fake_root / ".venv" / ".installed").exists()


@pytest.mark.parametrize(
    "case, expect",
    [
        ("no_lock", "no requirements.lock"),
        ("no_pyproject", "no pyproject.toml"),
        ("lock_without_uv", "pins no uv"),
        ("argument", "unexpected argument"),
        ("sourced", "do not source"),
    ],
)
def test_bad_setups_are_refused(fake_root, case, expect):
    (fake_root / ".venv" / ".installed").unlink()
    args = ["bash", str(UTILS / "ensure_env.sh")]
    if case == "no_lock":
        (fake_root / "requirements.lock").unlink()
    elif case == "no_pyproject":
        (fake_root / "pyproject.toml").unlink()
    elif case == "lock_without_uv":
        (fake_root / "requirements.lock").write_text("numpy==2.0.0\n")
    elif case == "argument":
        args.append("--fast")
    elif case == "sourced":
        args = ["bash", "-c", f'. "{UTILS / "ensure_env.sh"}"']
    p = run(args, cwd=fake_root)
    assert p.returncode != 0 and expect in p.stderr
    assert not any("sync" in c for c in calls(fake_root))
