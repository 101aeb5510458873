"""Sequences of sound events for the ASR-style demo recipe (``egs2/gram/asr_demo``), and the
small tools that recipe needs around them: BPE training and error-rate scoring.

An utterance is 2-4 events (clips of a labelled data directory), each cut to its active part
or, when that is longer, to a random window of 0.6-1.2 s inside it, separated by short gaps
and framed by a little silence. The dry sequence is spatialised as one scene: the source RIR
of one bank pack (the whole sequence comes from one direction), plus a noise recording
through the pack's noise RIRs at an SNR drawn in [10, 40] dB (``mix_scene``).

Transcription (``text``): the class names in order, separated by spaces. ``text_style``
``class`` keeps each class name as one word (``bell chirp_up vowel_a``), so the word error
rate is the event error rate; ``split`` writes ``_`` as a space (``bell chirp up vowel a``).
Consecutive events never share a class.

Utterance ``i`` draws its events from ``default_rng([seed, i, 0])`` and its scene (pack,
noise, SNR) from ``default_rng([seed, i, 1])``: a set is the same for any run, and the texts
do not depend on the spatial format.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_gram.utils.audio import load_audio, write_audio
from espnet2_gram.utils.datadir import read_data_dir, write_data_dir
from espnet2_gram.utils.fileio import atomic_open, read_kv
from espnet2_gram.simulation.acoustics import event_span
from espnet2_gram.simulation.mixing import limit_peak, mix_scene
from espnet2_gram.simulation.rir_bank import RIRBank

logger = logging.getLogger(__name__)

TEXT_STYLES = ("class", "split")
FADE_SECONDS = 0.005
FRAME_SECONDS = 0.01


@dataclass
class SequenceConfig:
    """How the event sequences are drawn (times in seconds)."""

    min_events: int = 2
    max_events: int = 4
    window: Tuple[float, float] = (0.6, 1.2)  # cut length drawn in this range
    gap: Tuple[float, float] = (0.05, 0.3)  # silence between two events
    edge: Tuple[float, float] = (0.1, 0.3)  # silence before the first and after the last
    threshold_db: float = -40.0  # active part: frames within this of the loudest frame
    snr_range: Tuple[float, float] = (10.0, 40.0)
    text_style: str = "class"

    def check(self) -> None:
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError(f"need 1 <= min_events <= max_events, got {self.min_events}, "
                             f"{self.max_events}")
        for name in ("window", "gap", "edge", "snr_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi or (name != "snr_range" and lo < 0):
                raise ValueError(f"{name} must be 0 <= low <= high, got {[lo, hi]}")
        if self.window[0] <= 0:
            raise ValueError(f"window must be positive, got {list(self.window)}")
        if self.text_style not in TEXT_STYLES:
            raise ValueError(f"text_style must be one of {TEXT_STYLES}, got {self.text_style!r}")


def active_region(x: np.ndarray, fs: int, threshold_db: float = -40.0) -> Tuple[int, int]:
    """[start, end) samples from the first to the last 10-ms frame whose power is within
    ``threshold_db`` of the loudest frame; the whole signal when it is silent."""
    frame = max(1, int(round(FRAME_SECONDS * fs)))
    span = event_span(x, frame, threshold_db)
    if span is None:
        return 0, len(x)
    return span[0] * frame, min(len(x), (span[1] + 1) * frame)


def cut_event(x: np.ndarray, fs: int, rng: np.random.Generator, window=(0.6, 1.2),
              threshold_db: float = -40.0) -> np.ndarray:
    """The active part of ``x``, or a random window (length drawn in ``window`` seconds)
    inside it when it is longer; 5-ms fades at both ends."""
    start, end = active_region(x, fs, threshold_db)
    length = int(round(rng.uniform(*window) * fs))
    if end - start > length:
        start = int(rng.integers(start, end - length + 1))
        end = start + length
    out = np.array(x[start:end], dtype=np.float32)
    fade = min(int(FADE_SECONDS * fs), len(out) // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        out[:fade] *= ramp
        out[len(out) - fade:] *= ramp[::-1]
    return out


def draw_classes(rng: np.random.Generator, classes: Sequence[str], num: int) -> List[str]:
    """``num`` classes drawn uniformly, never the same class twice in a row."""
    out: List[str] = []
    for _ in range(num):
        choices = [c for c in classes if not out or c != out[-1]] or list(classes)
        out.append(choices[int(rng.integers(len(choices)))])
    return out


def transcribe(labels: Sequence[str], style: str = "class") -> str:
    """The ``text`` of a sequence of class names (see the module docstring)."""
    if style == "class":
        return " ".join(labels)
    if style == "split":
        return " ".join(" ".join(label.split("_")) for label in labels)
    raise ValueError(f"text_style must be one of {TEXT_STYLES}, got {style!r}")


def build_sequence(events: Sequence[np.ndarray], fs: int, rng: np.random.Generator,
                   gap=(0.05, 0.3), edge=(0.1, 0.3)) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
    """Concatenate the cut events with silences; returns (audio, [(start, end)] per event)."""
    pieces, spans, pos = [], [], 0
    for k, event in enumerate(events):
        lo, hi = edge if k == 0 else gap
        silence = int(round(rng.uniform(lo, hi) * fs))
        pieces += [np.zeros(silence, dtype=np.float32), event]
        pos += silence
        spans.append((pos, pos + len(event)))
        pos += len(event)
    pieces.append(np.zeros(int(round(rng.uniform(*edge) * fs)), dtype=np.float32))
    return np.concatenate(pieces), spans


class ClipPool:
    """The clips of a labelled data directory (``wav.scp`` + ``utt2label``) by class,
    loaded once as mono at ``fs``."""

    def __init__(self, data_dir, fs: int):
        tables = read_data_dir(data_dir, names=["utt2label"])
        self.fs = fs
        self.paths = tables["wav.scp"]
        self.by_class: Dict[str, List[str]] = {}
        for utt in sorted(self.paths):
            label = tables["utt2label"][utt]
            if len(label.split()) != 1:
                raise ValueError(f"{data_dir}/utt2label: {utt} has {len(label.split())} labels;"
                                 " event sequences need single-label clips")
            self.by_class.setdefault(label, []).append(utt)
        self.classes = sorted(self.by_class)
        self._cache: Dict[str, np.ndarray] = {}

    def draw(self, label: str, rng: np.random.Generator) -> Tuple[str, np.ndarray]:
        utts = self.by_class[label]
        utt = utts[int(rng.integers(len(utts)))]
        if utt not in self._cache:
            self._cache[utt] = load_audio(self.paths[utt], fs=self.fs, mono_policy="first").samples
        return utt, self._cache[utt]


def make_event_sequence_set(data_dir, bank_dir, out_dir, audio_dir, num_utts: int,
                            noise_dir=None, seed: int = 0, prefix: str = "seq",
                            config: Optional[SequenceConfig] = None) -> dict:
    """Write ``num_utts`` spatial event sequences as a data directory; returns a summary.

    ``out_dir`` gets ``wav.scp``, ``text``, ``utt2num_samples``, ``utt2label`` (the class
    names), ``utt2events`` (``class:start:end`` per event, in samples of the dry sequence;
    the scene adds the propagation delay and the reverberation tail), ``utt2doa``,
    ``utt2snr`` (``inf`` for a pack without noise sources), ``utt2rir`` and ``summary.json``;
    the wavs go to ``audio_dir``.
    """
    config = config or SequenceConfig()
    config.check()
    if num_utts <= 0:
        raise ValueError(f"--num_utts must be positive, got {num_utts}")
    bank = RIRBank(bank_dir)
    fs = bank.fs
    pool = ClipPool(data_dir, fs)
    if len(pool.classes) < 2 and config.max_events > 1:
        raise ValueError(f"{data_dir}: needs at least 2 classes, found {pool.classes}")
    noises = read_kv(Path(noise_dir) / "wav.scp") if noise_dir else {}
    noise_keys = sorted(noises)
    noise_cache: Dict[str, np.ndarray] = {}
    audio_dir = Path(audio_dir)
    width = max(4, len(str(num_utts - 1)))
    names = ("wav.scp", "text", "utt2num_samples", "utt2label", "utt2events", "utt2doa",
             "utt2snr", "utt2rir")
    out: Dict[str, Dict[str, object]] = {name: {} for name in names}
    seconds = []
    for i in range(num_utts):
        utt = f"{prefix}{i:0{width}d}"
        events_rng = np.random.default_rng([seed, i, 0])
        scene_rng = np.random.default_rng([seed, i, 1])
        num = int(events_rng.integers(config.min_events, config.max_events + 1))
        labels = draw_classes(events_rng, pool.classes, num)
        cuts = [cut_event(pool.draw(label, events_rng)[1], fs, events_rng, config.window,
                          config.threshold_db) for label in labels]
        dry, spans = build_sequence(cuts, fs, events_rng, config.gap, config.edge)
        pack = int(scene_rng.integers(len(bank)))
        source_rir, noise_rirs, meta = bank.pack(pack)
        noise, snr = None, None
        if noise_keys:
            key = noise_keys[int(scene_rng.integers(len(noise_keys)))]
            if key not in noise_cache:
                noise_cache[key] = load_audio(noises[key], fs=fs, mono_policy="first").samples
            noise, snr = noise_cache[key], float(scene_rng.uniform(*config.snr_range))
        scene = mix_scene(dry, source_rir, noise, noise_rirs, snr, scene_rng, fs)
        mix, _ = limit_peak(scene.mix)
        wav = (audio_dir / f"{utt}.wav").resolve()
        write_audio(wav, mix, fs)
        out["wav.scp"][utt] = str(wav)
        out["text"][utt] = transcribe(labels, config.text_style)
        out["utt2num_samples"][utt] = mix.shape[-1]
        out["utt2label"][utt] = " ".join(labels)
        out["utt2events"][utt] = " ".join(f"{lab}:{s}:{e}" for lab, (s, e) in zip(labels, spans))
        out["utt2doa"][utt] = (f"{meta['azimuth']:.2f} {meta['elevation']:.2f}"
                               f" {meta['distance']:.3f}")
        out["utt2snr"][utt] = f"{scene.snr_db:.2f}"
        out["utt2rir"][utt] = meta["id"]
        seconds.append(mix.shape[-1] / fs)
    write_data_dir(out_dir, out)
    summary = {"utterances": num_utts, "format": bank.format, "fs": fs,
               "channels": int(source_rir.shape[0]), "classes": pool.classes,
               "hours": sum(seconds) / 3600, "seconds_min": min(seconds),
               "seconds_max": max(seconds), "events": sum(len(v.split()) for v in
                                                          out["utt2label"].values()),
               "seed": seed, "config": {k: v for k, v in vars(config).items()}}
    with atomic_open(Path(out_dir) / "summary.json") as f:
        json.dump(summary, f, indent=2)
    logger.info("%s: %d utterances, %.1f-%.1f s, %s", out_dir, num_utts, min(seconds),
                max(seconds), bank.format)
    return summary


# ----------------------------------------------------------------------------- BPE
def train_bpe(text_file, model_prefix, vocab_size: int, model_type: str = "bpe",
              character_coverage: float = 1.0) -> Path:
    """Train a sentencepiece model on the transcriptions of a Kaldi ``text`` file (the
    utterance ids are dropped); returns ``<model_prefix>.model``."""
    import sentencepiece as spm

    lines = [v for v in read_kv(text_file, allow_empty_value=True).values() if v]
    if not lines:
        raise ValueError(f"{text_file}: no transcription to train the BPE model on")
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=int(vocab_size),
        model_type=model_type, character_coverage=character_coverage,
        input_sentence_size=100_000_000, hard_vocab_limit=False, minloglevel=2,
    )
    return prefix.with_suffix(".model")


# ----------------------------------------------------------------------------- scoring
@dataclass
class ErrorCounts:
    """Alignment counts summed over utterances (ESPnet's RESULTS.md columns)."""

    sentences: int = 0
    ref_units: int = 0
    correct: int = 0
    sub: int = 0
    dels: int = 0
    ins: int = 0
    sentence_errors: int = 0

    def add(self, other: "ErrorCounts") -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def errors(self) -> int:
        return self.sub + self.dels + self.ins

    def rate(self) -> float:
        """Error rate in percent of the reference units (errors over an empty reference
        count as 100 %)."""
        if self.ref_units == 0:
            return 100.0 if self.errors else 0.0
        return 100.0 * self.errors / self.ref_units

    def row(self, name: str) -> str:
        def pct(x, n):
            return f"{100.0 * x / n:.1f}" if n else "0.0"

        n = self.ref_units
        return (f"|{name}|{self.sentences}|{n}|{pct(self.correct, n)}|{pct(self.sub, n)}|"
                f"{pct(self.dels, n)}|{pct(self.ins, n)}|{self.rate():.1f}|"
                f"{pct(self.sentence_errors, self.sentences)}|")


def align_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Levenshtein alignment of two unit sequences; among the alignments with the fewest
    errors, the one with the most correct units (then substitutions before deletions)."""
    n, m = len(ref), len(hyp)
    # cost[i][j] = (errors, -correct) of the best alignment of ref[:i] with hyp[:j]
    cost = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    back = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0], back[i][0] = (i, 0), "D"
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = (j, 0), "I"
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = ref[i - 1] == hyp[j - 1]
            e, c = cost[i - 1][j - 1]
            options = [((e, c - 1) if same else (e + 1, c), "C" if same else "S")]
            e, c = cost[i - 1][j]
            options.append(((e + 1, c), "D"))
            e, c = cost[i][j - 1]
            options.append(((e + 1, c), "I"))
            cost[i][j], back[i][j] = min(options, key=lambda o: o[0])
    counts = ErrorCounts(sentences=1, ref_units=n)
    i, j = n, m
    while i > 0 or j > 0:
        op = back[i][j]
        if op in ("C", "S"):
            counts.correct += op == "C"
            counts.sub += op == "S"
            i, j = i - 1, j - 1
        elif op == "D":
            counts.dels += 1
            i -= 1
        else:
            counts.ins += 1
            j -= 1
    counts.sentence_errors = int(counts.errors > 0)
    return counts


def units(text: str, unit: str, bpe=None) -> List[str]:
    """``word``: whitespace-separated words; ``char``: characters, one space between words
    counting as a character (ESPnet's ``<space>``); ``token``: the pieces of the
    sentencepiece processor ``bpe``."""
    words = text.split()
    if unit == "word":
        return words
    if unit == "char":
        return list(" ".join(words))
    if unit == "token":
        return bpe.encode(" ".join(words), out_type=str) if words else []
    raise ValueError(f"unit must be word, char or token, got {unit!r}")


def score(ref: Dict[str, str], hyp: Dict[str, str], unit: str = "word", bpe=None) -> ErrorCounts:
    """Counts over the utterances of ``ref``; a missing hypothesis counts as empty."""
    total = ErrorCounts()
    for utt in sorted(ref):
        total.add(align_counts(units(ref[utt], unit, bpe), units(hyp.get(utt, ""), unit, bpe)))
    return total
