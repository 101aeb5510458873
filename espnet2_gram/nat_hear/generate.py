"""Render a task in HEAR's layout as its naturalistic version (the Nat-HEAR of the GRAM paper).

Input: a task as hear-preprocess writes it, ``task_metadata.json``, one label file per split
(``<split>.json``: ``{file: [labels]}``, or for event tasks ``{file: [{"label", "start",
"end"}]}`` in ms) and the audio per sample rate (``<rate>/<split>/<file>``). Output: the same
layout with every file rendered through a (held-out) RIR bank, in the bank's format, at the
bank's rate, with noise at an SNR drawn from ``snr_range``; event onsets and offsets are
shifted by the direct-path delay of the room. File ``f`` draws its pack, noise and SNR from
``default_rng([seed, crc32(split/f)])``, so the result does not depend on the order or
number of files; an interrupted run resumes by skipping the audio already written, and
``task_metadata.json`` records the settings (``nat_hear``) and is written last.

Spatial tasks (:func:`write_spatial_tasks`) turn a rendered scene task into two more in the same
layout, sharing its audio: ``<task>-doa`` (each file's source direction as a Cartesian unit
vector in the listener frame, x front, y left, z up; ``cartesian-regression`` as
listen-eval-kit reads it, scored by angular error) and ``<task>-rt60`` (the room's measured
RT60 in seconds, scored by absolute error).
"""

import json
import logging
import shutil
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from espnet2_gram.simulation.geometry import sph_to_cart
from espnet2_gram.simulation.mixing import limit_peak, mix_scene
from espnet2_gram.simulation.rir_bank import META, RIRBank
from espnet2_gram.utils.audio import (AudioError, load_audio, problem_of, to_mono,
                                      write_audio)
from espnet2_gram.utils.fileio import atomic_open, read_kv, remove_stale_temps
from espnet2_gram.utils.provenance import file_digest, prepare_outputs

logger = logging.getLogger(__name__)

METADATA = "task_metadata.json"
RECORD = "nat_hear.json"
# spatial task -> (prediction type, listen-eval-kit score, target of one file's record)
SPATIAL_TASKS = {
    "doa": ("cartesian-regression", "DOA",
            lambda r: [round(float(v), 6) for v in sph_to_cart(r["azimuth"], r["elevation"])]),
    "rt60": ("regression", "distance", lambda r: [round(float(r["rt60"]), 6)]),
}


