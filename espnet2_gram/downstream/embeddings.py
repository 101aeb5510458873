"""Frame-level embeddings of a data directory, computed once and cached for every probe.

The three representations compared downstream, all on the same frame grid (one frame per
GRAM patch column: 80 ms at the paper settings):

* ``gram``: the ``raw`` frames of a packed GRAM model (``rows * dim`` values; layer selectable);
* ``gram_random``: the same architecture with untrained weights (seeded);
* ``logmel``: plain log-mel features, the model's own per-channel log-mel spectrograms (2
  channels binaural, W, Y, Z, X for FOA), z-scored over the clip, averaged over each frame's
  spectrogram frames and flattened (``channels * n_mels`` values); with ``logmel_intensity``
  FOA's three mel-binned intensity-vector channels (GRAM's and SELDnet's direction features,
  not z-scored) are appended.

The output directory holds ``feats.scp`` / ``feats.ark`` ((frames, dim) float32 per
utterance, readable by ESPnet as ``kaldi_ark``), ``utt2num_frames``, the label files of the
input copied unchanged, and ``embeddings.json`` describing what was extracted: a second run
with the same request and model is skipped, a changed one is redone (its earlier outputs are
removed first, so a failed run leaves no stale features). Audio that is missing, unreadable,
empty or NaN is an error naming the file; ``wav.scp`` entries that would run a command are
refused (:mod:`espnet2_gram.utils.scp`).
"""

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from espnet2_gram.frontend.spatial_features import per_crop_normalize
from espnet2_gram.frontend.pretrained_gram import PretrainedGRAM
from espnet2_gram.utils.audio import AudioError, load_audio, problem_of
from espnet2_gram.utils.cli import naming
from espnet2_gram.utils.datadir import read_data_dir
from espnet2_gram.utils.fileio import atomic_open, atomic_path, read_kv, write_kv
from espnet2_gram.utils.scp import check_scp

logger = logging.getLogger(__name__)

EXTRACTORS = ("gram", "gram_random", "logmel")
SKIPPED_FILES = ("wav.scp", "utt2num_samples", "feats.scp", "utt2num_frames")
OUTPUTS = ("embeddings.json", "feats.scp", "feats.ark", "utt2num_frames")


class FrameExtractor(torch.nn.Module):
    """Audio (B, samples[, channels]) of equal length -> frame embeddings (B, frames, dim)."""

    def __init__(self, kind: str, model_path, layer: Optional[int] = None, seed: int = 0,
                 logmel_intensity: bool = False):
        super().__init__()
        if kind not in EXTRACTORS:
            raise ValueError(f"--extractor {kind!r}: expected one of {', '.join(EXTRACTORS)}")
        self.kind = kind
        self.seed = int(seed)
        self.logmel_intensity = bool(logmel_intensity) and kind == "logmel"
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.gram = PretrainedGRAM(str(model_path), layer=layer,
                                       random_init=kind == "gram_random")
        self.eval()

    @property
    def fs(self) -> int:
        return self.gram.features.fs

    @property
    def patch_frames(self) -> int:
        return self.gram.encoder.patch_size[1]

    def output_size(self) -> int:
        if self.kind == "logmel":
            return self._logmel_channels() * self.gram.features.n_mels
        return self.gram.output_size()

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long)
        if self.kind != "logmel":
            return self.gram(audio, lengths)[0]
        feats, _ = self.gram.features(audio, lengths)  # (B, C, F, T); log-mels first
        feats = self.gram.drop_stub_chunk(feats[:, :self._logmel_channels()])
        logmels = self.gram.features.in_channels
        feats = torch.cat([per_crop_normalize(feats[:, :logmels]), feats[:, logmels:]], dim=1)
        return pool_frames(feats, self.patch_frames)

    def _logmel_channels(self) -> int:
        features = self.gram.features
        return features.out_channels if self.logmel_intensity else features.in_channels


def pool_frames(feats: torch.Tensor, frames_per_step: int) -> torch.Tensor:
    """(B, C, F, T) -> (B, ceil(T / p), C * F): the mean over each group of p frames
    (the last group may be shorter)."""
    b, c, f, t = feats.shape
    n = math.ceil(t / frames_per_step)
    padded = torch.nn.functional.pad(feats, (0, n * frames_per_step - t))
    sums = padded.reshape(b, c, f, n, frames_per_step).sum(dim=-1)
    counts = torch.full((n,), float(frames_per_step))
    counts[-1] = t - (n - 1) * frames_per_step
    return (sums / counts).permute(0, 3, 1, 2).reshape(b, n, c * f)


