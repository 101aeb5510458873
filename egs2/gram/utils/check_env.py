#!/usr/bin/env python3
"""Smoke check of the Python environment the recipes and tests run in.

    python egs2/gram/utils/check_env.py [--lock requirements.lock]

Imports what every stage needs (torch, torchaudio's compiled extension, ESPnet's task
machinery, pyroomacoustics, the plugin) and checks that torch and torchaudio are a matching
release pair. With ``--lock`` it also compares every installed version with the lock.
On failure it prints one message naming the packages and versions that do not fit, and
exits 1. Runs with the standard library only until the imports it checks.
"""

import argparse
import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

# (module to import, distributions whose versions explain a failure)
IMPORTS = (
    ("torch", ("torch",)),
    ("torchaudio", ("torchaudio", "torch")),
    ("torchaudio._extension", ("torchaudio", "torch")),  # loads libtorchaudio
    ("espnet2.tasks.abs_task", ("espnet", "torch", "torchaudio")),
    ("pyroomacoustics", ("pyroomacoustics", "numpy", "scipy")),
    ("espnet2_gram.tasks.gram", ("espnet2_gram", "espnet", "torch")),
)


def installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def release(version: str) -> str:
    """``2.11.0+cu130`` -> ``2.11.0``."""
    return version.split("+", 1)[0]


def read_lock(path: Path) -> dict:
    """``name==version`` pins of a lock file (markers and comments ignored)."""
    pins = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m is None:
            raise ValueError(f"{path}:{lineno}: expected 'name==version', got {line!r}")
        pins[canonical(m.group(1))] = m.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_imports() -> list:
    problems = []
    for module, dists in IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as e:  # any import failure is what this check reports
            versions = ", ".join(f"{d} {installed(d)}" for d in dists)
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            problems.append(f"import {module} failed ({versions}): {first_line}")
            break  # later imports fail for the same reason
    else:
        if not importlib.import_module("torchaudio._extension")._IS_TORCHAUDIO_EXT_AVAILABLE:
            problems.append(f"torchaudio {installed('torchaudio')}: compiled extension not found")
    return problems


def check_pair() -> list:
    torch_v, audio_v = installed("torch"), installed("torchaudio")
    if "not installed" in (torch_v, audio_v) or release(torch_v) == release(audio_v):
        return []
    return [
        f"torchaudio {audio_v} is not the release of torch {torch_v}: torchaudio's compiled "
        "extension only loads with the torch release of the same number"
    ]


def check_lock(lock: Path) -> list:
    problems = []
    for name, want in read_lock(lock).items():
        have = installed(name)
        if have != want:
            problems.append(f"{name} {have} where {lock.name} pins {want}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, help="also compare installed versions with this lock")
    args = parser.parse_args(argv)
    problems = check_pair() + check_imports()
    if args.lock is not None:
        if not args.lock.is_file():
            print(f"check_env: error: --lock {args.lock}: no such file", file=sys.stderr)
            return 1
        problems += check_lock(args.lock)
    if problems:
        print(
            "check_env: error: the Python environment does not fit together:\n  "
            + "\n  ".join(problems)
            + "\n  (tested set: requirements.lock; see README, 'Environment')",
            file=sys.stderr,
        )
        return 1
    print(f"check_env: ok (torch {installed('torch')}, torchaudio {installed('torchaudio')}, "
          f"espnet {installed('espnet')}, python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
