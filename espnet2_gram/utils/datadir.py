"""Kaldi-style data directories: ``wav.scp`` plus per-utterance files with the same keys.

Files used by this project (see DESIGN.md): ``wav.scp``, ``utt2label`` (space-separated labels
when multi-label), ``text``, ``utt2doa`` ("azimuth elevation distance", degrees, degrees, metres),
``utt2num_samples``, ``utt2fs``, ``utt2snr``.
"""

import shutil
from pathlib import Path
from typing import Dict, Mapping

from .fileio import read_kv, write_kv

MAX_LISTED_MISMATCHES = 5


class DataDirError(ValueError):
    """A data directory that breaks the contract; the message names the files."""


def check_same_keys(tables: Mapping[str, Mapping[str, object]], where: str = "") -> None:
    """Raise ``DataDirError`` listing the first keys that are not in every table."""
    names = list(tables)
    if len(names) < 2:
        return
    ref_name = names[0]
    ref = set(tables[ref_name])
    problems = []
    for name in names[1:]:
        keys = set(tables[name])
        missing = sorted(ref - keys)[:MAX_LISTED_MISMATCHES]
        extra = sorted(keys - ref)[:MAX_LISTED_MISMATCHES]
        if missing:
            problems.append(f"{name} lacks {missing} (present in {ref_name})")
        if extra:
            problems.append(f"{name} has {extra} (absent from {ref_name})")
    if problems:
        prefix = f"{where}: " if where else ""
        raise DataDirError(prefix + "utterance ids disagree: " + "; ".join(problems))


def write_data_dir(out_dir, tables: Mapping[str, Mapping[str, object]]) -> Path:
    """Write ``{file name: {utt: value}}`` as a data directory, all with the same keys.

    The directory is built beside ``out_dir`` and renamed into place, so an interrupted
    run never leaves a partial directory behind.
    """
    out_dir = Path(out_dir)
    if "wav.scp" not in tables:
        raise DataDirError(f"{out_dir}: a data directory needs wav.scp")
    check_same_keys(tables, str(out_dir))
    if not tables["wav.scp"]:
        raise DataDirError(f"{out_dir}: no utterances to write")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, table in tables.items():
        write_kv(tmp / name, table)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def read_data_dir(data_dir, names=None) -> Dict[str, Dict[str, str]]:
    """Read ``wav.scp`` and the named (default: all present) per-utterance files."""
    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").is_file():
        raise DataDirError(f"{data_dir}: not a data directory (no wav.scp)")
    if names is None:
        names = sorted(
            p.name for p in data_dir.iterdir()
            if p.is_file() and (p.name.startswith("utt2") or p.name == "text")
        )
    tables = {"wav.scp": read_kv(data_dir / "wav.scp")}
    for name in names:
        tables[name] = read_kv(data_dir / name, allow_empty_value=(name == "text"))
    check_same_keys(tables, str(data_dir))
    if not tables["wav.scp"]:
        raise DataDirError(f"{data_dir}: wav.scp is empty")
    return tables
