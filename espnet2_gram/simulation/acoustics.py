"""Measurements on impulse responses and scenes: RT60, FOA intensity direction, ITD / ILD."""

from typing import Optional, Tuple

import numpy as np

from espnet2_gram.simulation.geometry import cart_to_sph


def schroeder_decay_db(rir: np.ndarray) -> np.ndarray:
    """Schroeder backward-integrated energy decay curve in dB (0 dB at t = 0).

    A (channels, samples) input is integrated over the energy summed across channels.
    """
    energy = np.square(np.asarray(rir, dtype=np.float64))
    if energy.ndim == 2:
        energy = energy.sum(axis=0)
    edc = np.cumsum(energy[::-1])[::-1]
    return 10.0 * np.log10(np.maximum(edc / max(edc[0], 1e-300), 1e-300))


def rt60_schroeder(rir: np.ndarray, fs: int, start_db: float = -5.0,
                   end_db: float = -25.0) -> float:
    """RT60 from a least-squares line fitted to the decay curve between two levels (T20 default).

    Returns NaN when the decay never reaches ``end_db``.
    """
    edc = schroeder_decay_db(rir)
    idx = np.nonzero((edc <= start_db) & (edc >= end_db))[0]
    if edc.min() > end_db or idx.size < 2:
        return float("nan")
    t = idx / fs
    slope, _ = np.polyfit(t, edc[idx], 1)
    return float(-60.0 / slope) if slope < 0 else float("nan")


def foa_intensity_direction(foa: np.ndarray) -> tuple:
    """Azimuth and elevation (degrees) of the time-averaged active intensity of an ACN/SN3D
    signal (4, samples): I = mean(W * (X, Y, Z))."""
    w, y, z, x = np.asarray(foa, dtype=np.float64)
    intensity = np.array([np.mean(w * x), np.mean(w * y), np.mean(w * z)])
    az, el, _ = cart_to_sph(intensity)
    return float(az), float(el)


def interaural_time_difference(binaural: np.ndarray, fs: int, max_itd_s: float = 1e-3) -> float:
    """ITD in seconds from the peak of the interaural cross-correlation; positive when the
    left ear (channel 0) leads."""
    left, right = np.asarray(binaural, dtype=np.float64)
    n = len(left) + len(right) - 1
    nfft = 1 << (n - 1).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(right, nfft) * np.conj(np.fft.rfft(left, nfft)), nfft)
    max_lag = int(round(max_itd_s * fs))
    lags = np.arange(-max_lag, max_lag + 1)
    return float(lags[np.argmax(xcorr[lags])] / fs)


def interaural_level_difference_db(binaural: np.ndarray) -> float:
    """Left-minus-right energy ratio in dB."""
    left, right = np.square(np.asarray(binaural, dtype=np.float64)).sum(axis=-1)
    return float(10.0 * np.log10(left / right))


def event_span(clip: np.ndarray, hop: int, threshold_db: float) -> Optional[Tuple[int, int]]:
    """First and last ``hop``-sample frame (inclusive) of ``clip`` whose energy is within
    ``threshold_db`` (negative) of its loudest frame; None for an all-zero clip."""
    frames = -(-len(clip) // hop)
    padded = np.zeros(frames * hop, dtype=np.float64)
    padded[: len(clip)] = clip
    energy = np.sum(np.square(padded.reshape(frames, hop)), axis=1)
    peak = float(energy.max()) if frames else 0.0
    if peak <= 0.0:
        return None
    active = np.nonzero(energy >= peak * 10 ** (threshold_db / 10))[0]
    return int(active[0]), int(active[-1])
