"""The export of simulated multi-event recordings in the DCASE SELD layout of STARSS23
(metadata CSVs in the format of :mod:`espnet2_gram.downstream.localization.dcase_format`).

Exported layout (``<fmt>`` is ``foa`` or ``binaural``)::

    out_root/classes.txt                              "index name" lines
    out_root/<fmt>_dev/<split>/fold1_roomRRR_mix001.wav
    out_root/metadata_dev/<split>/fold1_roomRRR_mix001.csv
    out_root/export/<fmt>_<split>.json                options of the export (resume guard)

Recording ``r`` depends on ``seed`` and ``r`` only (and the options): its events, room,
impulse responses, noise and SNR are drawn from ``np.random.default_rng([seed, r])``.
"""

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from espnet2_gram.utils.audio import MONO_POLICIES, AudioError, load_audio, problem_of, write_audio
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.simulation.acoustics import event_span
from espnet2_gram.simulation.mixing import (
    NOISE_LEVEL_DBFS,
    convolve_multichannel,
    fit_noise,
    limit_peak,
    normalize_dbfs,
    scene_powers,
    snr_gain,
)
from espnet2_gram.formats import num_channels
from espnet2_gram.downstream.localization.dcase_format import format_dcase_csv, read_classes
from espnet2_gram.simulation.rooms import RenderConfig, RIRRenderer, RoomSampling, sample_room

logger = logging.getLogger(__name__)

META_DIR = "metadata_dev"
CLASSES_FILE = "classes.txt"
OPTIONS_DIR = "export"
MAX_DRAWS = 100
MAX_LOGGED_SKIPS = 10


def audio_dir_name(fmt: str) -> str:
    """``foa_dev`` or ``binaural_dev``."""
    return f"{fmt}_dev"


def recording_name(index: int) -> str:
    """File stem of recording ``index``: ``fold1_room<index:03d>_mix001``."""
    return f"fold1_room{index:03d}_mix001"


# --------------------------------------------------------------------------- placement


def place_events(frame_counts: Sequence[int], num_frames: int, max_polyphony: int,
                 rng: np.random.Generator) -> List[Optional[Tuple[int, int]]]:
    """Put events lasting ``frame_counts`` frames on at most ``max_polyphony`` tracks of
    ``num_frames`` frames; events on one track never overlap.

    Each event goes, in order, to the track with the most free frames (the first such one),
    and is dropped (None) when it does not fit there. Per track, the events are shuffled and
    the free frames split into random gaps. Returns ``(track, onset frame)`` per event.
    """
    tracks = min(max_polyphony, len(frame_counts))
    free = [num_frames] * tracks
    members: List[List[int]] = [[] for _ in range(tracks)]
    for i, count in enumerate(frame_counts):
        t = int(np.argmax(free)) if tracks else 0
        if tracks and count <= free[t]:
            members[t].append(i)
            free[t] -= count
    out: List[Optional[Tuple[int, int]]] = [None] * len(frame_counts)
    for t, events in enumerate(members):
        if not events:
            continue
        order = [events[j] for j in rng.permutation(len(events))]
        cuts = np.sort(rng.integers(0, free[t] + 1, size=len(order)))
        used = 0
        for i, cut in zip(order, cuts):
            out[i] = (t, int(cut) + used)
            used += frame_counts[i]
    return out


# --------------------------------------------------------------------------- export


@dataclass
class _Event:
    utt: str
    class_index: int
    samples: np.ndarray  # dry, levelled
    first: int  # first and last labelled frame of the clip
    last: int


