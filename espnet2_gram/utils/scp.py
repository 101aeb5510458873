"""Kaldi-style scp files read without running commands from them.

kaldiio runs an entry such as ``utt cmd |`` (or ``utt | cmd``) in a shell, and reads standard
input for ``-``. Where the plugin reads scp files (data given to its entry points, scene noise
lists, RIR banks) such entries are refused, naming the file and line, unless the environment
variable ``ESPNET2_GRAM_ALLOW_PIPES=1`` allows them for a run whose scp files you trust.
"""

import io
import os
import re
from pathlib import Path
from typing import Iterable

ALLOW_PIPES_ENV = "ESPNET2_GRAM_ALLOW_PIPES"
# ESPnet data types whose values are file paths.
PATH_TYPES = ("kaldi_ark", "sound", "multi_columns_sound", "variable_columns_sound", "npy")


class UnsafeScpError(ValueError):
    """An scp entry that would run a command or read standard input; names file and line."""


def pipes_allowed() -> bool:
    return os.environ.get(ALLOW_PIPES_ENV, "").lower() in ("1", "true", "yes")


def is_command(value: str) -> bool:
    """True for a value that kaldiio would run as a command or read from standard input
    (``-``, also with an ``:offset`` or ``[slice]`` suffix)."""
    value = value.strip()
    target = re.sub(r"(:\d+)?(\[[^\]]*\])?$", "", value)
    return value.startswith("|") or value.endswith("|") or target == "-"


def refuse_commands(lines: Iterable[str], where: str) -> None:
    """Raise ``UnsafeScpError`` at the first command entry of ``lines`` (unless allowed)."""
    if pipes_allowed():
        return
    for lineno, line in enumerate(lines, 1):
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2 and is_command(parts[1]):
            raise UnsafeScpError(
                f"{where}:{lineno}: entry {parts[0]!r} is a shell command or standard input"
                f" ({parts[1]!r}), which is not run; give file paths, or set"
                f" {ALLOW_PIPES_ENV}=1 if you trust this file")


def check_scp(path, option: str = None) -> None:
    """``path`` exists and has no command entry (``option``: what named it, for messages)."""
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file")
    with open(path, encoding="utf-8") as f:
        refuse_commands(f, where)


def check_data_file(path, data_type: str, option: str = None) -> None:
    """:func:`check_scp` for an ESPnet data file whose values are file paths (by type)."""
    if data_type in PATH_TYPES:
        check_scp(path, option)


def load_scp(stream, name) -> object:
    """``kaldiio.load_scp`` of a text stream after refusing command entries (``name``: the
    file it came from, for the message)."""
    import kaldiio

    text = stream.read()
    refuse_commands(text.splitlines(), str(name))
    return kaldiio.load_scp(io.StringIO(text))
