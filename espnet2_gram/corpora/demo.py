"""Embedded demo corpus: labelled synthetic mono sound events and noise recordings.

Nothing is downloaded. Every clip is synthesised from its own random generator, seeded
by ``(seed, split, class, index)``, so the corpus is reproducible bit for bit and any
clip can be regenerated alone. Each class has its own spectro-temporal character and
each clip draws its own parameters (f0, duration, onset, level, envelope...).
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Mapping

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from espnet2_gram.utils.audio import write_audio
from espnet2_gram.utils.fileio import atomic_open
from espnet2_gram.corpora.common import write_audio_data_dir

logger = logging.getLogger(__name__)

VERSION = 2  # bump when the synthesis changes, so that old corpora are regenerated
STAMP = "demo_params.json"
SPLITS = ("train", "valid", "test")
NOISE_SPLIT = "noise"
DEFAULT_CLIPS_PER_CLASS = {"train": 16, "valid": 4, "test": 6}
LEVEL_DBFS = (-12.0, -3.0)
EVENT_FRACTION = (0.4, 0.9)  # event duration relative to the clip
FADE_SECONDS = 0.005
MIN_FS = 8000
MIN_SECONDS = 0.5
VOWELS = {  # formant frequencies F1, F2, F3 in Hz
    "a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240),
    "e": (530, 1840, 2480), "o": (570, 840, 2410),
}
FORMANT_BANDWIDTHS = (80.0, 100.0, 140.0)
BELL_RATIOS = np.array([0.56, 0.92, 1.19, 1.71, 2.0, 2.74, 3.0, 3.76, 4.07])


# ----------------------------------------------------------------------------- building blocks
def _time(n: int, fs: int) -> np.ndarray:
    return np.arange(n) / fs


def _partials(freq: np.ndarray, ratios, amps, fs: int, decays=None) -> np.ndarray:
    """Sum of sines at ``ratios * freq`` (freq: per-sample Hz), those below 0.45 fs kept."""
    ratios, amps = np.asarray(ratios, float), np.asarray(amps, float)
    keep = ratios * np.max(freq) < 0.45 * fs
    phase = 2 * np.pi * np.cumsum(freq) / fs
    waves = np.sin(np.outer(ratios[keep], phase))
    if decays is not None:
        waves *= np.exp(-np.outer(1.0 / np.asarray(decays)[keep], _time(len(phase), fs)))
    return amps[keep] @ waves


def _vibrato(rng, n: int, fs: int, f0: float, depth: float) -> np.ndarray:
    rate = rng.uniform(4.0, 7.0)
    return f0 * (1 + depth * np.sin(2 * np.pi * rate * _time(n, fs) + rng.uniform(0, 2 * np.pi)))


def _adsr(rng, n: int, fs: int, attack=(0.005, 0.05), release=(0.02, 0.2)) -> np.ndarray:
    """Linear attack, sustain and linear release, each ramp at most a third of ``n``."""
    a = int(np.clip(rng.uniform(*attack) * fs, 1, n // 3))
    r = int(np.clip(rng.uniform(*release) * fs, 1, n // 3))
    env = np.ones(n)
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    env[n - r:] = np.linspace(1.0, 0.0, r)
    return env


def _decay(n: int, fs: int, tau: float) -> np.ndarray:
    return np.exp(-_time(n, fs) / tau)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, fs: int) -> np.ndarray:
    """Two-pole resonator with unit gain at DC."""
    r = np.exp(-np.pi * bandwidth / fs)
    a = [1.0, -2 * r * np.cos(2 * np.pi * freq / fs), r * r]
    return lfilter([sum(a)], a, x)


def _band_noise(rng, n: int, fs: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n)


def _colored_noise(rng, n: int, fs: int, exponent: float, lowest: float = 20.0) -> np.ndarray:
    """Noise with power spectral density proportional to 1/f**exponent above ``lowest`` Hz."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    gain = np.zeros_like(f)
    gain[f >= lowest] = f[f >= lowest] ** (-exponent / 2)
    return np.fft.irfft(spec * gain, n)


