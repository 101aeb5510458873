"""What produced an output folder: settings and input identities in ``provenance.json``.

Stages that reuse existing outputs to resume (audio formatting, evaluation sets) record their
settings before writing anything. A re-run with the same settings resumes; a re-run with other
settings is refused (or, with ``--overwrite true``, starts over), so outputs of two settings
never mix.
"""

import hashlib
import json
from pathlib import Path
from typing import Iterable, Mapping, Optional

from espnet2_gram.utils.fileio import atomic_open

RECORD = "provenance.json"


class ProvenanceError(ValueError):
    """Outputs made with other settings; the message names the folder and the differences."""


def file_digest(path) -> str:
    """sha256 of a file's content: the identity of an input such as a ``wav.scp``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(out_dir) -> Optional[dict]:
    """The settings recorded in ``out_dir``, or None when it has no record."""
    path = Path(out_dir) / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProvenanceError(f"{path}: unreadable provenance record ({e})") from e


def _flatten(mapping: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def describe_differences(old: Mapping, new: Mapping) -> str:
    """``'key: old -> new, ...'`` for every setting that differs (nested keys dotted)."""
    old, new = _flatten(old), _flatten(new)
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))


def prepare_outputs(out_dir, settings: Mapping, outputs: Iterable, overwrite: bool = False) -> None:
    """Make ``out_dir`` safe to (re)use under ``settings`` before anything is written.

    ``outputs``: the files a run may reuse or that describe earlier results. With the recorded
    settings equal to ``settings`` nothing happens (an interrupted run resumes). Otherwise, when
    any of ``outputs`` exists, the run is refused unless ``overwrite``, which deletes them
    first. The new record is then written atomically.
    """
    out_dir = Path(out_dir)
    settings = json.loads(json.dumps(dict(settings)))  # tuples and lists compare alike
    old = read_record(out_dir)
    if old == settings:
        return
    present = [Path(p) for p in outputs if Path(p).exists()]
    if present and not overwrite:
        if old is None:
            why = (f"it holds outputs ({present[0]}, ...) without a provenance record"
                   f" ({out_dir / RECORD}), so their settings are unknown")
        else:
            why = f"it was made with other settings ({describe_differences(old, settings)})"
        raise ProvenanceError(
            f"{out_dir}: {why}; delete {out_dir} (and its audio folder) or pass"
            " --overwrite true to redo it"
        )
    (out_dir / RECORD).unlink(missing_ok=True)
    for path in present:
        path.unlink()
    with atomic_open(out_dir / RECORD, encoding="utf-8") as f:
        json.dump(settings, f, indent=2, sort_keys=True)
