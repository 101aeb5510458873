"""Kaldi-style data directories: ``wav.scp`` plus per-utterance files with the same keys.

Files used by this project (see DESIGN.md): ``wav.scp``, ``utt2label`` (space-separated labels
when multi-label), ``text``, ``utt2doa`` ("azimuth elevation distance", degrees, degrees, metres),
``utt2num_samples``, ``utt2fs``, ``utt2snr``.
"""

from pathlib import Path
from typing import Dict, Mapping

from espnet2_gram.utils.fileio import format_kv, read_kv

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
        counts = ", ".join(f"{name}: {len(tables[name])}" for name in names)
        raise DataDirError(f"{prefix}utterance ids disagree ({counts}): " + "; ".join(problems))


def _is_per_utterance_file(path: Path) -> bool:
    return path.is_file() and (path.name.startswith("utt2") or path.name in ("wav.scp", "text"))


def write_data_dir(out_dir, tables: Mapping[str, Mapping[str, object]]) -> Path:
    """Write ``{file name: {utt: value}}`` as a data directory, all with the same keys.

    Every file is first written under a temporary name, then all are renamed into place,
    and per-utterance files of an earlier run that are not rewritten are removed, so the
    directory never mixes two runs. Other content (e.g. an audio folder) is left alone.
    """
    out_dir = Path(out_dir)
    if "wav.scp" not in tables:
        raise DataDirError(f"{out_dir}: a data directory needs wav.scp")
    check_same_keys(tables, str(out_dir))
    if not tables["wav.scp"]:
        raise DataDirError(f"{out_dir}: no utterances to write")
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    for name, table in tables.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(format_kv((k, v) for k, v in table.items()), encoding="utf-8")
        staged.append((tmp, out_dir / name))
    for path in out_dir.iterdir():
        if _is_per_utterance_file(path) and path.name not in tables:
            path.unlink()
    for tmp, path in staged:
        tmp.replace(path)
    return out_dir


def read_data_dir(data_dir, names=None) -> Dict[str, Dict[str, str]]:
    """Read ``wav.scp`` and the named (default: all present) per-utterance files."""
    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").is_file():
        raise DataDirError(f"{data_dir}: not a data directory (no wav.scp)")
    if names is None:
        names = sorted(
            p.name for p in data_dir.iterdir()
            if _is_per_utterance_file(p) and p.name != "wav.scp"
        )
    tables = {"wav.scp": read_kv(data_dir / "wav.scp")}
    for name in names:
        tables[name] = read_kv(data_dir / name, allow_empty_value=(name == "text"))
    check_same_keys(tables, str(data_dir))
    if not tables["wav.scp"]:
        raise DataDirError(f"{data_dir}: wav.scp is empty")
    return tables