def _glottal_source(f0: np.ndarray, fs: int) -> np.ndarray:
    """Pulse train following the f0 track, shaped like a glottal flow derivative."""
    cycles = np.floor(np.cumsum(f0) / fs)
    pulses = np.diff(cycles, prepend=0.0)
    flow = lfilter([1.0], [1.0, -1.94, 0.9409], pulses)  # double pole at 0.97: -12 dB/oct
    return np.diff(flow, prepend=0.0)  # lip radiation: +6 dB/oct


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _formants(x: np.ndarray, freqs, fs: int) -> np.ndarray:
    for freq, bandwidth in zip(freqs, FORMANT_BANDWIDTHS):
        x = _resonator(x, min(freq, 0.45 * fs), bandwidth, fs)
    return x


# ----------------------------------------------------------------------------- sound events
def harmonic_tone(rng, fs, n):
    """Sawtooth-like tone: every harmonic at 1/k, slight vibrato."""
    f0 = _vibrato(rng, n, fs, rng.uniform(80, 160), 0.004)
    k = np.arange(1, 200)
    return _partials(f0, k, 1 / k, fs) * _adsr(rng, n, fs)


def clarinet(rng, fs, n):
    """Odd harmonics only (a reed in a closed pipe), soft attack, vibrato."""
    f0 = _vibrato(rng, n, fs, rng.uniform(350, 550), 0.006)
    k = np.arange(1, 16, 2)
    return _partials(f0, k, k ** -0.5, fs) * _adsr(rng, n, fs, attack=(0.03, 0.08))


def bell(rng, fs, n):
    """Inharmonic partials, each with its own exponential decay."""
    f0 = np.full(n, rng.uniform(700, 1000))
    tau = rng.uniform(0.6, 1.5) / BELL_RATIOS ** 0.8
    amps = rng.uniform(0.5, 1.0, len(BELL_RATIOS)) / np.sqrt(BELL_RATIOS)
    return _partials(f0, BELL_RATIOS, amps, fs, decays=tau) * _adsr(rng, n, fs, (0.001, 0.003))


def _chirp(rng, fs, n, f_start, f_end):
    f_start, f_end = min(f_start, 0.4 * fs), min(f_end, 0.4 * fs)
    freq = f_start * (f_end / f_start) ** (np.arange(n) / n)
    return _partials(freq, [1, 2], [1.0, 0.2], fs) * _adsr(rng, n, fs)


def chirp_up(rng, fs, n):
    """Exponential sweep upwards."""
    return _chirp(rng, fs, n, rng.uniform(250, 500), rng.uniform(2000, 4000))


def chirp_down(rng, fs, n):
    """Exponential sweep downwards."""
    return _chirp(rng, fs, n, rng.uniform(2000, 4000), rng.uniform(250, 500))


def siren(rng, fs, n):
    """Slow sinusoidal frequency modulation of a buzzy tone (a wailing siren)."""
    rate = rng.uniform(1.0, 3.0)
    freq = rng.uniform(700, 1400) + rng.uniform(150, 400) * np.sin(
        2 * np.pi * rate * _time(n, fs) + rng.uniform(0, 2 * np.pi))
    return _partials(freq, [1, 2, 3], [1.0, 0.4, 0.2], fs) * _adsr(rng, n, fs)


def noise_burst(rng, fs, n):
    """Band-limited noise, half an octave to an octave around 2.5-4.5 kHz."""
    centre, octaves = min(rng.uniform(2500, 4500), 0.3 * fs), rng.uniform(0.5, 1.0)
    lo, hi = centre * 2 ** (-octaves / 2), min(centre * 2 ** (octaves / 2), 0.45 * fs)
    x = _band_noise(rng, n, fs, lo, hi)
    return x * _adsr(rng, n, fs, attack=(0.002, 0.02), release=(0.02, 0.1))


def click_train(rng, fs, n):
    """Regular broadband clicks, 5-20 per second, with a little timing jitter."""
    period = fs / rng.uniform(5, 20)
    pos = np.arange(rng.uniform(0, min(period, n / 2)), n, period)
    pos = pos + rng.uniform(-0.05, 0.05, len(pos)) * period
    pos = np.clip(np.round(pos), 2 * FADE_SECONDS * fs, n - 2 * FADE_SECONDS * fs)  # not faded out
    impulses = np.zeros(n)
    impulses[pos.astype(int)] = rng.uniform(0.6, 1.0, len(pos))
    return lfilter([1.0, -1.0], [1.0, -0.5], impulses)  # sharp, bright click


