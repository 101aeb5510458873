"""Checks of the data given to an ESPnet task before its trainer starts.

ESPnet reads ``--{train,valid}_data_path_and_name_and_type path,name,type`` triplets and fails
late and obscurely when their utterances disagree; these checks fail at once with the first
mismatching utterance ids, an out-of-range direction or a label unseen in training.
"""

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .datadir import MAX_LISTED_MISMATCHES, DataDirError, check_same_keys
from .fileio import read_kv

DATA_OPTIONS = ("--train_data_path_and_name_and_type", "--valid_data_path_and_name_and_type",
                "--data_path_and_name_and_type")


def data_triplets(argv: Sequence[str]) -> Dict[str, List[Tuple[str, str, str]]]:
    """``{option: [(path, name, type), ...]}`` of the data options in ``argv``."""
    found: Dict[str, List[Tuple[str, str, str]]] = {}
    for i, arg in enumerate(argv):
        option, _, value = arg.partition("=")
        if option not in DATA_OPTIONS:
            continue
        if not value:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        parts = value.split(",")
        if len(parts) != 3:
            raise ValueError(f"{option} {value!r}: expected path,name,type")
        found.setdefault(option, []).append(tuple(parts))
    return found


def option_value(argv: Sequence[str], option: str) -> Optional[str]:
    """The value of ``--option value`` or ``--option=value`` (the last one wins)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1:]
    return value


def check_task_data(argv: Sequence[str],
                    content_checks: Mapping[str, Callable[[Path], None]] = None) -> None:
    """Per data option: every file exists and all name the same utterances; the files of a
    data name in ``content_checks`` are also passed to its check (which raises)."""
    content_checks = content_checks or {}
    for option, triplets in data_triplets(argv).items():
        tables = {}
        for path, name, _ in triplets:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{option} {path},{name}: no such file")
            tables[f"{path} ({name})"] = read_kv(path, allow_empty_value=True)
            if name in content_checks:
                content_checks[name](Path(path))
        check_same_keys(tables, option)


def check_labels_known(label_file: Path, token_list: Sequence[str]) -> None:
    """Every label of ``label_file`` (``utt label [label ...]``) is in ``token_list``."""
    known = set(token_list)
    unseen = [(utt, label) for utt, labels in read_kv(label_file, allow_empty_value=True).items()
              for label in labels.split() if label not in known]
    if unseen:
        listed = ", ".join(f"{label!r} ({utt})" for utt, label in unseen[:MAX_LISTED_MISMATCHES])
        raise DataDirError(f"{label_file}: {len(unseen)} label(s) not seen in training (not in"
                           f" the token list): {listed}")
