"""Atomic file writing and Kaldi-style key-value files (``wav.scp``, ``utt2label``...)."""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, Mapping, Tuple


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Readers never see a half-written file: an exception (or a kill) leaves at most a
    ``.tmp`` file behind, which the next run overwrites.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Open a temporary file for writing that replaces ``path`` when closed cleanly."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def read_kv(path, allow_empty_value: bool = False) -> Dict[str, str]:
    """Read a Kaldi-style ``key value...`` file into an ordered dict.

    Raises ``ValueError`` naming the file and line on a malformed or duplicated line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) == 1 and not allow_empty_value:
                raise ValueError(f"{path}:{lineno}: expected 'key value', got {line!r}")
            key = parts[0]
            if key in out:
                raise ValueError(f"{path}:{lineno}: duplicated key {key!r}")
            out[key] = parts[1].strip() if len(parts) > 1 else ""
    return out


def format_kv(items: Iterable[Tuple[str, object]]) -> str:
    """Format ``(key, value)`` pairs as Kaldi-style lines, sorted by key."""
    lines = []
    for key, value in sorted(items, key=lambda kv: kv[0]):
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"invalid key {key!r}: keys must be non-empty without spaces")
        lines.append(f"{key} {value}\n")
    return "".join(lines)


def write_kv(path, mapping: Mapping[str, object]) -> None:
    """Atomically write a Kaldi-style key-value file, sorted by key."""
    with atomic_open(path, encoding="utf-8") as f:
        f.write(format_kv(mapping.items()))