class _Pool:
    """Utterances of a data dir drawn at random; unusable audio is skipped and counted."""

    def __init__(self, option: str, data_dir, labels: bool):
        self.option = option
        self.data_dir = Path(data_dir)
        names = ["utt2label"] if labels else []
        try:
            tables = read_data_dir(self.data_dir, names=names)
        except FileNotFoundError as e:  # the messages start with the offending path
            raise FileNotFoundError(f"--{option} {e}") from e
        except ValueError as e:
            raise ValueError(f"--{option} {e}") from e
        self.utts = sorted(tables["wav.scp"])
        self.paths = tables["wav.scp"]
        self.labels = {}
        if labels:
            for utt in self.utts:
                fields = tables["utt2label"][utt].split()
                if not fields:
                    raise ValueError(f"--{option} {data_dir}: utt2label has no label for {utt}")
                self.labels[utt] = fields[0]
        self.skipped: Counter = Counter()

    def draw(self, rng, fs, mono_policy, max_len=None, fade=0):
        """A random usable utterance: ``(utt, mono float32 at fs)``, cropped to ``max_len``
        samples (random window, faded in and out) when longer."""
        for _ in range(MAX_DRAWS):
            utt = self.utts[int(rng.integers(len(self.utts)))]
            try:
                x = load_audio(self.paths[utt], fs=fs, mono_policy=mono_policy).samples
            except AudioError as e:
                problem, detail = "unreadable", str(e)
            else:
                if max_len is not None and len(x) > max_len:
                    x, _, _ = fit_noise(x, max_len, fade, rng)
                    _fade_in(x, fade)
                problem = problem_of(x)
                detail = f"{self.paths[utt]}: {problem} audio"
            if not problem:
                return utt, x
            self.skipped[problem] += 1
            total = sum(self.skipped.values())
            if total <= MAX_LOGGED_SKIPS:
                logger.warning("--%s utterance %s skipped (%s)", self.option, utt, detail)
            if total == MAX_LOGGED_SKIPS:
                logger.warning("further unusable --%s utterances are counted, not logged",
                               self.option)
        raise ValueError(
            f"--{self.option} {self.data_dir}: no usable audio in {MAX_DRAWS} random draws"
            f" (skipped so far: {dict(self.skipped)})"
        )


def _fade_in(x: np.ndarray, fade: int) -> None:
    fade = min(fade, len(x) // 2)
    if fade > 0:
        x[:fade] *= np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)


def _check_range(name: str, value, low=None, integer=False) -> Tuple:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be two numbers (low high), got {value!r}") from None
    if integer and (int(lo) != lo or int(hi) != hi):
        raise ValueError(f"--{name} must be two integers, got {value!r}")
    if lo > hi or (low is not None and lo < low):
        bound = f"{low} <= " if low is not None else ""
        raise ValueError(f"--{name} must satisfy {bound}low <= high, got {list(value)}")
    return (int(lo), int(hi)) if integer else (float(lo), float(hi))


def _setup_classes(out_root: Path, labels: Iterable[str]) -> List[str]:
    """The class list: ``out_root/classes.txt`` when it exists (it must cover ``labels``),
    else the sorted labels, written there."""
    wanted = sorted(set(labels))
    path = out_root / CLASSES_FILE
    if path.is_file():
        classes = read_classes(path)
        missing = sorted(set(wanted) - set(classes))
        if missing:
            raise ValueError(
                f"--data_dir has labels {missing[:5]} missing from {path} (written by an"
                " earlier export); use another --out_root or a data dir with the same classes"
            )
        return classes
    with atomic_open(path, encoding="utf-8") as f:
        f.write("".join(f"{i} {name}\n" for i, name in enumerate(wanted)))
    return wanted


def _guard_options(path: Path, options: dict) -> None:
    """Write ``options`` to ``path``, or check that an earlier run used the same ones."""
    options = json.loads(json.dumps(options))
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError:
                old = None
        if old is not None and old != options:
            keys = sorted(k for k in set(old) | set(options) if old.get(k) != options.get(k))
            raise ValueError(
                f"{path}: this split was exported with other options (differing: {keys});"
                " use another --out_root or --split, or delete the earlier export"
            )
        if old is not None:
            return
    with atomic_open(path, encoding="utf-8") as f:
        json.dump(options, f, indent=1, sort_keys=True)
        f.write("\n")


