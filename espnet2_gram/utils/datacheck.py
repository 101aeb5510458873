"""Checks of the data given to an ESPnet task before its trainer starts.

ESPnet reads ``--{train,valid}_data_path_and_name_and_type path,name,type`` triplets and fails
late and obscurely when their utterances disagree; these checks fail at once with the first
mismatching utterance ids, an scp entry that would run a command
(:mod:`espnet2_gram.utils.scp`), an out-of-range direction or a label unseen in training.
:func:`check_audio` reads the header of every audio file of a ``wav.scp`` (readable, not empty,
sample rate, channel count); :func:`apply_audio_policy` refuses the bad files or leaves them
out.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from espnet2_gram.utils.cli import naming
from espnet2_gram.utils.datadir import MAX_LISTED_MISMATCHES, DataDirError, check_same_keys
from espnet2_gram.utils.fileio import read_kv, write_kv
from espnet2_gram.utils.scp import check_data_file

AUDIO_POLICIES = ("refuse", "skip", "off")  # what pretraining does with bad audio

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
    """:func:`check_triplets` for every data option in ``argv``."""
    for option, triplets in data_triplets(argv).items():
        check_triplets(option, triplets, content_checks)


def check_data_files(argv: Sequence[str]) -> None:
    """Every file of the data options in ``argv`` exists and no entry runs a command (their
    utterance ids are not compared)."""
    for option, triplets in data_triplets(argv).items():
        for path, name, data_type in triplets:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{option} {path},{name}: no such file")
            check_data_file(path, data_type, option)


def check_triplets(option: str, triplets: Iterable[Tuple[str, str, str]],
                   content_checks: Mapping[str, Callable[[Path], None]] = None) -> None:
    """The ``(path, name, type)`` files of one data option: each exists, all name the same
    utterances and no entry runs a command; the files of a data name in ``content_checks``
    are also passed to its check (which raises)."""
    content_checks = content_checks or {}
    tables = {}
    for path, name, data_type in triplets:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{option} {path},{name}: no such file")
        check_data_file(path, data_type, option)
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


@dataclass
class AudioCheck:
    """What :func:`check_audio` found in one scp: usable keys and ``{key: reason}``."""

    scp: Path
    ok: List[str] = field(default_factory=list)
    bad: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        listed = "; ".join(f"{k}: {r}" for k, r in list(self.bad.items())[:MAX_LISTED_MISMATCHES])
        more = " ..." if len(self.bad) > MAX_LISTED_MISMATCHES else ""
        return (f"{self.scp}: {len(self.ok)} ok, {len(self.bad)} bad"
                + (f" ({listed}{more})" if self.bad else ""))


def audio_problem(path: str, fs: Optional[int] = None, channels: Optional[int] = None,
                  who: str = "the model") -> str:
    """Why the audio file ``path`` is unusable by ``who``, from its header ('' when fine)."""
    import soundfile as sf

    if not Path(path).is_file():
        return f"{path}: audio file not found"
    try:
        info = sf.info(path)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types for bad files
        return f"{path}: unreadable audio ({str(e).strip().splitlines()[0]})"
    if info.frames == 0:
        return f"{path}: empty audio"
    if fs is not None and info.samplerate != fs:
        return f"{path}: {info.samplerate} Hz, but {who} expects {fs} Hz"
    if channels is not None and info.channels != channels:
        return f"{path}: {info.channels} channel(s), but {who} expects {channels}"
    return ""


def check_audio(scp, keys: Optional[Iterable[str]] = None, fs: Optional[int] = None,
                channels: Optional[int] = None, who: str = "the model") -> AudioCheck:
    """:func:`audio_problem` for the entries of ``scp`` (only ``keys`` when given); an scp
    without entries is an error."""
    table = read_kv(scp)
    if not table:
        raise DataDirError(f"{scp}: no utterances (0 lines found)")
    wanted = set(table) if keys is None else set(keys)
    result = AudioCheck(Path(scp))
    for key, path in table.items():
        if key in wanted:
            problem = audio_problem(path, fs, channels, who)
            if problem:
                result.bad[key] = problem
            else:
                result.ok.append(key)
    return result


def apply_audio_policy(check: AudioCheck, skip: bool, option: str, out_dir,
                       companions: Sequence[str] = ()) -> Dict[str, Path]:
    """Refuse or (``skip``) leave out the bad entries of ``check``; returns
    ``{file: replacement}``.

    Refusing raises a ``DataDirError`` naming the first bad entries. Skipping writes the scp
    and its ``companions`` (files with the same keys, e.g. ESPnet shape files) to ``out_dir``
    without them, with ``bad_audio`` listing them and why; nothing usable left is an error.
    """
    if not check.bad:
        return {}
    if not skip or not check.ok:
        raise DataDirError(f"{option} {check.summary()}; fix or remove them"
                           + ("" if skip else ", or pass --audio_check skip to leave them out"))
    out_dir = Path(out_dir)
    sources = list(dict.fromkeys(str(Path(f)) for f in (check.scp, *companions)))
    replaced = {}
    with naming(out_dir):
        for i, source in enumerate(sources):
            kept = {k: v for k, v in read_kv(source).items() if k not in check.bad}
            target = out_dir / (Path(source).name if i == 0 else f"{i}.{Path(source).name}")
            write_kv(target, kept)
            replaced[source] = target
        write_kv(out_dir / "bad_audio", check.bad)
    return replaced
