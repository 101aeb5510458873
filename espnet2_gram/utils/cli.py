"""Shared command-line plumbing for ``python -m espnet2_gram.bin.*`` entry points."""

import argparse
import contextlib
import dataclasses
import logging
import pickle
import sys
import zipfile
from pathlib import Path

import yaml

# Errors caused by the user's input or the machine (a missing or unreadable file, a full disk,
# a truncated archive or pickle): reported in one line, exit code 1, no traceback. Loaders
# re-raise what they catch as ValueError naming the file; other exceptions stay tracebacks.
USER_ERRORS = (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError,
               pickle.UnpicklingError, yaml.YAMLError)


def str2bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )


def load_yaml(path) -> dict:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"--config {path}: invalid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping at the top level")
    return data


def build_dataclass(cls, mapping: dict, section: str):
    """Instantiate ``cls`` from a config section; an unknown key is a clear error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ValueError(f"config section {section!r}: unknown keys {unknown}; known: {sorted(names)}")
    return cls(**mapping)


@contextlib.contextmanager
def naming(path):
    """Re-raise an ``OSError`` that names no file (a full disk, a quota) naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


def run(main, argv=None) -> None:
    """Call ``main(argv)``; user errors end the process with a one-line message."""
    try:
        main(argv)
    except USER_ERRORS as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        print(f"ERROR: {'; '.join(lines) or type(e).__name__}", file=sys.stderr)
        sys.exit(1)
