"""Scene mixing: a mono source convolved with its multichannel RIR, plus one noise signal
convolved with K noise-source RIRs, at a drawn SNR (GRAM's naturalistic scenes).

SNR definition used here (and checked by the tests):
``10 log10(P_source / P_noise)`` where ``P_source`` is the mean power of the reverberant source
over the whole clip and ``P_noise`` the mean power of the spatial noise over the samples where
the noise is active, both summed over channels. One gain scales every noise channel, so
interaural and inter-channel cues of the noise are kept.
"""

from dataclasses import dataclass

import numpy as np
import scipy.fft

NOISE_LEVEL_DBFS = -14.0
PEAK_LIMIT = 0.99


@dataclass
class Scene:
    """A rendered scene; ``mix = source_image + noise_image`` (channels, samples)."""

    mix: np.ndarray
    source_image: np.ndarray
    noise_image: np.ndarray
    snr_db: float
    clean: bool
    noise_start: int = 0
    noise_length: int = 0


def normalize_dbfs(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale ``x`` to an RMS of ``level_dbfs`` (silent input is returned unchanged)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms == 0.0:
        return x
    return (x * (10 ** (level_dbfs / 20) / rms)).astype(np.float32)


def limit_peak(x: np.ndarray, limit: float = PEAK_LIMIT) -> tuple:
    """Scale ``x`` down as a whole when its peak exceeds ``limit`` (never clip).
    Returns (audio, whether it was scaled)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= limit:
        return x, False
    return x * np.float32(limit / peak), True


def fit_noise(noise: np.ndarray, length: int, fade: int, rng: np.random.Generator) -> tuple:
    """Fit a mono noise to ``length`` samples: a random segment with a fade-out when longer,
    else faded in and out and placed at a random offset. Returns (buffer, start, active)."""
    noise = np.asarray(noise, dtype=np.float32)
    if len(noise) >= length:
        start = int(rng.integers(0, len(noise) - length + 1))
        out = noise[start:start + length].copy()
        _apply_fades(out, fade, fade_in=False)
        return out, 0, length
    seg = noise.copy()
    _apply_fades(seg, fade, fade_in=True)
    out = np.zeros(length, dtype=np.float32)
    start = int(rng.integers(0, length - len(seg) + 1))
    out[start:start + len(seg)] = seg
    return out, start, len(seg)


def _apply_fades(x: np.ndarray, fade: int, fade_in: bool) -> None:
    fade = min(fade, len(x) // 2)
    if fade <= 0:
        return
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    x[len(x) - fade:] *= ramp[::-1]
    if fade_in:
        x[:fade] *= ramp


def convolve_multichannel(x: np.ndarray, rirs: np.ndarray, length: int) -> np.ndarray:
    """First ``length`` samples of the linear convolution of mono ``x`` with (C, L) ``rirs``.

    One forward FFT of ``x`` serves every channel; float32 throughout.
    """
    n = scipy.fft.next_fast_len(len(x) + rirs.shape[-1] - 1, real=True)
    spec = scipy.fft.rfft(x.astype(np.float32, copy=False), n) * scipy.fft.rfft(
        rirs.astype(np.float32, copy=False), n, axis=-1
    )
    return scipy.fft.irfft(spec, n, axis=-1)[:, :length]


def mix_scene(source: np.ndarray, source_rir: np.ndarray, noise: np.ndarray = None,
              noise_rirs: np.ndarray = None, snr_db: float = None,
              rng: np.random.Generator = None, fs: int = 16000, fade_seconds: float = 0.2,
              clean: bool = False, noise_level_dbfs: float = NOISE_LEVEL_DBFS) -> Scene:
    """Render one naturalistic scene of the length of ``source``.

    ``source``: mono (T,); ``source_rir``: (C, L); ``noise``: mono, any length; ``noise_rirs``:
    (K, C, L'), K may be 0 (no noise). ``clean`` returns the dry source on every channel
    (the clean-scene case of the paper's lambda). Without ``snr_db`` no noise is added.
    """
    source = np.asarray(source, dtype=np.float32)
    if source.ndim != 1:
        raise ValueError(f"source must be mono (samples,), got shape {source.shape}")
    if source_rir.ndim != 2:
        raise ValueError(f"source_rir must be (channels, samples), got {source_rir.shape}")
    length = len(source)
    channels = source_rir.shape[0]
    zeros = np.zeros((channels, length), dtype=np.float32)
    if clean:
        dry = np.tile(source, (channels, 1))
        return Scene(dry, dry, zeros, float("inf"), True)
    image = convolve_multichannel(source, source_rir, length)
    if noise is None or noise_rirs is None or len(noise_rirs) == 0 or snr_db is None:
        return Scene(image, image, zeros, float("inf"), False)
    fitted, start, active, noise_rir = prepare_noise(noise, noise_rirs, length, rng, fs,
                                                     fade_seconds, noise_level_dbfs)
    noise_image = convolve_multichannel(fitted, noise_rir, length)
    p_source, p_noise = scene_powers(image, noise_image, start, active)
    if p_noise == 0.0 or p_source == 0.0:
        return Scene(image, image, zeros, float("inf"), False, start, active)
    noise_image *= snr_gain(p_source, p_noise, snr_db)
    return Scene(image + noise_image, image, noise_image, float(snr_db), False, start, active)


def prepare_noise(noise: np.ndarray, noise_rirs: np.ndarray, length: int, rng, fs: int,
                  fade_seconds: float, level_dbfs: float) -> tuple:
    """Noise normalised and fitted to ``length`` with fades, and the noise sources' RIRs
    summed: (fitted (T,), active start, active length, summed RIR (C, L)).

    The same noise signal reaches the listener from every noise source, so by linearity one
    convolution with the summed RIRs equals the sum of the K convolutions.
    """
    rng = rng if rng is not None else np.random.default_rng()
    fitted, start, active = fit_noise(
        normalize_dbfs(np.asarray(noise, dtype=np.float32), level_dbfs), length,
        int(round(fade_seconds * fs)), rng,
    )
    return fitted, start, active, np.sum(noise_rirs, axis=0)


def scene_powers(source_image: np.ndarray, noise_image: np.ndarray, start: int,
                 active: int) -> tuple:
    """Channel-summed mean powers of the source (whole clip) and of the noise (active part)."""
    p_source = np.mean(np.square(source_image, dtype=np.float64)) * source_image.shape[0]
    seg = noise_image[:, start:start + active]
    p_noise = np.sum(np.square(seg, dtype=np.float64)) / max(active, 1)
    return float(p_source), float(p_noise)


def snr_gain(p_source: float, p_noise: float, snr_db: float) -> np.float32:
    """Gain that brings noise of power ``p_noise`` to ``snr_db`` below ``p_source``."""
    return np.float32(np.sqrt(p_source / p_noise * 10 ** (-snr_db / 10)))