@dataclass(frozen=True)
class RecordingPlan:
    """The checked options of an export in samples and frames, shared by every recording."""

    fs: int
    channels: int
    hop: int               # samples per label frame
    length: int            # samples per recording
    num_frames: int
    max_event: int         # longest event in samples
    fade: int
    events_per_recording: Tuple[int, int]
    max_polyphony: int
    snr_range: Tuple[float, float]
    event_level_dbfs: Tuple[float, float]
    label_threshold_db: float
    mono_policy: str
    seed: int

    @classmethod
    def check(cls, render: RenderConfig, duration_seconds, events_per_recording, max_polyphony,
              snr_range, seed, fade_seconds, frame_seconds, label_threshold_db,
              max_event_seconds, event_level_dbfs, mono_policy) -> "RecordingPlan":
        """The plan of these options; a bad one is a ``ValueError`` naming it."""
        if int(max_polyphony) != max_polyphony or max_polyphony < 1:
            raise ValueError(f"--max_polyphony must be a whole number >= 1, got {max_polyphony}")
        event_level_dbfs = _check_range("event_level_dbfs", event_level_dbfs)
        if event_level_dbfs[1] > 0:
            raise ValueError(f"--event_level_dbfs must be <= 0 dBFS, got {list(event_level_dbfs)}")
        if mono_policy not in MONO_POLICIES:
            raise ValueError(f"--mono_policy must be one of {MONO_POLICIES}, got {mono_policy!r}")
        if not frame_seconds > 0:
            raise ValueError(f"--frame_seconds must be positive, got {frame_seconds}")
        fs = render.fs
        hop = int(round(frame_seconds * fs))
        if abs(frame_seconds * fs - hop) > 1e-6 or hop < 1:
            raise ValueError(
                f"--frame_seconds {frame_seconds} is not a whole number of samples at --fs {fs}")
        length = int(round(duration_seconds * fs))
        num_frames = length // hop
        if num_frames < 1:
            raise ValueError(f"--duration_seconds {duration_seconds} is shorter than one frame"
                             f" (--frame_seconds {frame_seconds})")
        if not label_threshold_db < 0:
            raise ValueError(f"--label_threshold_db must be negative, got {label_threshold_db}")
        if not fade_seconds >= 0:
            raise ValueError(f"--fade_seconds must be >= 0, got {fade_seconds}")
        max_event = num_frames * hop
        if max_event_seconds is not None:
            if not max_event_seconds >= frame_seconds:
                raise ValueError("--max_event_seconds must be at least --frame_seconds, got"
                                 f" {max_event_seconds}")
            max_event = min(max_event, int(round(max_event_seconds * fs)))
        return cls(fs, num_channels(render.format), hop, length, num_frames, max_event,
                   int(round(fade_seconds * fs)),
                   _check_range("events_per_recording", events_per_recording, 1, True),
                   int(max_polyphony), _check_range("snr_range", snr_range), event_level_dbfs,
                   label_threshold_db, mono_policy, seed)


