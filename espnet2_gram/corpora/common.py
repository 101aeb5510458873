"""Shared steps of the corpus preparers: finding the corpus, listing audio, reading CSVs,
and writing Kaldi-style data directories with ``utt2num_samples`` and ``utt2fs``."""

import csv
import logging
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import soundfile as sf

from espnet2_gram.utils.datadir import check_same_keys, write_data_dir
from espnet2_gram.corpora.download import download_and_extract

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SRC_OPTION = "src_dir"
MAX_LOGGED_SKIPS = 10


def corpus_dir(src_dir, download: bool, download_dir, urls: Sequence[str], name: str) -> Path:
    """Return the local copy of a corpus: ``src_dir``, or ``<download_dir>/<name>``
    after downloading and extracting ``urls`` there when ``download`` is true."""
    if src_dir:
        src = Path(src_dir)
        if not src.is_dir():
            raise FileNotFoundError(f"--{SRC_OPTION} {src}: no such directory")
        return src.resolve()
    if not download:
        raise ValueError(f"{name}: give --{SRC_OPTION} <local copy> or --download true")
    dest = Path(download_dir) / name
    for url in urls:
        download_and_extract(url, dest, SRC_OPTION)
    return dest.resolve()


def find_corpus_root(base: Path, marker: str, nested: Sequence[str] = ()) -> Path:
    """Return ``base`` or ``base/<one of nested>``, whichever holds ``marker``."""
    for root in [base, *(base / n for n in nested)]:
        if (root / marker).exists():
            return root
    where = " or ".join(str(Path(n) / marker) for n in ["", *nested])
    raise FileNotFoundError(f"{base}: no {where} (is --{SRC_OPTION} the corpus folder?)")


def find_audio(root: Path, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> List[Path]:
    """Audio files under ``root`` at any depth, sorted, hidden files excluded."""
    exts = {e.lower() for e in extensions}
    return sorted(
        p for p in Path(root).rglob("*")
        if p.suffix.lower() in exts and not p.name.startswith(".") and p.is_file()
    )


def utt_id(*parts: str) -> str:
    """Join ``parts`` with '_' into an utterance id, whitespace replaced by '_'."""
    return re.sub(r"\s+", "_", "_".join(parts))


def index_files(paths: Sequence[Path], make_id: Callable[[Path], str]) -> Dict[str, Path]:
    """Map ``make_id(path)`` to each path; ``ValueError`` naming both files on a clash."""
    out: Dict[str, Path] = {}
    for path in paths:
        key = make_id(path)
        if key in out:
            raise ValueError(f"{out[key]} and {path} give the same utterance id {key!r}")
        out[key] = path
    return out


def iter_csv(path: Path, header: Sequence[str] = ()) -> Iterator[Tuple[int, object]]:
    """Yield ``(line number, row)`` from a CSV file, skipping blank lines.

    With ``header``, the first line must name those columns and rows are dicts;
    without, rows are lists of stripped fields and lines starting with '#' are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        if header:
            reader = csv.DictReader(f, skipinitialspace=True)
            missing = [c for c in header if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}:1: header lacks column(s) {missing}")
            for row in reader:
                if None in row.values():
                    raise ValueError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames)}"
                                     f" fields, got {sum(v is not None for v in row.values())}")
                yield reader.line_num, row
        else:
            reader = csv.reader(f, skipinitialspace=True)
            for row in reader:
                if row and row[0].lstrip().startswith("#"):
                    continue
                row = [v.strip() for v in row]
                if any(row):
                    yield reader.line_num, row


def parse_field(path: Path, lineno: int, value, convert: Callable, what: str,
                check: Optional[Callable] = None):
    """``convert(value)``, or ``ValueError`` naming the file, line and field."""
    try:
        out = convert(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}:{lineno}: bad {what} {value!r}") from None
    if check is not None and not check(out):
        raise ValueError(f"{path}:{lineno}: {what} {value!r} out of range")
    return out


def _log_skip(kind: str, count: int, utt: str, detail: str) -> None:
    if count <= MAX_LOGGED_SKIPS:
        logger.warning("%s: %s, skipped", utt, detail)
    if count == MAX_LOGGED_SKIPS:
        logger.warning("further %s files are counted but not logged", kind)


def write_audio_data_dir(out_dir, utt2path: Mapping[str, Path],
                         tables: Mapping[str, Mapping[str, object]] = None) -> Path:
    """Write a data dir: ``wav.scp`` (resolved paths), ``tables``, ``utt2num_samples``, ``utt2fs``.

    Utterances whose audio is missing or unreadable are skipped with a warning, and a
    summary line gives the counts. ``tables`` must have the keys of ``utt2path``.
    """
    tables = dict(tables or {})
    check_same_keys({"wav.scp": utt2path, **tables}, str(out_dir))
    wav_scp: Dict[str, str] = {}
    num_samples: Dict[str, int] = {}
    fs: Dict[str, int] = {}
    missing = unreadable = 0
    for utt in sorted(utt2path):
        path = Path(utt2path[utt])
        if not path.is_file():
            missing += 1
            _log_skip("missing", missing, utt, f"audio file {path} not found")
            continue
        try:
            info = sf.info(str(path))
        except Exception as e:  # soundfile raises several types for corrupt files
            unreadable += 1
            _log_skip("unreadable", unreadable, utt, f"unreadable audio {path} ({e})")
            continue
        wav_scp[utt] = str(path.resolve())
        num_samples[utt] = info.frames
        fs[utt] = info.samplerate
    kept = {name: {u: table[u] for u in wav_scp} for name, table in tables.items()}
    out = write_data_dir(
        out_dir, {"wav.scp": wav_scp, **kept, "utt2num_samples": num_samples, "utt2fs": fs}
    )
    logger.info("%s: %d utterances written; skipped %d missing and %d unreadable audio files",
                out, len(wav_scp), missing, unreadable)
    return out