def _request(extractor: FrameExtractor, model_path, layer) -> dict:
    weights = Path(model_path) / "model.pth"
    stamp = weights.stat() if weights.is_file() else Path(model_path).stat()
    return {"extractor": extractor.kind, "model_path": str(model_path), "layer": layer,
            "model_size": stamp.st_size, "model_mtime": int(stamp.st_mtime),
            "dim": extractor.output_size(), "fs": extractor.fs,
            "seed": extractor.seed if extractor.kind == "gram_random" else None,
            "logmel_intensity": extractor.logmel_intensity}


def _up_to_date(out_dir: Path, request: dict, utts: List[str]) -> bool:
    meta, scp = out_dir / "embeddings.json", out_dir / "feats.scp"
    if not (meta.is_file() and scp.is_file()):
        return False
    try:
        done = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return done == request and sorted(read_kv(scp)) == sorted(utts)


def _embeddings(extractor: FrameExtractor, wavs: Dict[str, str], order: List[str],
                batch_size: int, scp: Path) -> Iterator[Tuple[str, np.ndarray]]:
    """``(utt, frames)`` in ``order``, computed in batches of equal-length clips (no padding
    anywhere); empty or NaN audio, or a channel count the model does not take, is an error
    naming the file."""
    def run(group, batch):
        # (channels, samples) -> (samples, channels), as ESPnet's loaders give
        emb = extractor(torch.from_numpy(np.stack([x.T for x in batch]))).float().numpy()
        return zip(group, emb)

    want = extractor.gram.features.in_channels
    group, batch = [], []
    for utt in order:
        x = load_audio(wavs[utt], fs=extractor.fs).samples
        channels = 1 if x.ndim == 1 else x.shape[0]
        problem = {"empty": "empty audio", "nan": "NaN or inf in the audio"}.get(problem_of(x))
        if problem is None and channels not in (1, want):
            problem = f"{channels} channel(s), but the model takes {want} (or mono)"
        if problem:
            raise AudioError(f"{wavs[utt]} (utterance {utt} of {scp}): {problem}")
        if batch and (x.shape != batch[0].shape or len(batch) == batch_size):
            yield from run(group, batch)
            group, batch = [], []
        group.append(utt)
        batch.append(x)
    yield from run(group, batch)


def extract_data_dir(data_dir, out_dir, extractor: FrameExtractor, model_path,
                     layer: Optional[int] = None, batch_size: int = 16) -> Dict[str, int]:
    """Embed every utterance of ``data_dir`` into ``out_dir``; returns utt -> frames."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    try:
        check_scp(data_dir / "wav.scp")
        wavs = read_data_dir(data_dir, names=[])["wav.scp"]
        request = _request(extractor, model_path, layer)
        if _up_to_date(out_dir, request, list(wavs)):
            logger.info("%s: embeddings up to date, skipped", out_dir)
            return {k: int(v) for k, v in read_kv(out_dir / "utt2num_frames").items()}
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_outputs(out_dir)  # a killed run leaves no stale features either
        lengths_file = data_dir / "utt2num_samples"
        lengths = read_kv(lengths_file) if lengths_file.is_file() else {}
        order = sorted(wavs, key=lambda u: (int(lengths.get(u, 0)), u))
        num_frames = _write_embeddings(data_dir, out_dir, extractor, wavs, order, batch_size,
                                       request)
    except BaseException:  # nothing partial or stale
        _remove_outputs(out_dir)
        raise
    logger.info("%s: %d utterances, %d-dim frames (%s)", out_dir, len(num_frames),
                request["dim"], extractor.kind)
    return num_frames


def _remove_outputs(out_dir: Path) -> None:
    for name in OUTPUTS:
        (out_dir / name).unlink(missing_ok=True)


def _write_embeddings(data_dir: Path, out_dir: Path, extractor: FrameExtractor,
                      wavs: Dict[str, str], order: List[str], batch_size: int,
                      request: dict) -> Dict[str, int]:
    """The outputs of :func:`extract_data_dir`, ``embeddings.json`` last."""
    import kaldiio

    num_frames = {}
    ark = out_dir / "feats.ark"
    with naming(out_dir):  # a full disk names the output folder
        with atomic_path(ark) as tmp_ark, atomic_path(out_dir / "feats.scp") as tmp_scp:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
                for utt, e in _embeddings(extractor, wavs, order, batch_size,
                                          data_dir / "wav.scp"):
                    writer(utt, e)
                    num_frames[utt] = e.shape[0]
            tmp_scp.write_text(tmp_scp.read_text().replace(str(tmp_ark), str(ark)))
        for path in data_dir.iterdir():
            if path.is_file() and path.name not in SKIPPED_FILES and not path.name.startswith("."):
                with atomic_path(out_dir / path.name) as tmp:
                    shutil.copyfile(path, tmp)
        write_kv(out_dir / "utt2num_frames", num_frames)
        with atomic_open(out_dir / "embeddings.json") as f:
            json.dump(request, f, indent=2)
    return num_frames