def file_rng(seed: int, split: str, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{split}/{name}".encode())])


def direct_path_delay_ms(rir: np.ndarray, fs: int) -> float:
    """Arrival of the direct sound: the first sample of a (C, L) RIR whose magnitude (largest
    over channels) reaches half the RIR's peak, in ms."""
    envelope = np.abs(rir).max(axis=0)
    return float(np.argmax(envelope >= 0.5 * envelope.max()) / fs * 1000.0)


def audio_rates(task_dir: Path) -> List[int]:
    """The sample rates of a task's audio folders (``<rate>/``), ascending."""
    return sorted(int(d.name) for d in task_dir.iterdir() if d.is_dir() and d.name.isdigit())


def read_task(task_dir: Path) -> dict:
    """``task_metadata.json`` and the label files of ``task_dir``; errors name the file."""
    meta_path = task_dir / METADATA
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: missing (expected a task in HEAR's layout)")
    meta = json.loads(meta_path.read_text())
    if meta.get("embedding_type") not in ("scene", "event"):
        raise ValueError(f"{meta_path}: embedding_type {meta.get('embedding_type')!r}; expected"
                         " 'scene' or 'event'")
    rates = audio_rates(task_dir)
    labels = {p.stem: json.loads(p.read_text()) for p in sorted(task_dir.glob("*.json"))
              if any((task_dir / str(rate) / p.stem).is_dir() for rate in rates)}
    if not labels:
        raise ValueError(f"{task_dir}: no split (a <split>.json with audio in <rate>/<split>/)")
    for split, split_labels in labels.items():
        for rate in rates:
            check_split_files(task_dir / f"{split}.json", split_labels,
                              task_dir / str(rate) / split)
    return {"meta": meta, "labels": labels}


def check_split_files(label_file: Path, labels: dict, folder: Path) -> None:
    """The label file names exactly the audio files of ``folder``; else an error naming both
    and the first names that differ."""
    if not folder.is_dir():
        return
    files = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    for what, names in (("without audio in", set(labels) - files),
                        ("not in the label file, in", files - set(labels))):
        if names:
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise ValueError(f"{label_file}: {len(names)} file(s) {what} {folder} ({shown});"
                             " the splits do not match the audio files")


def load_task_audio(path: Path, fs: int) -> np.ndarray:
    """A task's audio file at ``fs`` Hz (resampled when it lies in another rate's folder); a
    file whose own rate is not its folder's (``<rate>/<split>/<file>``) is an error."""
    folder_rate = int(path.parent.parent.name)
    audio = load_audio(path, fs=fs)
    own = audio.resampled_from or audio.fs
    if own != folder_rate:
        raise AudioError(f"{path}: {own} Hz audio in the {folder_rate}-Hz folder")
    return audio.samples


def shifted_events(events: Sequence[dict], delay_ms: float) -> list:
    return [{**e, "start": e["start"] + delay_ms, "end": e["end"] + delay_ms} for e in events]


def generate(task_dir, bank_dir, out_dir, noise_dir=None, seed: int = 0,
             snr_range=(5.0, 40.0), fade_seconds: float = 0.2, overwrite: bool = False) -> dict:
    """Render ``task_dir`` into ``out_dir``; returns the ``nat_hear`` record."""
    task_dir, out_dir = Path(task_dir), Path(out_dir)
    lo, hi = snr_range
    if not lo <= hi:
        raise ValueError(f"--snr_range must be low <= high, got {list(snr_range)}")
    if task_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--out_dir {out_dir} must differ from --task_dir")
    task = read_task(task_dir)
    bank = RIRBank(bank_dir)
    audio_in = task_dir / str(bank.fs)
    if not audio_in.is_dir():
        raise FileNotFoundError(f"{audio_in}: the task has no audio at the bank's {bank.fs} Hz"
                                f" (it has {audio_rates(task_dir)}); render the bank at one of"
                                " those rates")
    noises = read_kv(Path(noise_dir) / "wav.scp") if noise_dir else {}
    noise_keys = sorted(noises)
    settings = {"stage": "make_nat_hear", "seed": seed, "snr_range": [lo, hi],
                "fade_seconds": fade_seconds, "format": bank.format, "fs": bank.fs,
                "task_metadata sha256": file_digest(task_dir / METADATA),
                "bank_dir meta.jsonl sha256": file_digest(Path(bank_dir) / META),
                "noise_dir wav.scp sha256":
                    file_digest(Path(noise_dir) / "wav.scp") if noise_dir else None}
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_outputs(out_dir, settings, [out_dir / METADATA, out_dir / str(bank.fs)],
                    overwrite=overwrite)
    record = {"settings": settings, "files": {}}
    event = task["meta"]["embedding_type"] == "event"
    for split, labels in task["labels"].items():
        split_out = out_dir / str(bank.fs) / split
        split_out.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(split_out)
        new_labels = {}
        for name in sorted(labels):
            rendered = _render_file(audio_in / split / name, split_out / name, bank, noises,
                                    noise_keys, file_rng(seed, split, name), (lo, hi),
                                    fade_seconds)
            record["files"][f"{split}/{name}"] = rendered
            new_labels[name] = (shifted_events(labels[name], rendered["delay_ms"]) if event
                                else labels[name])
        with atomic_open(out_dir / f"{split}.json") as f:
            json.dump(new_labels, f, indent=1)
    for extra in task_dir.iterdir():  # label vocabulary and the like
        if extra.is_file() and extra.suffix != ".json":
            shutil.copyfile(extra, out_dir / extra.name)
    with atomic_open(out_dir / RECORD) as f:
        json.dump(record, f, indent=1)
    meta = {**task["meta"], "nat_hear": settings}
    with atomic_open(out_dir / METADATA) as f:  # last: its presence marks a finished task
        json.dump(meta, f, indent=1)
    logger.info("%s: %d files rendered (%s, %d Hz)", out_dir, len(record["files"]),
                bank.format, bank.fs)
    return record


def _render_file(src: Path, wav: Path, bank: RIRBank, noises: Dict[str, str],
                 noise_keys: List[str], rng: np.random.Generator, snr_range,
                 fade_seconds: float) -> dict:
    """Render one file unless it exists; returns its pack, direction, RT60, SNR and delay."""
    pack = int(rng.integers(len(bank)))
    noise_key: Optional[str] = (noise_keys[int(rng.integers(len(noise_keys)))] if noise_keys
                                else None)
    snr = float(rng.uniform(*snr_range))
    source_rir, noise_rirs, meta = bank.pack(pack)
    if not wav.exists():
        source = to_mono(load_task_audio(src, bank.fs), "first")
        if problem_of(source):
            raise AudioError(f"{src}: {problem_of(source)} audio")
        noise = load_audio(noises[noise_key], fs=bank.fs, mono_policy="first").samples \
            if noise_key else None
        scene = mix_scene(source, source_rir, noise, noise_rirs, snr, rng, bank.fs, fade_seconds)
        mix, _ = limit_peak(scene.mix)
        write_audio(wav, mix, bank.fs)
    return {"rir": meta["id"], "azimuth": meta["azimuth"], "elevation": meta["elevation"],
            "distance": meta["distance"], "rt60": meta["rt60_measured"],
            "snr_db": snr if noise_key else None,
            "delay_ms": direct_path_delay_ms(source_rir, bank.fs)}


def write_spatial_tasks(out_dir, tasks: Sequence[str] = tuple(SPATIAL_TASKS)) -> list:
    """Write ``<out_dir>-<task>`` for each of ``tasks`` from a finished Nat-HEAR scene task;
    their audio folder links to ``out_dir``'s. Returns the task dirs."""
    out_dir = Path(out_dir)
    meta_path = out_dir / METADATA
    if not meta_path.is_file() or not (out_dir / RECORD).is_file():
        raise FileNotFoundError(f"{out_dir}: not a finished Nat-HEAR task ({METADATA} and"
                                f" {RECORD} expected)")
    meta = json.loads(meta_path.read_text())
    if meta["embedding_type"] != "scene":
        raise ValueError(f"{meta_path}: spatial tasks are made from scene tasks, not"
                         f" {meta['embedding_type']!r} ones")
    unknown = sorted(set(tasks) - set(SPATIAL_TASKS))
    if unknown:
        raise ValueError(f"--spatial_tasks {unknown}: expected any of {sorted(SPATIAL_TASKS)}")
    record = json.loads((out_dir / RECORD).read_text())["files"]
    rate = str(meta["nat_hear"]["fs"])
    made = []
    for task in tasks:
        prediction, score, target = SPATIAL_TASKS[task]
        task_dir = out_dir.with_name(f"{out_dir.name}-{task}")
        task_dir.mkdir(exist_ok=True)
        link = task_dir / rate
        if not link.is_symlink():
            link.symlink_to(Path("..") / out_dir.name / rate, target_is_directory=True)
        splits: Dict[str, dict] = {}
        for key, r in sorted(record.items()):
            split, name = key.split("/", 1)
            splits.setdefault(split, {})[name] = target(r)
        for split, labels in splits.items():
            with atomic_open(task_dir / f"{split}.json") as f:
                json.dump(labels, f, indent=1)
        with atomic_open(task_dir / METADATA) as f:
            json.dump({**meta, "task_name": f"{meta.get('task_name', out_dir.name)}-{task}",
                       "prediction_type": prediction, "evaluation": [score],
                       "nat_hear_target": task}, f, indent=1)
        made.append(task_dir)
    return made
