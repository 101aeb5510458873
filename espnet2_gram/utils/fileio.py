"""Atomic file writing and Kaldi-style key-value files (``wav.scp``, ``utt2label``...)."""

import contextlib
import os
import random
import secrets
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Tuple


def _create_temp(path: Path) -> Path:
    """Create an empty, uniquely named ``.<name>.<random>.tmp`` beside ``path``.

    Unlike ``tempfile.mkstemp`` (always 0600), the file gets mode 0666 less the umask, like any
    other file the user creates, so a group can read what a run writes.
    """
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def remove_stale_temps(folder, pattern: str = "*") -> None:
    """Delete the temporary files a killed writer left for targets matching ``pattern``.

    Call it only where one writer owns those targets (a concurrent writer's file would vanish).
    """
    for tmp in Path(folder).glob(f".{pattern}.*.tmp"):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Readers never see a half-written file: an exception (or a kill) leaves at most a
    ``.tmp`` file behind, which ``remove_stale_temps`` clears.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
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


def write_once(path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True when this call created it.

    The complete file appears at once (hard link of a temporary file), so of two concurrent
    callers exactly one wins and the other reads the winner's whole text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


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


def numbered_fields(path: Path, what: str) -> Iterator[Tuple[str, List[str], str]]:
    """``(where, fields, line)`` of the non-blank lines of ``path`` (``where`` is
    ``file:line``); a missing file is an error naming it as a ``what`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if fields:
                yield f"{path}:{lineno}", fields, line.strip()


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


def shuffled_keys(src, out, seed: int) -> Path:
    """``src``'s lines in an order drawn from ``seed``, written atomically to ``out``: the key
    order of a training. ESPnet's ``unsorted`` batches are runs of consecutive keys and data
    dirs list them sorted, by class for most corpora, so each batch would hold one or two
    classes (and a probe's BatchNorm would normalise the class away)."""
    lines = [line for line in Path(src).read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as f:
        f.write("".join(f"{line}\n" for line in lines))
    return out