def plucked_string(rng, fs, n):
    """Karplus-Strong: a noise burst recirculated through an averaging delay line."""
    period = int(round(fs / rng.uniform(180, 330)))
    excitation = np.zeros(n)
    excitation[:period] = lfilter([1.0], [1.0, -rng.uniform(0.0, 0.5)],
                                  rng.uniform(-1, 1, period))
    a = np.zeros(period + 2)
    a[0] = 1.0
    a[period:] = -0.5 * rng.uniform(0.97, 0.99)
    return lfilter([1.0], a, excitation)


def _vowel(rng, fs, n, vowel):
    f0 = rng.uniform(100, 240) * (1 - 0.1 * np.arange(n) / n)  # declination
    f0 *= _vibrato(rng, n, fs, 1.0, 0.01)
    freqs = np.array(VOWELS[vowel]) * rng.uniform(0.95, 1.05, 3)
    return _formants(_glottal_source(f0, fs), freqs, fs) * _adsr(rng, n, fs)


def vowel_a(rng, fs, n):
    """Sung /a/: glottal pulse train through the formants of /a/."""
    return _vowel(rng, fs, n, "a")


def vowel_i(rng, fs, n):
    """Sung /i/: glottal pulse train through the formants of /i/."""
    return _vowel(rng, fs, n, "i")


def drum(rng, fs, n):
    """Sine with a falling pitch plus a noise attack, both decaying fast."""
    t = _time(n, fs)
    f_end = rng.uniform(45, 80)
    freq = f_end + (rng.uniform(120, 250) - f_end) * np.exp(-t / rng.uniform(0.02, 0.06))
    body = np.sin(2 * np.pi * np.cumsum(freq) / fs) * _decay(n, fs, rng.uniform(0.08, 0.2))
    hit = lfilter([0.3], [1.0, -0.7], rng.standard_normal(n)) * _decay(n, fs, 0.02)
    return body + rng.uniform(0.2, 0.5) * hit


def am_tone(rng, fs, n):
    """Pure tone with tremolo (4-12 Hz amplitude modulation)."""
    t = _time(n, fs)
    tremolo = 1 - rng.uniform(0.6, 1.0) * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(4, 12) * t))
    return np.sin(2 * np.pi * rng.uniform(400, 700) * t) * tremolo * _adsr(rng, n, fs)


def broadband_burst(rng, fs, n):
    """Pink-to-white noise burst over the whole band (100 Hz to 0.45 fs), sharp onset: the
    broadband energy that carries pinna (front-back) cues."""
    x = _colored_noise(rng, n, fs, rng.uniform(0.0, 1.0), lowest=100.0)
    return x * _adsr(rng, n, fs, attack=(0.001, 0.01), release=(0.05, 0.3))


def speech_like(rng, fs, n):
    """Syllables: voiced vowels (glottal pulses through formants) alternating with fricatives
    (noise high-passed above 2-4 kHz), like running speech."""
    out = np.zeros(n)
    start = 0
    while start < n:
        fric = min(n - start, int(rng.uniform(0.04, 0.12) * fs))
        lo = min(rng.uniform(2000, 4000), 0.3 * fs)
        out[start:start + fric] = _unit_rms(_band_noise(rng, fric, fs, lo, 0.45 * fs)
                                            * np.hanning(fric)) * rng.uniform(0.5, 1.0)
        start += fric
        vowel = min(n - start, int(rng.uniform(0.1, 0.25) * fs))
        if vowel > 0:
            vowel_name = list(VOWELS)[int(rng.integers(len(VOWELS)))]
            out[start:start + vowel] = _unit_rms(_vowel(rng, fs, vowel, vowel_name))
        start += vowel + int(rng.uniform(0.0, 0.08) * fs)
    return out


def knock(rng, fs, n):
    """Two to five knocks on wood: a broadband click exciting two damped resonances."""
    out = np.zeros(n)
    for pos in np.sort(rng.uniform(0.0, 0.8, int(rng.integers(2, 6)))) * n:
        out[int(pos)] += rng.uniform(0.6, 1.0)
    modes = sum(_resonator(out, rng.uniform(lo, hi), rng.uniform(60, 200), fs)
                for lo, hi in ((250, 500), (900, 1800)))
    return modes + lfilter([1.0, -1.0], [1.0, -0.3], out)


