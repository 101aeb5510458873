"""Reading audio with explicit policies for sample rate, channels and broken files."""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

MONO_POLICIES = ("first", "mean")
SILENCE_RMS_DB = -90.0


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


@dataclass
class LoadedAudio:
    """Audio as float32, shaped (samples,) when mono else (channels, samples)."""

    samples: np.ndarray
    fs: int
    resampled_from: int = 0
    downmixed_from: int = 0


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis."""
    if fs_in == fs_out:
        return x
    g = math.gcd(int(fs_in), int(fs_out))
    return resample_poly(x, fs_out // g, fs_in // g, axis=-1).astype(np.float32)


def to_mono(x: np.ndarray, policy: str) -> np.ndarray:
    """Reduce (channels, samples) to (samples,): first channel or channel mean."""
    if x.ndim == 1:
        return x
    if policy == "first":
        return x[0]
    if policy == "mean":
        return x.mean(axis=0)
    raise ValueError(f"--mono_policy must be one of {MONO_POLICIES}, got {policy!r}")


def problem_of(x: np.ndarray) -> str:
    """Return why ``x`` is unusable ('nan', 'silent', 'empty') or '' when it is fine."""
    if x.size == 0:
        return "empty"
    if not np.all(np.isfinite(x)):
        return "nan"
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms == 0.0 or 20 * math.log10(rms) < SILENCE_RMS_DB:
        return "silent"
    return ""


def load_audio(path, fs: int = None, mono_policy: str = None) -> LoadedAudio:
    """Read ``path`` as float32, resampled to ``fs`` and reduced to mono when asked.

    ``mono_policy`` None keeps every channel; 'first' or 'mean' returns mono.
    Raises ``AudioError`` naming the file when it is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, fs_in = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: unreadable audio ({e})") from e
    x = data.T  # (channels, samples)
    out = LoadedAudio(samples=x, fs=fs_in)
    if mono_policy is not None:
        if x.shape[0] > 1:
            out.downmixed_from = x.shape[0]
        x = to_mono(x, mono_policy)
    elif x.shape[0] == 1:
        x = x[0]
    if fs is not None and fs != fs_in:
        x = resample(x, fs_in, fs)
        out.resampled_from = fs_in
        out.fs = fs
    out.samples = np.ascontiguousarray(x, dtype=np.float32)
    return out


def write_audio(path, x: np.ndarray, fs: int, subtype: str = "PCM_16") -> None:
    """Write (samples,) or (channels, samples) audio atomically."""
    from espnet2_gram.utils.fileio import atomic_path

    data = x.T if x.ndim == 2 else x
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, fs, subtype=subtype, format=path.suffix[1:].upper() or "WAV")
