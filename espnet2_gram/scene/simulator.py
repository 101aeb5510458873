"""On-the-fly naturalistic scenes for GRAM pretraining, as an ESPnet preprocess function.

ESPnet's data loader calls ``SceneSimulator()(uid, data)`` for every item, inside its
DataLoader worker processes. ``data["speech"]`` is the source clip as ESPnet's ``sound``
loader reads it, (T,) or (T, C) with channels last, at the simulator's ``fs`` (the data
directory must already be at that rate). The clip is made mono, RMS-normalised, cut to
exactly ``clip_seconds`` (a random crop when longer; clips shorter than a crop are
zero-padded at the end) and then either

* returned dry on every channel of the format (probability ``clean_ratio``, the paper's
  lambda), or
* placed in a random pack of the RIR bank (source RIR + 0-5 noise-source RIRs from one room)
  with a random noise recording at an SNR drawn uniformly from ``snr_range``
  (``espnet2_gram.simulation.mixing.mix_scene``; a pack without noise sources gives a
  reverberant, noise-free scene).

The result replaces ``data["speech"]`` as (T, C) float32; other keys are kept.

Randomness: in training each process (DataLoader worker, or the main process) draws from one
numpy Generator seeded with ``(seed, torch.initial_seed())``. PyTorch seeds every worker
differently, and from a base seed drawn anew at every epoch from ESPnet's seeded generator,
so workers and epochs see different scenes and a run is reproducible given ESPnet's
``--seed``. With ``train=False`` every draw depends on ``(seed, crc32(uid))`` only: validation
scenes are the same at every epoch, in any worker.
"""

import logging
import math
import os
import zlib
from typing import Dict, Optional, Sequence

import numpy as np

from espnet2_gram.formats import RENDERED, get_format, num_channels
from espnet2_gram.simulation.mixing import (NOISE_LEVEL_DBFS, mix_scene, normalize_dbfs,
                                            prepare_noise)
from espnet2_gram.utils.audio import MONO_POLICIES, AudioError, problem_of, resample, to_mono
from espnet2_gram.utils.fileio import read_kv

logger = logging.getLogger(__name__)