def export_recordings(data_dir, noise_dir, out_root, split: str, render: RenderConfig,
                      sampling: RoomSampling, num_recordings: int,
                      duration_seconds: float = 10.0, events_per_recording: Sequence[int] = (2, 6),
                      max_polyphony: int = 2, snr_range: Sequence[float] = (5, 40), seed: int = 0,
                      fade_seconds: float = 0.2, frame_seconds: float = 0.1,
                      label_threshold_db: float = -40, kaldi_dir=None,
                      max_event_seconds: Optional[float] = None,
                      event_level_dbfs: Sequence[float] = (-30.0, -20.0),
                      mono_policy: str = "mean") -> dict:
    """Simulate ``num_recordings`` SELD recordings in DCASE/STARSS23 layout under ``out_root``.

    Recording ``r`` (``rng = np.random.default_rng([seed, r])``): a number of events drawn
    from ``events_per_recording``; one room with a static source per event plus the room's
    noise sources (``sample_room``), rendered once; each event a random utterance of
    ``data_dir`` (mono at ``render.fs``, unusable audio skipped and counted; longer than
    ``max_event_seconds`` or the recording: a random window, faded), scaled to an RMS over
    its labelled span drawn from ``event_level_dbfs`` (the direct path of a pyroomacoustics
    RIR has a gain of 1 / distance in metres) and convolved with its source's RIR.
    Events sit on at most ``max_polyphony`` tracks (no overlap within a track, random gaps)
    with onsets on the ``frame_seconds`` grid, so the labelled frames of a clip map exactly
    onto recording frames. A random utterance of ``noise_dir`` (None: no noise), fitted to
    the recording, is convolved with the summed noise-source RIRs and scaled jointly over
    channels to an SNR drawn from ``snr_range`` against the summed event images (the
    definition of :mod:`.mixing`); rooms without noise sources get no noise. A recording
    whose peak exceeds 0.99 is scaled down as a whole.

    Labels: an event is active from the first to the last ``frame_seconds`` frame of its dry
    clip whose energy is within ``label_threshold_db`` of the clip's loudest frame. Rows
    give its class (index in ``classes.txt``), its source index (its rank by onset within the
    recording) and the listener-relative azimuth, elevation and distance (cm) of its source.

    Resumable: a recording whose wav and CSV both exist is kept (the CSV is written after
    the wav, both atomically). ``kaldi_dir`` (optional) gets ``wav.scp``, ``utt2metadata``,
    ``utt2num_samples``, ``utt2fs`` and ``utt2format`` of all recordings. Returns a summary.
    """
    if not isinstance(render, RenderConfig) or not isinstance(sampling, RoomSampling):
        raise TypeError("render must be a RenderConfig and sampling a RoomSampling")
    if int(num_recordings) != num_recordings or num_recordings < 1:
        raise ValueError(f"--num_recordings must be a whole number >= 1, got {num_recordings}")
    num_recordings = int(num_recordings)
    if not split or any(c.isspace() or c in "/\\" for c in split):
        raise ValueError(f"--split must be a folder name without spaces or slashes, got {split!r}")
    plan = RecordingPlan.check(render, duration_seconds, events_per_recording, max_polyphony,
                               snr_range, seed, fade_seconds, frame_seconds, label_threshold_db,
                               max_event_seconds, event_level_dbfs, mono_policy)
    events_pool = _Pool("data_dir", data_dir, labels=True)
    noise_pool = _Pool("noise_dir", noise_dir, labels=False) if noise_dir is not None else None
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    classes = _setup_classes(out_root, events_pool.labels.values())
    audio_dir = out_root / audio_dir_name(render.format) / split
    meta_dir = out_root / META_DIR / split
    options = dict(
        data_dir=str(Path(data_dir).resolve()),
        noise_dir=str(Path(noise_dir).resolve()) if noise_dir is not None else None,
        split=split, render=asdict(render), sampling=asdict(sampling),
        duration_seconds=duration_seconds, events_per_recording=plan.events_per_recording,
        max_polyphony=plan.max_polyphony, snr_range=plan.snr_range, seed=seed,
        fade_seconds=fade_seconds, frame_seconds=frame_seconds,
        label_threshold_db=label_threshold_db, max_event_seconds=max_event_seconds,
        event_level_dbfs=plan.event_level_dbfs, mono_policy=mono_policy, classes=classes,
    )
    _guard_options(out_root / OPTIONS_DIR / f"{render.format}_{split}.json", options)
    simulate = _Simulation(plan, render, sampling, events_pool, noise_pool,
                           {name: i for i, name in enumerate(classes)})
    tables, summary = _export_all(num_recordings, simulate, audio_dir, meta_dir,
                                  f"{render.format}_{split}")
    if kaldi_dir is not None:
        write_data_dir(kaldi_dir, tables)
    result = dict(
        num_recordings=num_recordings,
        **{k: summary[k] for k in ("written", "skipped", "events", "dropped_events",
                                   "limited_peaks")},
        unusable_audio=dict(events_pool.skipped),
        unusable_noise=dict(noise_pool.skipped) if noise_pool is not None else {},
        classes=classes, audio_dir=str(audio_dir), metadata_dir=str(meta_dir),
        kaldi_dir=str(kaldi_dir) if kaldi_dir is not None else None,
    )
    logger.info("export summary: %s", {k: v for k, v in result.items() if k != "classes"})
    return result