EVENTS: Dict[str, Callable] = {f.__name__: f for f in (
    harmonic_tone, clarinet, bell, chirp_up, chirp_down, siren, noise_burst, click_train,
    plucked_string, vowel_a, vowel_i, drum, am_tone, broadband_burst, speech_like, knock,
)}


# ----------------------------------------------------------------------------- noises
def babble(rng, fs, n):
    """Several talkers: random vowels (syllables of 120-300 ms) on wandering f0 tracks."""
    out = np.zeros(n)
    for _ in range(rng.integers(4, 9)):
        knots = rng.uniform(0.8, 1.25, n // int(0.1 * fs) + 2)
        f0 = rng.uniform(90, 250) * np.interp(np.arange(n) / (0.1 * fs), np.arange(len(knots)),
                                              knots)
        source = _glottal_source(f0, fs)
        voice = np.zeros(n)
        start = int(rng.uniform(0, 0.2) * fs)
        while start < n:
            stop = min(n, start + int(rng.uniform(0.12, 0.3) * fs))
            freqs = np.array(VOWELS[rng.choice(list(VOWELS))]) * rng.uniform(0.9, 1.1, 3)
            voice[start:stop] = _formants(source[start:stop], freqs, fs) * np.hanning(stop - start)
            start = stop + int(rng.uniform(0.0, 0.1) * fs)
        out += rng.uniform(0.5, 1.0) * voice / (np.max(np.abs(voice)) + 1e-12)
    return out


def pink(rng, fs, n):
    """1/f noise."""
    return _colored_noise(rng, n, fs, 1.0)


def brown(rng, fs, n):
    """1/f**2 noise."""
    return _colored_noise(rng, n, fs, 2.0)


def hum(rng, fs, n):
    """Mains hum: 50 or 60 Hz and its harmonics up to 1 kHz, over faint pink noise."""
    mains = rng.choice([50.0, 60.0])
    freq = mains + rng.uniform(-0.1, 0.1) * np.sin(2 * np.pi * 0.2 * _time(n, fs))
    k = np.arange(1, int(1000 // mains) + 1)
    x = _partials(freq, k, rng.uniform(0.1, 1.0, len(k)) / k ** 0.7, fs)
    floor = _colored_noise(rng, n, fs, 1.0)
    return x / np.max(np.abs(x)) + 0.01 * floor / np.max(np.abs(floor))


NOISES: Dict[str, Callable] = {f.__name__: f for f in (babble, pink, brown, hum)}


# ----------------------------------------------------------------------------- clips
def _normalise(rng, x: np.ndarray) -> np.ndarray:
    """Peak-normalise to a random level in LEVEL_DBFS."""
    return x * (10 ** (rng.uniform(*LEVEL_DBFS) / 20) / np.max(np.abs(x)))


def event_clip(name: str, rng, fs: int, n_clip: int) -> np.ndarray:
    """One clip of ``n_clip`` samples holding one event of class ``name`` at a random onset."""
    n = int(rng.uniform(*EVENT_FRACTION) * n_clip)
    onset = int(rng.integers(0, n_clip - n + 1))
    ramp = np.linspace(0.0, 1.0, int(FADE_SECONDS * fs))
    fade = np.ones(n)
    fade[:len(ramp)], fade[n - len(ramp):] = ramp, ramp[::-1]
    clip = np.zeros(n_clip)
    clip[onset:onset + n] = EVENTS[name](rng, fs, n) * fade
    return _normalise(rng, clip).astype(np.float32)


def noise_clip(name: str, rng, fs: int, n: int) -> np.ndarray:
    """A noise recording of type ``name`` (see NOISES), ``n`` samples long."""
    return _normalise(rng, NOISES[name](rng, fs, n)).astype(np.float32)


def _check_params(fs, clip_seconds, clips_per_class, noise_clips, noise_seconds, seed):
    if int(fs) != fs or fs < MIN_FS:
        raise ValueError(f"--fs must be an integer >= {MIN_FS}, got {fs}")
    if clip_seconds < MIN_SECONDS or noise_seconds < MIN_SECONDS:
        raise ValueError(f"--clip_seconds and --noise_seconds must be >= {MIN_SECONDS}, got "
                         f"{clip_seconds} and {noise_seconds}")
    unknown = set(clips_per_class) - set(SPLITS)
    if unknown:
        raise ValueError(f"--clips_per_class: unknown split(s) {sorted(unknown)}; use {SPLITS}")
    if any(int(v) != v or v < 0 for v in [*clips_per_class.values(), noise_clips, seed]):
        raise ValueError("clip counts and --seed must be non-negative integers")


def _is_valid(path: Path, fs: int, n: int) -> bool:
    try:
        info = sf.info(str(path))
    except Exception:  # soundfile raises several types for corrupt files
        return False
    return info.samplerate == fs and info.frames == n and info.channels == 1


def _refresh_stamp(audio_dir: Path, params: dict) -> None:
    """Delete the clips of other parameters (per the stamp) and stamp ``params``."""
    stamp = audio_dir / STAMP
    if stamp.is_file():
        try:
            old = json.loads(stamp.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old == params:
            return
        logger.info("%s: parameters changed, regenerating the demo audio", audio_dir)
    for split in (*SPLITS, NOISE_SPLIT):
        for path in (audio_dir / split).glob("demo_*.wav"):
            path.unlink()
    with atomic_open(stamp, encoding="utf-8") as f:
        json.dump(params, f, indent=1, sort_keys=True)


def make_demo_corpus(out_audio_dir, data_dir, fs: int = 16000, clip_seconds: float = 2.0,
                     clips_per_class: Mapping[str, int] = None, noise_clips: int = 12,
                     noise_seconds: float = 4.0, seed: int = 0) -> List[Path]:
    """Generate the demo audio (16-bit wav) and write its data dirs; return their paths.

    Writes ``demo_{train,valid,test}`` (utt2label = event class) and ``demo_noise``
    (utt2label = noise type) under ``data_dir``; splits with no clips are left out.
    Valid clips generated earlier with the same parameters are kept as they are.
    """
    clips_per_class = dict(DEFAULT_CLIPS_PER_CLASS if clips_per_class is None
                           else clips_per_class)
    _check_params(fs, clip_seconds, clips_per_class, noise_clips, noise_seconds, seed)
    audio_dir = Path(out_audio_dir)
    params = dict(version=VERSION, fs=int(fs), clip_seconds=float(clip_seconds),
                  clips_per_class={s: int(clips_per_class.get(s, 0)) for s in SPLITS},
                  noise_clips=int(noise_clips), noise_seconds=float(noise_seconds),
                  seed=int(seed))
    _refresh_stamp(audio_dir, params)
    fs = params["fs"]

    plan = {}  # split -> {utt: (label, synthesis, seed sequence, samples)}
    n_clip, n_noise = int(round(clip_seconds * fs)), int(round(noise_seconds * fs))
    for s, split in enumerate(SPLITS):
        plan[split] = {
            f"demo_{split}_{name}_{i:03d}": (name, event_clip, (seed, s, c, i), n_clip)
            for c, name in enumerate(EVENTS) for i in range(params["clips_per_class"][split])
        }
    kinds = list(NOISES)
    plan[NOISE_SPLIT] = {
        f"demo_noise_{kinds[i % len(kinds)]}_{i:03d}":
            (kinds[i % len(kinds)], noise_clip, (seed, len(SPLITS), i % len(kinds), i), n_noise)
        for i in range(noise_clips)
    }

    outs, made = [], 0
    for split, clips in plan.items():
        out_dir = Path(data_dir) / f"demo_{split}"
        if not clips:
            if out_dir.is_dir():
                logger.info("%s: no clips asked for this split, removing it", out_dir)
                shutil.rmtree(out_dir)
            continue
        utt2path, labels = {}, {}
        for utt, (label, synth, key, n) in clips.items():
            path = audio_dir / split / f"{utt}.wav"
            if not _is_valid(path, fs, n):
                write_audio(path, synth(label, np.random.default_rng(key), fs, n), fs)
                made += 1
            utt2path[utt], labels[utt] = path, label
        outs.append(write_audio_data_dir(out_dir, utt2path, {"utt2label": labels}))
    logger.info("demo corpus: %d clips generated, %d kept from an earlier run", made,
                sum(map(len, plan.values())) - made)
    return outs