class SceneSimulator:
    """``fn(uid, data) -> data`` building a new spatial scene around ``data["speech"]``.

    ``bank_dir``: a merged RIR bank (``espnet2_gram.simulation.rir_bank``) of the same
    ``format`` and ``fs``; required for binaural/FOA unless ``clean_ratio`` is 1, and not
    allowed for ``format="mono"`` (which returns the normalised dry clip as (T, 1), the
    GRAM-Clean baseline). ``noise_scp``: a Kaldi wav.scp of noise recordings (plain paths;
    read with soundfile when drawn, reduced to mono by ``mono_policy`` and resampled to
    ``fs``). Without it scenes are reverberant but noise-free.
    ``source_level_dbfs``: RMS level of the source clip (before cropping); silent clips are
    left as they are. ``noise_level_dbfs``: level the noise is brought to before its SNR gain
    (the SNR alone sets the final noise level).
    """

    def __init__(self, bank_dir: Optional[str] = None, noise_scp: Optional[str] = None,
                 format: str = "binaural", fs: int = 32000, clip_seconds: float = 10.0,
                 snr_range: Sequence[float] = (5.0, 40.0), clean_ratio: float = 0.0,
                 fade_seconds: float = 0.2, source_level_dbfs: float = -14.0,
                 noise_level_dbfs: float = NOISE_LEVEL_DBFS, mono_policy: str = "first",
                 train: bool = True, seed: int = 0, mix_on_device: bool = False):
        if mono_policy not in MONO_POLICIES:
            raise ValueError(f"mono_policy must be one of {MONO_POLICIES}, got {mono_policy!r}")
        if not 0.0 <= clean_ratio <= 1.0:
            raise ValueError(f"clean_ratio must be in [0, 1], got {clean_ratio}")
        snr_range = tuple(float(v) for v in snr_range)
        if len(snr_range) != 2 or snr_range[0] > snr_range[1]:
            raise ValueError(f"snr_range must be (low, high) with low <= high, got {snr_range}")
        if fs <= 0 or clip_seconds <= 0 or fade_seconds < 0:
            raise ValueError("fs and clip_seconds must be positive, fade_seconds >= 0")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        spatial = get_format(format).rendered
        dry = f"format={format!r} scenes are dry clips (GRAM-Clean)"
        if not spatial and bank_dir:
            raise ValueError(f"{dry}: bank_dir is not used; choose one of {list(RENDERED)} to"
                             " use a bank")
        if not spatial and noise_scp:
            raise ValueError(f"{dry}: noise_scp is not used")
        if mix_on_device and not spatial:
            raise ValueError(f"mix_on_device needs a spatial format ({' or '.join(RENDERED)})")
        if spatial and not bank_dir and clean_ratio < 1.0:
            raise ValueError(f"format={format!r} needs bank_dir (an RIR bank of that format)"
                             " unless clean_ratio=1")
        self.bank_dir = str(bank_dir) if bank_dir else None
        self.noise_scp = str(noise_scp) if noise_scp else None
        self.format = format
        self.fs = int(fs)
        self.clip_seconds = float(clip_seconds)
        self.clip_samples = int(round(self.clip_seconds * self.fs))
        self.snr_range = snr_range
        self.clean_ratio = float(clean_ratio)
        self.fade_seconds = float(fade_seconds)
        self.source_level_dbfs = float(source_level_dbfs)
        self.noise_level_dbfs = float(noise_level_dbfs)
        self.mono_policy = mono_policy
        self.train = bool(train)
        self.seed = int(seed)
        self.mix_on_device = bool(mix_on_device)
        self.noises = self._read_noise_scp(self.noise_scp) if self.noise_scp else []
        self.last_info: Dict[str, object] = {}
        self._bank = None
        self._rng = None
        self._rng_key = None
        self._logged_downmix = False

    @property
    def channels(self) -> int:
        """Channels of the output scenes: 1 (mono), 2 (binaural) or 4 (FOA)."""
        return num_channels(self.format)

    def __getstate__(self):
        # Worker processes started by pickling load the bank and seed their generator anew.
        state = self.__dict__.copy()
        state.update(_bank=None, _rng=None, _rng_key=None)
        return state

    @staticmethod
    def _read_noise_scp(path: str) -> list:
        entries = list(read_kv(path).items())
        if not entries:
            raise ValueError(f"{path}: the noise list is empty")
        for key, value in entries:
            if value.endswith("|"):
                raise ValueError(f"{path}: noise {key!r} is a command pipe ({value!r}); only"
                                 " audio file paths are supported")
        return entries

    @property
    def bank(self):
        """The RIR bank, loaded on first use in each process (after the DataLoader fork)."""
        if self._bank is None and self.bank_dir:
            from espnet2_gram.simulation.rir_bank import RIRBank

            bank = RIRBank(self.bank_dir)
            if bank.format != self.format or bank.fs != self.fs:
                raise ValueError(
                    f"RIR bank {self.bank_dir} holds {bank.format} RIRs at {bank.fs} Hz, but the"
                    f" scenes are configured as format={self.format!r}, fs={self.fs}; use a bank"
                    " built with the same --format and --fs"
                )
            self._bank = bank
        return self._bank

    def generator(self, uid: str) -> np.random.Generator:
        """The Generator for ``uid``'s draws (see the module docstring)."""
        if not self.train:
            return np.random.default_rng([self.seed, zlib.crc32(uid.encode("utf-8"))])
        import torch

        key = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_key != key:
            self._rng = np.random.default_rng([self.seed, key[1]])
            self._rng_key = key
        return self._rng

    def prepare_source(self, uid: str, speech) -> np.ndarray:
        """(T,) or (T, C) -> mono float32 at ``source_level_dbfs`` (silence left as is)."""
        x = np.asarray(speech)
        if x.ndim == 2:
            if x.shape[1] > 1 and not self._logged_downmix:
                logger.info("utterance %s: %d-channel source reduced to mono (mono_policy=%s);"
                            " logged once per process", uid, x.shape[1], self.mono_policy)
                self._logged_downmix = True
            x = to_mono(x.T, self.mono_policy)
        elif x.ndim != 1:
            raise ValueError(f"utterance {uid}: expected speech of shape (samples,) or"
                             f" (samples, channels), got {x.shape}")
        x = x.astype(np.float32)
        problem = problem_of(x)
        if problem == "empty":
            raise ValueError(f"utterance {uid}: empty audio")
        if problem == "nan":
            raise ValueError(f"utterance {uid}: audio contains NaN or inf")
        if problem == "silent":
            return x
        return normalize_dbfs(x, self.source_level_dbfs)

    def fit_clip(self, x: np.ndarray, rng: np.random.Generator) -> tuple:
        """A random ``clip_samples`` crop, or ``x`` zero-padded at the end: (clip, offset)."""
        n = self.clip_samples
        if len(x) > n:
            offset = int(rng.integers(0, len(x) - n + 1))
            return x[offset:offset + n], offset
        out = np.zeros(n, dtype=np.float32)
        out[:len(x)] = x
        return out, 0

    def read_noise(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """Noise ``index`` as mono float32 at ``fs``: a random window just long enough for a
        clip when the recording is longer, else the whole recording."""
        import soundfile as sf

        key, path = self.noises[index]
        try:
            info = sf.info(path)
            need = int(math.ceil(self.clip_samples * info.samplerate / self.fs))
            start, frames = 0, -1
            if info.frames > need:
                start, frames = int(rng.integers(0, info.frames - need + 1)), need
            data, sr = sf.read(path, start=start, frames=frames, dtype="float32",
                               always_2d=True)
        except Exception as e:  # soundfile raises several types for missing/corrupt files
            raise AudioError(f"{path} (noise {key!r} of {self.noise_scp}): unreadable audio"
                             f" ({e})") from e
        x = resample(to_mono(data.T, self.mono_policy), sr, self.fs).astype(np.float32)
        if problem_of(x) in ("nan", "empty"):
            raise AudioError(f"{path} (noise {key!r} of {self.noise_scp}): empty or NaN/inf"
                             " audio")
        return x

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        source = self.prepare_source(uid, data["speech"])
        rng = self.generator(uid)
        clip, offset = self.fit_clip(source, rng)
        clean = bool(rng.random() < self.clean_ratio)
        info = {"uid": uid, "crop_offset": offset, "clean": clean, "pack": None,
                "noise": None, "snr_db": None}
        if not get_format(self.format).rendered or clean:
            out = self._dry(data, clip)
        else:
            bank = self.bank
            source_rir, noise_rirs, meta = bank.pack(int(rng.integers(len(bank))))
            info["pack"] = meta["id"]
            noise, snr_db = None, None
            if self.noises and len(noise_rirs) > 0:
                index = int(rng.integers(len(self.noises)))
                snr_db = float(rng.uniform(*self.snr_range))
                noise = self.read_noise(index, rng)
                info.update(noise=self.noises[index][0], snr_db=snr_db)
            if self.mix_on_device:
                out = self._ingredients(data, clip, source_rir, noise, noise_rirs, snr_db, rng)
            else:
                scene = mix_scene(clip, source_rir, noise, noise_rirs, snr_db, rng=rng,
                                  fs=self.fs, fade_seconds=self.fade_seconds,
                                  noise_level_dbfs=self.noise_level_dbfs)
                out = dict(data, speech=np.ascontiguousarray(scene.mix.T, dtype=np.float32))
        self.last_info = info
        return out

    def _dry(self, data, clip: np.ndarray) -> dict:
        """The clean case (lambda): the dry clip on every channel, or its ingredients."""
        if not self.mix_on_device:
            return dict(data, speech=np.ascontiguousarray(np.tile(clip, (self.channels, 1)).T))
        delta = np.ones((1, self.channels), dtype=np.float32)
        return self._pack_ingredients(data, clip, delta, np.zeros_like(clip),
                                      np.zeros((1, self.channels), np.float32), np.nan, 0, 0)

    def _ingredients(self, data, clip, source_rir, noise, noise_rirs, snr_db, rng) -> dict:
        """What espnet2_gram.scene.device_mixing needs to mix this scene on the device."""
        if noise is None:
            return self._pack_ingredients(data, clip, source_rir.T, np.zeros_like(clip),
                                          np.zeros((1, self.channels), np.float32), np.nan, 0, 0)
        fitted, start, active, noise_rir = prepare_noise(
            noise, noise_rirs, len(clip), rng, self.fs, self.fade_seconds,
            self.noise_level_dbfs)
        return self._pack_ingredients(data, clip, source_rir.T, fitted, noise_rir.T, snr_db,
                                      start, active)

    @staticmethod
    def _pack_ingredients(data, clip, source_rir, noise, noise_rir, snr_db, start,
                          active) -> dict:
        def as32(x):
            return np.ascontiguousarray(x, dtype=np.float32)

        return dict(data, speech=as32(clip[:, None]), source_rir=as32(source_rir),
                    noise=as32(noise), noise_rir=as32(noise_rir),
                    scene_params=as32([snr_db, start, active]))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(format={self.format!r}, fs={self.fs},"
                f" bank_dir={self.bank_dir!r}, noise_scp={self.noise_scp!r},"
                f" clip_seconds={self.clip_seconds}, snr_range={self.snr_range},"
                f" clean_ratio={self.clean_ratio}, train={self.train}, seed={self.seed})")