def _export_all(num_recordings: int, simulate: "_Simulation", audio_dir: Path, meta_dir: Path,
                prefix: str) -> Tuple[Dict[str, Dict[str, object]], Counter]:
    """Every recording kept or exported: ``(Kaldi data-dir tables with utterance ids
    <prefix>_<name>, counts)``."""
    summary = Counter()
    tables: Dict[str, Dict[str, object]] = {
        "wav.scp": {}, "utt2metadata": {}, "utt2num_samples": {}, "utt2fs": {}, "utt2format": {}
    }
    log_every = max(1, num_recordings // 20)
    for r in range(num_recordings):
        name = recording_name(r)
        wav_path, csv_path = audio_dir / f"{name}.wav", meta_dir / f"{name}.csv"
        utt = f"{prefix}_{name}"
        tables["utt2num_samples"][utt] = _export_one(r, simulate, wav_path, csv_path, summary)
        tables["wav.scp"][utt] = str(wav_path.resolve())
        tables["utt2metadata"][utt] = str(csv_path.resolve())
        tables["utt2fs"][utt] = simulate.plan.fs
        tables["utt2format"][utt] = simulate.render.format
        if (r + 1) % log_every == 0 or r + 1 == num_recordings:
            logger.info("%s/%s: %d of %d recordings done", audio_dir.parent.name,
                        audio_dir.name, r + 1, num_recordings)
    return tables, summary


def _export_one(r: int, simulate: "_Simulation", wav_path: Path, csv_path: Path,
                summary: Counter) -> int:
    """Recording ``r``: kept when its wav and CSV exist, else simulated and written (the wav,
    then the CSV, both atomically); returns its length in samples."""
    if wav_path.is_file() and csv_path.is_file():
        summary["skipped"] += 1
        return sf.info(str(wav_path)).frames
    mix, rows, info = simulate(r)
    text = format_dcase_csv(rows)
    if csv_path.is_file() and csv_path.read_text(encoding="utf-8") != text:
        raise ValueError(
            f"{csv_path} exists with other labels than this export gives (written by"
            " an export with other options?); delete it or use another --out_root"
        )
    write_audio(wav_path, mix, simulate.plan.fs, subtype="PCM_16")
    with atomic_open(csv_path, encoding="utf-8", newline="") as f:
        f.write(text)
    summary["written"] += 1
    summary["events"] += info["events"]
    summary["dropped_events"] += info["dropped"]
    summary["limited_peaks"] += info["limited"]
    logger.debug("%s: %d events (%d dropped), SNR %.1f dB", wav_path.stem, info["events"],
                 info["dropped"], info["snr_db"])
    return mix.shape[1]


class _Simulation:
    """Simulates recording ``r`` of an export (the renderer is made at the first call)."""

    def __init__(self, plan: RecordingPlan, render: RenderConfig, sampling: RoomSampling,
                 events_pool: "_Pool", noise_pool: Optional["_Pool"], class_of: Dict[str, int]):
        self.plan, self.render, self.sampling = plan, render, sampling
        self.events_pool, self.noise_pool, self.class_of = events_pool, noise_pool, class_of
        self.renderer = None

    def __call__(self, r: int):
        """Recording ``r``: ``(mix (C, T) float32, DCASE rows, info)``."""
        if self.renderer is None:
            self.renderer = RIRRenderer(self.render)
        plan, events_pool, noise_pool = self.plan, self.events_pool, self.noise_pool
        fs, hop, length, fade = plan.fs, plan.hop, plan.length, plan.fade
        rng = np.random.default_rng([plan.seed, r])
        fewest, most = plan.events_per_recording
        num_events = int(rng.integers(fewest, most + 1))
        geom = sample_room(self.sampling, rng, num_targets=num_events)
        render_seed = int(rng.integers(2**31 - 1))
        events: List[_Event] = []
        for _ in range(num_events):
            utt, x = events_pool.draw(rng, fs, plan.mono_policy, plan.max_event, fade)
            first, last = event_span(x, hop, plan.label_threshold_db)
            span = x[first * hop: (last + 1) * hop].astype(np.float64)
            rms = float(np.sqrt(np.mean(np.square(span))))
            level = rng.uniform(*plan.event_level_dbfs)
            x = (x * (10 ** (level / 20) / rms)).astype(np.float32)
            events.append(_Event(utt, self.class_of[events_pool.labels[utt]], x, first, last))
        frame_counts = [-(-len(e.samples) // hop) for e in events]
        placement = place_events(frame_counts, plan.num_frames, plan.max_polyphony, rng)
        snr_db = float(rng.uniform(*plan.snr_range))

        rirs = self.renderer.render(geom, render_seed)
        directions = geom.directions()
        image = np.zeros((plan.channels, length), dtype=np.float32)
        placed = sorted((p[1], p[0], i) for i, p in enumerate(placement) if p is not None)
        rows = []
        for source, (onset_frame, _, i) in enumerate(placed):
            event = events[i]
            onset = onset_frame * hop
            n = min(len(event.samples) + rirs.shape[-1] - 1, length - onset)
            image[:, onset:onset + n] += convolve_multichannel(event.samples, rirs[i], n)
            az, el, dist = directions[i]
            for frame in range(onset_frame + event.first, onset_frame + event.last + 1):
                rows.append((frame, event.class_index, source, az, el, dist * 100.0))

        mix = image
        noise_rirs = rirs[geom.num_targets:]
        if noise_pool is not None and len(noise_rirs):
            _, noise = noise_pool.draw(rng, fs, plan.mono_policy)
            fitted, start, active = fit_noise(normalize_dbfs(noise, NOISE_LEVEL_DBFS), length,
                                              fade, rng)
            noise_image = convolve_multichannel(fitted, np.sum(noise_rirs, axis=0), length)
            p_events, p_noise = scene_powers(image, noise_image, start, active)
            if p_events > 0.0 and p_noise > 0.0:
                mix = image + snr_gain(p_events, p_noise, snr_db) * noise_image
        else:
            snr_db = float("inf")
        mix, limited = limit_peak(mix)
        info = dict(events=len(placed), dropped=num_events - len(placed), snr_db=snr_db,
                    limited=int(limited))
        return mix.astype(np.float32), rows, info
